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
``--shots docs`` then writes ``compare_1440.png`` and ``compare_390.png`` of the landing page on a
new server, after another example has been segmented first (so the times shown are warm ones).
``--gradio`` also starts ``python gradio_app.py`` the same way and times the page answering, then a
click on the first example to its results (cold), then on the second (warm); with ``--shots``, it
writes ``gradio_1440.jpg`` and ``gradio_390.jpg`` of the first example, warm::

    python -m benchmarks.bench_cold_start --runs 3
    python -m benchmarks.bench_cold_start --runs 0 --shots docs --gradio
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from benchmarks.bench_page import ENSEMBLE_RE, MODEL_RE
from benchmarks.browser import CHROMIUM, ROOT, Browser, app_server, wait_for
from benchmarks.load_test import free_port, start_server, stop, wait_ready

GRID_JS = """(() => { const imgs = [...document.querySelectorAll('.seg-grid img')].filter(i => i.complete && i.naturalWidth > 0);
  return {masks: imgs.filter(i => new RegExp(%s).test(i.alt)).length,
          ensemble: imgs.some(i => new RegExp(%s).test(i.alt))}; })()""" % (json.dumps(MODEL_RE), json.dumps(ENSEMBLE_RE))
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


def shots(weights: Path, data: Path, out_dir: Path, log: Path, timeout: float) -> None:
    with app_server(weights, data, log, timeout) as (url, _):
        warm = Browser(1440, 1000)  # another scene first: the graphs are compiled, the times shown warm
        try:
            warm.call("Page.navigate", url=f"{url}/?scene=kitti_000003_10.png")
            wait_for(lambda: warm.evaluate(GRID_JS)["ensemble"], timeout, "the warm-up scene's masks")
        finally:
            warm.close()
        for width, height in ((1440, 1000), (390, 844)):
            page = Browser(width, height)
            try:
                page.call("Page.navigate", url=url)
                wait_for(lambda: page.evaluate(GRID_JS)["ensemble"], timeout, "the landing scene's masks")
                time.sleep(1.0)
                full = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
                page.call("Emulation.setDeviceMetricsOverride", width=width,
                          height=min(int(full) + 100, 2600 if width > 500 else 3200), deviceScaleFactor=1, mobile=width < 500)
                time.sleep(1.0)
                page.screenshot(out_dir / f"compare_{width}.png")
                print(f"wrote {out_dir / f'compare_{width}.png'}")
            finally:
                page.close()


#: Gradio: any status bar still shown (a result is pending), and the result pictures loaded.
GRADIO_BUSY_JS = ("[...document.querySelectorAll('.progress-text, .eta-bar, .meta-text, .meta-text-center')]"
                  ".filter(e => e.offsetParent !== null).length")
GRADIO_IMAGES_JS = "document.querySelectorAll('img[src*=\"gradio_api\"]').length"


def gradio_click_example(page: Browser, url: str, index: int, timeout: float) -> float:
    """Open the page, click example ``index`` and wait until its results are shown; the seconds
    from the click."""
    page.call("Page.navigate", url=url)
    wait_for(lambda: page.evaluate("document.querySelectorAll('.gallery-item').length"), timeout, "the examples")
    t0 = time.perf_counter()
    page.evaluate(f"document.querySelectorAll('.gallery-item')[{index}].click()")
    time.sleep(0.5)  # the status bars appear
    wait_for(lambda: page.evaluate(GRADIO_BUSY_JS) == 0 and page.evaluate(GRADIO_IMAGES_JS) >= 10, timeout,
             "the example's results")
    return time.perf_counter() - t0


def gradio_run(weights: Path, out_dir: Path | None, timeout: float) -> dict:
    """``python gradio_app.py`` Space-like: seconds to the page answering, to the first example's
    results after a click on a cold server, and (``out_dir``) the screenshots, warm."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    row = {"load_before": load()}
    t0 = time.perf_counter()
    proc = start_server(weights, port)
    try:
        wait_ready(url, proc, timeout)
        row["page"] = time.perf_counter() - t0
        page = Browser(1440, 1000)
        try:
            row["first_example"] = gradio_click_example(page, url, 0, timeout)
            row["another_example"] = gradio_click_example(page, url, 1, timeout)
        finally:
            page.close()
        for width, height in ((1440, 1000), (390, 844)) if out_dir else ():
            page = Browser(width, height)
            try:
                gradio_click_example(page, url, 0, timeout)
                time.sleep(2.0)
                bottom = page.evaluate("document.querySelector('#classes').getBoundingClientRect().bottom + window.scrollY")
                page.call("Emulation.setDeviceMetricsOverride", width=width, deviceScaleFactor=1, mobile=width < 500,
                          height=int(min(bottom + (420 if width > 500 else 1500), 2600 if width > 500 else 3600)))
                time.sleep(1.5)
                png = out_dir / f".gradio_{width}.png"
                page.screenshot(png)
                # JPEG: a quarter of the PNG's size, and (unlike a 256-colour PNG) the legend's colours stay true
                Image.open(png).convert("RGB").save(out_dir / f"gradio_{width}.jpg", quality=90, optimize=True)
                png.unlink()
                print(f"wrote {out_dir / f'gradio_{width}.jpg'}")
            finally:
                page.close()
    finally:
        stop(proc)
    row["load_after"] = load()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--data", default=str(ROOT / "examples"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--shots", default=None, help="folder to write the 1440 and 390 px screenshots into")
    parser.add_argument("--gradio", action="store_true", help="also time python gradio_app.py (and screenshot it with --shots)")
    args = parser.parse_args()
    if CHROMIUM is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    os.environ["SPACE_ID"] = "org/space"  # the servers started below are Space-like (public mode)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            os.environ["SEG_CACHE_DIR"] = str(Path(tmp) / f"cache{i}")  # a first visit: no cached scores
            rows.append(one_run(Path(args.weights), Path(args.data), Path(tmp) / f"streamlit{i}.log", args.timeout))
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
        if args.shots:
            Path(args.shots).mkdir(parents=True, exist_ok=True)
            shots(Path(args.weights), Path(args.data), Path(args.shots), Path(tmp) / "shots.log", args.timeout)
        if args.gradio:
            os.environ.update(SEG_DATA_DIR=args.data, SEG_EXAMPLES_CACHE=str(Path(tmp) / "crops"))
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in
                              gradio_run(Path(args.weights), Path(args.shots) if args.shots else None, args.timeout).items()}))
    if not rows:
        return
    print(f"\n| cold start, {len(rows)} runs (s) | median | worst |\n|---|---|---|")
    for key, label in (("health", "health check answers"), ("masks", "first example's three masks shown"),
                       ("ensemble", "its ensemble shown"), ("explorer", "Val explorer: first table (from its link)"),
                       ("explorer_full", "Val explorer: whole table (from its link)")):
        values = [r[key] for r in rows]
        print(f"| {label} | {statistics.median(values):.2f} | {max(values):.2f} |")


if __name__ == "__main__":
    main()
