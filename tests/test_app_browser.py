"""End to end: ``streamlit run app.py`` on a free local port, loaded in headless Chromium.

Chromium is driven over the DevTools protocol with the ``websockets`` client that Streamlit
already depends on, so the only extra need is the Debian ``chromium`` package; the test skips when
it is missing. Run as a script it screenshots the Compare page on a val scene, outside the repository
(a Cityscapes photo may not be shipped; the docs' screenshots, of a shipped KITTI scene, come from
``benchmarks/bench_cold_start.py --shots docs``)::

    python -m tests.test_app_browser --out /tmp/compare.png            # weights/, the real val folder
    python -m tests.test_app_browser --weights runs/unet/best.safetensors --out /tmp/compare.png
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from benchmarks.load_test import free_port, stop

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--remote-debugging-port=0", "--remote-allow-origins=*")
MODEL_TITLES = ("U-Net", "FCN-VGG16", "FCN-ResNet50")


def wait_for(check, timeout: float, what: str, interval: float = 0.25):
    """Poll ``check()`` until it returns something truthy; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def serve_app(weights: Path, data: Path, log: Path, timeout: float = 90):
    """``streamlit run app.py`` on 127.0.0.1 (headless, own port); yields its base URL."""
    with app_server(weights, data, log, timeout) as (url, _):
        yield url


@contextlib.contextmanager
def app_server(weights: Path, data: Path, log: Path, timeout: float = 90, options: tuple[str, ...] = ()):
    """``serve_app`` with more ``streamlit run`` options; yields the base URL and the server process."""
    port = free_port()
    env = {**os.environ, "SEG_WEIGHTS_DIR": str(weights), "SEG_DATA_DIR": str(data)}
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", *options]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def healthy():
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}: {log.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                return urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok"
        wait_for(healthy, timeout, "the streamlit server")
        yield url, proc
    finally:
        stop(proc)


class Browser:
    """Headless Chromium on its own fresh profile, one page, spoken to over DevTools."""

    def __init__(self, width: int = 1400, height: int = 2000):
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self.proc = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                                      f"--window-size={width},{height}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        self.port = port = wait_for(lambda: port_file.is_file() and port_file.read_text().split("\n")[0], 30,
                                    "chromium")
        targets = wait_for(lambda: self._pages(port), 30, "a chromium page")
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(targets[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30))
        self.ids = itertools.count(1)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    @staticmethod
    def _pages(port: str) -> list[dict]:
        with contextlib.suppress(OSError, ValueError):
            listing = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2).read())
            return [t for t in listing if t.get("type") == "page"]
        return []

    def call(self, method: str, **params) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:  # skip events until our answer comes
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stack.close()
        stop(self.proc)
        shutil.rmtree(self.profile, ignore_errors=True)


#: The Compare page's pictures (``ui.views.image_grid_html``), decoded.
GRID_IMAGES_JS = ("[...document.querySelectorAll('.seg-grid img')].filter(i => i.complete && i.naturalWidth > 0)"
                  ".map(i => { const r = i.getBoundingClientRect(); return {alt: i.alt, top: r.top + scrollY, bottom: r.bottom + scrollY}; })")
SETTLED_JS = ("!document.querySelector('[data-stale=\"true\"]') && "
              "!document.querySelector('[data-testid=\"stStatusWidget\"]')")


def model_images(browser: Browser) -> list[dict]:
    return [i for i in browser.evaluate(GRID_IMAGES_JS) or [] if i["alt"].startswith(MODEL_TITLES)]


def capture_compare(url: str, out: Path, scene: str, timeout: float = 240, width: int = 1400,
                    height: int = 2000) -> tuple[str, list[dict]]:
    """Open the Compare page on ``scene`` (a link), wait until the three masks are drawn and the
    page has settled, and screenshot it. Returns the page text and the mask images' positions."""
    browser = Browser(width=width, height=height)
    try:
        browser.call("Page.navigate", url=f"{url}/?scene={scene}")
        wait_for(lambda: len(model_images(browser)) >= 3, timeout, "the three model masks")
        wait_for(lambda: browser.evaluate(SETTLED_JS), 60, "the page to settle")
        time.sleep(1.0)  # let the last images paint
        text, images = browser.evaluate("document.body.innerText"), model_images(browser)
        browser.screenshot(out)
        return text, images
    finally:
        browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.slow
def test_compare_page_renders_three_models_in_chromium(weights_dir, pairs_dir, tmp_path):
    shot = tmp_path / "compare.png"
    with serve_app(weights_dir, pairs_dir, tmp_path / "streamlit.log") as url:
        text, images = capture_compare(url, shot, "2.jpg")
    for title in MODEL_TITLES:
        assert f"{title} (" in text and " ms)" in text  # the mask caption with its inference time
    assert "Ground truth" in text and "Inference time and downloads" in text
    assert len(images) == 3, images
    assert shot.stat().st_size > 20_000
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size[0] == 1400


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.slow
def test_picked_scene_masks_are_in_the_first_viewport(weights_dir, pairs_dir, tmp_path):
    """Landing page at 1440x1000: click a thumbnail; the gallery folds away, the URL names the scene,
    and the result comes first: the pictures over 400 px wide, the photo and the first mask within
    the first screen, without scrolling (a square scene's second row starts in it too; a 2:1 photo's
    fits). At 390 px wide: one picture a row, the first mask in the first screen (the ground truth
    after the models), and all the legend's columns fit the screen."""
    with serve_app(weights_dir, pairs_dir, tmp_path / "streamlit.log") as url:
        browser = Browser(width=1440, height=1000)
        try:
            browser.call("Page.navigate", url=url)
            click = ("(() => { const b = [...document.querySelectorAll('[data-testid=\"stButton\"] button')]"
                     ".find(e => e.innerText.trim() === '3.jpg'); if (b) b.click(); return !!b; })()")
            wait_for(lambda: browser.evaluate(click), 120, "the example scenes")
            wait_for(lambda: len(model_images(browser)) >= 3, 120, "the three model masks")
            wait_for(lambda: browser.evaluate(SETTLED_JS), 60, "the page to settle")
            images = model_images(browser)
            assert browser.evaluate("scrollY") == 0
            assert min(i["bottom"] for i in images) <= 1000 and min(i["top"] for i in images) < 1000 - 200, images
            widths = browser.evaluate("[...document.querySelectorAll('.seg-grid img')].map(i => i.width)")
            assert min(widths) >= 400, widths
            assert browser.evaluate("location.search") == "?scene=3.jpg"
            assert "showing 3.jpg" in browser.evaluate("document.body.innerText")
            assert browser.evaluate("document.querySelectorAll('[data-testid=\"stExpanderDetails\"] img').length") == 0
            browser.screenshot(tmp_path / "picked.png")
        finally:
            browser.close()
        browser = Browser(width=390, height=844)
        try:
            browser.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=1, mobile=True)
            browser.call("Page.navigate", url=f"{url}/?scene=3.jpg")
            wait_for(lambda: len(model_images(browser)) >= 3, 120, "the three model masks")
            wait_for(lambda: browser.evaluate(SETTLED_JS), 60, "the page to settle")
            first_mask = min(i["top"] for i in model_images(browser))
            assert first_mask < 844 - 100, first_mask  # at least its top 100 px in the first screen
            # all four share columns (the ensemble's last) inside the screen, nothing to scroll to
            edges = browser.evaluate("(() => { const t = [...document.querySelectorAll('table')].find(t => t.innerText.includes('class'));"
                                     " return [...t.querySelectorAll('th')].map(h => h.getBoundingClientRect().right)"
                                     ".concat([t.parentElement.scrollWidth - t.parentElement.clientWidth]); })()")
            *rights, overflow = edges
            assert len(rights) == 5 and max(rights) <= 390 and overflow <= 0, edges
            widths = [w for w in browser.evaluate("[...document.querySelectorAll('.seg-grid img')].map(i => i.width)")]
            assert min(widths) > 300  # one picture a row on a phone, each as wide as the screen
        finally:
            browser.close()


def main() -> None:
    import argparse

    from tests.conftest import REAL_DATA

    parser = argparse.ArgumentParser(description="Screenshot the Compare page into the docs.")
    parser.add_argument("--weights", default=str(ROOT / "weights"),
                        help="a weights folder, or one checkpoint file to show as U-Net")
    parser.add_argument("--data", default=str(REAL_DATA / "val"))
    parser.add_argument("--scene", default="1.jpg")
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "compare.png"))
    args = parser.parse_args()
    if CHROMIUM is None:
        sys.exit("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(args.weights)
        if weights.is_file():
            shutil.copy(weights, Path(tmp) / "unet.safetensors")
            weights = Path(tmp)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with serve_app(weights, Path(args.data), Path(tmp) / "streamlit.log") as url:
            text, images = capture_compare(url, out, args.scene, height=args.height)
    print(f"wrote {out} ({len(images)} masks)")


if __name__ == "__main__":
    main()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.slow
def test_other_pages_render_in_chromium(weights_dir, pairs_dir, tmp_path):
    """Ground truth, Benchmark and About open from a deep link in a real browser, without an error."""
    expected = {"ground_truth": "Against the ground truth", "benchmark": "Benchmark",
                "about": "The architectures"}
    with serve_app(weights_dir, pairs_dir, tmp_path / "streamlit.log") as url:
        browser = Browser(height=1200)
        try:
            for path, heading in expected.items():
                browser.call("Page.navigate", url=f"{url}/{path}")
                text = wait_for(lambda: (t := browser.evaluate("document.body.innerText") or "") and heading in t and t,
                                120, f"the {path} page")
                assert "Traceback" not in text
                assert browser.evaluate("document.querySelector('[data-testid=\"stException\"]') === null")
                browser.screenshot(tmp_path / f"{path}.png")
                assert (tmp_path / f"{path}.png").stat().st_size > 10_000
        finally:
            browser.close()
