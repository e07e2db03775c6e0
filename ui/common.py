"""Streamlit pieces shared by the pages: settings, the models and their predictions, the selected scene.

Heavy objects are built once: the ``PhotoService`` (its ``Predictor``) per weights folder with
``st.cache_resource``; the masks of a scene are ``seg_core.serve``'s, cached there for all
sessions. The selected image lives in ``st.session_state["scene"]`` so every page shows the same
one (``ui.pickers`` chooses it). Every widget has an explicit key.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from seg_core import served_weights, settings
from seg_core.inference import Prediction, Predictions
from seg_core.metrics import image_scores
from seg_core.palette import CLASS_NAMES
from seg_core.predictor import Predictor, train_command
from seg_core.registry import ARCH_NAMES, display_name
from seg_core.runners import forward_latency, latency_size
from seg_core.serve import cache as serve_cache
from seg_core.serve.photos import Photo, PhotoService
from seg_core.serve.slots import photo_slot
from seg_core.served_weights import WeightsError, WeightsSource

from . import scenes
from .scenes import Scene

SCENE_KEY = "scene"
TTA_KEY = "tta"


# --- the frontend's own code ------------------------------------------------------------------------

#: Parts of Streamlit's frontend it fetches on first use: the uploader's HTTP client (axios) once a
#: file is dropped, before the upload can start; the view buttons, the buttons, the timing metrics
#: and the download buttons when the first result arrives. On a fresh page each was a request and
#: a compile on the first upload's path (a round trip each over a network; docs/page_speed.md).
LAZY_CHUNKS = ("axios", "ButtonGroup", "Button", "Metric", "DownloadButton")
_CHUNK_NAME = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.js")


@functools.cache
def preload_html(folder: Path = Path(st.__file__).parent / "static" / "static" / "js") -> str:
    """A hidden element whose script imports ``LAZY_CHUNKS`` (found in Streamlit's ``folder``) once
    the landing page is idle, by the URLs the frontend imports them from (beside its entry script),
    so a visitor's first upload fetches no code; "" when ``folder`` has none of them (another
    version names them otherwise: the browser test says so). Only file names that look like a
    bundler's chunk reach the script."""
    names = [p.name for stem in LAZY_CHUNKS for p in sorted(folder.glob(f"{stem}.*.js"))[:1]
             if _CHUNK_NAME.fullmatch(p.name)]
    if not names:
        return ""
    return ("<style>.stElementContainer:has(#seg-preload){display:none}</style><span id='seg-preload'></span>"
            "<script>(() => { const entry = document.querySelector('script[type=\"module\"][src*=\"/static/js/index.\"]');"
            " if (!entry) return;"
            f" const load = () => {json.dumps(names)}.forEach(n => import(new URL(n, entry.src).href).catch(() => {{}}));"
            " window.requestIdleCallback ? requestIdleCallback(load, {timeout: 3000}) : setTimeout(load, 1000); })()</script>")


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
    """The weights folder and its files' times (``seg_core.serve.cache.weights_key``)."""
    return serve_cache.weights_key(weights_source().folder)


# Bounds of the process-wide caches (shared by all sessions, so they do not grow with them):
@st.cache_resource(show_spinner="Loading the models…", max_entries=4)  # a set of weights: 190 MB; a new one only when checkpoints change
def load_service(key: str) -> PhotoService:
    service = PhotoService(Predictor.from_dir(key.split("|", 1)[0]), key)
    service.warm_up()  # under "Loading the models…": the first visitor's masks and times are a warm server's
    return service


def service() -> PhotoService:
    """The models of the configured weights and the one photo comparison of ``seg_core.serve``."""
    return load_service(weights_key())


def predictor() -> Predictor:
    return service().predictor


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


def photo_of(scene: Scene, photo: np.ndarray | None = None) -> Photo:
    """The scene's photo (or ``photo``, a smaller copy of it) as the serving layer keys it."""
    return Photo.of(scene.photo if photo is None else photo, scene.key)


def predictions(scene: Scene, photo: np.ndarray | None = None, ensemble: bool = True, own: bool = True) -> Predictions:
    """Every loaded model's mask and confidence for the scene (or for ``photo``, a smaller copy
    of it: masks at that size), the ensemble's (unless ``ensemble=False``: the first paint, so that
    a page can draw the three masks before it), then the session's own models. Each model runs
    once per scene, size, set of weights and test-time augmentation; the rest reuses that pass.
    ``own=False``: without the session's own models."""
    from . import extra

    served, shot, own = service(), photo_of(scene, photo), extra.chosen() if own else {}
    if served.ready(shot, tta(), own, ensemble):
        return served.compare(shot, tta(), own, ensemble)
    with st.spinner("Segmenting…"):
        return served.compare(shot, tta(), own, ensemble)


def start_masks(scene: Scene) -> None:
    """The three models' masks of ``scene`` at screen size and the ensemble's, computed now (for
    ``predictions`` to find). Called by the widget callback that chose the scene: it runs before
    the rerun draws anything, so the page's elements and its masks leave together, the models never
    share the cores with the drawing of the elements sent before them (a browser on the same
    machine), and the page draws its grid once, the ensemble in it (mixing it takes 15-20 ms: a
    second grid, "averaging…" first, cost the browser more; docs/page_speed.md)."""
    shot = photo_of(scene, scene.screen_photo())
    service().models(shot, tta())
    service().ensemble(shot, tta())


def ensemble_pending(scene: Scene, photo: np.ndarray | None = None) -> bool:
    """Whether ``predictions`` would compute the ensemble now: the page then draws the three masks
    first, with a note in the ensemble's place."""
    return not service().ensemble_ready(photo_of(scene, photo), tta())


# --- the selected scene ---------------------------------------------------------------------------

def current_scene() -> Scene | None:
    return st.session_state.get(SCENE_KEY)


def set_scene(scene: Scene) -> None:
    current = current_scene()
    if current is None or current.key != scene.key or current.name != scene.name:
        st.session_state[SCENE_KEY] = scene



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
    """A table row of ``metrics``; ``computed`` says with which backend, on what data. The scores
    come first and the long description last: a phone shows the first columns."""
    return {"model": display_name(name), "mIoU": metrics.get("miou"), "pixel acc": metrics.get("pixel_acc"),
            "class acc": metrics.get("class_acc"), **({"computed with, on": computed} if computed else {})}


# --- benchmark ------------------------------------------------------------------------------------

LATENCY_REPEATS = 10


@st.cache_data(max_entries=16, show_spinner="Measuring CPU latency…", ttl=3600)
def model_facts(weights: str, name: str, repeats: int = LATENCY_REPEATS) -> dict:
    """Backend, threads, parameters, file size and median latency of one forward pass at the
    model's input size, measured as ``benchmarks/bench_inference.py`` does (``weights`` is a
    ``weights_key()``)."""
    runner = load_service(weights).predictor.models[name]
    h, w = latency_size(runner)
    with photo_slot():  # a forward pass like a photo's: ahead of a video job, in an inference slot
        latency = forward_latency(runner, repeats)
    return {"model": display_name(name), "backend": runner.label, "threads": torch.get_num_threads(),
            "parameters (M)": round(runner.num_parameters / 1e6, 1), "file (MB)": round(runner.file_bytes / 1e6, 1),
            f"forward ms ({h}x{w}, median of {repeats})": round(1000 * latency)}


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
