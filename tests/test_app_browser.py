"""End to end: ``streamlit run app.py`` on a free local port, loaded in headless Chromium.

Chromium is driven over the DevTools protocol with the ``websockets`` client that Streamlit
already depends on, so the only extra need is the Debian ``chromium`` package; the test skips when
it is missing. Run as a script it writes the screenshot of the docs::

    python -m tests.test_app_browser --out docs/compare.png            # weights/, the real val folder
    python -m tests.test_app_browser --weights runs/unet/best.safetensors --out docs/compare.png
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
    port = free_port()
    env = {**os.environ, "SEG_WEIGHTS_DIR": str(weights), "SEG_DATA_DIR": str(data)}
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
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
        yield url
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
        port = wait_for(lambda: port_file.is_file() and port_file.read_text().split("\n")[0], 30, "chromium")
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


#: Loaded images of the main area, not counting the gallery thumbnails (in the expander).
IMAGES_JS = ("Array.from(document.querySelectorAll('[data-testid=\"stMain\"] [data-testid=\"stImage\"] img'))"
             ".filter(i => i.complete && i.naturalWidth > 0 && !i.closest('[data-testid=\"stExpander\"]')).length")


def capture_compare(url: str, out: Path, scene: str, min_images: int, timeout: float = 240,
                    height: int = 2000) -> tuple[str, int]:
    """Open the Compare page on ``scene``, wait until each model's overlay (or its "not available"
    note) and ``min_images`` images are drawn, and screenshot it.

    Returns the page text and the number of loaded images.
    """
    browser = Browser(height=height)
    try:
        browser.call("Page.navigate", url=f"{url}/?scene={scene}")
        wait_for(lambda: all(f"{m} overlay" in (browser.evaluate("document.body.innerText") or "")
                             for m in MODEL_TITLES), timeout, "the three model overlays")
        # Streamlit shows the previous run greyed out while it reruns: wait for it to settle.
        wait_for(lambda: browser.evaluate("document.querySelector('[data-testid=\"stStatusWidget\"]') === null")
                 and (browser.evaluate(IMAGES_JS) or 0) >= min_images, 60, "the images to load")
        time.sleep(1.0)  # let the last images paint
        text, images = browser.evaluate("document.body.innerText"), browser.evaluate(IMAGES_JS)
        browser.screenshot(out)
        return text, images
    finally:
        browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.slow
def test_compare_page_renders_three_models_in_chromium(weights_dir, pairs_dir, tmp_path):
    shot = tmp_path / "compare.png"
    with serve_app(weights_dir, pairs_dir, tmp_path / "streamlit.log") as url:
        # photo + 3 masks, ground truth + 3 overlays, before/after, disagreement
        text, images = capture_compare(url, shot, "2.jpg", min_images=10)
    for title in MODEL_TITLES:
        assert f"{title} overlay" in text
        assert f"{title} (" in text and " ms)" in text  # the mask caption with its inference time
    assert "Ground truth" in text and "Where the models disagree" in text
    assert images == 10, images
    assert shot.stat().st_size > 20_000
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size[0] == 1400


def main() -> None:
    import argparse

    from tests.conftest import REAL_DATA

    parser = argparse.ArgumentParser(description="Screenshot the Compare page into the docs.")
    parser.add_argument("--weights", default=str(ROOT / "weights"),
                        help="a weights folder, or one checkpoint file to show as U-Net")
    parser.add_argument("--data", default=str(REAL_DATA / "val"))
    parser.add_argument("--scene", default="1.jpg")
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--out", default=str(ROOT / "docs" / "compare.png"))
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
            # photo, ground truth, before/after, and per model a mask and an overlay
            text, images = capture_compare(url, out, args.scene, min_images=3, height=args.height)
    print(f"wrote {out} ({images} images)")


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
