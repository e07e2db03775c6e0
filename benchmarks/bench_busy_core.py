"""The ensemble's mix on a machine whose other core is busy: NumPy on one thread against torch's two.

A server shares its two cores: with another session's models, or with the browser drawing the
page on the same machine. Times the ensemble's upsampled classes from the three models' mixed
probabilities of one synthetic street photo at screen size, in NumPy on one thread
(``seg_core.backends.base._blended_classes``) and in torch with two threads as before 2026-12-03
(``torch_blended``), and the whole of ``seg_core.inference.ensemble_of`` (mix, classes,
confidence); first alone, then while a child process spins on one core. Interleaved; medians and
the worst in ms::

    python -m benchmarks.bench_busy_core --repeats 20
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.scenes import synthetic_street
from seg_core import analysis
from seg_core.backends.base import _blended_classes, _source_pixels
from seg_core.inference import ensemble_of
from seg_core.predictor import Predictor
from seg_core.serve.cache import BoundedCache
from seg_core.serve.photos import CACHE_BYTES, Photo, PhotoService

ROOT = Path(__file__).resolve().parents[1]


def torch_blended(scores: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """``_blended_classes`` as it was written in torch (4a1fe5f): the same ids."""
    n, c, h, w = scores.shape
    last = scores.contiguous(memory_format=torch.channels_last)
    ids = last.argmax(1).to(torch.uint8)
    right = torch.cat([ids[..., 1:], ids[..., -1:]], -1)
    below = torch.cat([ids[:, 1:], ids[:, -1:]], 1)
    corner = torch.cat([right[:, 1:], right[:, -1:]], 1)
    mixed = (ids != right) | (ids != below) | (ids != corner)
    (y0, y1, wy), (x0, x1, wx) = (map(torch.from_numpy, _source_pixels(o, s)) for o, s in zip(out_hw, (h, w)))
    out = ids.index_select(1, y0).index_select(2, x0)
    b, ys, xs = mixed.index_select(1, y0).index_select(2, x0).nonzero(as_tuple=True)
    pixels = last.permute(0, 2, 3, 1)
    fy, fx = wy[ys, None], wx[xs, None]
    top, bottom, left, rgt = y0[ys], y1[ys], x0[xs], x1[xs]
    blend = ((pixels[b, top, left] * (1 - fx) + pixels[b, top, rgt] * fx) * (1 - fy)
             + (pixels[b, bottom, left] * (1 - fx) + pixels[b, bottom, rgt] * fx) * fy)
    out[b, ys, xs] = blend.argmax(1).to(out.dtype)
    return out


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    pred = Predictor.from_dir(args.weights)
    members = pred.ensemble()
    if not members:
        raise SystemExit(f"{args.weights} has fewer than two models: no ensemble to time")
    shot = Photo.at_screen_size(synthetic_street(2048, 1024, seed=3))
    preds = PhotoService(pred, "bench", BoundedCache(CACHE_BYTES)).models(shot)
    hw = shot.pixels.shape[:2]
    mixed = torch.from_numpy(analysis.ensemble_probabilities(
        [preds[n].model_probabilities for n in members], list(members.values())))[None]
    if not np.array_equal(ensemble_of(preds, members, hw).mask, torch_blended(mixed, hw)[0].numpy()):
        raise SystemExit("the two blendings disagree")
    runs = {"classes, NumPy (one thread)": lambda: _blended_classes(mixed, hw),
            f"classes, torch ({torch.get_num_threads()} threads, before)": lambda: torch_blended(mixed, hw),
            "ensemble_of: mix, classes, confidence": lambda: ensemble_of(preds, members, hw)}
    ctx = multiprocessing.get_context("spawn")
    print(f"{hw[1]}x{hw[0]}, {len(members)} members, {args.repeats} runs each; medians (worst) in ms")
    for busy in (False, True):
        stop = ctx.Event()
        spinner = ctx.Process(target=_spin, args=(stop,), daemon=True) if busy else None
        if spinner:
            spinner.start()
            time.sleep(0.5)
        times: dict[str, list[float]] = {k: [] for k in runs}
        try:
            for run in runs.values():
                run()
            for _ in range(args.repeats):
                for key, run in runs.items():
                    t0 = time.perf_counter()
                    run()
                    times[key].append(time.perf_counter() - t0)
        finally:
            if spinner:
                stop.set()
                spinner.join(5)
        state = "one core busy" if busy else "alone"
        for key, values in times.items():
            print(f"{state:14s} {key:38s} {statistics.median(values) * 1000:6.1f} ({max(values) * 1000:.1f})")


if __name__ == "__main__":
    main()
