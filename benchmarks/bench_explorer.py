"""How long the val explorer takes: its first visit (every model and the ensemble scored on the
folder, then written to the cache) and a later visit (read back from the cache).

Each visit is the explorer page run headless (``AppTest``) in this process, on an empty cache
folder first. Wall time and this process's CPU time are reported: on a shared machine the wall
time depends on the other jobs, the CPU time much less.

    python benchmarks/bench_explorer.py --weights weights --data ../shared/data/cityscapes_pairs/val
    python benchmarks/bench_explorer.py ... --cache /tmp/cache --scene 17.jpg   # a warm cache, a scene open
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=ROOT / "weights")
    ap.add_argument("--data", type=Path, required=True, help="a folder of val pairs")
    ap.add_argument("--page", default="explorer", help="the page under app_pages/ to time")
    ap.add_argument("--cache", type=Path, default=None, help="a cache folder to use (default: a new, empty one)")
    ap.add_argument("--scene", default=None, help="open this scene in the explorer (its viewer and downloads)")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"error: {args.data} is not a folder of pairs", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))  # the pages import ui/
    import torch
    from streamlit.testing.v1 import AppTest

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    with tempfile.TemporaryDirectory() as empty:
        cache = str(args.cache or empty)
        os.environ.update(SEG_WEIGHTS_DIR=str(args.weights.resolve()), SEG_DATA_DIR=str(args.data.resolve()),
                          SEG_CACHE_DIR=cache)
        visits = []
        at = None
        for i in range(5):  # first visit, then two from the cache, then two reruns of the last (a widget moved)
            if i < 3:
                at = AppTest.from_file(str(ROOT / "app_pages" / f"{args.page}.py"), default_timeout=900)
                if args.scene:
                    at.session_state["explorer_pick"] = args.scene
            t0, c0 = time.perf_counter(), cpu()
            at.run()
            visits.append((time.perf_counter() - t0, cpu() - c0))
            if at.exception:
                print(f"error: the page raised {at.exception[0].value}", file=sys.stderr)
                return 1
            what = f"visit {i + 1}" if i < 3 else "rerun"
            print(f"{what}: {visits[-1][0]:.2f} s wall, {visits[-1][1]:.2f} s CPU", flush=True)
    load = os.getloadavg()[0]
    print(f"{args.page}: {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, load average {load:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
