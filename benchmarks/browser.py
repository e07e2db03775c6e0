"""Headless Chromium and a local Streamlit server, for the browser tests and the page benchmarks.

Chromium is driven over the DevTools protocol with the ``websockets`` client that Streamlit
already depends on, so the only extra need is the Debian ``chromium`` package (``CHROMIUM`` is
``None`` without it, and the tests skip). Tests and benchmarks both import it from here, so no
module outside ``tests/`` imports a test. Run as a script it screenshots the Compare page on a val
scene, outside the repository (a Cityscapes photo may not be shipped; the docs' screenshots, of the
shipped KITTI scenes, come from ``benchmarks/screenshots.py``)::

    python -m benchmarks.browser --out /tmp/compare.png            # weights/, the real val folder
    python -m benchmarks.browser --weights runs/unet/best.safetensors --out /tmp/compare.png
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

from benchmarks.load_test import free_port, stop
from seg_core import settings

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "chromium is not installed (apt-get install -y chromium)"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--remote-debugging-port=0", "--remote-allow-origins=*")
#: Chromium's synthetic camera, granted without a prompt (the Gradio Webcam tab).
FAKE_CAMERA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
MODEL_TITLES = ("U-Net", "FCN-VGG16", "FCN-ResNet50")


def wait_for(check, timeout: float, what: str, interval: float = 0.25):
    """Poll ``check()`` until it returns something truthy; raise ``TimeoutError`` naming ``what``.
    For state only the browser or another process knows (nothing here can wait on it as an event)."""
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
def app_server(weights: Path, data: Path | None, log: Path, timeout: float = 90, options: tuple[str, ...] = ()):
    """``serve_app`` with more ``streamlit run`` options; yields the base URL and the server process.
    ``data=None`` leaves ``SEG_DATA_DIR`` unset, as on a Space (``settings.data_dir`` decides)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SEG_DATA_DIR"} | {"SEG_WEIGHTS_DIR": str(weights)}
    if data is not None:
        env["SEG_DATA_DIR"] = str(data)
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
    """Headless Chromium on its own fresh profile, one page, spoken to over DevTools.

    ``on_event`` sees every DevTools event that arrives while a call waits for its answer (a
    subclass keeps the ones it wants, e.g. websocket frames); ``timeout`` bounds each answer."""

    def __init__(self, width: int = 1400, height: int = 2000, flags: tuple[str, ...] = (), timeout: float = 60):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self.proc = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, *flags, f"--user-data-dir={self.profile}",
                                      f"--window-size={width},{height}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        self.port = port = wait_for(lambda: port_file.is_file() and port_file.read_text().split("\n")[0], 30,
                                    "chromium")
        targets = wait_for(lambda: self._pages(port), 30, "a chromium page")
        self._attach(targets[0]["webSocketDebuggerUrl"], width, height)

    def _attach(self, ws_url: str, width: int, height: int) -> None:
        from websockets.sync.client import connect

        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(ws_url, max_size=None, open_timeout=30))
        self.ids = itertools.count(1)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    @staticmethod
    def _pages(port: str) -> list[dict]:
        with contextlib.suppress(OSError, ValueError):
            listing = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2).read())
            return [t for t in listing if t.get("type") == "page"]
        return []

    def on_event(self, message: dict) -> None:
        """A DevTools event that arrived while waiting for an answer; ignored here."""

    def call(self, method: str, **params) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:  # events until our answer comes
            reply = json.loads(self.ws.recv(timeout=self.timeout))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.on_event(reply)

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_js(self, promise: str):
        """Evaluate a JavaScript promise and return its value once the page resolves it: the page's
        own events (``timeupdate``, animation frames) end the wait, not a sleep here."""
        return self.call("Runtime.evaluate", expression=promise, awaitPromise=True,
                         returnByValue=True)["result"].get("value")

    def painted(self) -> None:
        """Return once the page has painted what it holds now (two animation frames)."""
        self.wait_js("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))")

    def set_files(self, selector: str, *paths: Path, timeout: float = 30) -> None:
        """Put ``paths`` into the file input that ``selector`` finds, as a user's pick would. The page
        may not have drawn the input yet, or may redraw it (or the whole document) between the lookup and
        the pick, which kills the node ids: look it up again until the pick lands."""
        def pick() -> bool:
            try:
                root = self.call("DOM.getDocument", depth=1)["root"]["nodeId"]
                node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
                if not node:
                    return False
                self.call("DOM.setFileInputFiles", nodeId=node, files=[str(p) for p in paths])
            except RuntimeError as err:
                if "Could not find node" not in str(err):
                    raise
                return False
            return True

        wait_for(pick, timeout, f"the file input {selector}")

    def text(self) -> str:
        return self.evaluate("document.body.innerText") or ""

    def screenshot(self, path: Path, quality: int | None = None) -> None:
        """The viewport as a PNG, or as a JPEG of ``quality`` (smaller, and its colours stay true)."""
        fmt = {"format": "png"} if quality is None else {"format": "jpeg", "quality": quality}
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **fmt)["data"]))

    def viewport(self, width: int, height: int) -> None:
        """Resize the page; under 500 px wide it is a phone's (touch, mobile layout rules)."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=width < 500)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stack.close()
        stop(self.proc)
        shutil.rmtree(self.profile, ignore_errors=True)


class Tab(Browser):
    """Another page of ``browser``'s Chromium: a Streamlit session of its own, without a process of its own."""

    def __init__(self, browser: Browser, width: int = 1400, height: int = 1000):
        # Not Browser.__init__: that starts a Chromium; a tab is a page of one already running.
        request = urllib.request.Request(f"http://127.0.0.1:{browser.port}/json/new?about:blank", method="PUT")
        target = json.loads(urllib.request.urlopen(request, timeout=10).read())
        self.port, self.target, self.timeout = browser.port, target["id"], browser.timeout
        self._attach(target["webSocketDebuggerUrl"], width, height)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stack.close()
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/close/{self.target}", timeout=10).read()


#: The Compare page's pictures (``ui.views.image_grid_html``), decoded.
GRID_IMAGES_JS = ("[...document.querySelectorAll('.seg-grid img')].filter(i => i.complete && i.naturalWidth > 0)"
                  ".map(i => { const r = i.getBoundingClientRect(); return {alt: i.alt, top: r.top + scrollY, bottom: r.bottom + scrollY}; })")
SETTLED_JS = ("!document.querySelector('[data-stale=\"true\"]') && "
              "!document.querySelector('[data-testid=\"stStatusWidget\"]')")

#: Gradio: any status bar still shown (a result is pending).
GRADIO_BUSY_JS = ("[...document.querySelectorAll('.progress-text, .eta-bar, .meta-text, .meta-text-center')]"
                  ".filter(e => e.offsetParent !== null).length")


#: The Compare page's masks: how many of the three models' are decoded, and whether the ensemble's is.
MODEL_RE = r"^(U-Net|FCN-VGG16|FCN-ResNet50) \("
ENSEMBLE_RE = r"^All three \(averaged\) \("
GRID_JS = """(() => { const imgs = [...document.querySelectorAll('.seg-grid img')].filter(i => i.complete && i.naturalWidth > 0);
  return {masks: imgs.filter(i => new RegExp(%s).test(i.alt)).length,
          ensemble: imgs.some(i => new RegExp(%s).test(i.alt))}; })()""" % (json.dumps(MODEL_RE), json.dumps(ENSEMBLE_RE))
#: Either app: what is still coming (a rerun, a spinner, a pending Gradio result, an image, a chart).
BUSY_JS = """[...document.querySelectorAll('[data-stale="true"], [data-testid="stStatusWidget"], [data-testid="stSpinner"], [data-testid="stSkeleton"]'),
  ...[...document.querySelectorAll('.progress-text, .eta-bar, .meta-text, .meta-text-center')].filter(e => e.offsetParent !== null),
  ...[...document.images].filter(i => !i.complete),
  ...[...document.querySelectorAll('.js-plotly-plot')].filter(p => !p.querySelector('.main-svg'))].length"""
#: The page's whole height: Streamlit scrolls inside its main block (less the block's blank padding
#: at the bottom, kept for a chat input), Gradio the document.
PAGE_HEIGHT_JS = """(() => { const block = document.querySelector('[data-testid="stMainBlockContainer"]');
  if (!block) return document.documentElement.scrollHeight;
  const main = document.querySelector('[data-testid="stMain"]');
  return Math.ceil(block.getBoundingClientRect().bottom + main.scrollTop - parseFloat(getComputedStyle(block).paddingBottom)) + 32; })()"""


def settle(browser: Browser, timeout: float = 180, quiet: float = 1.5) -> None:
    """Wait until nothing is loading and the page's height has not changed for ``quiet`` seconds
    (Streamlit draws a page in several steps, each one idle for a moment), then until it is painted."""
    seen = {"state": None, "since": 0.0}

    def check():
        state = browser.evaluate(f"[{BUSY_JS}, document.fonts.status, {PAGE_HEIGHT_JS}]")
        now = time.monotonic()
        if not state or state[0] or state[1] != "loaded" or state != seen["state"]:  # None: a page in between
            seen.update(state=state, since=now)
            return False
        return now - seen["since"] >= quiet

    wait_for(check, timeout, "the page to settle")
    browser.painted()


def full_page_shot(browser: Browser, path: Path, width: int, height: int, cap: int, quality: int = 80) -> int:
    """Grow the viewport to the page's whole height (at most ``cap``), screenshot it as a JPEG and
    size it back to ``height``; returns the height shot. The viewport grows rather than the capture:
    both apps scroll inside a block as tall as the window."""
    full = min(max(int(browser.evaluate(PAGE_HEIGHT_JS)), height), cap)
    browser.viewport(width, full)
    settle(browser, quiet=0.5)
    browser.screenshot(path, quality=quality)
    browser.viewport(width, height)
    return full


#: Gradio: the src of each decoded picture of the Compare tab's results (a new result changes them all).
GRADIO_RESULTS_JS = ("[...document.querySelectorAll('#compare-results .block img')]"
                     ".filter(i => i.complete && i.naturalWidth > 0 && i.offsetParent).map(i => i.src)")


def gradio_open(page: Browser, url: str, timeout: float) -> None:
    """Open the Gradio page and wait until it has settled: on the shipped KITTI scenes (a Space),
    with the first example's results, which the page computes as it loads."""
    page.call("Page.navigate", url=url)
    wait_for(lambda: page.evaluate("document.querySelectorAll('.gallery-item').length"), timeout, "the examples")
    settle(page, timeout)


def gradio_click_example(page: Browser, url: str, index: int, timeout: float) -> float:
    """Open the Gradio page (``gradio_open``), click example ``index`` (not the one it landed on)
    and wait until its results replace the pictures shown; the seconds from the click."""
    gradio_open(page, url, timeout)
    before = set(page.evaluate(GRADIO_RESULTS_JS) or [])
    t0 = time.perf_counter()
    page.evaluate(f"document.querySelectorAll('.gallery-item')[{index}].click()")

    def shown():
        srcs = page.evaluate(GRADIO_RESULTS_JS) or []
        return len(srcs) >= 4 and not set(srcs) & before and not page.evaluate(GRADIO_BUSY_JS)

    wait_for(shown, timeout, "the example's results", interval=0.05)
    return time.perf_counter() - t0


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
        browser.painted()
        text, images = browser.text(), model_images(browser)
        browser.screenshot(out)
        return text, images
    finally:
        browser.close()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Screenshot the Compare page on a val scene.")
    parser.add_argument("--weights", default=str(ROOT / "weights"),
                        help="a weights folder, or one checkpoint file to show as U-Net")
    parser.add_argument("--data", default=str(settings.DEFAULT_DATA_DIR))
    parser.add_argument("--scene", default="1.jpg")
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "compare.png"))
    args = parser.parse_args()
    if CHROMIUM is None:
        sys.exit(NO_CHROMIUM)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(args.weights)
        if weights.is_file():
            shutil.copy(weights, Path(tmp) / "unet.safetensors")
            weights = Path(tmp)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with serve_app(weights, Path(args.data), Path(tmp) / "streamlit.log") as url:
            _, images = capture_compare(url, out, args.scene, height=args.height)
    print(f"wrote {out} ({len(images)} masks)")


if __name__ == "__main__":
    main()
