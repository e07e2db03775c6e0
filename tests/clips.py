"""Synthetic video clips for the tests: a window panned across a synthetic street scene, encoded with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.conftest import synthetic_pair


def panning_frames(n: int = 12, h: int = 64, w: int = 96, step: int = 4, seed: int = 0) -> list[np.ndarray]:
    """``n`` frames of ``h x w``: a window moving ``step`` pixels right per frame over a wider scene."""
    side = max(h, w + n * step)
    photo, _ = synthetic_pair(side, seed)
    return [np.ascontiguousarray(photo[:h, i * step : i * step + w]) for i in range(n)]


def write_clip(path: Path, frames: list[np.ndarray] | None = None, fps: int = 10, codec: str = "libx264",
               fmt: str | None = None, faststart: bool = True) -> Path:
    """Encode ``frames`` (default: ``panning_frames()``) as H.264 in yuv420p."""
    frames = panning_frames() if frames is None else frames
    options = {"movflags": "+faststart"} if faststart and (fmt or path.suffix) in ("mp4", ".mp4") else {}
    with av.open(str(path), "w", format=fmt, options=options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.height, stream.width = frames[0].shape[:2] if frames else (64, 64)
        stream.pix_fmt = "yuv420p"
        if not frames:
            container.start_encoding()
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def write_audio(path: Path, seconds: float = 0.5, rate: int = 8000) -> Path:
    """An mp4 with an AAC track and no video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        for _ in range(int(seconds * rate / 1024) + 1):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
