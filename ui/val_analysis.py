"""Streamlit pieces of the val explorer and the "Is the difference real?" page.

The whole-folder numbers come from ``seg_core.folder_scores`` and ``seg_core.folder_confidence``,
which cache them on disk: the first visit computes them with a progress bar (the per-image scores
a chunk at a time, shown as they come), later visits read them back. A scene's masks (with confidence maps and the ensemble) are ``common.predictions``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import streamlit as st

from seg_core import examples, settings
from seg_core.data import DataError, list_pairs
from seg_core.folder_confidence import folder_confidence
from seg_core.folder_scores import cache_path, iter_folder_scores
from seg_core.predictor import Predictor

from . import common, explore

NO_DATA = ("Cityscapes images may not be redistributed, so none come with the app. Download the "
           "*Cityscapes Image Pairs* (512x256 JPEGs, photo left, colour label right) and point the "
           "**Validation folder** setting in the sidebar, or the `SEG_DATA_DIR` environment variable, "
           "at its `val` folder.")


def open_page(title: str, what: str) -> tuple[Predictor, Path]:
    """A page over the val folder: its title, the models (or why some are missing), the folder; the
    page stops, saying why, without models or folder."""
    st.title(title)
    pred = common.predictor()
    common.show_missing(pred)
    if not pred.models:
        st.stop()
    return pred, val_folder_or_stop(what)


def val_folder_or_stop(what: str) -> Path:
    """The labelled folder (``settings.data_dir``: the shipped KITTI examples on a Space), or a note
    on why there is none and a stop. The KITTI set is named as a small one, with its credit; a
    public app shows no other folder (Cityscapes may not be redistributed)."""
    folder = common.data_dir()
    if settings.public_mode() and not settings.is_examples(folder):
        st.info(f"**{what} needs the Cityscapes validation pairs**, whose licence forbids sharing them, "
                "so this public app does not show them. Run the workbench on your own machine with the pairs "
                "(see the README) to explore them; the Compare page works here on your own photos.")
        st.stop()
    try:
        list_pairs(folder)
    except DataError as err:
        st.info(f"**{what} needs a folder of validation pairs:** {err}.\n\n{NO_DATA}")
        st.stop()
    if settings.is_examples(folder):
        st.info(examples.SMALL_SET)
        st.caption(examples.CREDIT)
    return folder


def folder_name(folder: Path) -> str:
    """How a page names the folder it scores: the shipped examples by name (a public app shows no
    server path), any other folder by its path."""
    return "the KITTI example scenes" if settings.is_examples(folder) else f"`{folder}`"


def folder_stamp(folder: Path) -> str:
    """The folder's listing (names, sizes, times): a key for in-memory caches of its numbers."""
    return "|".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in list_pairs(folder))


def _with_progress(compute, what: str):
    """Run ``compute(on_batch)`` showing a progress bar only if it has work to do (not from cache)."""
    slot = st.empty()
    t0 = time.perf_counter()

    def on_batch(done: int, total: int) -> None:
        slot.progress(done / total, text=f"{what}: {done}/{total} images (once; cached afterwards)")

    out = compute(on_batch)
    slot.empty()
    return out, time.perf_counter() - t0


def _folder_stat(compute, what: str) -> tuple[dict, float]:
    try:
        return _with_progress(compute, what)
    except DataError as err:
        st.error(f"Cannot read the validation folder: {err}.")
        st.stop()


FOLDER_TTA_KEY = "folder_tta"  # this page's own switch: the sidebar's is for one photo at a time
_FOLDER_TTA_GO = "_folder_tta_go"  # the folders whose rescoring the user confirmed


def folder_tta(pred: Predictor, folder: Path, kinds: tuple[str, ...]) -> str:
    """Mirror-image averaging for the whole-folder numbers (``kinds``: "scores", "confidence"):
    a switch on this page saying its cost, and when those numbers are not cached yet, a button
    that must confirm the rescoring. Until then the page keeps the numbers without it."""
    n = len(list_pairs(folder))
    on = st.toggle("Mirror-image averaging over the folder", key=FOLDER_TTA_KEY,
                   help=f"Every model also segments each mirrored photo: all {n} images are scored again, "
                        "taking about twice as long as the first scoring (minutes on a CPU); cached afterwards.")
    if not on:
        return "none"
    missing = [k for k in kinds if not cache_path(k, pred, folder, tta="flip").is_file()]
    confirmed = st.session_state.setdefault(_FOLDER_TTA_GO, [])
    if not missing or str(folder) in confirmed:
        return "flip"
    note = st.empty()  # above the button, and left empty on the run that the click starts
    if st.button(f"Score all {n} images with mirror-image averaging", key="folder_tta_start"):
        confirmed.append(str(folder))
        return "flip"
    note.warning(f"**Mirror-image averaging means scoring all {n} images again**, each model twice per image: "
                 "about twice as long as the first scoring. The numbers below stay without it until you start.")
    return "none"


def scores(pred: Predictor, folder: Path, tta: str = "none", slot=None,
           on_part: Callable[[dict], None] | None = None) -> tuple[dict, float]:
    """Per-image confusion matrices of every model and the ensemble, and the seconds it took.

    A first visit streams them (``seg_core.folder_scores.iter_folder_scores``): after each chunk,
    ``slot`` (a placeholder; default: here) says how many of the images are scored so far, with
    their mIoU, and ``on_part(scores so far)`` redraws what the page shows of them. A visitor who
    leaves (or a rerun) stops the run between chunks; the next visit goes on from the last chunk."""
    slot = slot or st.empty()
    t0 = time.perf_counter()
    try:
        if not cache_path("scores", pred, folder, tta=tta).is_file():
            slot.progress(0.0, text=f"Scoring every model on the {len(list_pairs(folder))} images of the folder, "
                                    "a few at a time (once; cached afterwards)…")
        for part in iter_folder_scores(pred, folder, tta):
            if part["done"] < part["total"]:
                slot.progress(part["done"] / part["total"], text=explore.progress_text(part))
                if on_part:
                    on_part(part)
    except DataError as err:
        st.error(f"Cannot read the validation folder: {err}.")
        st.stop()
    slot.empty()
    return part, time.perf_counter() - t0


def confidence(pred: Predictor, folder: Path, tta: str = "none") -> tuple[dict, float]:
    """AUROC, ECE and reliability bins of every model and the ensemble, and the seconds it took."""
    return _folder_stat(lambda cb: folder_confidence(pred, folder, tta, on_batch=cb),
                        "Measuring every model's confidence on the validation folder")


@st.cache_data(show_spinner="Resampling the images (paired bootstrap)…", max_entries=4)
def pair_differences(key: tuple, _scores: dict) -> list[dict]:
    """``explore.pair_differences`` once per folder, weights and TTA (``key``)."""
    return explore.pair_differences(_scores)


def scores_key(folder: Path, tta: str) -> tuple:
    return common.weights_key(), str(folder), folder_stamp(folder), tta
