"""Streamlit pieces that choose the scene: uploads (kept per session, bounded), the example gallery,
and shareable ``?scene=`` links.

The chosen image becomes ``common.current_scene()``, so every page shows the same one. The choice
is made in the widgets' callbacks and by ``choose_scene``, which draws nothing: a page can show the
result above the pickers and draw them last (Compare). Each upload is decoded at screen size once
(``st.cache_resource`` by Streamlit's file id), at full size only when asked (``scenes.Scene``); the
thumbnails are encoded once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import streamlit as st

from seg_core import examples, settings
from seg_core.data import DataError, PairVerdict, list_pairs
from seg_core.inference import MAX_PIXELS, ImageError

from . import scenes
from .common import SCENE_KEY, current_scene, data_dir, set_scene
from .scenes import Scene

#: Called with the scene that a widget's callback (an upload, a pick) has just chosen, before the
#: rerun draws anything: the Compare page starts its masks there (``common.start_masks``).
OnScene = Callable[[Scene], None]

GALLERY_PER_PAGE = 24
GALLERY_COLUMNS = 6
GALLERY_OPEN_KEY = "gallery_open"


@st.cache_resource(max_entries=4, ttl=1800, show_spinner=False)  # a photo at screen size: 1.5 MB
def _decoded_upload(file_id: str, _data: bytes) -> tuple[np.ndarray, tuple[int, int, int], float]:
    """An upload decoded at screen size once per file (keyed by Streamlit's file id, so its bytes
    are never hashed): ``scenes.upload_at_screen_size``; raises ``ImageError``."""
    return scenes.upload_at_screen_size(_data)


@st.cache_resource(max_entries=4, ttl=1800, show_spinner=False)  # its full-size pixels decoded when asked
def _upload_scene(file_id: str, name: str, as_pair: bool, _data: bytes, _decoded: tuple) -> Scene:
    return scenes.scene_from_upload(name, _data, as_pair, _decoded)


@st.cache_resource(max_entries=16, ttl=1800, show_spinner=False)  # a verdict is a line of text
def _pair_verdict(file_id: str, _screen: np.ndarray, shape: tuple[int, ...]) -> PairVerdict | None:
    return scenes.upload_pair_verdict(_screen, shape)


UPLOADS_KEY = "uploaded_files"  # [(name, file id, bytes)]: survives a page change, unlike the widget
# Per session, so that many visitors cannot grow the server without limit: the latest set only
# (a new set replaces it), at most this many files and bytes; the rest is refused, by name.
UPLOAD_MAX_FILES = 10  # a list to pick from, not an archive
UPLOAD_MAX_BYTES = 40 * 2**20  # two photos at the 20 MB per-file limit of .streamlit/config.toml
_UPLOAD_IDS = "_upload_ids"  # the widget's file ids last seen, kept or not
_UPLOAD_REFUSED = "_upload_refused"  # the sentence saying which files were not kept


def bounded_uploads(files: list) -> tuple[list, list]:
    """``files`` split into those kept (in order, while under ``UPLOAD_MAX_FILES`` and
    ``UPLOAD_MAX_BYTES`` together) and those refused."""
    kept, refused, total = [], [], 0
    for f in files:
        if len(kept) < UPLOAD_MAX_FILES and total + f.size <= UPLOAD_MAX_BYTES:
            kept.append(f)
            total += f.size
        else:
            refused.append(f)
    return kept, refused


def _release(file_ids: set[str]) -> None:
    """Drop files from Streamlit's own store of this session's uploads, which otherwise keeps every
    file it received (also those of a widget left behind on another page) until the session ends."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    remove = getattr(ctx.uploaded_file_mgr, "remove_file", None) if ctx else None  # only the in-memory store has it
    for file_id in file_ids if remove else ():
        remove(ctx.session_id, file_id)


def _keep_uploads(on_scene: OnScene | None = None) -> None:
    """The uploader changed (files added or removed): keep its files' bytes in the session, so the
    uploads are still there after a visit to another page (which empties the widget); the previous
    set is let go, and files over the bounds are refused. ``on_scene``: see ``OnScene``."""
    from streamlit.runtime.uploaded_file_manager import DeletedFile

    everything = st.session_state.get("uploads") or []
    if [f.file_id for f in everything] == st.session_state.get(_UPLOAD_IDS):
        return  # the same files (AppTest reports the widget as changed at every run)
    st.session_state[_UPLOAD_IDS] = [f.file_id for f in everything]
    # Files refused earlier were let go from Streamlit's store, so the widget now lists them as
    # ``DeletedFile`` (an id, no name or bytes): they stay refused, and its note stays.
    files = [f for f in everything if not isinstance(f, DeletedFile)]
    gone = len(files) < len(everything)
    kept, refused = bounded_uploads(files)
    before = {file_id for _, file_id, _ in st.session_state.get(UPLOADS_KEY) or []}
    st.session_state[UPLOADS_KEY] = [(f.name, f.file_id, f.getvalue()) for f in kept]
    _release((before | {f.file_id for f in refused}) - {f.file_id for f in kept})
    if not gone:
        st.session_state.pop(_UPLOAD_REFUSED, None)
    if refused:
        st.session_state[_UPLOAD_REFUSED] = (
            f"Not kept: {', '.join(f.name for f in refused)}. Uploads may total {UPLOAD_MAX_BYTES / 2**20:.0f} MB "
            f"and {UPLOAD_MAX_FILES} files at a time; remove some files to add others.")
    current = current_scene()
    if not kept and current is not None and current.source == "upload":
        del st.session_state[SCENE_KEY]
    if kept:
        _prefer_upload(on_scene)
        st.session_state[GALLERY_OPEN_KEY] = False


def _prefer_upload(on_scene: OnScene | None = None) -> None:
    """An upload was added or chosen: show it (instead of a gallery scene), and drop ``?scene=``."""
    st.session_state["_upload_wins"] = True
    st.query_params.pop("scene", None)
    if on_scene is not None:
        choose_upload()
        if (scene := current_scene()) is not None:
            on_scene(scene)


def upload_limit_text() -> str:
    return (f"Up to {st.get_option('server.maxUploadSize')} MB and {MAX_PIXELS / 1e6:.0f} megapixels per image, "
            f"{UPLOAD_MAX_FILES} images and {UPLOAD_MAX_BYTES / 2**20:.0f} MB in all; "
            "JPEG, PNG, WebP, BMP, GIF or TIFF.")


_UPLOAD_ERROR = "_upload_error"  # why the chosen upload cannot be shown, for the uploader's column


def _chosen_file(files: list) -> tuple[str, str, bytes]:
    """The upload the "Image to show" box names (its value from the browser, the first file without it)."""
    return files[min(st.session_state.get("upload_pick") or 0, len(files) - 1)]


def choose_upload() -> None:
    """Make the chosen upload the scene (unless a gallery scene was picked after it), from this run's
    values of the pickers' widgets; draws nothing, so that a page can draw the result above the
    pickers. Each file is decoded once, so moving a slider neither decodes nor hashes it again; a
    file that cannot be read keeps its reason for ``upload_picker`` to show."""
    st.session_state.pop(_UPLOAD_ERROR, None)
    files = st.session_state.get(UPLOADS_KEY) or []
    if not files:
        return
    name, file_id, data = _chosen_file(files)
    try:
        decoded = _decoded_upload(file_id, data)
        as_pair = False
        if (verdict := _pair_verdict(file_id, *decoded[:2])) is not None:
            as_pair = st.session_state.get(f"as_pair_{name}", verdict.is_pair)
        current = current_scene()
        if current is None or current.source == "upload" or st.session_state.pop("_upload_wins", False):
            set_scene(_upload_scene(file_id, name, as_pair, data, decoded))
    except (ImageError, DataError) as err:
        st.session_state.pop("_upload_wins", None)
        if (shown := current_scene()) is not None and shown.source == "upload":
            del st.session_state[SCENE_KEY]  # not the previous upload under this one's error
        st.session_state[_UPLOAD_ERROR] = f"Cannot use **{name}**: {err}."


def upload_picker(on_scene: OnScene | None = None) -> None:
    """Drag-and-drop one or several images; the chosen one becomes the scene (``choose_upload``).

    Any file type is accepted, so that ``load_image`` (not the browser) refuses what it cannot read,
    with its reason in an ``st.error`` right here.
    """
    st.file_uploader("Upload photos (several at once)", accept_multiple_files=True, key="uploads",
                     on_change=_keep_uploads, args=(on_scene,), help=upload_limit_text())
    st.caption(upload_limit_text())
    if refused := st.session_state.get(_UPLOAD_REFUSED):
        st.warning(refused)
    files = st.session_state.get(UPLOADS_KEY) or []
    if not files:
        return
    names = [name for name, _, _ in files]
    if len(files) > 1:
        st.selectbox("Image to show", range(len(files)), format_func=names.__getitem__, key="upload_pick",
                     on_change=_prefer_upload, args=(on_scene,))
    name, file_id, data = _chosen_file(files)
    if error := st.session_state.get(_UPLOAD_ERROR):
        st.error(error)
        return
    if (verdict := _pair_verdict(file_id, *_decoded_upload(file_id, data)[:2])) is not None:
        st.checkbox("Photo | label pair (right half: colour label)", value=verdict.is_pair,
                    key=f"as_pair_{name}", on_change=_prefer_upload, args=(on_scene,))
        st.caption(verdict.reason)


@st.cache_data(max_entries=512, show_spinner=False)  # about 5 kB each: a whole val folder of 500 is 2.5 MB
def _thumbnail(path: str, mtime: float) -> bytes:
    """A JPEG thumbnail: bytes, so that a rerun does not encode 24 arrays again."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(scenes.thumbnail(path)).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def gallery_files() -> list[Path] | None:
    """The val pair files of the configured folder, or ``None`` when there are none."""
    try:
        return list_pairs(data_dir())
    except DataError:
        return None


def no_gallery_note() -> None:
    """Why there are no example scenes (a public Space has none: the data may not be redistributed)."""
    where = "" if settings.public_mode() else (
        " To browse them here, download the *Cityscapes Image Pairs* (512x256 JPEGs, photo left, colour label "
        "right) and point the **Validation folder** setting in the sidebar, or the `SEG_DATA_DIR` environment "
        "variable, at its `val` folder.")
    st.info("**No example scenes here:** Cityscapes images may not be redistributed, so none come with the app. "
            "Upload a street photo (or a photo | label pair, twice as wide as high) to compare the models on it."
            + where)


def gallery_picker(per_row: int = GALLERY_COLUMNS, on_scene: OnScene | None = None) -> None:
    """Thumbnails of the val pairs, a page at a time; a click makes one the scene (its button is
    then marked, and ``?scene=`` names it in the URL, a link to share). ``on_scene``: see ``OnScene``."""
    files = gallery_files()
    if files is None:
        no_gallery_note()
        return
    pages = -(-len(files) // GALLERY_PER_PAGE)
    current = current_scene()
    chosen = current.name if current is not None and current.source == "gallery" else None
    page = 1
    if pages > 1:
        page = st.number_input(f"Page (of {pages}; {len(files)} scenes)", min_value=1, max_value=pages, value=1,
                               step=1, key="gallery_page")
    shown = scenes.page_of(files, int(page), GALLERY_PER_PAGE)
    cols = st.columns(per_row)
    for i, path in enumerate(shown):
        with cols[i % per_row]:
            try:
                st.image(_thumbnail(str(path), path.stat().st_mtime), width="stretch")
            except DataError:
                st.caption(f"{path.name}: not a readable image")
                continue
            mine = path.name == chosen
            st.button(("✓ " if mine else "") + path.name, key=f"gallery_{path.name}", width="stretch",
                      type="primary" if mine else "secondary", on_click=_pick_file, args=(path, on_scene))


def _pick_file(path: Path, on_scene: OnScene | None = None) -> None:
    try:
        scene = scenes.scene_from_file(path)
    except DataError:
        st.session_state["_pick_error"] = f"Cannot use {path.name}: it is not a readable photo | label pair."
        return
    set_scene(scene)
    st.query_params["scene"] = path.name
    st.session_state["_query_scene"] = path.name
    st.session_state[GALLERY_OPEN_KEY] = False  # fold the examples away: the results come up
    if on_scene is not None:
        on_scene(current_scene())


def scene_from_query() -> None:
    """``?scene=12.jpg`` opens that val scene (a shareable link); applied once per value. Only a
    file name of the configured folder is taken: anything with a path in it is refused."""
    wanted = st.query_params.get("scene")
    if not wanted or st.session_state.get("_query_scene") == wanted:
        return
    st.session_state["_query_scene"] = wanted
    if wanted != Path(wanted).name or "\\" in wanted or wanted.startswith("."):
        st.warning("The link's `scene` must be the file name of a validation scene, not a path.")
        return
    files = {p.name: p for p in gallery_files() or []}
    if wanted in files:
        _pick_file(files[wanted])
    else:
        st.warning(f"The link's scene {wanted!r} is not among the validation scenes.")


def choose_scene() -> None:
    """This run's scene, settled before anything is drawn: a ``?scene=`` link, then the chosen upload.
    A page that draws the result above the pickers calls it first (``scene_picker`` calls it too:
    once more changes nothing)."""
    scene_from_query()
    choose_upload()


def scene_picker(on_scene: OnScene | None = None) -> None:
    """Upload beside the example scenes; the examples fold away once a scene is shown. ``on_scene``:
    see ``OnScene``."""
    choose_scene()
    if error := st.session_state.pop("_pick_error", None):
        st.error(error)
    current = current_scene()
    files = gallery_files()
    upload_col, gallery_col = st.columns([1, 2]) if files else (st.container(), None)
    with upload_col:
        upload_picker(on_scene)
    if gallery_col is None:
        if current is None:
            no_gallery_note()
        return
    kitti = settings.is_examples(data_dir())
    with gallery_col:
        label = f"Example scenes ({len(files)} KITTI scenes)" if kitti else f"Example scenes ({len(files)} validation pairs)"
        if current is not None and current.source == "gallery":
            label += f": showing {current.name}"
        if GALLERY_OPEN_KEY not in st.session_state:
            st.session_state[GALLERY_OPEN_KEY] = current is None
        # The thumbnails are drawn only while the expander is open: a closed one costs nothing on
        # each rerun (24 images and buttons took about 100 ms before the masks of an upload).
        with st.expander(label, key=GALLERY_OPEN_KEY, on_change="rerun"):
            if st.session_state[GALLERY_OPEN_KEY]:
                gallery_picker(per_row=GALLERY_COLUMNS, on_scene=on_scene)
        if kitti:
            st.caption(examples.CREDIT)


def scene_credit(scene: Scene) -> None:
    """The licence's attribution under a shipped KITTI scene."""
    if scene.source == "gallery" and settings.is_examples(data_dir()):
        st.caption(examples.CREDIT)


def open_first_example() -> None:
    """The landing page opens on the first shipped KITTI scene (once a session), so a visitor of a
    Space sees the models on a real street at once; with Cityscapes data, nothing is chosen for them."""
    if current_scene() is not None or st.session_state.get("_first_example_done"):
        return
    st.session_state["_first_example_done"] = True
    files = gallery_files()
    if files and settings.is_examples(data_dir()) and not st.query_params.get("scene"):
        _pick_file(files[0])
