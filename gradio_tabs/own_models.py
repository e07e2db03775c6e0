"""Add your model (Gradio): a checkpoint beside the three, in a picture of its own, outside the ensemble.

Local mode: an uploaded ``.safetensors`` file, or a typed path or ``hf://org/name@rev``. Public
mode: one of the deployer's ``SEG_EXTRA_MODELS``. The session keeps sources only; the models are
loaded once per source in a bounded cache shared by the sessions.
"""

from __future__ import annotations

import functools

import gradio as gr

from seg_core import settings
from seg_core.extra_models import ExtraModel, ExtraModelError, load_extra_model, source_key, source_name

from .common import MAX_FILE_MB, user_error

MAX_OWN = 2  # a user's own models per session, beside the three


@functools.lru_cache(maxsize=4)  # shared by the sessions and bounded; a refusal raises, so it is not kept
def _own_model(key: str, source: str) -> ExtraModel:
    return load_extra_model(source)


def _upload_path(value) -> str | None:
    if isinstance(value, dict):
        return value.get("path")
    return getattr(value, "path", value) or None


def add_own_model(own: list[dict] | None, upload=None, source: str | None = None) -> list[dict]:
    """The session's own models (``[{"key", "source", "label"}]``) with one more: an uploaded file,
    else a typed path, ``hf://`` id or (public mode) a listed name. Each refusal is a ``gr.Error``
    with ``seg_core.extra_models``' sentence."""
    own = list(own or [])
    if len(own) >= MAX_OWN:
        raise user_error(f"at most {MAX_OWN} of your own models at a time: untick one to add another.",
                          title="Cannot add this model")
    source = _upload_path(upload) or str(source or "").strip()
    if not source:
        raise user_error("choose a checkpoint first.", title="Cannot add this model")
    key = source_key(source)
    try:
        model = _own_model(key, source)
    except ExtraModelError as err:
        raise user_error(f"{err}.", title="Cannot add this model") from None
    if any(o["label"] == model.label for o in own):
        raise user_error(f"{model.label} is already in the comparison.", title="Cannot add this model")
    return own + [{"key": key, "source": source, "label": model.label}]


def own_models(own: list[dict] | None) -> list[ExtraModel]:
    """The loaded models of the session's list (one that can no longer be loaded, e.g. an upload
    gradio has since deleted, is left out)."""
    out = []
    for o in own or []:
        try:
            out.append(_own_model(o["key"], o["source"]))
        except ExtraModelError:
            pass
    return out


def own_box(own: list[dict]):
    labels = [o["label"] for o in own]
    return gr.update(choices=labels, value=labels, visible=bool(labels))


def own_section() -> tuple[list, list]:
    """The "Add your model" accordion: in local mode a file and a path / hf:// box, in public mode a
    dropdown of ``SEG_EXTRA_MODELS`` (when none are listed, a sentence instead of an empty tab).
    Returns its inputs for the add button, the button, and the box of added models (untick to remove)."""
    public = settings.public_mode()
    offered = [source_name(s) for s in settings.extra_models()] if public else []
    gr.Markdown("This public app adds no models of yours: it loads only the checkpoints its deployer lists "
                "(`SEG_EXTRA_MODELS`). Run the workbench on your own machine (see the README) to compare your "
                "checkpoint with the three.", visible=public and not offered, elem_id="own-none")
    with gr.Accordion("Add your model", open=False, visible=not public or bool(offered), elem_id="own-models"):
        if public:
            inputs = [gr.Dropdown(offered, value=None, label="Models offered by this server", elem_id="own-pick")]
        else:
            gr.Markdown("A `.safetensors` checkpoint of U-Net, FCN-VGG16 or FCN-ResNet50 (e.g. fine-tuned with "
                        f"`train_cli.py train --init`): an upload (at most {MAX_FILE_MB} MB, "
                        "the server's upload limit), or a local path or `hf://org/name@revision` of any size up to "
                        "256 MiB. It gets a picture of its own, outside the ensemble.")
            inputs = [gr.File(label="Checkpoint (.safetensors)", height=110, elem_id="own-file"),
                      gr.Textbox(label="…or a local path or hf://org/name@revision", elem_id="own-source")]
        add = gr.Button("Add to the comparison", elem_id="own-add")
        box = gr.CheckboxGroup([], value=[], label="Your models in the comparison (untick to remove)", visible=False,
                               elem_id="own-list")
    return inputs, add, box
