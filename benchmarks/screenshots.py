"""Screenshots of every Streamlit page and every Gradio tab, at 1440x900 and 390x844, for the docs.

Both apps run Space-like: ``SPACE_ID=org/space`` (public mode), no ``SEG_DATA_DIR`` (so the pages
use the shipped KITTI scenes of ``examples/``, which may be shown: never a Cityscapes picture),
an empty temporary ``SEG_CACHE_DIR`` and the shipped weights. Each server is warmed first (an
example other than the one shown is segmented, and for Streamlit also put through the Stress test
and the Val explorer, whose scores are computed on a first visit), so the times in the pictures
are warm ones, not first compiles. Then, at each width, one visitor: a fresh browser lands on the
Streamlit app (it opens on the first example's masks) and follows the links to every page in turn;
on the Gradio page it clicks the first example, then each tab. The Video page and tab are shot
twice: as they open, and with a clip panned across that example segmented (``*_video_clip_*``).
Every shot waits until the page has settled (``benchmarks.browser.settle``) and is a full-page
JPEG, its height capped.
``docs/shots/README.md`` says what each picture is and what is wrong in it::

    python -m benchmarks.screenshots                          # all of them, into docs/shots/
    python -m benchmarks.screenshots --pages about --widths 390 --apps streamlit --out /tmp/shots
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


from benchmarks.browser import (CHROMIUM, GRID_JS, NO_CHROMIUM, ROOT, Browser, app_server, full_page_shot,
                                gradio_click_example, gradio_open, settle, wait_for)
from benchmarks.load_test import free_port, start_server, stop, wait_ready
from seg_core.examples import CLIP_NAME, pan_clip

#: Streamlit's pages (``app.py``'s ``st.navigation``): a file name, and its URL path ("" is the default page).
STREAMLIT_PAGES = {"compare": "", "ground_truth": "ground_truth", "video": "video", "stress": "stress",
                   "benchmark": "benchmark", "explorer": "explorer", "analysis": "analysis", "about": "about"}
#: Gradio's tabs (``gradio_tabs/photo.py`` and ``gradio_app.py``): a file name, and the tab's label.
GRADIO_TABS = {"compare": "Compare", "inspect": "Inspect", "video": "Video", "webcam": "Webcam",
               "own": "Your model", "stress": "Stress test"}
#: Viewport width: (height, the screenshot's height cap). A phone's pages are long and narrow.
SIZES = {1440: (900, 2400), 390: (844, 3400)}
QUALITY = 75  # the 32 pictures stay under 5 MB
WARM_SCENE = "kitti_000003_10.png"  # not the landing scene: the one shown is not the one compiled on


def streamlit_shots(weights: Path, out: Path, pages: list[str], widths: list[int], clip: Path, log: Path,
                    timeout: float) -> list[Path]:
    with app_server(weights, None, log, timeout) as (url, _):
        warm = Browser(1440, 900)
        try:
            warm.call("Page.navigate", url=f"{url}/?scene={WARM_SCENE}")
            wait_for(lambda: warm.evaluate(GRID_JS)["ensemble"], timeout, "the warm-up scene's masks")
            # The Stress test's corruptions, and the scores the explorer and the analysis compute on
            # their first visit: a visitor of a running Space does not wait for those.
            for path in ["stress"] * ("stress" in pages) + ["explorer"] * bool({"explorer", "analysis"} & set(pages)):
                warm.call("Page.navigate", url=f"{url}/{path}?scene={WARM_SCENE}")
                settle(warm, timeout)
        finally:
            warm.close()

        def land(page: Browser) -> None:
            page.call("Page.navigate", url=url)
            wait_for(lambda: page.evaluate(GRID_JS)["ensemble"], timeout, "the landing scene's masks")

        steps = [(name, lambda page, path=STREAMLIT_PAGES[name]: open_page(page, path)) for name in pages]
        if "video" in pages:  # the page again, once the example clip is segmented
            steps.insert(pages.index("video") + 1, ("video_clip", lambda page: upload_clip(page, clip, timeout)))
        return tour("streamlit", steps, widths, out, timeout, land)


def upload_clip(page: Browser, clip: Path, timeout: float) -> None:
    """Drop ``clip`` on the Video page and wait for the comparison video."""
    page.set_files('[data-testid="stMain"] input[type=file]', clip)
    wait_for(lambda: page.evaluate("!!document.querySelector('[data-testid=\"stMain\"] video')"), timeout,
             "the comparison video")


def open_page(page: Browser, path: str) -> None:
    """Follow the app's link to ``path`` (in the top bar, or in the sidebar on a phone), as a click
    would: the session, and so the scene picked, stays."""
    target = f"/{path}" if path else ""  # a pathname without its trailing slash
    script = f"""(() => {{
      const a = [...document.querySelectorAll('a[href]')].find(a => new URL(a.href).pathname.replace(/\\/$/, '') === {target!r});
      if (a) a.click();
      return !!a; }})()"""
    if not page.evaluate(script):
        raise RuntimeError(f"no link to the page /{path}")
    wait_for(lambda: page.evaluate("location.pathname.replace(/\\/$/, '')") == target, 30, f"the page /{path}")


def show_tab(page: Browser, label: str) -> None:
    """Click the tab saying ``label``: a tab button, or its entry in the overflow menu (a phone)."""
    script = f"""(() => {{
      const find = () => [...document.querySelectorAll('[role="tab"], .overflow-dropdown button, .overflow-item')]
        .find(b => b.textContent.trim() === {label!r});
      let b = find();
      if (!b || b.offsetParent === null) {{ const menu = document.querySelector('.overflow-menu > button, .overflow-menu');
        if (menu) menu.click(); b = find(); }}
      if (b) b.click();
      return !!b; }})()"""
    if not page.evaluate(script):
        raise RuntimeError(f"no Gradio tab saying {label!r}")
    wait_for(lambda: page.evaluate(f"[...document.querySelectorAll('[role=\"tab\"][aria-selected=\"true\"]')]"
                                   f".some(b => b.textContent.trim() === {label!r})"), 30, f"the {label} tab")


def gradio_shots(weights: Path, out: Path, tabs: list[str], widths: list[int], clip: Path, timeout: float) -> list[Path]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = start_server(weights, port)
    try:
        wait_ready(url, proc, timeout)
        warm = Browser(1440, 900)
        try:
            gradio_click_example(warm, url, 1, timeout)
        finally:
            warm.close()
        steps = [(name, lambda page, label=GRADIO_TABS[name]: show_tab(page, label)) for name in tabs]
        if "video" in tabs:  # the tab again, once the example clip is segmented
            steps.insert(tabs.index("video") + 1, ("video_clip", lambda page: gradio_clip(page, clip, timeout)))
        return tour("gradio", steps, widths, out, timeout, lambda page: gradio_open(page, url, timeout))  # its landing: the first example
    finally:
        stop(proc)


def gradio_clip(page: Browser, clip: Path, timeout: float) -> None:
    """Give the Video tab ``clip``, press its button and wait for the comparison video."""
    page.set_files("#video-clip input[type=file]", clip)
    wait_for(lambda: page.evaluate("document.querySelector('#video-clip').innerText.includes(%r)" % clip.name),
             timeout, "the clip's upload")
    page.evaluate("[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Segment the video').click()")
    wait_for(lambda: page.evaluate("[...document.querySelectorAll('video')].some(v => v.src)"), timeout,
             "the comparison video")


def tour(app: str, steps: list[tuple[str, Callable[[Browser], None]]], widths: list[int], out: Path,
         timeout: float, land: Callable[[Browser], object]) -> list[Path]:
    """One visitor per width: a fresh browser lands (``land``), then takes each step in turn (a page,
    a tab, an upload) and shoots the page, named after the step, once it has settled."""
    written = []
    for width in widths:
        height, cap = SIZES[width]
        page = Browser(width, height)
        try:
            page.viewport(width, height)
            land(page)
            for name, step in steps:
                step(page)
                settle(page, timeout)
                written.append(shoot(page, out / f"{app}_{name}_{width}.jpg", width, height, cap))
        finally:
            page.close()
    return written


def shoot(page: Browser, path: Path, width: int, height: int, cap: int) -> Path:
    shot = full_page_shot(page, path, width, height, cap, QUALITY)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ({width}x{shot}, "
          f"{path.stat().st_size / 1024:.0f} KiB)", flush=True)
    return path


@contextlib.contextmanager
def space_like(tmp: Path):
    """The environment of a Space for the servers started inside: public mode, the shipped
    examples (no ``SEG_DATA_DIR``), empty caches."""
    saved = dict(os.environ)
    os.environ.pop("SEG_DATA_DIR", None)
    os.environ.update(SPACE_ID="org/space", SEG_CACHE_DIR=str(tmp / "cache"), SEG_EXAMPLES_CACHE=str(tmp / "crops"))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def pick(values: list[str] | None, known: dict, what: str) -> list[str]:
    if values is None:
        return list(known)
    if unknown := [v for v in values if v not in known]:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(known)})")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "shots"))
    parser.add_argument("--apps", nargs="+", choices=("streamlit", "gradio"), default=["streamlit", "gradio"])
    parser.add_argument("--pages", nargs="+", help=f"Streamlit pages (default all: {' '.join(STREAMLIT_PAGES)})")
    parser.add_argument("--tabs", nargs="+", help=f"Gradio tabs (default all: {' '.join(GRADIO_TABS)})")
    parser.add_argument("--widths", nargs="+", type=int, choices=tuple(SIZES), default=list(SIZES))
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for any one step")
    args = parser.parse_args(argv)
    if CHROMIUM is None:
        raise SystemExit(NO_CHROMIUM)
    pages, tabs = pick(args.pages, STREAMLIT_PAGES, "page"), pick(args.tabs, GRADIO_TABS, "tab")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else "?"
    t0, written = time.perf_counter(), []
    with tempfile.TemporaryDirectory() as tmp, space_like(Path(tmp)):
        clip = pan_clip(Path(tmp) / CLIP_NAME)
        if "streamlit" in args.apps:
            written += streamlit_shots(Path(args.weights), out, pages, args.widths, clip, Path(tmp) / "streamlit.log",
                                       args.timeout)
        if "gradio" in args.apps:
            written += gradio_shots(Path(args.weights), out, tabs, args.widths, clip, args.timeout)
    total = sum(p.stat().st_size for p in written)
    print(f"{len(written)} screenshot{'' if len(written) == 1 else 's'}, {total / 2**20:.2f} MiB, in {time.perf_counter() - t0:.0f} s "
          f"(load average before: {' '.join(load)})")


if __name__ == "__main__":
    main()
