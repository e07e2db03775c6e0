"""Video files: probe and refuse bad ones, decode frames, encode a browser-playable H.264 mp4, write a CSV.

The comparison itself (segmenting each frame, the side-by-side grid, flicker) is
``seg_core.video_compare``; the server's line of video jobs is ``seg_core.serve.jobs``.
H.264 (libx264, yuv420p, even sides, ``+faststart``) because browsers play it; OpenCV's own
writer has no H.264. Outputs are written under a temporary name and renamed when complete, so a
killed run never leaves a half file, and an error removes the temporary file.

Every file we cannot or will not process raises ``VideoError`` with one sentence for the user:
too long, too large, too many pixels per frame, corrupt or truncated, no frames, an unknown
codec, an image or a text file named ``.mp4``, audio only.
"""

from __future__ import annotations

import csv
import io
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from .files import atomic_path


class _FirstUse:
    """PyAV, imported when a clip first needs it (0.2 s, most of this module's import): a server
    that gets no clip starts without it. The first attribute looked up puts the module itself here."""

    def __getattr__(self, name: str):
        import av as module

        module.logging.set_level(module.logging.PANIC)  # FFmpeg's own log lines would bypass our one-sentence errors
        globals()["av"] = module
        return getattr(module, name)


av = _FirstUse()

#: Demuxers that read still images: such a file named ``.mp4`` is refused, not segmented as one frame.
IMAGE_FORMATS = ("image2", "gif", "apng", "ico", "tiff", "webp")
ENCODER = {"preset": "veryfast", "crf": "23"}


class VideoError(ValueError):
    """The input is not a video we can segment; the message is meant for the user."""


@dataclass(frozen=True)
class Limits:
    """What a server accepts; the CLI uses the same defaults and can raise them."""

    max_seconds: float = 60.0
    max_frames: int = 1500
    max_bytes: int = 200 * 2**20
    max_pixels: int = 1920 * 1080

    def describe(self) -> str:
        return (f"up to {self.max_seconds:g} s and {self.max_frames} frames, {self.max_bytes / 2**20:.0f} MB, "
                f"{self.max_pixels / 1e6:.1f} megapixels a frame (1080p)")


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    frames: int  # as the container declares it, or estimated from the duration
    seconds: float
    codec: str


# --- reading --------------------------------------------------------------------------------------

#: The demuxers FFmpeg may pick for an input, found from its content. Containers that name other
#: files (HLS playlists, concat lists, ...) are not among them: such a file would make FFmpeg open
#: server files or URLs. Still-image pipes stay, so that an image named ``.mp4`` is named as one.
CONTAINER_FORMATS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "mpegts", "mpeg", "flv", "ogg", "asf",
                     "h264", "hevc", "m4v", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif",
                     "apng")
#: ``file`` only: no ``concat:``, ``http:`` or other protocol, in the name or inside the file.
OPEN_OPTIONS = {"format_whitelist": ",".join(CONTAINER_FORMATS), "protocol_whitelist": "file"}
#: First bytes of text files that name other files, for the refusal's sentence.
LIST_MAGIC = {b"#EXTM3U": "a playlist (HLS .m3u8)", b"ffconcat": "a concat list", b"[playlist]": "a playlist",
              b"<?xml": "an XML document (DASH or other playlist)"}


def _refusal(path: Path) -> VideoError:
    try:
        with open(path, "rb") as f:
            head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        head = b""
    for magic, what in LIST_MAGIC.items():
        if head.startswith(magic):
            return VideoError(f"{path.name} is {what}, which names other files; upload the video itself")
    return VideoError(f"{path.name} is not a video file we can read (or it is truncated)")


@contextmanager
def _container(path: Path):
    """``path`` opened by FFmpeg as a file (``file:`` + its absolute path, whatever its name holds),
    and only if its content is one of ``CONTAINER_FORMATS``: the one check for the apps and the CLI."""
    try:
        container = av.open(f"file:{Path(path).resolve()}", metadata_errors="ignore", options=OPEN_OPTIONS)
    except av.error.FFmpegError:
        raise _refusal(Path(path)) from None
    try:
        yield container
    finally:
        container.close()


def _decode_error(name: str, err: Exception, done: int) -> VideoError:
    if isinstance(err, av.error.DecoderNotFoundError):
        return VideoError(f"{name} uses a video codec this build cannot decode")
    where = "before its first frame" if done == 0 else f"after frame {done}"
    return VideoError(f"{name} is corrupt or truncated {where}")


def probe(path: str | Path, limits: Limits = Limits()) -> VideoInfo:
    """Size, frame rate and length of a video, checked against ``limits``; the first frame is
    decoded too, so a corrupt, codec-less or empty file is refused here, before any work."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise VideoError(f"{path.name} is empty")
    if size > limits.max_bytes:
        raise VideoError(f"{path.name} is {size / 2**20:.0f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB")
    with _container(path) as container:
        fmt = container.format.name
        if fmt.endswith("_pipe") or fmt in IMAGE_FORMATS:
            raise VideoError(f"{path.name} is an image ({fmt.removesuffix('_pipe')}), not a video")
        if not container.streams.video:
            audio = "only audio and " if container.streams.audio else ""
            raise VideoError(f"{path.name} has {audio}no video track")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None:
            raise VideoError(f"{path.name} uses a video codec this build cannot decode")
        width, height = ctx.width, ctx.height
        if width * height > limits.max_pixels:
            raise VideoError(f"{path.name} is {width}x{height}; the limit is {limits.max_pixels / 1e6:.1f} "
                             "megapixels a frame (1080p)")
        fps = stream.average_rate or stream.guessed_rate
        if not fps or not 0 < fps <= 240:
            raise VideoError(f"{path.name} has no usable frame rate")
        fps = Fraction(fps).limit_denominator(1001)
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / av.time_base
        else:
            seconds = (stream.frames or 0) / float(fps)
        frames = stream.frames or round(seconds * float(fps))
        if seconds > limits.max_seconds:
            raise VideoError(f"{path.name} is {seconds:.0f} s long; the limit is {limits.max_seconds:g} s")
        if frames > limits.max_frames:
            raise VideoError(f"{path.name} has {frames} frames; the limit is {limits.max_frames}")
        try:
            first = next(container.decode(stream), None)
        except (av.error.FFmpegError, ValueError) as err:
            raise _decode_error(path.name, err, 0) from None
        if first is None:
            raise VideoError(f"{path.name} has no frames")
        return VideoInfo(width, height, fps, frames, seconds, ctx.name)


def read_frames(path: str | Path, limits: Limits = Limits()) -> Iterator[np.ndarray]:
    """The frames of a probed video as ``H x W x 3`` uint8 RGB; ``VideoError`` if the file turns out
    corrupt part-way or longer than ``limits`` allow (a header can lie)."""
    path = Path(path)
    done = 0
    with _container(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames, None)
            except (av.error.FFmpegError, ValueError) as err:
                raise _decode_error(path.name, err, done) from None
            if frame is None:
                break
            done += 1
            if done > limits.max_frames:
                raise VideoError(f"{path.name} has more than {limits.max_frames} frames; the limit is {limits.max_frames}")
            yield frame.to_ndarray(format="rgb24")
    if done == 0:
        raise VideoError(f"{path.name} has no frames")


def read_frame(path: str | Path, index: int) -> np.ndarray:
    """Frame ``index`` (0-based) of a video: found by seeking to the key frame before its timestamp
    when the stream has a constant rate, else (or if the timestamps do not line up) by decoding from
    the start."""
    path = Path(path)
    with _container(path) as container:
        stream = container.streams.video[0]
        rate, base, start = stream.average_rate, stream.time_base, stream.start_time or 0
        try:
            if rate and base and index > 0:
                container.seek(start + int(index / rate / base), stream=stream, backward=True)
                for frame in container.decode(stream):
                    at = round((frame.pts - start) * base * rate) if frame.pts is not None else -1
                    if at == index:
                        return frame.to_ndarray(format="rgb24")
                    if at > index or at < 0:
                        break
                container.seek(start, stream=stream, backward=True)
            for i, frame in enumerate(container.decode(stream)):
                if i == index:
                    return frame.to_ndarray(format="rgb24")
        except (av.error.FFmpegError, ValueError) as err:
            raise _decode_error(path.name, err, index) from None
    raise VideoError(f"{path.name} has no frame {index}")


# --- writing --------------------------------------------------------------------------------------

class VideoWriter:
    """H.264 mp4 that browsers play; use as a context manager: the file appears complete or not at all."""

    def __init__(self, path: str | Path, width: int, height: int, fps: Fraction | float):
        if width % 2 or height % 2:
            raise ValueError(f"H.264 in yuv420p needs even sides, got {width}x{height}")
        self.path, self.width, self.height = Path(path), width, height
        self.fps = Fraction(fps).limit_denominator(1001)
        self.frames = 0

    def __enter__(self) -> "VideoWriter":
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._container = av.open(str(self._tmp), "w", format="mp4", options={"movflags": "+faststart"})
        self._stream = self._container.add_stream("libx264", rate=self.fps, options=dict(ENCODER))
        self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
        return self

    def write(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def __exit__(self, kind, err, tb) -> bool:
        try:
            if kind is None:
                self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
            self._atomic.__exit__(kind, err, tb)  # renames on success, removes the temp file otherwise
        return False


def write_csv(path: str | Path, rows: list[dict]) -> None:
    """The per-frame rows as CSV, written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["frame"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
