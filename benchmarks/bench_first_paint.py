"""What the Compare page's two steps cost: the three masks first, the ensemble after.

Times, on one synthetic street photo at screen size (``--size``, shrunk as the page does), the
choices for the first paint and for the ensemble that follows it:

* the three masks alone (``Predictor.predict``: what the page runs first);
* the three masks with each model's probabilities kept (the runners' ``masks_and_probabilities``),
  and then the ensemble from those kept probabilities (weighted mean, upsampling, argmax);
* the ensemble alone, afterwards (``Predictor.predict(names=("ensemble",))``: the members'
  probabilities again, no masks; what the page runs second);
* for reference, the old single step (``predict(ensemble=True)``).

Interleaved, after a warm-up; medians and minima in ms::

    python -m benchmarks.bench_first_paint --repeats 12
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks.scenes import synthetic_street
from seg_core import analysis
from seg_core.inference import _mask_of_probabilities, _same_size, prepare
from seg_core.predictor import Predictor
from seg_core.viz import fit_within

ROOT = Path(__file__).resolve().parents[1]
SCREEN_SIDE = 1024  # ui.scenes.DISPLAY_MAX_SIDE, without importing Streamlit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--size", default="2048x1024", help="upload width x height")
    parser.add_argument("--repeats", type=int, default=12)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    pred = Predictor.from_dir(args.weights)
    members = pred.ensemble()
    if not members:
        raise SystemExit(f"{args.weights} has fewer than two models: no ensemble to time")
    photo = fit_within(synthetic_street(width, height, seed=3), SCREEN_SIDE)
    hw = photo.shape[:2]
    runners = {n: pred.models[n] for n in members}
    kept: dict = {}

    def masks_keeping_probabilities() -> None:  # one input for all: the shipped models share it
        x, valid = prepare(photo, next(iter(runners.values())).config)
        for name, runner in runners.items():
            kept[name] = runner.masks_and_probabilities(x, hw)[1][0]

    def ensemble_from_kept() -> None:
        mixed = analysis.ensemble_probabilities(_same_size([kept[n] for n in members]), list(members.values()))
        _mask_of_probabilities(mixed, hw)

    runs = {
        "first paint: three masks": lambda: pred.predict(photo),
        "first paint: three masks, probabilities kept": masks_keeping_probabilities,
        "then: ensemble from the kept probabilities": ensemble_from_kept,
        "then: ensemble alone (predict names=ensemble)": lambda: pred.predict(photo, names=("ensemble",)),
        "one step: masks and ensemble (ensemble=True)": lambda: pred.predict(photo, ensemble=True),
    }
    for run in runs.values():  # warm-up: compiles each OpenVINO graph once
        run()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for key, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - t0)
    print(f"{photo.shape[1]}x{photo.shape[0]} (from {width}x{height}), {pred.backends()}, {args.repeats} runs each")
    for key, values in times.items():
        print(f"{key:48s} median {statistics.median(values) * 1000:6.1f} ms   min {min(values) * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
