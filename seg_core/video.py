"""Segment a video with the three models: probe and refuse bad files, decode, compare, measure flicker, encode.

``segment_video(source, out, predictor)`` decodes ``source`` with PyAV, segments every frame (or
every ``every``-th, holding the masks between), writes a side-by-side H.264 mp4 at the source
frame rate (photo and one overlay per model in a grid, labels, a legend strip; each panel's long
side capped at ``panel_side``) and returns one row of statistics per frame: each model's class
shares, the share of pixels where the models disagree, and each model's *flicker*, the share of
pixels whose class changed since the previous segmented frame. ``flow=True`` adds a
motion-compensated flicker: the previous mask is first moved along the Farneback optical flow
(OpenCV), so that a car driving by does not count as flicker, only a class that changes under it.

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
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .files import atomic_path
from .registry import display_name, model_color
from .palette import CLASS_NAMES, COLORS, NUM_CLASSES
from .viz import overlay

av.logging.set_level(av.logging.PANIC)  # FFmpeg's own log lines would bypass our one-sentence errors

#: Demuxers that read still images: such a file named ``.mp4`` is refused, not segmented as one frame.
IMAGE_FORMATS = ("image2", "gif", "apng", "ico", "tiff", "webp")
PANEL_SIDE = 640
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


# --- the comparison picture -----------------------------------------------------------------------

def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


class Composer:
    """Lays out one frame as a grid: a legend strip of the class colours on top (a player's controls
    cover the bottom of a video), then the photo and one overlay per model, each labelled. Static
    parts (labels, legend) are drawn once."""

    def __init__(self, height: int, width: int, titles: list[str], panel_side: int = PANEL_SIDE, alpha: float = 0.5):
        scale = min(1.0, panel_side / max(height, width))
        self.ph, self.pw = _even(height * scale), _even(width * scale)
        self.titles = ["Photo", *titles]
        self.cols = 1 if len(self.titles) == 1 else 2 if len(self.titles) <= 4 else 3
        self.rows = -(-len(self.titles) // self.cols)
        self.alpha = alpha
        self.legend = self._legend(self.cols * self.pw)
        self.top = len(self.legend)  # the panels start below the legend
        self.height, self.width = self.top + self.rows * self.ph, self.cols * self.pw
        self.labels = [self._label(t) for t in self.titles]

    def _label(self, text: str) -> np.ndarray:
        font = _font(max(10, min(18, self.ph // 12)))
        left, top, right, bottom = font.getbbox(text)
        im = Image.new("RGB", (min(self.pw, right + 8), min(self.ph, bottom + 6)), (20, 20, 20))
        ImageDraw.Draw(im).text((4, 2), text, fill=(255, 255, 255), font=font)
        return np.asarray(im)

    @staticmethod
    def _legend(width: int) -> np.ndarray:
        font = _font(12)
        entries = [(name, tuple(int(c) for c in COLORS[i])) for i, name in enumerate(CLASS_NAMES)]
        widths = [font.getbbox(name)[2] + 22 for name, _ in entries]
        lines, line, used = [], [], 0
        for entry, w in zip(entries, widths):
            if line and used + w > width - 8:
                lines.append(line)
                line, used = [], 0
            line.append((entry, w))
            used += w
        lines.append(line)
        im = Image.new("RGB", (width, _even(len(lines) * 18 + 6)), (255, 255, 255))
        draw = ImageDraw.Draw(im)
        for row, items in enumerate(lines):
            x, y = 4, 4 + row * 18
            for (name, color), w in items:
                draw.rectangle([x, y + 1, x + 12, y + 13], fill=color)
                draw.text((x + 16, y), name, fill=(0, 0, 0), font=font)
                x += w
        return np.asarray(im)

    def compose(self, photo: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
        """The grid for one frame; ``masks`` in the order of the titles given to the constructor."""
        small = cv2.resize(photo, (self.pw, self.ph), interpolation=cv2.INTER_AREA)
        panels = [small] + [overlay(small, cv2.resize(m, (self.pw, self.ph), interpolation=cv2.INTER_NEAREST), self.alpha)
                            for m in masks]
        canvas = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        canvas[: self.top] = self.legend
        for k, (panel, label) in enumerate(zip(panels, self.labels)):
            y, x = self.top + (k // self.cols) * self.ph, (k % self.cols) * self.pw
            canvas[y : y + self.ph, x : x + self.pw] = panel
            canvas[y : y + label.shape[0], x : x + label.shape[1]] = label
        return canvas

    def panels(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        """The panels of a composed frame (e.g. one decoded from the output video), by title."""
        return {t: frame[self.top + (k // self.cols) * self.ph : self.top + (k // self.cols + 1) * self.ph,
                         (k % self.cols) * self.pw : (k % self.cols + 1) * self.pw]
                for k, t in enumerate(self.titles)}


# --- statistics -----------------------------------------------------------------------------------

def class_share_vector(mask: np.ndarray) -> np.ndarray:
    """Share of the pixels of each of the ``NUM_CLASSES`` classes (ignored pixels count in none)."""
    return np.bincount(mask.ravel(), minlength=256)[:NUM_CLASSES] / max(1, mask.size)


def disagreement_share(masks: list[np.ndarray]) -> float:
    out = np.zeros(masks[0].shape, dtype=bool)
    for m in masks[1:]:
        out |= m != masks[0]
    return float(out.mean())


class FlickerMeter:
    """Flicker of each model between consecutive segmented frames: the share of pixels whose class
    changed, and with ``flow`` the same after moving the previous mask along the optical flow
    (computed on a ``flow_side``-pixel copy: flicker is a share, it needs no full resolution)."""

    def __init__(self, flow: bool = True, flow_side: int = 320):
        self.flow, self.flow_side = flow, flow_side
        self._prev: tuple[np.ndarray, dict[str, np.ndarray]] | None = None

    def update(self, photo: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, tuple[float, float | None]]:
        """``{model: (flicker, motion-compensated flicker or None)}``; empty for the first frame."""
        prev, self._prev = self._prev, (photo, masks)
        if prev is None:
            return {}
        if prev[0].shape != photo.shape:
            return {}
        out = {n: (float((m != prev[1][n]).mean()), None) for n, m in masks.items() if n in prev[1]}
        if self.flow and out:
            warp = self._warp(prev[0], photo)
            for n in out:
                out[n] = (out[n][0], warp(prev[1][n], masks[n]))
        return out

    def _warp(self, before: np.ndarray, after: np.ndarray) -> Callable[[np.ndarray, np.ndarray], float]:
        h, w = after.shape[:2]
        scale = min(1.0, self.flow_side / max(h, w))
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        gray = [cv2.cvtColor(cv2.resize(im, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY) for im in (after, before)]
        # Flow from the new frame back to the old one: for each new pixel, where it was.
        flow = cv2.calcOpticalFlowFarneback(gray[0], gray[1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        gx, gy = np.meshgrid(np.arange(size[0], dtype=np.float32), np.arange(size[1], dtype=np.float32))
        map_x, map_y = gx + flow[..., 0], gy + flow[..., 1]
        inside = (map_x >= 0) & (map_x <= size[0] - 1) & (map_y >= 0) & (map_y <= size[1] - 1)

        def changed(old: np.ndarray, new: np.ndarray) -> float:
            old = cv2.resize(old, size, interpolation=cv2.INTER_NEAREST)
            new = cv2.resize(new, size, interpolation=cv2.INTER_NEAREST)
            moved = cv2.remap(old, map_x, map_y, interpolation=cv2.INTER_NEAREST)
            return float((moved != new)[inside].mean()) if inside.any() else 0.0

        return changed


def frame_row(index: int, seconds: float, segmented: bool, masks: dict[str, np.ndarray],
              flicker: dict[str, tuple[float, float | None]]) -> dict:
    """One CSV row: time, the models' disagreement, each model's flicker and class shares.
    Flicker is blank where it is not measured (the first frame, and frames between segmented ones)."""
    row = {"frame": index, "time_s": round(seconds, 4), "segmented": int(segmented),
           "disagreement": round(disagreement_share(list(masks.values())), 5) if len(masks) > 1 else ""}
    for n in masks:
        f, fm = flicker.get(n, ("", None))
        row[f"flicker_{n}"] = round(f, 5) if f != "" else ""
        row[f"flicker_flow_{n}"] = round(fm, 5) if fm is not None else ""
    for n, m in masks.items():
        shares = class_share_vector(m)
        row.update({f"share_{n}_{c.replace(' ', '_')}": round(float(s), 5) for c, s in zip(CLASS_NAMES, shares)})
    return row


def flicker_figure(rows: list[dict], names: tuple[str, ...]):
    """A plotly figure of the disagreement and each model's flicker over the segmented frames; each
    point carries its frame index as ``customdata`` (both apps jump to the clicked frame)."""
    import plotly.graph_objects as go  # only the apps draw it


    fig = go.Figure()
    shown = [r for r in rows if r["segmented"]]
    frames, times = [r["frame"] for r in shown], [r["time_s"] for r in shown]
    if len(names) > 1:
        fig.add_scatter(x=times, y=[r["disagreement"] for r in shown], customdata=frames, name="disagreement",
                        mode="lines+markers", line={"color": "magenta"})
    for n in names:
        for column, dash, label in ((f"flicker_{n}", "solid", "flicker"),
                                    (f"flicker_flow_{n}", "dot", "flicker, motion-compensated")):
            ys = [r[column] if r[column] != "" else None for r in shown]
            if any(y is not None for y in ys):
                fig.add_scatter(x=times, y=ys, customdata=frames, name=f"{display_name(n)} {label}",
                                mode="lines+markers", line={"dash": dash, "color": model_color(n, names)})
    fig.update_layout(xaxis_title="time (s)", yaxis_title="share of pixels", yaxis_tickformat=".0%", height=380,
                      margin={"t": 30, "b": 40}, legend={"orientation": "h", "y": -0.25})
    return fig


# --- the whole job --------------------------------------------------------------------------------

@dataclass
class VideoResult:
    info: VideoInfo
    names: tuple[str, ...]
    frames: int
    segmented: int
    seconds: float
    rows: list[dict] = field(repr=False)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def mean(self, column: str) -> float | None:
        values = [r[column] for r in self.rows if r.get(column, "") != ""]
        return float(np.mean(values)) if values else None

    def summary(self) -> str:
        """One line: frames, speed, disagreement, each model's flicker."""
        parts = [f"{self.frames} frames ({self.segmented} segmented) in {self.seconds:.1f} s, {self.fps:.1f} frames/s"]
        if (d := self.mean("disagreement")) is not None:
            parts.append(f"disagreement {d:.1%}")
        for n in self.names:
            f, fm = self.mean(f"flicker_{n}"), self.mean(f"flicker_flow_{n}")
            if f is not None:
                parts.append(f"{display_name(n)} flicker {f:.1%}" + (f" ({fm:.1%} motion-compensated)" if fm is not None else ""))
        return "; ".join(parts)


def segment_video(source: str | Path, out_video: str | Path, predictor, names: tuple[str, ...] | None = None,
                  every: int = 1, out_csv: str | Path | None = None, panel_side: int = PANEL_SIDE,
                  flow: bool = True, alpha: float = 0.5, limits: Limits = Limits(),
                  progress: Callable[[int, int], None] | None = None,
                  pause: Callable[[], None] | None = None) -> VideoResult:
    """Segment ``source`` with ``predictor``'s models (``names``, default all loaded) and write the
    comparison video to ``out_video`` and, when given, the per-frame CSV to ``out_csv``.

    ``progress(done, total)`` is called after each frame (``total`` as probed, may be an estimate);
    ``pause()`` before each segmented frame (the apps pass ``PHOTOS_FIRST.wait``).
    """

    if every < 1:
        raise ValueError("every must be at least 1")
    source = Path(source)
    info = probe(source, limits)
    names = tuple(n for n in predictor.models if names is None or n in names)
    if not names:
        raise VideoError("none of the chosen models is loaded")
    composer = Composer(info.height, info.width, [display_name(n) for n in names], panel_side, alpha)
    meter = FlickerMeter(flow=flow)
    rows, masks, segmented = [], {}, 0
    fps = float(info.fps)
    t0 = time.perf_counter()
    with VideoWriter(out_video, composer.width, composer.height, info.fps) as writer:
        for i, rgb in enumerate(read_frames(source, limits)):
            flicker = {}
            # A stream whose frame size changes part-way is segmented again at once.
            seg = i % every == 0 or rgb.shape[:2] != next(iter(masks.values())).shape
            if seg:
                if pause is not None:
                    pause()
                masks = {n: p.mask for n, p in predictor.predict(rgb, names=names).items()}
                flicker = meter.update(rgb, masks)
                segmented += 1
            writer.write(composer.compose(rgb, [masks[n] for n in names]))
            rows.append(frame_row(i, i / fps, seg, masks, flicker))
            if progress is not None:
                progress(i + 1, max(info.frames, i + 1))
    result = VideoResult(info, names, len(rows), segmented, time.perf_counter() - t0, rows)
    if out_csv is not None:
        write_csv(out_csv, rows)
    return result


# --- one job at a time ----------------------------------------------------------------------------

class JobQueue:
    """One video job at a time per server, first come first served. Waiters are told their
    position (1 = next) through ``on_wait`` about every ``poll`` seconds; a waiter that gives up
    (an exception in ``on_wait``, e.g. a closed browser tab) leaves the line."""

    def __init__(self):
        self._cond = threading.Condition()
        self._line: list[object] = []
        self._busy = False

    def waiting(self) -> int:
        with self._cond:
            return len(self._line)

    @contextmanager
    def slot(self, on_wait: Callable[[int], None] | None = None, poll: float = 0.5):
        ticket = object()
        with self._cond:
            self._line.append(ticket)
        try:
            while True:
                with self._cond:
                    if not self._busy and self._line[0] is ticket:
                        self._line.pop(0)
                        self._busy = True
                        break
                    position = self._line.index(ticket) + 1
                if on_wait is not None:
                    on_wait(position)
                with self._cond:
                    self._cond.wait(poll)
        except BaseException:
            with self._cond:
                if ticket in self._line:
                    self._line.remove(ticket)
                self._cond.notify_all()
            raise
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


class PhotosFirst:
    """Photo requests go first: a video job waits before each segmented frame while any photo is
    being segmented in this process, so a long video does not slow the people comparing photos
    on the same cores by more than one frame. ``timeout`` bounds each wait, so a stream of photos
    slows a video but never stops it."""

    def __init__(self, timeout: float = 5.0):
        self.timeout = timeout
        self._cond = threading.Condition()
        self._active = 0

    @contextmanager
    def photo(self):
        """Wrap the segmentation of one photo."""
        with self._cond:
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def wait(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._active == 0, self.timeout)


#: One per process: both apps' photo handlers and video jobs share it.
PHOTOS_FIRST = PhotosFirst()
