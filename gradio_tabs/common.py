"""What the Gradio tabs share: the server's limits, a payload decoded, a model named, errors as sentences.

Every model call goes through ``seg_core.serve`` (``predict`` here, ``PhotoService`` in
``photo``), whose forward passes take an inference slot ahead of a running video job; a failure
is a ``gr.Error`` with one sentence, never a traceback.
"""

from __future__ import annotations

import base64
import contextlib

import gradio as gr
import numpy as np

from seg_core import settings
from seg_core.config import TTA_MODES
from seg_core.inference import ENSEMBLE, ImageError, load_image
from seg_core.predictor import Predictor
from seg_core.registry import ARCH_NAMES, display_name
from seg_core.serve.slots import photo_slot

INFER_WORKERS, INFER_THREADS = settings.infer_workers(), settings.infer_threads()

MAX_FILE_MB = 10
MAX_FILE_SIZE = f"{MAX_FILE_MB}mb"
QUEUE_MAX_SIZE = 20
DEFAULT_CONCURRENCY = 2

DEFAULT_OPACITY = 0.5
#: How the pictures we draw travel to the browser: gradio's default, WebP, took 40 ms to encode a
#: 1024x512 overlay and JPEG 2 ms, at about the same size (both lossy); four of them per photo.
PICTURE_FORMAT = "jpeg"

#: The class of the Compare tab's masks while it has no photo (they are hidden on a phone then).
NO_PHOTO = "no-photo"
#: The class of a gallery as tall as its pictures (see ``CSS``).
FIT_GALLERY = "fit-gallery"
#: The legend is a plain table: no borders from the theme's table style. The Compare tab (``photo.page``):
#: on a phone its blocks stack, the photo, the masks (once there is a photo), the examples; from
#: 768 px a grid puts the examples under the photo and the masks on their right. A mask fills its
#: box's width, a small photo's too (a 256 px example was drawn 256 px wide in a 440 px box), but no
#: taller than two rows of them fit under the tabs (1440x900: a 2:1 photo's 440 px wide, a square's 360).
CSS = ("#legend table, #legend tr, #legend th, #legend td {border: none !important; background: transparent !important}"
       " #page-error {border-left: 4px solid #d1242f; padding-left: 8px}"
       " #compare-results .image-frame, #compare-results .image-frame img {width: 100%}"
       " #compare-results .image-frame img {height: auto; max-height: calc(50vh - 90px); object-fit: contain}"
       f" @media (max-width: 767px) {{#compare-results.{NO_PHOTO} {{display: none !important}}}}"
       " @media (min-width: 768px) {#compare-row {display: grid !important; grid-template-columns: minmax(280px, 1fr) 3fr;"
       " grid-template-rows: auto 1fr; align-items: start}"
       " #compare-photo {grid-area: 1 / 1} #compare-picks {grid-area: 2 / 1} #compare-results {grid-area: 1 / 2 / 3 / 3}}"
       # Gradio 6 gives a gallery of height="auto" a 450 px minimum and a 55vh maximum all the same:
       # a blank band under one row of panels, or a scroll box inside the page on a phone.
       f" .{FIT_GALLERY} .grid-wrap.fixed-height {{min-height: 0 !important; max-height: none !important}}"
       # Two pictures a row on a phone (three or four made thumbnails of ~95 px, captions cut short).
       f" @media (max-width: 600px) {{.{FIT_GALLERY} .grid-container {{grid-template-columns: repeat(2, minmax(0, 1fr)) !important}}}}")
LAUNCH_KWARGS = {"max_file_size": MAX_FILE_SIZE, "css": CSS}


def user_error(message: str, title: str = "Error") -> gr.Error:
    """A message for the user; no traceback in the server log, the request was at fault."""
    return gr.Error(message, title=title, print_exception=False)


def decode(value) -> np.ndarray:
    """The RGB array of an image payload (gradio file dict, path, bytes...), or a ``gr.Error``.

    Events run with ``preprocess=False`` so that gradio hands us the uploaded file untouched and
    every decoding failure goes through ``load_image``'s user-facing ``ImageError`` messages.
    """
    if value is None:
        raise user_error("No image: drop a photo (JPEG, PNG, WebP...) on the input first.", title="No image")
    source = value
    if isinstance(value, dict):
        source = value.get("path")
        url = value.get("url") or ""
        if source is None and url.startswith("data:"):
            source = base64.b64decode(url.partition(",")[2])
    elif hasattr(value, "path"):
        source = value.path
    try:
        return load_image(source)
    except ImageError as err:
        raise user_error(f"Cannot segment this file: {err}.", title="Bad image") from None


def model_key(predictor: Predictor, name) -> str:
    """The model a client asked for (``unet`` or ``U-Net``...), or a ``gr.Error`` that lists the choices."""
    known = {n: n for n in (*ARCH_NAMES, *predictor.models, *predictor.missing, ENSEMBLE)}
    known.update({display_name(n).lower(): n for n in ARCH_NAMES})
    key = known.get(str(name or "").strip().lower())
    if key is None:
        raise user_error(f"Unknown model {name!r}; choose one of: {', '.join(known_models(predictor))}.",
                       title="Unknown model")
    if key == ENSEMBLE:
        if not predictor.ensemble():
            raise user_error("The ensemble needs at least two models; this server has fewer.",
                              title="Model not available")
        return key
    if key not in predictor.models:
        why = str(predictor.missing[key]) if key in predictor.missing else "it is not loaded"
        raise user_error(f"Model {key} is not available on this server: {why}", title="Model not available")
    return key


def known_models(predictor: Predictor) -> list[str]:
    return list(dict.fromkeys((*ARCH_NAMES, *predictor.models, *([ENSEMBLE] if predictor.ensemble() else []))))


@contextlib.contextmanager
def inference_errors(who: str = "The model"):
    """Around every forward pass (and the decoding before it): an inference slot, ahead of a running
    video job (``seg_core.serve.slots.photo_slot``: gradio's events and the plain HTTP API share the
    cores instead of oversubscribing them), and a failure (e.g. out of memory on a small Space) as a
    sentence."""
    try:
        with photo_slot():
            yield
    except (RuntimeError, MemoryError) as err:
        raise gr.Error(f"{who} failed on this image ({type(err).__name__}); try a smaller image.") from err


def checked_tta(tta) -> str:
    """``"none"`` or ``"flip"``, or a ``gr.Error`` naming the choices."""
    tta = "none" if tta in (None, "") else str(tta).strip().lower()
    if tta not in TTA_MODES:
        raise user_error(f"tta must be one of {', '.join(TTA_MODES)}, not {tta!r}.", title="Bad value")
    return tta


def error_text(err: gr.Error) -> str:
    """A ``gr.Error`` as the Markdown of the page's error box (stays until the next photo)."""
    return f"**{err.title}:** {err.message}"


def missing_note(predictor: Predictor, weights_note: str | None = None) -> str:
    if weights_note and not predictor.models:
        return f"**No model is loaded**: {weights_note}."
    if not predictor.missing:
        return f"**Note**: {weights_note}." if weights_note else ""
    lines = [f"**Note**: {weights_note}.", ""] if weights_note else []
    lines += ["**Not available on this server** (the other models work):", ""]
    for name, missing in predictor.missing.items():
        lines.append(f"- **{display_name(name)}**: {missing.reason}; train it with `{missing.command}`")
    return "\n".join(lines)
