"""Streamlit pieces shared by the pages: settings, cached models and predictions, scene pickers.

Heavy objects are built once: the ``Predictor`` per weights folder with ``st.cache_resource``,
the masks of a scene per (weights folder, scene) with ``st.cache_data``. The selected image lives
in ``st.session_state["scene"]`` so every page shows the same one. Every widget has an explicit key.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from seg_core import examples, served_weights, settings
from seg_core.data import DataError, PairVerdict, list_pairs, pair_verdict
from seg_core.inference import MAX_PIXELS, ImageError, Prediction, Predictions, load_image
from seg_core.metrics import image_scores
from seg_core.palette import CLASS_NAMES
from seg_core.predictor import Predictor, train_command
from seg_core.registry import ARCH_NAMES, ENSEMBLE, display_name
from seg_core.runners import EXPORT_SUFFIXES, forward_latency
from seg_core.served_weights import WeightsError, WeightsSource

from . import scenes
from .scenes import Scene

SCENE_KEY = "scene"
TTA_KEY = "tta"
GALLERY_PER_PAGE = 24
GALLERY_COLUMNS = 6
GALLERY_OPEN_KEY = "gallery_open"


# --- settings -------------------------------------------------------------------------------------

def settings_sidebar() -> None:
    """The sidebar settings every page shares (rendered by ``app.py`` so they persist)."""
    source = weights_source()
    with st.sidebar:
        if settings.public_mode():  # no server paths, no folder box
            st.caption(f"Weights: `{source.label}`" if source.label.startswith("hf://") else "Weights: shipped with the app")
        else:
            st.text_input("Validation folder (photo | label pairs)", value=str(scenes.default_data_dir()),
                          key="data_dir", help="Also settable with the SEG_DATA_DIR environment variable.")
            st.caption(f"Weights: `{source.label}` (set SEG_WEIGHTS_DIR, or SEG_WEIGHTS_REPO, to change)")
        if source.note:
            st.warning(source.note)
        st.toggle("Mirror-image averaging", key=TTA_KEY,
                  help="Test-time augmentation: each model also segments the mirrored photo and the two "
                       "predictions are averaged. Slightly better masks (the model card has the val figures); "
                       "each photo takes twice as long. The pages over the whole val folder have their own switch.")


def tta() -> str:
    """The test-time augmentation chosen in the sidebar: ``"flip"`` or ``"none"``."""
    return "flip" if st.session_state.get(TTA_KEY) else "none"


def data_dir() -> Path:
    if settings.public_mode():  # the deployer's folder only; visitors cannot name one
        return scenes.default_data_dir()
    return Path(st.session_state.get("data_dir") or scenes.default_data_dir())


# --- models ---------------------------------------------------------------------------------------

def weights_source() -> WeightsSource:
    """Where the weights come from (``seg_core.space``); a repo or revision that cannot be had
    stops the page with its one-sentence reason."""
    try:
        return served_weights.weights_source()
    except WeightsError as err:
        st.error(f"**The models cannot be loaded:** {err}.")
        st.stop()


def weights_key() -> str:
    """The weights folder and its checkpoints' modification times: a checkpoint copied in while
    the app runs is loaded at the next rerun, and cached masks of the old one are not reused."""
    folder = weights_source().folder
    files = [folder / f"{n}{suffix}" for n in ARCH_NAMES for suffix in (".safetensors", *EXPORT_SUFFIXES)]
    stamps = [f"{p.name}:{p.stat().st_mtime_ns}" for p in files if p.is_file()]
    return f"{folder}|{','.join(stamps)}"


# Bounds of the process-wide caches (shared by all sessions, so they do not grow with them):
@st.cache_resource(show_spinner="Loading the models…", max_entries=4)  # a set of weights: 190 MB; a new one only when checkpoints change
def load_predictor(key: str) -> Predictor:
    return Predictor.from_dir(key.split("|", 1)[0])


def predictor() -> Predictor:
    return load_predictor(weights_key())


def show_missing(pred: Predictor) -> None:
    """Say which models have no weights and how to train them; the others keep working."""
    if not pred.models:
        where = "the app's weights" if settings.public_mode() else f"`{weights_source().label}`"
        st.info(f"**No weights yet.** No model checkpoint was found in {where}. "
                "Train the models and copy their best checkpoints there:")
        st.code("\n".join(train_command(n) for n in ARCH_NAMES), language="bash")
        return
    for name, missing in pred.missing.items():
        reason = "its weights file is missing or unreadable" if settings.public_mode() else missing.reason
        st.warning(f"**{display_name(name)}** is not available: {reason}. Train it with:")
        st.code(missing.command, language="bash")


@st.cache_data(show_spinner="Segmenting…", max_entries=8)  # masks of a 40 MP photo: 40 MB each
def _predict(weights: str, scene_key: str, tta: str, _photo: np.ndarray) -> Predictions:
    from seg_core.video import PHOTOS_FIRST

    with PHOTOS_FIRST.photo():  # a running video job waits for this photo
        return load_predictor(weights).predict(_photo, tta=tta)


@st.cache_data(show_spinner=False, max_entries=8)
def _ensemble(weights: str, scene_key: str, tta: str, _photo: np.ndarray) -> Prediction | None:
    """The ensemble's mask alone (its members' probabilities, no masks), or ``None`` with fewer
    than two models. Its time is ``predict_many``'s, measured as the Gradio app's is."""
    from seg_core.video import PHOTOS_FIRST

    with PHOTOS_FIRST.photo():
        out = load_predictor(weights).predict(_photo, names=(ENSEMBLE,), tta=tta)
    return out.get(ENSEMBLE)


def _cache_args(scene: Scene, photo: np.ndarray | None) -> tuple[str, str, str, np.ndarray]:
    if photo is None or photo.shape == scene.photo.shape:
        return weights_key(), scene.key, tta(), scene.photo
    return weights_key(), f"{scene.key}@{photo.shape[1]}x{photo.shape[0]}", tta(), photo


def model_predictions(scene: Scene, photo: np.ndarray | None = None) -> Predictions:
    """Masks of all loaded models for the scene (or for ``photo``, a smaller copy of it: masks at
    that size), computed once per scene, size, set of weights and test-time augmentation."""
    return _predict(*_cache_args(scene, photo))


ENSEMBLES_SHOWN_KEY = "_ensembles_shown"


def predictions(scene: Scene, photo: np.ndarray | None = None) -> Predictions:
    """``model_predictions`` and, after them, the ensemble's mask (computed in a second step, so
    that a page can draw the three masks before it)."""
    args = _cache_args(scene, photo)
    models = _predict(*args)
    ensemble = _ensemble(*args) if len(models) > 1 else None
    shown = st.session_state.setdefault(ENSEMBLES_SHOWN_KEY, [])
    if args[:3] not in shown:
        shown[:] = shown[-15:] + [args[:3]]
    out = Predictions(models | ({ENSEMBLE: ensemble} if ensemble is not None else {}))
    out.decode_seconds, out.prepare_seconds = models.decode_seconds, models.prepare_seconds
    return out


def ensemble_pending(scene: Scene, photo: np.ndarray | None = None) -> bool:
    """Whether ``predictions`` would compute the ensemble now (this session has not had it for the
    scene yet): the page then draws the three masks first, with a note in the ensemble's place."""
    args = _cache_args(scene, photo)
    return bool(predictor().ensemble()) and args[:3] not in st.session_state.get(ENSEMBLES_SHOWN_KEY, [])


def full_size_mask(pred: Predictor, scene: Scene, name: str, shown: np.ndarray, tta: str) -> np.ndarray:
    """``name``'s mask at the full size of the scene's photo: ``shown`` itself when it is already
    that size, else predicted again from the full photo (for a download; no Streamlit call here,
    it runs outside the script)."""
    if shown.shape == scene.photo.shape[:2]:
        return shown
    return pred.predict(scene.photo, names=(name,), tta=tta)[name].mask


# --- the selected scene ---------------------------------------------------------------------------

def current_scene() -> Scene | None:
    return st.session_state.get(SCENE_KEY)


def set_scene(scene: Scene) -> None:
    current = current_scene()
    if current is None or current.key != scene.key or current.name != scene.name:
        st.session_state[SCENE_KEY] = scene


@st.cache_resource(max_entries=4, ttl=1800, show_spinner=False)  # up to 120 MB each (40 MP): few, and let go when unused
def _decoded_upload(file_id: str, _data: bytes) -> tuple[np.ndarray, float]:
    """An upload decoded once per file (keyed by Streamlit's file id, so its bytes are never hashed),
    and the seconds decoding took; raises ``ImageError``."""
    t0 = time.perf_counter()
    image = load_image(_data)
    return image, time.perf_counter() - t0


@st.cache_resource(max_entries=4, ttl=1800, show_spinner=False)  # the decoded upload's pixels, split when a pair
def _upload_scene(file_id: str, name: str, as_pair: bool, _image: np.ndarray, decode_seconds: float) -> Scene:
    scene = scenes.scene_from_image(name, _image, as_pair)
    scene.decode_seconds = decode_seconds
    return scene


@st.cache_resource(max_entries=16, ttl=1800, show_spinner=False)  # a verdict is a line of text
def _pair_verdict(file_id: str, _image: np.ndarray) -> PairVerdict:
    return pair_verdict(_image)


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


def _keep_uploads() -> None:
    """The uploader changed (files added or removed): keep its files' bytes in the session, so the
    uploads are still there after a visit to another page (which empties the widget); the previous
    set is let go, and files over the bounds are refused."""
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
        _prefer_upload()
        st.session_state[GALLERY_OPEN_KEY] = False


def _prefer_upload() -> None:
    """An upload was added or chosen: show it (instead of a gallery scene), and drop ``?scene=``."""
    st.session_state["_upload_wins"] = True
    st.query_params.pop("scene", None)


def upload_limit_text() -> str:
    return (f"Up to {st.get_option('server.maxUploadSize')} MB and {MAX_PIXELS / 1e6:.0f} megapixels per image, "
            f"{UPLOAD_MAX_FILES} images and {UPLOAD_MAX_BYTES / 2**20:.0f} MB in all; "
            "JPEG, PNG, WebP, BMP, GIF or TIFF.")


def upload_picker() -> None:
    """Drag-and-drop one or several images; the chosen one becomes the scene.

    Any file type is accepted, so that ``load_image`` (not the browser) refuses what it cannot read,
    with its reason in an ``st.error`` right here. Each file is decoded once, so moving a slider
    neither decodes nor hashes the upload again.
    """
    st.file_uploader("Upload photos (several at once)", accept_multiple_files=True, key="uploads",
                     on_change=_keep_uploads, help=upload_limit_text())
    st.caption(upload_limit_text())
    if refused := st.session_state.get(_UPLOAD_REFUSED):
        st.warning(refused)
    files = st.session_state.get(UPLOADS_KEY) or []
    if not files:
        return
    names = [name for name, _, _ in files]
    index = st.selectbox("Image to show", range(len(files)), format_func=names.__getitem__,
                         key="upload_pick", on_change=_prefer_upload) if len(files) > 1 else 0
    name, file_id, data = files[min(index or 0, len(files) - 1)]
    try:
        image, decode_seconds = _decoded_upload(file_id, data)
        as_pair = False
        if scenes.is_two_to_one(image):
            verdict = _pair_verdict(file_id, image)
            as_pair = st.checkbox("Photo | label pair (right half: colour label)", value=verdict.is_pair,
                                  key=f"as_pair_{name}", on_change=_prefer_upload)
            st.caption(verdict.reason)
        current = current_scene()
        if current is None or current.source == "upload" or st.session_state.pop("_upload_wins", False):
            set_scene(_upload_scene(file_id, name, as_pair, image, decode_seconds))
    except (ImageError, DataError) as err:
        st.session_state.pop("_upload_wins", None)
        if (shown := current_scene()) is not None and shown.source == "upload":
            del st.session_state[SCENE_KEY]  # not the previous upload under this one's error
        st.error(f"Cannot use **{name}**: {err}.")


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


def gallery_picker(per_row: int = GALLERY_COLUMNS) -> None:
    """Thumbnails of the val pairs, a page at a time; a click makes one the scene (its button is
    then marked, and ``?scene=`` names it in the URL, a link to share)."""
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
                      type="primary" if mine else "secondary", on_click=_pick_file, args=(path,))


def _pick_file(path: Path) -> None:
    try:
        set_scene(scenes.scene_from_file(path))
    except DataError:
        st.session_state["_pick_error"] = f"Cannot use {path.name}: it is not a readable photo | label pair."
        return
    st.query_params["scene"] = path.name
    st.session_state["_query_scene"] = path.name
    st.session_state[GALLERY_OPEN_KEY] = False  # fold the examples away: the results come up


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


def scene_picker() -> None:
    """Upload beside the example scenes; the examples fold away once a scene is shown."""
    scene_from_query()
    if error := st.session_state.pop("_pick_error", None):
        st.error(error)
    current = current_scene()
    files = gallery_files()
    upload_col, gallery_col = st.columns([1, 2]) if files else (st.container(), None)
    with upload_col:
        upload_picker()
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
                gallery_picker(per_row=GALLERY_COLUMNS)
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


# --- showing masks --------------------------------------------------------------------------------

def show_images(items: list[tuple[str, np.ndarray | None]], nearest: bool = False) -> None:
    """A row of images with captions; ``None`` leaves the column with a note."""
    cols = st.columns(len(items))
    for col, (caption, image) in zip(cols, items):
        with col:
            if image is None:
                st.caption(f"{caption}: not available")
            else:
                st.image(scenes.display_scale(image, nearest=nearest), caption=caption, width="stretch")


def columns(preds: dict) -> list[str]:
    """The models to show, in order: the three architectures (present or not, so a missing one
    keeps its place), then any other entry of ``preds`` (e.g. an ensemble) as it comes."""
    return list(ARCH_NAMES) + [n for n in preds if n not in ARCH_NAMES]


def model_title(name: str, pred: Prediction | None = None) -> str:
    title = display_name(name)
    return f"{title} ({pred.seconds * 1000:.0f} ms)" if pred else title


def image_metrics(mask: np.ndarray, label: np.ndarray) -> tuple[dict, np.ndarray]:
    """Scores and confusion matrix of one mask against its label, under the per-image rule of
    ``seg_core.metrics.image_scores`` (``IMAGE_SCORE_RULE``)."""
    scores = image_scores(mask, label, CLASS_NAMES)
    return scores, scores["confusion"]


def metrics_row(name: str, metrics: dict, computed: str | None = None) -> dict:
    """A table row of ``metrics``; ``computed`` says with which backend, on what data."""
    return {"model": display_name(name), **({"computed with, on": computed} if computed else {}),
            "pixel acc": metrics.get("pixel_acc"), "class acc": metrics.get("class_acc"), "mIoU": metrics.get("miou")}


# --- benchmark ------------------------------------------------------------------------------------

LATENCY_REPEATS = 10


@st.cache_data(max_entries=16, show_spinner="Measuring CPU latency…", ttl=3600)
def model_facts(weights: str, name: str, repeats: int = LATENCY_REPEATS) -> dict:
    """Backend, threads, parameters, file size and median latency of one forward pass at the
    model's input size, measured as ``benchmarks/bench_inference.py`` does (``weights`` is a
    ``weights_key()``)."""
    runner = load_predictor(weights).models[name]
    h, w = runner.config.input_size or (256, 256)
    return {"model": display_name(name), "backend": runner.label, "threads": torch.get_num_threads(),
            "parameters (M)": round(runner.num_parameters / 1e6, 1), "file (MB)": round(runner.file_bytes / 1e6, 1),
            f"forward ms ({h}x{w}, median of {repeats})": round(1000 * forward_latency(runner, repeats))}


def evaluate_with_progress(pred: Predictor, folder: Path, limit: int, batch: int = 8) -> dict[str, tuple[dict, np.ndarray]]:
    """Whole-split metrics and confusion matrix of every loaded model and of their ensemble, with a
    progress bar over the images (each batch goes through every model)."""
    from seg_core.data import load_split
    from seg_core.evaluate import evaluate_many

    with st.spinner("Reading the validation scenes…"):
        images, labels = load_split(folder, limit=limit or None)
    bar = st.progress(0.0, text="Evaluating…")

    def on_batch(done: int, total: int) -> None:
        bar.progress(done / total, text=f"every model and the ensemble: {done}/{total} images")

    out = evaluate_many(pred.models, images, labels, batch_size=batch, ensemble=pred.ensemble() or None,
                        on_batch=on_batch)
    bar.empty()
    return {n: ({**r["metrics"], "images": len(images)}, r["matrix"]) for n, r in out.items()}


def confusion_tabs(mats: dict[str, np.ndarray], key: str, scale: str, only_present: bool) -> None:
    """One tab per model's row-normalised confusion matrix (the same classes in each), and a
    difference tab (model A − model B) when there are two or more; widget keys start with ``key``."""
    from .figures import class_subset, confusion_difference_figure, confusion_figure

    keep = class_subset(*mats.values(), only_present=only_present)
    tabs = st.tabs([model_title(n) for n in mats] + (["Difference"] if len(mats) > 1 else []))
    for tab, (name, mat) in zip(tabs, mats.items()):
        with tab:
            st.plotly_chart(confusion_figure(mat, model_title(name), scale=scale, keep=keep), key=f"{key}_{name}")
    if len(mats) > 1:
        with tabs[-1]:
            names = list(mats)
            a_col, b_col = st.columns(2)
            a = a_col.selectbox("Model A", names, 0, format_func=model_title, key=f"{key}_diff_a")
            b = b_col.selectbox("Model B", names, len(names) - 1, format_func=model_title, key=f"{key}_diff_b")
            st.plotly_chart(confusion_difference_figure(mats[a], mats[b], f"{model_title(a)} − {model_title(b)}",
                                                        only_present=only_present), key=f"{key}_diff")
