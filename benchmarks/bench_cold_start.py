"""A Space's cold start, measured as a visitor sees it: from ``streamlit run app.py`` to the first
example scene's masks in headless Chromium, then the Val explorer's first results.

Space-like: ``SPACE_ID=org/space``, the data folder the shipped KITTI ``examples/`` (what
``settings.data_dir`` gives a Space), the shipped weights. Chromium is started before the clock
(a visitor's browser is already running); then, from the ``Popen`` of the server:

* **health**: Streamlit's health check answers (polled every 0.25 s);
* **masks**: the landing page, opened as soon as the server answers, shows the three models' masks
  of the first example (decoded images in the grid; the page opens on that scene by itself);
* **ensemble**: the averaged mask is shown too;
* **explorer**: then, on the same server, from navigating to ``/explorer`` to its first table of
  per-image scores on the page (the scores of the 16 scenes are computed on that first visit: each
  run has an empty ``SEG_CACHE_DIR``; the first rows come after the first chunk of images);
* **explorer_full**: from the same link to the whole table (every image scored and cached).

Each run is a fresh server and a fresh browser. The machine's load average is printed with every run.
``--gradio`` also starts ``python gradio_app.py`` the same way and times the page answering, then its
landing's results shown (the first example, segmented as the page loads: cold), then a click on the
second example to its results (warm). The docs' screenshots,
of warm Space-like servers, are ``benchmarks/screenshots.py``::

    python -m benchmarks.bench_cold_start --runs 3 --gradio
    python -m benchmarks.bench_cold_start --runs 3 --gradio-only     # the Gradio app alone
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.browser import (CHROMIUM, GRADIO_BUSY_JS, GRADIO_RESULTS_JS, GRID_JS, ROOT, Browser, app_server,
                                gradio_click_example, wait_for)
from benchmarks.bench_page import print_table
from benchmarks.load_test import free_port, start_server, stop, wait_ready

TABLE_JS = "!!document.querySelector('[data-testid=\"stDataFrame\"] canvas, [data-testid=\"stDataFrame\"] table')"
#: The explorer's caption once every image is scored (this visit, or from the cache).
EXPLORER_DONE_JS = ("(t => t.includes('cached for the next visit') || t.includes('read from the cache'))"
                    "(document.body.innerText)")
#: What a streaming first visit says of its progress ("8 of 400 images scored so far"), or null.
EXPLORER_SO_FAR_JS = "(document.body.innerText.match(/\\d+ of \\d+ images scored so far/) || [null])[0]"


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0] if Path("/proc/loadavg").exists() else "?"


def one_run(weights: Path, data: Path, log: Path, timeout: float) -> dict:
    browser = Browser(1440, 1000)
    row = {"load_before": load()}
    t0 = time.perf_counter()
    try:
        with app_server(weights, data, log, timeout) as (url, _):  # returns once the health check answers
            row["health"] = time.perf_counter() - t0
            browser.call("Page.navigate", url=url)
            wait_for(lambda: browser.evaluate(GRID_JS)["masks"] >= 3, timeout, "the first example's masks", interval=0.05)
            row["masks"] = time.perf_counter() - t0
            wait_for(lambda: browser.evaluate(GRID_JS)["ensemble"], timeout, "the ensemble's mask", interval=0.05)
            row["ensemble"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            browser.call("Page.navigate", url=f"{url}/explorer")
            wait_for(lambda: browser.evaluate(TABLE_JS), timeout, "the explorer's table", interval=0.05)
            row["explorer"] = time.perf_counter() - t1
            row["explorer_so_far"] = browser.evaluate(EXPLORER_SO_FAR_JS)
            wait_for(lambda: browser.evaluate(EXPLORER_DONE_JS), timeout, "the explorer's whole table", interval=0.05)
            row["explorer_full"] = time.perf_counter() - t1
    finally:
        browser.close()
    row["load_after"] = load()
    return row




def gradio_run(weights: Path, timeout: float) -> dict:
    """``python gradio_app.py`` Space-like: from its ``Popen``, seconds to the page answering and to
    the landing's four result pictures (the first example, segmented as the page loads) decoded
    in Chromium; then a click on another example to its results (warm)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    row = {"load_before": load()}
    page = Browser(1440, 1000)  # a visitor's browser is already running
    t0 = time.perf_counter()
    proc = start_server(weights, port)
    try:
        wait_ready(url, proc, timeout, interval=0.05)  # not 0.5 s: the poll would count in the start
        row["page"] = time.perf_counter() - t0
        page.call("Page.navigate", url=url)
        wait_for(lambda: len(page.evaluate(GRADIO_RESULTS_JS) or []) >= 4 and not page.evaluate(GRADIO_BUSY_JS), timeout,
                 "the landing's results", interval=0.05)
        row["masks"] = time.perf_counter() - t0
        row["another_example"] = gradio_click_example(page, url, 1, timeout)
    finally:
        page.close()
        stop(proc)
    row["load_after"] = load()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--data", default=str(ROOT / "examples"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--gradio", action="store_true", help="also time python gradio_app.py")
    parser.add_argument("--gradio-only", action="store_true", help="time python gradio_app.py --runs times, not Streamlit")
    args = parser.parse_args()
    if CHROMIUM is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    os.environ["SPACE_ID"] = "org/space"  # the servers started below are Space-like (public mode)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(0 if args.gradio_only else args.runs):
            os.environ["SEG_CACHE_DIR"] = str(Path(tmp) / f"cache{i}")  # a first visit: no cached scores
            rows.append(one_run(Path(args.weights), Path(args.data), Path(tmp) / f"streamlit{i}.log", args.timeout))
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
        gradio_rows = []
        for i in range(max(args.runs, 1) if args.gradio or args.gradio_only else 0):  # --runs 0 --gradio: once
            os.environ.update(SEG_DATA_DIR=args.data, SEG_EXAMPLES_CACHE=str(Path(tmp) / f"crops{i}"))
            gradio_rows.append(gradio_run(Path(args.weights), args.timeout))
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in gradio_rows[-1].items()}), flush=True)
    print_table(rows, "cold start (s)", (
        ("health", "health check answers"), ("masks", "first example's three masks shown"),
        ("ensemble", "its ensemble shown"), ("explorer", "Val explorer: first table (from its link)"),
        ("explorer_full", "Val explorer: whole table (from its link)")))
    print_table(gradio_rows, "Gradio cold start (s)", (
        ("page", "page answers"), ("masks", "landing's results shown"),
        ("another_example", "another example's results, after its click")))


if __name__ == "__main__":
    main()
