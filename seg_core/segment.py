"""Segment a user's own files: images, folders of images, and videos, mixed (``train_cli.py segment``).

For each image and model: the mask of class ids as a PNG (``<stem>_<model>.png``) and, on request,
the colour mask (``_colour.png``) and the overlay (``_overlay.png``). For each video: the
side-by-side comparison (``<stem>_compare.mp4``) and its per-frame statistics (``<stem>_frames.csv``),
see ``seg_core.video_compare``. Inputs given inside a folder are written under a subfolder of that name.

A bad input (missing, not an image or video, corrupt, too long...) is reported as one line on
``err`` and the run goes on with the others; ``SegmentReport.failed`` lists them, so the caller
can end with a non-zero status (``write_failures`` keeps them as CSV rows). Every file is
written under a temporary name and renamed. ``run`` is the local engine; ``seg_core.ray_engine``
spreads the same per-file steps (``plan``, ``try_image``, ``video_job``) over a Ray cluster.
"""

from __future__ import annotations

import csv
import glob
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .inference import ENSEMBLE, ImageError, load_image
from .palette import colorize
from .files import atomic_path
from .video import Limits, VideoError, probe
from .video_compare import segment_video
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
    skipped: int = 0  # inputs whose outputs a previous run wrote (the Ray engine's rerun)

    def summary(self) -> str:
        done = self.images + self.frames
        rate = done / self.seconds if self.seconds else 0.0
        failed = f"; {len(self.failed)} input(s) failed" if self.failed else ""
        skipped = f"; {self.skipped} input(s) already done, skipped" if self.skipped else ""
        return (f"segmented {self.images} image(s) and {self.videos} video(s) ({self.frames} frames) in "
                f"{self.seconds:.1f} s: {rate:.1f} frames/s{failed}{skipped}")

    def fail(self, path: Path, why: str, err) -> None:
        self.failed.append((path, why))
        tqdm.write(f"error: {why}", file=err)  # above a running progress bar, on a line of its own


def write_failures(failed: list[tuple[Path, str]], path: Path) -> None:
    """One CSV row per failed input (``input,reason``); a stale file of an earlier run is removed
    when nothing failed."""
    if not failed:
        Path(path).unlink(missing_ok=True)
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["input", "reason"])
        writer.writerows([str(p), why] for p, why in failed)


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


def image_outputs(job: Job, name: str, colour: bool, with_overlay: bool) -> dict[str, Path]:
    """``{"mask" | "colour" | "overlay": path}``: what ``segment_image`` writes for model ``name``."""
    base = f"{job.path.stem}_{name}"
    paths = {"mask": job.out_dir / f"{base}.png"}
    if colour:
        paths["colour"] = job.out_dir / f"{base}_colour.png"
    if with_overlay:
        paths["overlay"] = job.out_dir / f"{base}_overlay.png"
    return paths


def video_outputs(job: Job) -> tuple[Path, Path]:
    """The comparison video and the per-frame CSV of a video job."""
    return job.out_dir / f"{job.path.stem}_compare.mp4", job.out_dir / f"{job.path.stem}_frames.csv"


def is_done(job: Job, names: tuple[str, ...], colour: bool, with_overlay: bool) -> bool:
    """Whether every output of ``job`` is there; written atomically, an output that exists is whole."""
    if job.kind == "video":
        paths = video_outputs(job)
    else:
        paths = [p for n in names for p in image_outputs(job, n, colour, with_overlay).values()]
    return all(p.is_file() for p in paths)


def segment_image(job: Job, predictor, names: tuple[str, ...], colour: bool, with_overlay: bool) -> None:
    rgb = load_image(job.path)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    for name, pred in predictor.predict(rgb, names=names).items():
        paths = image_outputs(job, name, colour, with_overlay)
        _write(paths["mask"], png_bytes(pred.mask))
        if colour:
            _write(paths["colour"], png_bytes(colorize(pred.mask)))
        if with_overlay:
            _write(paths["overlay"], png_bytes(overlay_image(rgb, pred.mask)))


def try_image(job: Job, predictor, names: tuple[str, ...], colour: bool, with_overlay: bool) -> str | None:
    """``segment_image``; ``None`` when done, else why the image failed (one line for the user)."""
    try:
        segment_image(job, predictor, names, colour, with_overlay)
    except ImageError as e:
        return f"{job.path}: {e}"
    except OSError as e:
        return _unwritable(job, e)
    return None


def video_job(job: Job, predictor, names: tuple[str, ...], every: int = 1, flow: bool = True,
              limits: Limits = Limits(), bar=None):
    """Segment one video into its outputs (``video_outputs``); ``bar(total)``, called once the file
    is probed (a bad file is refused before its progress bar shows), returns a ``progress(done,
    total)`` callback. Raises ``VideoError`` for a bad file, ``OSError`` when the output cannot be
    written (``video_failure`` says either in a sentence)."""
    _sweep(job)
    total = probe(job.path, limits).frames
    job.out_dir.mkdir(parents=True, exist_ok=True)
    video, frames_csv = video_outputs(job)
    return segment_video(job.path, video, predictor, names=names, every=every, out_csv=frames_csv, flow=flow,
                         limits=limits, progress=bar(total) if bar else None)


def chosen_names(predictor, names: tuple[str, ...] | None) -> tuple[str, ...]:
    """The loaded models (and the ensemble, when there is one) among ``names`` (default: all)."""
    offered = (*predictor.models, *([ENSEMBLE] if predictor.ensemble() else []))
    names = tuple(n for n in offered if names is None or n in names)
    if not names:
        raise SegmentError("none of the chosen models is loaded")
    return names


def plan(inputs: list[Path], out: Path, report: SegmentReport, err) -> tuple[list[Job], list[Job]]:
    """The image jobs and the video jobs of ``inputs``, each input once: what cannot be segmented
    (and a second input with an earlier one's stem) is reported and left out."""
    jobs = collect(inputs, out, report.failed)
    for path, why in report.failed:
        print(f"error: {why}", file=err)
    seen: set[tuple[Path, str]] = set()
    images = [j for j in jobs if j.kind == "image" and not _duplicate(j, seen, report, err)]
    videos = [j for j in jobs if j.kind == "video" and not _duplicate(j, seen, report, err)]
    return images, videos


def run(inputs: list[Path], out: Path, predictor, names: tuple[str, ...] | None = None, every: int = 1,
        colour: bool = False, with_overlay: bool = False, flow: bool = True, limits: Limits = Limits(),
        err=None, progress: bool = True) -> SegmentReport:
    """Segment every input; see the module docstring for what is written where."""
    err = err or sys.stderr
    names = chosen_names(predictor, names)
    report = SegmentReport()
    images, videos = plan(inputs, out, report, err)
    t0 = time.perf_counter()
    for job in tqdm(images, desc="images", unit="image", disable=not progress or not images, file=err):
        if why := try_image(job, predictor, names, colour, with_overlay):
            report.fail(job.path, why, err)
        else:
            report.images += 1
    for job in videos:
        bar = _VideoBar(job, progress, err)
        try:
            result = video_job(job, predictor, names, every, flow, limits, bar.open)
        except (VideoError, OSError) as e:
            report.fail(job.path, video_failure(job, e), err)
            continue
        finally:
            bar.close()
        add_video(report, job, result)
    report.seconds = time.perf_counter() - t0
    return report


class _VideoBar:
    """One video's tqdm bar, opened once the file is probed (a bad file is refused before it shows)."""

    def __init__(self, job: Job, enabled: bool, err):
        self.job, self.enabled, self.err, self.bar = job, enabled, err, None

    def open(self, total: int):
        self.bar = tqdm(desc=self.job.path.name, total=total, unit="frame", disable=not self.enabled, file=self.err)
        return self.tick

    def tick(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def add_video(report: SegmentReport, job: Job, result) -> None:
    report.videos += 1
    report.frames += result.frames
    report.lines.append(f"{job.path.name}: {result.summary()}")


def _unwritable(job: Job, e: OSError) -> str:
    """A failed write as a sentence: the output folder is a file, not writable, the disk full..."""
    return f"{job.path}: cannot write its results in {job.out_dir}: {e.strerror or e}"


def video_failure(job: Job, e: VideoError | OSError) -> str:
    """Why a video job failed, as one sentence: the file (``VideoError``) or the output folder."""
    return str(e) if isinstance(e, VideoError) else _unwritable(job, e)


def _sweep(job: Job) -> None:
    """Remove the temp files a killed earlier run (SIGKILL: no chance to clean up) left for this video's outputs."""
    for path in video_outputs(job):
        for stale in job.out_dir.glob(f".{glob.escape(path.name)}.*.tmp"):
            stale.unlink(missing_ok=True)


def _duplicate(job: Job, seen: set, report: SegmentReport, err) -> bool:
    """Two inputs with one stem in one output folder would overwrite each other: the second is skipped."""
    key = (job.out_dir, job.path.stem)
    if key in seen:
        report.fail(job.path, f"{job.path}: an earlier input has the same name stem {job.path.stem!r}; skipped", err)
        return True
    seen.add(key)
    return False
