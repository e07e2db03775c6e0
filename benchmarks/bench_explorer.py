"""How long the val explorer takes: its first visit (every model and the ensemble scored on the
folder, then written to the cache) and a later visit (read back from the cache).

Each visit is the explorer page run headless (``AppTest``) in this process, on an empty cache
folder first. Wall time and this process's CPU time are reported: on a shared machine the wall
time depends on the other jobs, the CPU time much less.

``--browser`` times what a visitor sees instead: ``streamlit run app.py`` (not Space-like, so any
folder is shown), the landing page first on the folder's first scene (the models loaded), then from a link to ``/explorer``
to its first rows in headless Chromium (a first visit streams them, a chunk of images at a time)
and to the whole table, on an empty cache; then a second visit, read from the cache. The machine's
load average is printed before and after.

    python benchmarks/bench_explorer.py --weights weights --data ../shared/data/cityscapes_pairs/val
    python benchmarks/bench_explorer.py ... --cache /tmp/cache --scene 17.jpg   # a warm cache, a scene open
    python -m benchmarks.bench_explorer --data ../shared/data/cityscapes_pairs/val --browser
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


def browser_visits(weights: Path, data: Path, timeout: float) -> dict:
    """Seconds from a link to the explorer to its first rows and to its whole table, on a first
    visit (empty cache) and a second one; what the page said of its progress at the first rows."""
    from benchmarks.bench_cold_start import EXPLORER_DONE_JS, EXPLORER_SO_FAR_JS, TABLE_JS, load
    from benchmarks.browser import GRID_JS, Browser, app_server, wait_for
    from seg_core.data import list_pairs

    for public in ("SPACE_ID", "SEG_PUBLIC"):  # a public app would refuse a Cityscapes folder
        os.environ.pop(public, None)
    row = {"load_before": load()}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SEG_CACHE_DIR"] = str(Path(tmp) / "cache")
        with app_server(weights.resolve(), data.resolve(), Path(tmp) / "streamlit.log", timeout) as (url, _):
            browser = Browser(1440, 1000)
            try:
                browser.call("Page.navigate", url=f"{url}/?scene={list_pairs(data)[0].name}")
                wait_for(lambda: browser.evaluate(GRID_JS)["masks"] >= 3, timeout, "the landing page's masks")
                for visit in ("first", "second"):
                    t0 = time.perf_counter()
                    browser.call("Page.navigate", url=f"{url}/explorer")
                    wait_for(lambda: browser.evaluate(TABLE_JS), timeout, "the explorer's table", interval=0.05)
                    row[f"{visit} visit: first rows"] = time.perf_counter() - t0
                    row[f"{visit} visit: shown then"] = browser.evaluate(EXPLORER_SO_FAR_JS) or "the whole table"
                    wait_for(lambda: browser.evaluate(EXPLORER_DONE_JS), timeout, "the whole table", interval=0.05)
                    row[f"{visit} visit: whole table"] = time.perf_counter() - t0
            finally:
                browser.close()
    row["load_after"] = load()
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=ROOT / "weights")
    ap.add_argument("--data", type=Path, required=True, help="a folder of val pairs")
    ap.add_argument("--page", default="explorer", help="the page under app_pages/ to time")
    ap.add_argument("--cache", type=Path, default=None, help="a cache folder to use (default: a new, empty one)")
    ap.add_argument("--scene", default=None, help="open this scene in the explorer (its viewer and downloads)")
    ap.add_argument("--browser", action="store_true",
                    help="time the first rows and the whole table in headless Chromium on a streamlit server")
    ap.add_argument("--timeout", type=float, default=900, help="--browser: seconds to wait for each step")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"error: {args.data} is not a folder of pairs", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))  # the pages import ui/
    if args.browser:
        from benchmarks.browser import CHROMIUM, NO_CHROMIUM

        if CHROMIUM is None:
            print(f"error: {NO_CHROMIUM}", file=sys.stderr)
            return 2
        for key, value in browser_visits(args.weights, args.data, args.timeout).items():
            print(f"{key}: {value:.2f} s" if isinstance(value, float) else f"{key}: {value}", flush=True)
        return 0
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
