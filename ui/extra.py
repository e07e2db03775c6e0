"""Your own models beside the three (Streamlit): add a checkpoint, see it in a column of its own, remove it.

Local mode: upload a ``.safetensors`` file, or type a path or ``hf://org/name@rev``. Public mode: pick
one of the deployer's ``SEG_EXTRA_MODELS`` and nothing else (no box, no upload; nothing at all when
none are listed). ``seg_core.extra_models`` checks every source; each refusal is its one sentence in
an ``st.error`` under the controls.

Sessions stay bounded: a session keeps only its models' sources (at most ``MAX_PER_SESSION``); the
models are loaded once per source in ``st.cache_resource``, shared and bounded by ``max_entries``.
An upload is written once, by content, under ``settings.cache_dir()/extra_models`` (the newest
``KEEP_UPLOADS`` kept), and the uploader is emptied so its bytes leave the session.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from seg_core import extra_models, settings
from seg_core.extra_models import ExtraModel, ExtraModelError, check_size, check_suffix, load_extra_model, source_key
from seg_core.files import atomic_path

ADDED_KEY = "extra_models"  # [Added] of this session, in the order added
ERROR_KEY = "extra_error"  # the last refusal, shown until the next attempt
UPLOADER_KEY = "extra_upload_n"  # bumped after each upload: a fresh, empty uploader
MAX_PER_SESSION = 2
KEEP_UPLOADS = 8


@dataclass(frozen=True)
class Added:
    key: str  # what the model is cached by: an upload's sha256, a file's path, size and time, or an hf:// id
    source: str  # what load_extra_model is given
    label: str


@st.cache_resource(max_entries=4, show_spinner="Loading your model…")
def _load(key: str, source: str) -> ExtraModel:
    return load_extra_model(source)


def added() -> list[Added]:
    return list(st.session_state.get(ADDED_KEY) or [])


def key() -> str:
    """Changes whenever the session's models do: for the caches of the pictures drawn from them."""
    return "|".join(a.key for a in added())


def chosen() -> dict[str, ExtraModel]:
    """``{key: ExtraModel}`` of the session, loaded (once per source); a model that can no longer
    be loaded (an upload pruned, a file changed) is dropped, with its reason. The serving layer
    runs them beside the three (``seg_core.serve.photos.PhotoService.own``)."""
    out = {}
    for a in added():
        try:
            out[a.key] = _load(a.key, a.source)
        except ExtraModelError as err:
            _remove(a.key)
            st.session_state[ERROR_KEY] = f"{a.label} was removed: {err}."
    return out


def models() -> dict[str, ExtraModel]:
    """``{label: ExtraModel}`` of the session (``chosen`` by label)."""
    return {m.label: m for m in chosen().values()}


# --- adding and removing --------------------------------------------------------------------------

def _remove(k: str) -> None:
    st.session_state[ADDED_KEY] = [a for a in added() if a.key != k]


def _add(k: str, source: str) -> None:
    """(In a widget's callback.) Load ``source`` (cached by ``k``) and add it to the session, or
    keep the refusal for display."""
    st.session_state.pop(ERROR_KEY, None)
    try:
        model = _load(k, source)
    except ExtraModelError as err:
        st.session_state[ERROR_KEY] = f"Cannot add this model: {err}."
        return
    if any(a.label == model.label for a in added()):
        st.session_state[ERROR_KEY] = f"{model.label} is already in the comparison."
        return
    st.session_state[ADDED_KEY] = added() + [Added(k, source, model.label)]


def _store_upload(name: str, data: memoryview) -> str:
    """The upload written once under the cache folder, named as the user named it (the label shows
    that name); returns its path. Older uploads beyond ``KEEP_UPLOADS`` are removed."""
    digest = hashlib.sha256(data).hexdigest()
    root = settings.cache_dir() / "extra_models"
    path = root / digest[:24] / Path(name).name
    if not path.is_file():
        with atomic_path(path, suffix=".safetensors") as tmp:
            tmp.write_bytes(data)
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in folders[KEEP_UPLOADS:]:
        if old != path.parent:
            shutil.rmtree(old, ignore_errors=True)
    return str(path)


def _on_upload(widget: str) -> None:
    """A checkpoint was dropped on the uploader: store and add it, then swap in a fresh uploader (a
    new key), so that this run already draws an empty one and the bytes leave the session."""
    upload = st.session_state.get(widget)
    if upload is None:
        return
    st.session_state[UPLOADER_KEY] = st.session_state.get(UPLOADER_KEY, 0) + 1
    _take_upload(upload)


def _take_upload(upload) -> None:
    name = Path(upload.name).name
    try:
        check_suffix(name)
        check_size(name, upload.size)
    except ExtraModelError as err:
        st.session_state[ERROR_KEY] = f"Cannot add this model: {err}."
        return
    path = _store_upload(name, upload.getbuffer())
    _add(f"sha256:{Path(path).parent.name}", path)


def manager() -> None:
    """The "Your own models" expander: the session's models with a remove button each, and the
    controls to add one (by mode). Renders nothing in public mode when the deployer listed none."""
    public = settings.public_mode()
    offered = [extra_models.source_name(s) for s in settings.extra_models()] if public else []
    mine = added()
    if public and not offered and not mine:
        return
    error = st.session_state.get(ERROR_KEY)
    title = "Your own models: " + (", ".join(a.label for a in mine) if mine else "add a checkpoint beside the three")
    with st.expander(title, expanded=bool(error)):  # closed otherwise: the masks stay near the top
        for a in mine:
            name_col, button_col = st.columns([4, 1], vertical_alignment="center")
            name_col.markdown(f"**{a.label}**")
            button_col.button("Remove", key=f"extra_remove_{hashlib.sha1(a.key.encode()).hexdigest()[:12]}",
                              on_click=_remove, args=(a.key,))
        if len(mine) >= MAX_PER_SESSION:
            st.caption(f"At most {MAX_PER_SESSION} of your own models at a time: remove one to add another.")
        elif public:
            _public_controls(offered)
        else:
            _local_controls()
        if error := st.session_state.get(ERROR_KEY):
            st.error(error)


def _public_controls(offered: list[str]) -> None:
    choice = st.selectbox("Model offered by this server", offered, index=None, key="extra_pick",
                          placeholder="Choose a model…")
    st.button("Add to the comparison", key="extra_add_listed", disabled=choice is None, on_click=_on_add_listed)


def _on_add_listed() -> None:
    if choice := st.session_state.get("extra_pick"):
        _add(choice, choice)  # load_extra_model maps the shown name to the deployer's source


def _local_controls() -> None:
    limit = extra_models.MAX_BYTES // 2**20
    # The server refuses any upload over server.maxUploadSize, whatever a widget says: a larger
    # checkpoint is added by its path, or the limit raised when the app is started.
    upload_mb = min(limit, st.get_option("server.maxUploadSize"))
    raise_it = "" if upload_mb >= limit else (
        f" (uploads: up to {upload_mb} MB, the server's limit; add a larger file by its path, or start the app with "
        f"`streamlit run app.py --server.maxUploadSize {limit}`)")
    st.caption(f"A `.safetensors` checkpoint of U-Net, FCN-VGG16 or FCN-ResNet50 (e.g. fine-tuned with "
               f"`train_cli.py train --init`), at most {limit} MiB{raise_it}. It gets its own column, outside the ensemble.")
    widget = f"extra_upload_{st.session_state.get(UPLOADER_KEY, 0)}"
    st.file_uploader("Upload a checkpoint", key=widget, max_upload_size=upload_mb, on_change=_on_upload, args=(widget,))
    path_col, button_col = st.columns([4, 1], vertical_alignment="bottom")
    path_col.text_input("…or a local path or hf://org/name@revision", key="extra_source",
                        placeholder="runs/mine/best.safetensors  or  hf://org/name@rev")
    button_col.button("Add", key="extra_add_source", on_click=_on_add_source)


def _on_add_source() -> None:
    """The Add button (a callback, so the page is drawn with the model already in or refused)."""
    if source := (st.session_state.get("extra_source") or "").strip():
        _add(source_key(source), source)
        if ERROR_KEY not in st.session_state:
            st.session_state["extra_source"] = ""
