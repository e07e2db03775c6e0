"""``segment`` and ``scores`` on a Ray cluster (Ray Data): the local engine's per-file code, spread out.

The driver lists the inputs once (``seg_core.segment.plan``, ``seg_core.data.list_pairs``). Images go
through ``ray.data`` in batches (``map_batches``) to a fixed pool of actors; each actor holds a
``Predictor`` (the int8 exports when present) running on ``threads`` CPU threads and reserves as many
CPUs, so the pool fills the cluster's cores without oversubscribing them. Each video is one Ray task.
Actors decode their own files and write their own outputs: pixels never cross the object store, so
the inputs, the weights folder and the output folder must sit at the same paths on every node (one
machine, or a shared file system; docs/ray.md).

Faults: a bad file is a failure row with its reason, as in the local engine, and the run goes on. An
actor that dies is restarted by Ray and its batch is run again (Ray Data's actor pools default to
``max_restarts=-1``, ``max_task_retries=-1``), rewriting the same outputs; every output is written with ``atomic_path``,
so a kill leaves no half file, and the temp files of killed writers are swept at the end. A rerun
skips the images and videos whose outputs are all there (``scores``: the local engine's cache).

Ray is an optional extra: ``pip install -e ".[ray]"``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from .backends.torch_runner import TorchRunner
from .data import DataError, list_pairs, read_pair
from .files import sweep_temp_files
from .folder_scores import cache_path, read_cached, score_names, score_pairs, store
from .segment import (Job, SegmentReport, add_video, chosen_names, is_done, plan, try_image, video_failure,
                      video_job)
from .video import Limits, VideoError

#: CPU threads of each actor's models when not given. Each actor holds its own predictor (about
#: 0.9 GB resident with the three int8 models), so two threads an actor halves the pool's memory
#: against one; one thread an actor was not clearly faster (docs/ray.md).
DEFAULT_THREADS = 2
SEGMENT_BATCH, SCORES_BATCH = 8, 16  # rows per map_batches call; scores: evaluate_many's batch


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached: one line for the user."""


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the extra is ray[data]
    except ImportError:
        raise RayUnavailable('--engine ray needs Ray: pip install -e ".[ray]"') from None
    return ray


@contextmanager
def connected(address: str | None = None, num_cpus: int | None = None,
              object_store_memory: int | None = None) -> Iterator:
    """Ray, connected to ``address`` (``auto``, ``ray://host:port``, ...; ``None``: ``RAY_ADDRESS``,
    set by ``ray job submit``) or, without either, to a local Ray started for this run (``num_cpus``,
    ``object_store_memory`` apply to that one only) and shut down after it. When this process
    already runs Ray, that one is used as it is."""
    ray = _ray()
    started = not ray.is_initialized()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if started:
        local = {"num_cpus": num_cpus, "object_store_memory": object_store_memory} if address is None else {}
        try:
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, **local)
        except (ConnectionError, ValueError, RuntimeError) as err:
            raise RayUnavailable(f"cannot start or reach Ray at {address or 'a local instance'}: {err}") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours is the one bar (tqdm), as in the local engine
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": we did
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def layout(ray, threads: int | None = None) -> tuple[int, int]:
    """``(actors, threads per actor)``: as many actors as the cluster's CPUs hold at ``threads`` each."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    threads = max(1, min(threads or DEFAULT_THREADS, cpus))
    return max(1, cpus // threads), threads


def _predictor(weights: str, threads: int, cwd: str, backend: str = "auto"):
    """A worker's predictor, in the driver's working folder (when this node has it), so that
    relative input, output and weights paths mean what they mean on the driver."""
    from .predictor import Predictor

    if os.path.isdir(cwd):
        os.chdir(cwd)
    torch.set_num_threads(threads)  # PyTorch runners and the resizes; exported runners get ``threads`` too
    return Predictor.from_dir(weights, backend=backend, threads=threads)


def _pool(ray, rows: list[dict], worker, kwargs: dict, actors: int, threads: int, batch_size: int):
    """``rows`` as a dataset mapped, ``batch_size`` rows at a time, by a pool of ``actors`` instances
    of ``worker`` (each reserving ``threads`` CPUs)."""
    # Blocks of about one batch (a killed actor's retry redoes little), at least one per actor.
    blocks = max(1, min(math.ceil(len(rows) / batch_size), 64 * actors), min(len(rows), actors))
    # Ray Data's actor pools restart a dead actor and retry its tasks by default (max_restarts=-1,
    # max_task_retries=-1; the test kills one); its ray_remote_args that would say so are deprecated.
    return ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        worker, batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=threads, fn_constructor_kwargs=kwargs)


# --- segment --------------------------------------------------------------------------------------

class _ImageWorker:
    """An actor of the pool: one predictor, ``seg_core.segment.try_image`` on each row."""

    def __init__(self, weights: str, names: tuple[str, ...], colour: bool, with_overlay: bool, threads: int,
                 cwd: str):
        self.predictor = _predictor(weights, threads, cwd)
        self.args = (tuple(names), colour, with_overlay)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        reasons = [try_image(Job("image", Path(p), Path(o)), self.predictor, *self.args) or ""
                   for p, o in zip(batch["path"], batch["out_dir"])]
        return {"path": batch["path"], "reason": np.array(reasons, dtype=object)}


def _video_task(path: str, out_dir: str, weights: str, names: tuple[str, ...], every: int, flow: bool,
                limits: Limits, threads: int, cwd: str):
    """One video, in a Ray task: ``(None, VideoResult)`` or ``(why it failed, None)``."""
    job = Job("video", Path(path), Path(out_dir))
    try:
        return None, video_job(job, _predictor(weights, threads, cwd), names, every, flow, limits)
    except (VideoError, OSError) as e:
        return video_failure(job, e), None


def run_segment(inputs: list[Path], out: Path, predictor, weights: Path, names: tuple[str, ...] | None = None,
                every: int = 1, colour: bool = False, with_overlay: bool = False, flow: bool = True,
                limits: Limits = Limits(), threads: int | None = None, address: str | None = None,
                err=None, progress: bool = True, batch_size: int = SEGMENT_BATCH,
                on_row=None, **local_ray) -> SegmentReport:
    """``seg_core.segment.run`` on Ray: the same outputs, the same report (plus ``skipped``).
    ``predictor`` (the driver's, from ``weights``) names the models; the workers load their own
    from ``weights``. ``on_row(path)`` is called as each image's row comes back (tests)."""
    err = err or sys.stderr
    names = chosen_names(predictor, names)
    report = SegmentReport()
    images, videos = plan(inputs, out, report, err)
    images = _not_done(images, names, colour, with_overlay, report)
    videos = _not_done(videos, names, colour, with_overlay, report)
    t0 = time.perf_counter()
    if not images and not videos:
        return report
    with connected(address, **local_ray) as ray:
        actors, threads = layout(ray, threads)
        if images:
            rows = [{"path": str(j.path), "out_dir": str(j.out_dir)} for j in images]
            kwargs = {"weights": str(weights), "names": names, "colour": colour, "with_overlay": with_overlay,
                      "threads": threads, "cwd": os.getcwd()}
            reasons = {}
            with tqdm(total=len(images), desc="images", unit="image", disable=not progress, file=err) as bar:
                for batch in _pool(ray, rows, _ImageWorker, kwargs, actors, threads, batch_size).iter_batches(
                        batch_format="numpy", batch_size=None):
                    for path, why in zip(batch["path"], batch["reason"]):
                        reasons[path] = why
                        if why:
                            tqdm.write(f"error: {why}", file=err)
                        if on_row:
                            on_row(path)
                    bar.update(len(batch["path"]))
            for job in images:  # in the inputs' order, as the local engine reports them
                if why := reasons[str(job.path)]:
                    report.failed.append((job.path, why))
                else:
                    report.images += 1
            for folder in {j.out_dir for j in images}:
                sweep_temp_files(folder)  # of actors killed while writing; every writer has finished
        if videos:
            task = ray.remote(num_cpus=threads, max_retries=3)(_video_task)
            refs = [task.remote(str(j.path), str(j.out_dir), str(weights), names, every, flow, limits, threads,
                                os.getcwd()) for j in videos]
            for job, ref in zip(videos, tqdm(refs, desc="videos", unit="video", disable=not progress, file=err)):
                why, result = ray.get(ref)
                if why:
                    report.fail(job.path, why, err)
                else:
                    add_video(report, job, result)
    report.seconds = time.perf_counter() - t0
    return report


def _not_done(jobs: list[Job], names, colour: bool, with_overlay: bool, report: SegmentReport) -> list[Job]:
    todo = [j for j in jobs if not is_done(j, names, colour, with_overlay)]
    report.skipped += len(jobs) - len(todo)
    return todo


# --- scores ---------------------------------------------------------------------------------------

class _ScoreWorker:
    """An actor of the pool: reads its batch of pairs and scores them with ``score_pairs``."""

    def __init__(self, weights: str, backend: str, tta: str, members: dict[str, float], names: list[str],
                 threads: int, cwd: str):
        self.predictor = _predictor(weights, threads, cwd, backend)
        self.tta, self.members, self.names = tta, members, names
        self.classes = next(iter(self.predictor.models.values())).config.num_classes

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n, c = len(batch["path"]), self.classes
        out = {"index": batch["index"], "reason": np.array([""] * n, dtype=object),
               "matrices": np.zeros((n, len(self.names), c, c), np.int64), "disagreement": np.zeros(n),
               "fringe": np.zeros((n, c), bool)}
        read: list[tuple[int, tuple[np.ndarray, np.ndarray]]] = []
        for i, path in enumerate(batch["path"]):
            try:
                read.append((i, read_pair(path)))
            except DataError as e:
                out["reason"][i] = str(e)
            except Exception as e:  # noqa: BLE001 - a trust boundary: a hostile file must not stop the run
                out["reason"][i] = f"{path} cannot be decoded ({type(e).__name__}: {e})"
        if read:
            idx = [i for i, _ in read]
            scored = score_pairs(self.predictor.models, [pair for _, pair in read], self.tta, self.members)
            for k, name in enumerate(self.names):
                out["matrices"][idx, k] = scored["matrices"][name]
            out["disagreement"][idx], out["fringe"][idx] = scored["disagreement"], scored["fringe"]
        return out


def run_scores(predictor, weights: Path, folder: Path, tta: str = "none", ensemble: bool = True,
               threads: int | None = None, address: str | None = None, err=None, progress: bool = True,
               batch_size: int = SCORES_BATCH, cache_dir: Path | None = None,
               **local_ray) -> tuple[dict, list[tuple[Path, str]]]:
    """``seg_core.folder_scores.folder_scores`` on Ray, and the files that could not be scored
    (``[(path, why)]``; the local engine stops at the first). Only a run without failures is cached."""
    err = err or sys.stderr
    folder = Path(folder)
    members = predictor.ensemble() if ensemble else {}
    path = cache_path("scores", predictor, folder, tta=tta, ensemble=ensemble, cache_dir=cache_dir)
    if (cached := read_cached(path)) is not None:
        return cached, []
    files = list_pairs(folder)
    names = score_names(predictor, ensemble)
    # The actors load the models the cache key was made of: PyTorch when the driver's are all
    # PyTorch (``--backend pytorch``, or a folder without exports), else what "auto" finds.
    backend = "pytorch" if all(isinstance(r, TorchRunner) for r in predictor.models.values()) else "auto"
    parts = []
    with connected(address, **local_ray) as ray:
        actors, threads = layout(ray, threads)
        kwargs = {"weights": str(weights), "backend": backend, "tta": tta, "members": members, "names": names,
                  "threads": threads, "cwd": os.getcwd()}
        rows = [{"index": i, "path": str(p)} for i, p in enumerate(files)]
        with tqdm(total=len(files), desc="scoring", unit="img", disable=not progress, file=err) as bar:
            for batch in _pool(ray, rows, _ScoreWorker, kwargs, actors, threads, batch_size).iter_batches(
                    batch_format="numpy", batch_size=None):
                parts.append(batch)
                bar.update(len(batch["index"]))
    got = {k: np.concatenate([b[k] for b in parts]) for k in parts[0]}
    order = np.argsort(got["index"])
    got = {k: v[order] for k, v in got.items()}
    failed = [(files[i], str(why)) for i, why in enumerate(got["reason"]) if why]
    for _, why in failed:
        print(f"error: {why}", file=err)
    good = np.array([not why for why in got["reason"]])
    scores = {"images": [p.name for p, ok in zip(files, good) if ok], "models": names,
              "fringe": got["fringe"][good], "disagreement": got["disagreement"][good],
              "matrices": {n: got["matrices"][good, k] for k, n in enumerate(names)}, "cached": False}
    if not failed:
        store(path, scores)
    return scores, failed
