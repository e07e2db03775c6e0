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

from seg_core.data import DataError, list_pairs
from seg_core.fast import FAST_SUFFIXES, model_file_bytes
from seg_core.inference import ImageError, Prediction, load_image
from seg_core.metrics import ConfusionMatrix, summarize
from seg_core.models import count_parameters
from seg_core.palette import CLASS_NAMES, NUM_CLASSES, colorize
from seg_core.predictor import DISPLAY_NAMES, MODEL_NAMES, Predictor, backend_label, train_command
from seg_core.viz import png_bytes

from . import scenes
from .scenes import Scene

SCENE_KEY = "scene"
TTA_KEY = "tta"
GALLERY_PER_PAGE = 24
GALLERY_COLUMNS = 6


# --- settings -------------------------------------------------------------------------------------

def settings_sidebar() -> None:
    """The sidebar settings every page shares (rendered by ``app.py`` so they persist)."""
    with st.sidebar:
        st.text_input("Validation folder (photo | label pairs)", value=str(scenes.default_data_dir()),
                      key="data_dir", help="Also settable with the SEG_DATA_DIR environment variable.")
        st.caption(f"Weights: `{scenes.weights_dir()}` (set SEG_WEIGHTS_DIR to change)")
        st.toggle("Mirror-image averaging", key=TTA_KEY,
                  help="Test-time augmentation: each model also segments the mirrored photo and the two "
                       "predictions are averaged. Slightly better masks (the model card has the val figures), "
                       "twice the time.")


def tta() -> str:
    """The test-time augmentation chosen in the sidebar: ``"flip"`` or ``"none"``."""
    return "flip" if st.session_state.get(TTA_KEY) else "none"


def data_dir() -> Path:
    return Path(st.session_state.get("data_dir") or scenes.default_data_dir())


# --- models ---------------------------------------------------------------------------------------

def weights_key() -> str:
    """The weights folder and its checkpoints' modification times: a checkpoint copied in while
    the app runs is loaded at the next rerun, and cached masks of the old one are not reused."""
    folder = scenes.weights_dir()
    files = [folder / f"{n}{suffix}" for n in MODEL_NAMES for suffix in (".safetensors", *FAST_SUFFIXES)]
    stamps = [f"{p.name}:{p.stat().st_mtime_ns}" for p in files if p.is_file()]
    return f"{folder}|{','.join(stamps)}"


@st.cache_resource(show_spinner="Loading the models…", max_entries=4)
def load_predictor(key: str) -> Predictor:
    return Predictor.from_dir(key.split("|", 1)[0])


def predictor() -> Predictor:
    return load_predictor(weights_key())


def show_missing(pred: Predictor) -> None:
    """Say which models have no weights and how to train them; the others keep working."""
    if not pred.models:
        st.info(f"**No weights yet.** No model checkpoint was found in `{scenes.weights_dir()}`. "
                "Train the models and copy their best checkpoints there:")
        st.code("\n".join(train_command(n) for n in MODEL_NAMES), language="bash")
        return
    for name, why in pred.missing.items():
        st.warning(f"**{DISPLAY_NAMES[name]}** is not available: {why}")


@st.cache_data(show_spinner="Segmenting…", max_entries=8)  # masks of a 40 MP photo: 40 MB each
def _predict(weights: str, scene_key: str, tta: str, _photo: np.ndarray) -> dict[str, Prediction]:
    from seg_core.video import PHOTOS_FIRST

    with PHOTOS_FIRST.photo():  # a running video job waits for this photo
        return load_predictor(weights).predict(_photo, tta=tta)


def predictions(scene: Scene) -> dict[str, Prediction]:
    """Masks of all loaded models for the scene, computed once per scene, set of weights and
    test-time augmentation."""
    return _predict(weights_key(), scene.key, tta(), scene.photo)


@st.cache_data(show_spinner=False, max_entries=24)
def _mask_pngs(weights: str, scene_key: str, tta: str, model: str, _mask: np.ndarray) -> tuple[bytes, bytes]:
    return png_bytes(_mask), png_bytes(colorize(_mask))


def mask_pngs(scene: Scene, model: str, mask: np.ndarray) -> tuple[bytes, bytes]:
    """A model's full-size mask of the scene as PNGs to download: class ids and colours."""
    return _mask_pngs(weights_key(), scene.key, tta(), model, mask)


# --- the selected scene ---------------------------------------------------------------------------

def current_scene() -> Scene | None:
    return st.session_state.get(SCENE_KEY)


def set_scene(scene: Scene) -> None:
    current = current_scene()
    if current is None or current.key != scene.key or current.name != scene.name:
        st.session_state[SCENE_KEY] = scene


@st.cache_resource(max_entries=8, show_spinner=False)
def _probe_upload(data: bytes) -> tuple[bool, bool]:
    """Whether an upload is 2:1 and whether it looks like a pair (raises ``ImageError``)."""
    image = load_image(data)
    return scenes.is_two_to_one(image), scenes.looks_like_pair(image)


@st.cache_resource(max_entries=4, show_spinner=False)
def _upload_scene(name: str, data: bytes, as_pair: bool) -> Scene:
    return scenes.scene_from_upload(name, data, as_pair)


def upload_picker() -> None:
    """Drag-and-drop one or several images; the chosen one becomes the scene.

    Decoding is cached per file content, so moving a slider does not decode the upload again.
    """
    files = st.file_uploader("Drop images here (JPEG, PNG, WebP, BMP; several at once)",
                             type=list(scenes.UPLOAD_TYPES), accept_multiple_files=True, key="uploads")
    if not files:
        return
    names = [f.name for f in files]
    index = st.selectbox("Image to show", range(len(files)), format_func=names.__getitem__,
                         key="upload_pick") if len(files) > 1 else 0
    chosen = files[min(index or 0, len(files) - 1)]
    name, data = chosen.name, chosen.getvalue()
    try:
        two_to_one, looks_pair = _probe_upload(data)
        as_pair = two_to_one and st.checkbox(
            "This is a photo | label pair (left half photo, right half colour label)",
            value=looks_pair, key=f"as_pair_{name}")
        set_scene(_upload_scene(name, data, as_pair))
    except (ImageError, DataError) as err:
        st.error(f"Cannot use **{name}**: {err}.")


@st.cache_data(max_entries=512)
def _thumbnail(path: str, mtime: float) -> np.ndarray:
    return scenes.thumbnail(path)


def gallery_picker() -> None:
    """Thumbnails of the val pairs, a page at a time; a click makes one the scene."""
    folder = data_dir()
    try:
        files = list_pairs(folder)
    except DataError as err:
        st.info(f"No validation scenes to show: {err}.\n\nCityscapes images may not be redistributed, "
                "so none come with the app. Download the *Cityscapes Image Pairs* (512x256 JPEGs, photo "
                "left, colour label right) and point the **Validation folder** setting in the sidebar, or "
                "the `SEG_DATA_DIR` environment variable, at its `val` folder.")
        return
    pages = -(-len(files) // GALLERY_PER_PAGE)
    page = st.number_input(f"Page (of {pages}; {len(files)} scenes)", min_value=1, max_value=pages, value=1,
                           step=1, key="gallery_page")
    shown = scenes.page_of(files, int(page), GALLERY_PER_PAGE)
    cols = st.columns(GALLERY_COLUMNS)
    for i, path in enumerate(shown):
        with cols[i % GALLERY_COLUMNS]:
            try:
                st.image(_thumbnail(str(path), path.stat().st_mtime), width="stretch")
            except DataError as err:
                st.caption(f"{path.name}: {err}")
                continue
            if st.button(path.name, key=f"gallery_{path.name}", width="stretch"):
                _pick_file(path)


def _pick_file(path: Path) -> None:
    try:
        set_scene(scenes.scene_from_file(path))
    except DataError as err:
        st.error(f"Cannot use {path.name}: {err}.")


def scene_from_query() -> None:
    """``?scene=12.jpg`` opens that val scene (a shareable link); applied once per value."""
    wanted = st.query_params.get("scene")
    if not wanted or st.session_state.get("_query_scene") == wanted:
        return
    st.session_state["_query_scene"] = wanted
    path = data_dir() / Path(wanted).name  # a name, never a path out of the folder
    if path.is_file():
        _pick_file(path)
    else:
        st.warning(f"Scene {wanted!r} is not in {data_dir()}.")


def scene_picker() -> None:
    """Upload or gallery, whichever the user chooses."""
    scene_from_query()
    source = st.radio("Image", ["Upload", "Validation gallery"], horizontal=True, key="source",
                      index=1 if (current_scene() and current_scene().source == "gallery") else 0)
    if source == "Upload":
        upload_picker()
    else:
        with st.expander("Validation scenes", expanded=current_scene() is None):
            gallery_picker()


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


def model_title(name: str, pred: Prediction | None = None) -> str:
    title = DISPLAY_NAMES.get(name, name)
    return f"{title} ({pred.seconds * 1000:.0f} ms)" if pred else title


def image_metrics(mask: np.ndarray, label: np.ndarray) -> tuple[dict, np.ndarray]:
    """Metrics and confusion matrix of one mask against its label."""
    cm = ConfusionMatrix(NUM_CLASSES)
    cm.update(torch.from_numpy(mask), torch.from_numpy(label))
    mat = cm.mat.numpy()
    return summarize(mat, CLASS_NAMES), mat


def metrics_row(name: str, metrics: dict) -> dict:
    return {"model": DISPLAY_NAMES.get(name, name), "pixel acc": metrics.get("pixel_acc"),
            "class acc": metrics.get("class_acc"), "mIoU": metrics.get("miou")}


# --- benchmark ------------------------------------------------------------------------------------

@st.cache_data(max_entries=16, show_spinner="Measuring CPU latency…")
def model_facts(weights: str, name: str, side: int = 256) -> dict:
    """Parameters, file size and median CPU latency of one forward pass on a ``side`` square
    (``weights`` is a ``weights_key()``)."""
    model = load_predictor(weights).models[name]
    path = load_predictor(weights).paths[name]
    x = torch.randn(1, 3, side, side)
    times = []
    with torch.inference_mode():
        for _ in range(3):  # the first run warms up allocators and is dropped
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return {"model": DISPLAY_NAMES[name], "backend": backend_label(model),
            "parameters (M)": count_parameters(model) / 1e6, "file (MB)": model_file_bytes(path) / 1e6,
            f"CPU ms ({side}x{side})": 1000 * float(np.median(times[1:]))}


def evaluate_with_progress(pred: Predictor, folder: Path, limit: int, batch: int = 8) -> dict[str, tuple[dict, np.ndarray]]:
    """Whole-split metrics of every loaded model, with a progress bar over models and batches."""
    from seg_core.data import load_split
    from seg_core.engine import evaluate

    with st.spinner(f"Reading {folder}…"):
        images, labels = load_split(folder, limit=limit or None)
    bar = st.progress(0.0, text="Evaluating…")
    steps = len(pred.models) * -(-len(images) // batch)
    done, out = 0, {}
    for name, model in pred.models.items():
        total = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
        for i in range(0, len(images), batch):
            _, mat = evaluate(model, images[i : i + batch], labels[i : i + batch], batch_size=batch)
            total += mat
            done += 1
            bar.progress(done / steps, text=f"{DISPLAY_NAMES[name]}: {min(i + batch, len(images))}/{len(images)} images")
        out[name] = (summarize(total, CLASS_NAMES), total)
    bar.empty()
    return out
