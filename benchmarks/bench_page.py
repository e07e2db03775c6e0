"""How fast the Compare page feels, measured in headless Chromium; and its screenshots for the docs.

Starts ``streamlit run app.py`` (``--weights``, ``--data``), opens the page in a fresh Chromium
(DevTools protocol, the helpers of ``tests/test_app_browser.py``) and, ``--repeats`` times, each
time on a new page with a new synthetic street photo (so that no cached mask is reused):

* **upload**: a ``--size`` JPEG set on the file input; from the input's ``change`` event to the
  three model masks decoded in the page (``masks``: the first paint), to the ensemble's mask
  decoded in its cell, drawn a step later (``ensemble``), and to the page idle: both shown, no
  stale element, no running status, for 300 ms (``idle``; the 300 ms are not counted);
* **opacity**: in the Overlays view, one keyboard step of the opacity slider; from the key press to
  the three new overlays decoded (``browser``), and ``server``: from the websocket frame that
  carries the new value to the last frame of the answer;
* **before/after**: one drag step of the seam: the frames the browser sends (none expected) and
  the time to the next painted frame.

Medians (and the worst) go to stdout as a Markdown table. ``--shots DIR`` also writes
``compare_1440.png`` and ``compare_390.png`` of an uploaded synthetic scene (the docs' pictures,
of a shipped KITTI scene, are ``benchmarks/bench_cold_start.py --shots docs``)::

    python -m benchmarks.bench_page --repeats 5
    python -m benchmarks.bench_page --repeats 0 --shots /tmp/shots
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from seg_core import settings
from tests.test_app_browser import CHROMIUM, ROOT, Browser, serve_app, wait_for

MODEL_RE = r"^(U-Net|FCN-VGG16|FCN-ResNet50) \("
ENSEMBLE_RE = r"^All three \(averaged\) \("


def synthetic_street(width: int = 2048, height: int = 1024, seed: int = 0) -> np.ndarray:
    """A drawn street scene (sky, buildings, trees, road, sidewalk, cars, a pole): something the
    models can segment, made here, so that no Cityscapes image is needed or shipped."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (width, height))
    d = ImageDraw.Draw(im)
    horizon = int(height * 0.45)
    for y in range(horizon):  # sky, lighter towards the horizon
        t = y / horizon
        d.line([(0, y), (width, y)], fill=(int(110 + 90 * t), int(160 + 60 * t), int(220 + 20 * t)))
    x = 0
    while x < width:  # buildings with windows
        w = int(rng.integers(width // 12, width // 5))
        top = int(rng.integers(height // 10, horizon - height // 10))
        shade = int(rng.integers(70, 150))
        d.rectangle([x, top, x + w, horizon + height // 10], fill=(shade, shade - 5, shade - 10))
        for wy in range(top + 15, horizon, max(12, height // 30)):
            for wx in range(x + 10, x + w - 20, max(16, width // 60)):
                d.rectangle([wx, wy, wx + width // 160, wy + height // 80], fill=(40, 45, 60))
        x += w
    for _ in range(4):  # trees
        cx, cy, r = int(rng.integers(0, width)), horizon - int(rng.integers(0, height // 8)), int(rng.integers(height // 14, height // 7))
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(int(rng.integers(50, 90)), int(rng.integers(110, 150)), 50))
    d.rectangle([0, horizon + height // 10, width, height], fill=(128, 64, 128))  # road
    d.polygon([(0, horizon + height // 10), (width // 5, horizon + height // 10), (0, int(height * 0.8))], fill=(200, 190, 185))
    d.polygon([(width, horizon + height // 10), (width * 4 // 5, horizon + height // 10), (width, int(height * 0.8))], fill=(200, 190, 185))
    for k in range(3):  # cars
        cw, ch = width // 7, height // 8
        cx = int(width * (0.25 + 0.22 * k) + rng.integers(-width // 40, width // 40))
        cy = int(height * (0.62 + 0.06 * (k % 2)))
        colour = tuple(int(v) for v in rng.integers(20, 200, 3))
        d.rounded_rectangle([cx, cy, cx + cw, cy + ch], radius=ch // 4, fill=colour)
        d.rectangle([cx + cw // 5, cy - ch // 3, cx + cw * 4 // 5, cy + ch // 8], fill=tuple(max(0, c - 40) for c in colour))
        for wx in (cx + cw // 6, cx + cw * 5 // 6):
            d.ellipse([wx - ch // 5, cy + ch - ch // 5, wx + ch // 5, cy + ch + ch // 5], fill=(20, 20, 20))
    d.rectangle([int(width * 0.12), int(height * 0.2), int(width * 0.12) + width // 200, int(height * 0.75)], fill=(150, 150, 150))
    noise = rng.normal(0, 6, (height, width, 3))
    arr = np.asarray(im.filter(ImageFilter.GaussianBlur(1.2)), np.float32) + noise
    return arr.clip(0, 255).astype(np.uint8)


def jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


class Page(Browser):
    """``Browser`` that keeps the websocket frames it sees (timestamps in seconds) while ``watching``.

    Only then: with the Network domain on, Chromium copies every frame (the pictures' data URLs
    included) to us, which would load the cores the upload's timing is taken on."""

    def __init__(self, width: int, height: int):
        self.frames: list[tuple[str, float, int]] = []
        super().__init__(width=width, height=height)
        self.call("Page.enable")

    @contextlib.contextmanager
    def watching(self):
        self.frames.clear()
        self.call("Network.enable")
        try:
            yield self.frames
        finally:
            self.call("Network.disable")

    def call(self, method: str, **params) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=120))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            kind = reply.get("method", "")
            if kind in ("Network.webSocketFrameSent", "Network.webSocketFrameReceived"):
                p = reply["params"]
                self.frames.append((kind.rsplit(".", 1)[1], p["timestamp"], len(p["response"].get("payloadData", ""))))

    def pump(self, seconds: float) -> None:
        """Let events arrive for ``seconds`` (a cheap call collects them)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.evaluate("1")
            time.sleep(0.02)


#: Installed in the page: records when the three masks are decoded, when the ensemble's is, whether
#: its cell said "averaging…" meanwhile, and when the page is idle, with ``performance.now()``, on
#: every animation frame.
WATCH_JS = """
(() => {
  const t = window.__t = {start: null, masks: null, ensemble: null, waited: false, idle: null, quietSince: null};
  const re = new RegExp(%s), ens = new RegExp(%s);
  for (const kind of ['input', 'change'])
    document.addEventListener(kind, e => { if (e.target.type === 'file' && t.fired === undefined) { t.fired = kind; t.start = performance.now(); } }, true);
  const tick = () => {
    const now = performance.now();
    if (t.start !== null) {
      const imgs = [...document.querySelectorAll('.seg-grid img')].filter(i => re.test(i.alt) && i.complete && i.naturalWidth > 0);
      if (t.masks === null && imgs.length >= 3) t.masks = now;
      if (t.masks !== null && t.ensemble === null) {
        if ([...document.querySelectorAll('.seg-grid img')].some(i => ens.test(i.alt) && i.complete && i.naturalWidth > 0)) t.ensemble = now;
        else if ([...document.querySelectorAll('.seg-grid .seg-note')].some(n => n.textContent.includes('averaging'))) t.waited = true;
      }
      const busy = document.querySelector('[data-stale="true"]') || document.querySelector('[data-testid="stStatusWidget"]');
      if (t.masks !== null && t.ensemble !== null && !busy) { if (t.quietSince === null) t.quietSince = now; if (now - t.quietSince > 300 && t.idle === null) t.idle = t.quietSince; }
      else t.quietSince = null;
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
""" % (json.dumps(MODEL_RE), json.dumps(ENSEMBLE_RE))

OVERLAY_JS = """
(() => {
  const sig = () => [...document.querySelectorAll('.seg-grid img')].filter(i => / overlay$/.test(i.alt))
      .map(i => i.src.length + ':' + i.src.slice(-40) + ':' + (i.complete && i.naturalWidth > 0)).join('|');
  const t = window.__o = {before: sig(), start: performance.now(), done: null};
  const tick = () => { const s = sig(); if (s !== t.before && !s.includes(':false') && s.split('|').length >= 3) { t.done = performance.now(); return; }
    requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
})();
"""


def open_compare(page: Page, url: str) -> None:
    page.call("Page.navigate", url=url)
    wait_for(lambda: page.evaluate("!!document.querySelector('[data-testid=\"stFileUploaderDropzoneInput\"]')"), 120,
             "the uploader")
    page.evaluate(WATCH_JS)


def upload(page: Page, path: Path, timeout: float = 120) -> dict:
    doc = page.call("DOM.getDocument", depth=1)
    node = page.call("DOM.querySelector", nodeId=doc["root"]["nodeId"],
                     selector='[data-testid="stFileUploaderDropzoneInput"]')["nodeId"]
    page.evaluate("window.__t.start = performance.now()")  # in case no event reaches the document
    page.call("DOM.setFileInputFiles", nodeId=node, files=[str(path)])
    t = wait_for(lambda: (v := page.evaluate("JSON.stringify(window.__t)")) and json.loads(v)["idle"] is not None
                 and json.loads(v), timeout, "the page to show the masks and go idle")
    return {"masks": (t["masks"] - t["start"]) / 1000, "ensemble": (t["ensemble"] - t["start"]) / 1000,
            "idle": (t["idle"] - t["start"]) / 1000, "averaging_shown": t["waited"], "from": t.get("fired", "call")}


def click_text(page: Page, selector: str, text: str) -> None:
    ok = page.evaluate(f"(() => {{ const b = [...document.querySelectorAll({json.dumps(selector)})]"
                       f".find(e => e.innerText.trim() === {json.dumps(text)}); if (b) b.click(); return !!b; }})()")
    if not ok:
        raise RuntimeError(f"no {selector} saying {text!r}")


def idle(page: Page, timeout: float = 60) -> None:
    wait_for(lambda: page.evaluate("!document.querySelector('[data-stale=\"true\"]') && "
                                   "!document.querySelector('[data-testid=\"stStatusWidget\"]')"), timeout, "idle")
    time.sleep(0.3)


def opacity_step(page: Page) -> dict:
    """One ArrowRight on the opacity slider: browser time to three new overlays, server time."""
    page.evaluate("document.querySelector('[data-testid=\"stSlider\"] input[type=range]').focus()")
    page.evaluate(OVERLAY_JS)
    with page.watching() as frames:
        for kind in ("keyDown", "keyUp"):
            page.call("Input.dispatchKeyEvent", type=kind, key="ArrowRight", code="ArrowRight", windowsVirtualKeyCode=39)
        o = wait_for(lambda: (v := page.evaluate("JSON.stringify(window.__o)")) and json.loads(v)["done"] is not None
                     and json.loads(v), 30, "the new overlays")
        page.pump(0.5)
    sent = [ts for kind, ts, _ in frames if kind == "webSocketFrameSent"]
    got = [ts for kind, ts, _ in frames if kind == "webSocketFrameReceived" and sent and ts >= sent[0]]
    return {"browser": (o["done"] - o["start"]) / 1000, "server": (got[-1] - sent[0]) if got else float("nan")}


def seam_step(page: Page) -> dict:
    """One drag step of the before/after seam, inside its iframe: frames sent, time to paint."""
    with page.watching() as frames:
        ms = page.call("Runtime.evaluate", awaitPromise=True, returnByValue=True, expression="""new Promise(done => {
          const doc = document.querySelector('iframe').contentDocument, box = doc.getElementById('box');
          const r = box.getBoundingClientRect(), t0 = performance.now();
          box.dispatchEvent(new PointerEvent('pointerdown', {clientX: r.left + r.width * 0.3, clientY: r.top + 5, pointerId: 1, bubbles: true}));
          requestAnimationFrame(() => requestAnimationFrame(() => done([performance.now() - t0, doc.getElementById('top').style.clipPath])));
        })""")["result"]["value"]
        page.pump(0.5)
    return {"seam_ms": ms[0], "clip": ms[1], "frames_sent": sum(k == "webSocketFrameSent" for k, _, _ in frames)}


def measure(url: str, repeats: int, size: tuple[int, int], tmp: Path) -> list[dict]:
    rows = []
    for i in range(repeats + 1):  # the first run warms the models up and is not counted
        page = Page(1440, 1000)
        try:
            open_compare(page, url)
            path = tmp / f"street_{i}.jpg"
            path.write_bytes(jpeg(synthetic_street(*size, seed=100 + i)))
            row = upload(page, path)
            click_text(page, '[data-testid="stButtonGroup"] button', "Overlays")
            wait_for(lambda: page.evaluate("!!document.querySelector('[data-testid=\"stSlider\"] input')"), 30, "the slider")
            idle(page)
            row.update(opacity_step(page))
            click_text(page, '[data-testid="stButtonGroup"] button', "Before / after")
            idle(page)
            wait_for(lambda: page.evaluate("(() => { const f = document.querySelector('iframe'); return !!(f && f.contentDocument"
                                           " && f.contentDocument.getElementById('box')); })()"), 30, "the slider")
            row.update(seam_step(page))
        finally:
            page.close()
        if i:
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def screenshots(url: str, out_dir: Path, tmp: Path) -> None:
    path = tmp / "street_docs.jpg"
    path.write_bytes(jpeg(synthetic_street(1024, 512, seed=7)))
    warm = tmp / "street_warm.jpg"  # another photo of that size first: the times shown are warm ones
    warm.write_bytes(jpeg(synthetic_street(1024, 512, seed=6)))
    page = Page(1440, 1000)
    try:
        open_compare(page, url)
        upload(page, warm)
        time.sleep(1.0)
    finally:
        page.close()
    for width, height in ((1440, 1000), (390, 844)):
        page = Page(width, height)
        try:
            open_compare(page, url)
            upload(page, path)
            time.sleep(0.5)
            full = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
            page.call("Emulation.setDeviceMetricsOverride", width=width, height=min(int(full) + 100, 2600 if width > 500 else 3200),
                      deviceScaleFactor=1, mobile=width < 500)
            time.sleep(1.0)
            page.screenshot(out_dir / f"compare_{width}.png")
            print(f"wrote {out_dir / f'compare_{width}.png'}")
        finally:
            page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--data", default=str(settings.DEFAULT_DATA_DIR))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", default="2048x1024", help="upload width x height")
    parser.add_argument("--shots", default=None, help="folder to write the 1440 and 390 px screenshots into")
    args = parser.parse_args()
    if CHROMIUM is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp, serve_app(Path(args.weights), Path(args.data), Path(tmp) / "streamlit.log") as url:
        rows = measure(url, args.repeats, size, Path(tmp)) if args.repeats else []
        if rows:
            print(f"\n| {size[0]}x{size[1]} upload, {len(rows)} runs | median | worst |\n|---|---|---|")
            for key, label in (("masks", "three masks shown (s)"), ("ensemble", "ensemble's mask shown (s)"),
                               ("idle", "page idle (s)"),
                               ("browser", "opacity step, browser (s)"), ("server", "opacity step, server (s)"),
                               ("seam_ms", "before/after step to paint (ms)"), ("frames_sent", "before/after: frames sent to the server")):
                values = [r[key] for r in rows]
                print(f"| {label} | {statistics.median(values):.3f} | {max(values):.3f} |")
        if args.shots:
            Path(args.shots).mkdir(parents=True, exist_ok=True)
            screenshots(url, Path(args.shots), Path(tmp))


if __name__ == "__main__":
    main()
