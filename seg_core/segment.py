"""Segment a user's own files: images, folders of images, and videos, mixed (``train_cli.py segment``).

For each image and model: the mask of class ids as a PNG (``<stem>_<model>.png``) and, on request,
the colour mask (``_colour.png``) and the overlay (``_overlay.png``). For each video: the
side-by-side comparison (``<stem>_compare.mp4``) and its per-frame statistics (``<stem>_frames.csv``),
see ``seg_core.video``. Inputs given inside a folder are written under a subfolder of that name.

A bad input (missing, not an image or video, corrupt, too long...) is reported as one line on
``err`` and the run goes on with the others; ``SegmentReport.failed`` lists them, so the caller
can end with a non-zero status. Every file is written under a temporary name and renamed.
"""

from __future__ import annotations

import glob
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .inference import ENSEMBLE, ImageError, load_image
from .palette import colorize
from .files import atomic_path
from .video import Limits, VideoError, probe, segment_video
from .viz import overlay as overlay_image
from .viz import png_bytes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")


class SegmentError(ValueError):
    """A problem with the whole run (no model, no usable input): one line for the user."""


@dataclass
class Job:
    kind: str  # "image" or "video"
    path: Path
    out_dir: Path


@dataclass
class SegmentReport:
    images: int = 0
    videos: int = 0
    frames: int = 0  # video frames written
    seconds: float = 0.0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # one summary per video

    def summary(self) -> str:
        done = self.images + self.frames
        rate = done / self.seconds if self.seconds else 0.0
        failed = f"; {len(self.failed)} input(s) failed" if self.failed else ""
        return (f"segmented {self.images} image(s) and {self.videos} video(s) ({self.frames} frames) in "
                f"{self.seconds:.1f} s: {rate:.1f} frames/s{failed}")


def kind_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None


def collect(inputs: list[Path], out: Path, failed: list[tuple[Path, str]]) -> list[Job]:
    """The files to segment: each input file, and the images and videos directly inside each
    input folder (sorted). Problems go to ``failed``."""
    jobs = []
    for path in inputs:
        if path.is_dir():
            found = [p for p in sorted(path.iterdir()) if p.is_file() and kind_of(p)]
            if not found:
                failed.append((path, f"folder {path} holds no image or video ({', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)})"))
            jobs += [Job(kind_of(p), p, out / path.resolve().name) for p in found]
        elif not path.exists():
            failed.append((path, f"{path} does not exist"))
        elif kind_of(path) is None:
            failed.append((path, f"{path.name} is neither an image nor a video by its name "
                                 f"({', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)})"))
        else:
            jobs.append(Job(kind_of(path), path, out))
    return jobs


def _write(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def segment_image(job: Job, predictor, names: tuple[str, ...], colour: bool, with_overlay: bool) -> None:
    rgb = load_image(job.path)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    for name, pred in predictor.predict(rgb, names=names).items():
        base = job.out_dir / f"{job.path.stem}_{name}"
        _write(base.with_name(base.name + ".png"), png_bytes(pred.mask))
        if colour:
            _write(base.with_name(base.name + "_colour.png"), png_bytes(colorize(pred.mask)))
        if with_overlay:
            _write(base.with_name(base.name + "_overlay.png"), png_bytes(overlay_image(rgb, pred.mask)))


def run(inputs: list[Path], out: Path, predictor, names: tuple[str, ...] | None = None, every: int = 1,
        colour: bool = False, with_overlay: bool = False, flow: bool = True, limits: Limits = Limits(),
        err=None, progress: bool = True) -> SegmentReport:
    """Segment every input; see the module docstring for what is written where."""
    err = err or sys.stderr
    offered = (*predictor.models, *([ENSEMBLE] if predictor.ensemble() else []))
    names = tuple(n for n in offered if names is None or n in names)
    if not names:
        raise SegmentError("none of the chosen models is loaded")
    report = SegmentReport()
    jobs = collect(inputs, out, report.failed)
    for path, why in report.failed:
        print(f"error: {why}", file=err)
    seen: set[Path] = set()
    t0 = time.perf_counter()
    images = [j for j in jobs if j.kind == "image"]
    for job in tqdm(images, desc="images", unit="image", disable=not progress or not images, file=err):
        if _duplicate(job, seen, report, err):
            continue
        try:
            segment_image(job, predictor, names, colour, with_overlay)
            report.images += 1
        except ImageError as e:
            _fail(report, job.path, f"{job.path}: {e}", err)
        except OSError as e:
            _fail(report, job.path, _unwritable(job, e), err)
    for job in (j for j in jobs if j.kind == "video"):
        if _duplicate(job, seen, report, err):
            continue
        try:
            _sweep(job)
            total = probe(job.path, limits).frames  # a bad file is refused before its progress bar shows
            job.out_dir.mkdir(parents=True, exist_ok=True)
        except VideoError as e:
            _fail(report, job.path, str(e), err)
            continue
        except OSError as e:
            _fail(report, job.path, _unwritable(job, e), err)
            continue
        bar = tqdm(desc=job.path.name, total=total, unit="frame", disable=not progress, file=err)

        def tick(done: int, total: int, bar=bar) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            result = segment_video(job.path, job.out_dir / f"{job.path.stem}_compare.mp4", predictor, names=names,
                                   every=every, out_csv=job.out_dir / f"{job.path.stem}_frames.csv", flow=flow,
                                   limits=limits, progress=tick)
        except (VideoError, OSError) as e:
            bar.close()
            _fail(report, job.path, str(e) if isinstance(e, VideoError) else _unwritable(job, e), err)
            continue
        bar.close()
        report.videos += 1
        report.frames += result.frames
        report.lines.append(f"{job.path.name}: {result.summary()}")
    report.seconds = time.perf_counter() - t0
    return report


def _unwritable(job: Job, e: OSError) -> str:
    """A failed write as a sentence: the output folder is a file, not writable, the disk full..."""
    return f"{job.path}: cannot write its results in {job.out_dir}: {e.strerror or e}"


def _sweep(job: Job) -> None:
    """Remove the temp files a killed earlier run (SIGKILL: no chance to clean up) left for this video's outputs."""
    for name in (f"{job.path.stem}_compare.mp4", f"{job.path.stem}_frames.csv"):
        for stale in job.out_dir.glob(f".{glob.escape(name)}.*.tmp"):
            stale.unlink(missing_ok=True)


def _duplicate(job: Job, seen: set, report: SegmentReport, err) -> bool:
    """Two inputs with one stem in one output folder would overwrite each other: the second is skipped."""
    key = (job.out_dir, job.path.stem)
    if key in seen:
        _fail(report, job.path, f"{job.path}: an earlier input has the same name stem {job.path.stem!r}; skipped", err)
        return True
    seen.add(key)
    return False


def _fail(report: SegmentReport, path: Path, why: str, err) -> None:
    report.failed.append((path, why))
    tqdm.write(f"error: {why}", file=err)  # above a running progress bar, on a line of its own
