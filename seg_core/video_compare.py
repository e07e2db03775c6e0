"""Compare the models on a video: segment each frame, lay out the side-by-side grid, measure flicker.

``segment_video(source, out, predictor)`` decodes ``source`` (``seg_core.video``), segments every
frame (or every ``every``-th, holding the masks between), writes a side-by-side H.264 mp4 at the
source frame rate (photo and one overlay per model in a grid, labels, a legend strip; each
panel's long side capped at ``panel_side``) and returns one row of statistics per frame: each
model's class shares, the share of pixels where the models disagree, and each model's *flicker*,
the share of pixels whose class changed since the previous segmented frame. ``flow=True`` adds a
motion-compensated flicker: the previous mask is first moved along the Farneback optical flow
(OpenCV), so that a car driving by does not count as flicker, only a class that changes under it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .palette import CLASS_NAMES, COLORS, NUM_CLASSES
from .registry import display_name
from .video import Limits, VideoError, VideoInfo, VideoWriter, probe, read_frames, write_csv
from .viz import overlay

PANEL_SIDE = 640


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
    ``pause()`` before each segmented frame (``seg_core.serve.jobs.run_video`` passes the photos-first wait).
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
