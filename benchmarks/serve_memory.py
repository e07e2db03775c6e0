"""What one photo costs in the serving layer's cache: masks and confidences, and the probabilities
held from the first paint until the ensemble is mixed.

Compares ``--photos`` synthetic street photos (``--size``, screen size as Compare segments them)
through ``seg_core.serve.photos.PhotoService`` with the shipped weights, as the page does (the
three masks, then the ensemble), and prints, per photo, the bytes the cache holds by kind, and the
process's resident memory before and after::

    python -m benchmarks.serve_memory --photos 4
"""

from __future__ import annotations

import argparse
import json
import resource

from benchmarks.bench_page import synthetic_street
from seg_core.predictor import Predictor
from seg_core.serve.cache import BoundedCache, weights_key
from seg_core.serve.photos import CACHE_BYTES, Photo, PhotoService
from seg_core.settings import ROOT


def rss_mib() -> float:
    """Resident memory now (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--size", default="2048x1024", help="photo width x height (shrunk to screen size)")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    cache = BoundedCache(CACHE_BYTES)
    service = PhotoService(Predictor.from_dir(args.weights), weights_key(args.weights), cache)
    service.compare(Photo.at_screen_size(synthetic_street(w, h, seed=999)))  # warm-up: graphs, allocations
    cache.clear()
    before = rss_mib()
    for i in range(args.photos):
        photo = Photo.at_screen_size(synthetic_street(w, h, seed=i))
        first = service.compare(photo, ensemble=False)  # the first paint: the three, probabilities kept
        held = sum(p.model_probabilities.nbytes for p in first.values())
        preds = service.compare(photo)  # the ensemble mixed: the probabilities let go
    kinds = {"masks (uint8, screen size)": sum(p.mask.nbytes for p in preds.values()),
             "confidences (float16, model resolution)": sum(p.model_confidence.nbytes for p in preds.values())}
    print(json.dumps({"photos": args.photos, "shown at": list(next(iter(preds.values())).mask.shape[::-1]),
                      "per photo, MiB": {k: round(v / 2**20, 2) for k, v in kinds.items()}
                      | {"total": round(sum(kinds.values()) / 2**20, 2)},
                      "probabilities (float32, model resolution) held until the ensemble is mixed, MiB":
                          round(held / 2**20, 2),
                      "cache, MiB": round(cache.bytes / 2**20, 1), "cache bound, MiB": CACHE_BYTES // 2**20,
                      "resident memory growth, MiB": round(rss_mib() - before, 1)}, indent=1))


if __name__ == "__main__":
    main()
