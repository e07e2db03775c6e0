"""What the Compare page's first paint costs on the server: the upload decoded, the three masks,
the ensemble.

Times, on one synthetic street photo at screen size (``--size``, shrunk as the page does), the
choices for the first paint and for the ensemble that follows it:

* the upload's JPEG (quality 90) decoded at screen size (``ui.scenes.upload_at_screen_size``: a
  reduced-scale decode), and as before 2026-12-03, at full size and then shrunk;
* what the page runs (``seg_core.serve``): the three masks with each model's probabilities kept
  (``PhotoService.compare(ensemble=False)``, an empty cache each time), then the ensemble mixed
  from those kept probabilities (``PhotoService.ensemble``);
* for reference, what it ran before 2026-12-02: the three masks alone (``Predictor.predict``),
  then the ensemble alone (``Predictor.predict(names=("ensemble",))``: the members' passes again),
  and the older single step (``predict(ensemble=True)``).

Interleaved, after a warm-up; medians and minima in ms::

    python -m benchmarks.bench_first_paint --repeats 12
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks.scenes import jpeg, synthetic_street
from seg_core.inference import load_image
from seg_core.predictor import Predictor
from seg_core.serve.cache import BoundedCache
from seg_core.serve.photos import CACHE_BYTES, SCREEN_MAX_SIDE, Photo, PhotoService
from seg_core.viz import fit_within
from ui.scenes import upload_at_screen_size

ROOT = Path(__file__).resolve().parents[1]


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
    shot = Photo.at_screen_size(synthetic_street(width, height, seed=3))
    photo = shot.pixels
    served: list[PhotoService] = []

    def masks_keeping_probabilities() -> None:  # a new cache: nothing of the previous run is reused
        served[:] = [PhotoService(pred, "bench", BoundedCache(CACHE_BYTES))]
        served[0].compare(shot, ensemble=False)

    upload = jpeg(synthetic_street(width, height, seed=3))
    runs = {
        "upload decoded at screen size": lambda: upload_at_screen_size(upload),
        "before: decoded at full size, then shrunk": lambda: fit_within(load_image(upload), SCREEN_MAX_SIDE),
        "page: three masks, probabilities kept (serve)": masks_keeping_probabilities,
        "page: then the ensemble from them (serve)": lambda: served[0].ensemble(shot),
        "before: three masks": lambda: pred.predict(photo),
        "before: then ensemble alone (names=ensemble)": lambda: pred.predict(photo, names=("ensemble",)),
        "older: masks and ensemble (ensemble=True)": lambda: pred.predict(photo, ensemble=True),
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
