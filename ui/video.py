"""The Video page's pieces: a job through the server's video line, the finished job, its chart and frames.

A job's files (the upload, the comparison mp4, the CSV) live in a ``TemporaryDirectory`` held by
the ``VideoJob`` in the session: a new upload replaces it, and the directory is removed when the
job is dropped (or the server exits). Uploads are refused with ``VideoError`` sentences from
``seg_core.video``; ``LIMITS`` is what this server accepts. One job runs at a time per server,
behind the photos (``seg_core.serve.jobs``).
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st

from seg_core.registry import display_name
from seg_core.serve.jobs import run_video
from seg_core.video import Limits, VideoInfo, probe, read_frame
from seg_core.video_compare import Composer

from .figures import flicker_figure

LIMITS = Limits(max_bytes=20 * 2**20)  # .streamlit/config.toml: server.maxUploadSize = 20
JOB_KEY = "video_job"
FRAME_KEY = "video_frame"
EXAMPLE_KEY = "video_example"  # the example clip was asked for (until an upload)
UPLOAD_TYPES = ("mp4", "mov", "m4v", "mkv", "webm", "avi")


@dataclass
class VideoJob:
    """A finished video: its files, per-frame rows and the grid layout to cut frames into panels."""

    key: str  # content hash of the upload
    name: str
    every: int
    info: VideoInfo
    names: tuple[str, ...]
    rows: list[dict]
    summary: str
    composer: Composer
    folder: tempfile.TemporaryDirectory = field(repr=False)

    @property
    def source(self) -> Path:
        return next(Path(self.folder.name).glob("source*"))

    @property
    def video(self) -> Path:
        return Path(self.folder.name) / "compare.mp4"

    @property
    def csv(self) -> Path:
        return Path(self.folder.name) / "frames.csv"

    @property
    def stem(self) -> str:
        return Path(self.name).stem


def upload_key(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def run_job(name: str, data: bytes, predictor, every: int, status, bar) -> VideoJob:
    """Save the upload, probe it (``VideoError`` for a bad file, before waiting in line), wait for
    the server's video slot while showing the position in ``status``, then segment with the
    progress in ``bar``. On any error the job's folder is removed at once."""
    folder = tempfile.TemporaryDirectory(prefix="seg_video_")
    try:
        source = Path(folder.name) / f"source{Path(name).suffix.lower() or '.mp4'}"
        source.write_bytes(data)
        info = probe(source, LIMITS)

        def waiting(position: int) -> None:
            status.info(f"Waiting for another video to finish: position {position} in the line.")

        def progress(done: int, total: int) -> None:
            bar.progress(min(1.0, done / total), text=f"Segmenting frame {done} of {total}…")

        result = run_video(source, Path(folder.name) / "compare.mp4", predictor, on_wait=waiting,
                           on_start=status.empty, every=every, out_csv=Path(folder.name) / "frames.csv",
                           limits=LIMITS, progress=progress)
    except BaseException:
        folder.cleanup()
        raise
    bar.empty()
    composer = Composer(info.height, info.width, [display_name(n) for n in result.names])
    return VideoJob(upload_key(data), name, every, info, result.names, result.rows, result.summary(), composer, folder)


def chart(job: VideoJob):
    """Disagreement and each model's flicker over time; each point carries its frame index."""
    return flicker_figure(job.rows, job.names)


def frame_from_selection(event) -> int | None:
    """The frame index of the clicked point of ``chart``'s figure, if any."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    if not points:
        return None
    value = points[0].get("customdata")
    value = value[0] if isinstance(value, (list, tuple)) else value
    return int(value) if value is not None else None


@st.cache_data(max_entries=8, ttl=600, show_spinner=False)  # a 1080p frame's four panels: 25 MB
def panels(video: str, key: str, index: int, _composer: Composer) -> dict[str, np.ndarray]:
    """The panels of frame ``index`` of the comparison video, as the user saw them in it."""
    return _composer.panels(read_frame(video, index))


@st.cache_data(max_entries=8, ttl=600, show_spinner=False)  # a 1080p frame: 6 MB
def source_frame(source: str, key: str, index: int) -> np.ndarray:
    return read_frame(source, index)
