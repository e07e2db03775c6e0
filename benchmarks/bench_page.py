"""How fast the Compare page feels, measured in headless Chromium; and screenshots of an upload.

Starts ``streamlit run app.py`` (``--weights``, ``--data``), opens the page in a fresh Chromium
(DevTools protocol, ``benchmarks.browser``) and, ``--repeats`` times, each
time on a new page with a new synthetic street photo (so that no cached mask is reused):

* **upload**: a ``--size`` JPEG set on the file input; from the input's ``change`` event to the
  three model masks decoded in the page (``masks``: the first paint), to the ensemble's mask
  decoded in its cell, drawn a step later (``ensemble``), and to the page idle: both shown, no
  stale element, no running status, for 300 ms (``idle``; the 300 ms are not counted); also when
  the file had reached the server (``upload_sent``) and the scripts fetched after the drop
  (``code_fetched``: none since the page preloads what a first upload needs);
* **opacity**: in the Overlays view, one keyboard step of its opacity slider (in the browser since
  2026-12-03: until then a rerun made new overlays); the time to the next painted frame and the
  frames sent to the server (none expected);
* **before/after**: one drag step of the seam: the frames the browser sends (none expected) and
  the time to the next painted frame.

Medians (and the worst) go to stdout as a Markdown table, with the load average before the
server started and after the runs (other jobs on the cores show in the first). ``--shots DIR`` also writes
``compare_1440.jpg`` and ``compare_390.jpg`` of an uploaded synthetic scene (the docs' pictures,
of the shipped KITTI scenes, are ``benchmarks/screenshots.py``)::

    python -m benchmarks.bench_page --repeats 5
    python -m benchmarks.bench_page --repeats 5 --latency 50
    python -m benchmarks.bench_page --repeats 0 --shots /tmp/shots
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.browser import (CHROMIUM, ENSEMBLE_RE, MODEL_RE, NO_CHROMIUM, ROOT, SETTLED_JS, Browser, full_page_shot,
                                serve_app, settle, wait_for)
from benchmarks.scenes import jpeg, synthetic_street
from seg_core import settings


class Page(Browser):
    """``Browser`` that keeps the websocket frames it sees (timestamps in seconds) while ``watching``.

    Only then: with the Network domain on, Chromium copies every frame (the pictures' data URLs
    included) to us, which would load the cores the upload's timing is taken on. With
    ``latency_ms`` it is on throughout: Chromium's network emulation answers each request that
    much later, as a visitor's network would (loopback answers at once)."""

    def __init__(self, width: int, height: int, latency_ms: float = 0):
        self.frames: list[tuple[str, float, int]] = []
        self.latency_ms = latency_ms
        super().__init__(width=width, height=height, timeout=120)
        self.call("Page.enable")
        if latency_ms:
            self.call("Network.enable")
            self.call("Network.emulateNetworkConditions", offline=False, latency=latency_ms,
                      downloadThroughput=-1, uploadThroughput=-1)

    @contextlib.contextmanager
    def watching(self):
        self.frames.clear()
        if self.latency_ms:
            yield self.frames
            return
        self.call("Network.enable")
        try:
            yield self.frames
        finally:
            self.call("Network.disable")

    def on_event(self, message: dict) -> None:
        kind = message.get("method", "")
        if kind in ("Network.webSocketFrameSent", "Network.webSocketFrameReceived"):
            p = message["params"]
            self.frames.append((kind.rsplit(".", 1)[1], p["timestamp"], len(p["response"].get("payloadData", ""))))

    def pump(self, seconds: float) -> None:
        """Let events arrive for ``seconds`` (a cheap call collects them)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.evaluate("1")
            time.sleep(0.02)


#: The Compare page's pictures that are decoded, by their titles; its notes (the ensemble's
#: "averaging…"); and whether it is busy (a stale element, the running status).
STREAMLIT_PAGE = {
    "images": "[...document.querySelectorAll('.seg-grid img')].filter(i => i.complete && i.naturalWidth > 0).map(i => i.alt)",
    "notes": "[...document.querySelectorAll('.seg-grid .seg-note')].map(n => n.textContent)",
    "busy": "document.querySelector('[data-stale=\"true\"]') || document.querySelector('[data-testid=\"stStatusWidget\"]')",
    "models": MODEL_RE, "ensemble": ENSEMBLE_RE,
}


def watch_js(images: str, notes: str, busy: str, models: str, ensemble: str) -> str:
    """Installed in a page: records when the three masks are decoded, when the ensemble's is,
    whether a note said "averaging…" meanwhile, and when the page is idle, with ``performance.now()``
    on every animation frame. ``images``, ``notes``, ``busy``: JavaScript expressions for the
    titles of the decoded pictures, the notes shown and whether the page is busy; ``models`` and
    ``ensemble``: the regular expressions a mask's and the ensemble's titles match."""
    return """
(() => {
  const t = window.__t = {start: null, masks: null, ensemble: null, waited: false, idle: null, quietSince: null};
  const re = new RegExp(%s), ens = new RegExp(%s);
  for (const kind of ['input', 'change'])
    document.addEventListener(kind, e => { if (e.target.type === 'file' && t.fired === undefined) { t.fired = kind; t.start = performance.now(); } }, true);
  const tick = () => {
    const now = performance.now();
    if (t.start !== null) {
      const titles = %s;
      if (t.masks === null && titles.filter(a => re.test(a)).length >= 3) t.masks = now;
      if (t.masks !== null && t.ensemble === null) {
        if (titles.some(a => ens.test(a))) t.ensemble = now;
        else if ((%s).some(n => n.includes('averaging'))) t.waited = true;
      }
      const busy = %s;
      if (t.masks !== null && t.ensemble !== null && !busy) { if (t.quietSince === null) t.quietSince = now; if (now - t.quietSince > 300 && t.idle === null) t.idle = t.quietSince; }
      else t.quietSince = null;
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
""" % (json.dumps(models), json.dumps(ensemble), images, notes, busy)


#: The Overlays view's page (an iframe): its opacity slider and the models' mask layers.
OVERLAY_FRAME_JS = """(() => { const f = [...document.querySelectorAll('iframe')].find(f => f.contentDocument
  && f.contentDocument.getElementById('alpha')); if (!f) return false;
  const masks = [...f.contentDocument.querySelectorAll('img.mask')];
  return masks.length >= 3 && masks.every(i => i.complete && i.naturalWidth > 0); })()"""


STREAMLIT_INPUT = '[data-testid="stFileUploaderDropzoneInput"]'


def open_compare(page: Page, url: str, file_input: str = STREAMLIT_INPUT, watch: dict = STREAMLIT_PAGE) -> None:
    """Open the page at ``url``, wait for its ``file_input`` and for the page to settle (a visitor
    sees the page before dropping a photo on it: until 2026-12-03 the upload came while the example
    thumbnails were still loading), and install ``watch_js(**watch)``."""
    page.call("Page.navigate", url=url)
    wait_for(lambda: page.evaluate(f"!!document.querySelector({json.dumps(file_input)})"), 120, "the file input")
    settle(page, quiet=1.0)
    page.evaluate(watch_js(**watch))


def upload(page: Page, path: Path, timeout: float = 120, file_input: str = STREAMLIT_INPUT) -> dict:
    """Set ``path`` on the page's file input; seconds to the masks, the ensemble and idle."""
    page.evaluate("window.__t.start = performance.now()")  # in case no event reaches the document
    page.set_files(file_input, path)
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
    wait_for(lambda: page.evaluate(SETTLED_JS), timeout, "idle")
    time.sleep(0.3)


def opacity_step(page: Page) -> dict:
    """One ArrowRight on the Overlays view's opacity slider (in its iframe): the time from the key
    to the next painted frame with the masks' new opacity, and the websocket frames sent (none:
    the slider runs in the browser)."""
    page.evaluate("""(() => { const doc = [...document.querySelectorAll('iframe')].find(f => f.contentDocument
      && f.contentDocument.getElementById('alpha')).contentDocument, a = doc.getElementById('alpha');
      const mask = doc.querySelector('img.mask'), t = window.__o = {before: getComputedStyle(mask).opacity, ms: null};
      a.addEventListener('keydown', () => { t.start = performance.now(); }, {once: true});
      a.addEventListener('input', () => requestAnimationFrame(() => requestAnimationFrame(() => {
        t.ms = performance.now() - t.start; t.after = getComputedStyle(mask).opacity; })), {once: true});
      a.focus(); })()""")
    with page.watching() as frames:
        for kind in ("keyDown", "keyUp"):
            page.call("Input.dispatchKeyEvent", type=kind, key="ArrowRight", code="ArrowRight", windowsVirtualKeyCode=39)
        o = wait_for(lambda: (v := page.evaluate("JSON.stringify(window.__o)")) and json.loads(v)["ms"] is not None
                     and json.loads(v), 30, "the new opacity")
        page.pump(0.5)
    if o["after"] == o["before"]:
        raise RuntimeError(f"the opacity did not change: {o}")
    return {"opacity_ms": o["ms"], "opacity_frames_sent": sum(k == "webSocketFrameSent" for k, _, _ in frames)}


def seam_step(page: Page) -> dict:
    """One drag step of the before/after seam, inside its iframe: frames sent, time to paint."""
    with page.watching() as frames:
        ms = page.wait_js("""new Promise(done => {
          const doc = document.querySelector('iframe').contentDocument, box = doc.getElementById('box');
          const r = box.getBoundingClientRect(), t0 = performance.now();
          box.dispatchEvent(new PointerEvent('pointerdown', {clientX: r.left + r.width * 0.3, clientY: r.top + 5, pointerId: 1, bubbles: true}));
          requestAnimationFrame(() => requestAnimationFrame(() => done([performance.now() - t0, doc.getElementById('top').style.clipPath])));
        })""")
        page.pump(0.5)
    return {"seam_ms": ms[0], "clip": ms[1], "frames_sent": sum(k == "webSocketFrameSent" for k, _, _ in frames)}


#: From the page's own resource timings, after an upload: when the file had reached the server (the
#: end of Streamlit's ``upload_file`` request; the page asks for its rerun right after) and how many
#: scripts the page fetched after the drop (parts of Streamlit's frontend loaded on first use).
UPLOAD_FACTS_JS = """(() => { const t0 = window.__t.start, r = performance.getEntriesByType('resource').filter(e => e.startTime >= t0);
  const put = r.find(e => e.name.includes('/_stcore/upload_file/'));
  return {upload_sent: put ? (put.responseEnd - t0) / 1000 : null, code_fetched: r.filter(e => /[.]js([?#]|$)/.test(e.name)).length}; })()"""


def streamlit_run(page: Page, url: str, path: Path) -> dict:
    """One run on the Streamlit page: the upload (and ``UPLOAD_FACTS_JS``), an opacity step and a
    seam step."""
    open_compare(page, url)
    row = upload(page, path)
    row.update(page.evaluate(UPLOAD_FACTS_JS))
    if row["upload_sent"] is None:
        raise RuntimeError("the page made no upload_file request: has Streamlit's upload changed?")
    click_text(page, '[data-testid="stButtonGroup"] button', "Overlays")
    wait_for(lambda: page.evaluate(OVERLAY_FRAME_JS), 30, "the overlays")
    idle(page)
    row.update(opacity_step(page))
    click_text(page, '[data-testid="stButtonGroup"] button', "Before / after")
    idle(page)
    wait_for(lambda: page.evaluate("(() => { const f = document.querySelector('iframe'); return !!(f && f.contentDocument"
                                   " && f.contentDocument.getElementById('box')); })()"), 30, "the slider")
    row.update(seam_step(page))
    return row


def measure(url: str, repeats: int, size: tuple[int, int], tmp: Path, one_run=streamlit_run,
            latency_ms: float = 0) -> list[dict]:
    """``repeats`` rows of ``one_run(page, url, photo)``, each on a new page (``Page``: its
    ``latency_ms``) with a new drawn street of ``size``; the first run warms the models up and is
    not counted."""
    rows = []
    for i in range(repeats + 1):
        page = Page(1440, 1000, latency_ms)
        try:
            path = tmp / f"street_{i}.jpg"
            path.write_bytes(jpeg(synthetic_street(*size, seed=100 + i)))
            row = one_run(page, url, path)
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
            settle(page)
            full_page_shot(page, out_dir / f"compare_{width}.jpg", width, height, 2600 if width > 500 else 3200)
            print(f"wrote {out_dir / f'compare_{width}.jpg'}")
        finally:
            page.close()


UPLOAD_FIELDS = (("masks", "three masks shown (s)"), ("ensemble", "ensemble's mask shown (s)"), ("idle", "page idle (s)"))


def print_table(rows: list[dict], title: str, fields: tuple[tuple[str, str], ...],
                load_before: tuple[float, float, float] | None = None) -> None:
    """The median and the worst of each of ``fields`` (key, label) over ``rows``, as Markdown, and
    the load average (1, 5, 15 min) ``load_before`` the server started and now."""
    if not rows:
        return
    print(f"\n| {title}, {len(rows)} runs | median | worst |\n|---|---|---|")
    for key, label in fields:
        values = [r[key] for r in rows]
        print(f"| {label} | {statistics.median(values):.3f} | {max(values):.3f} |")
    loads = [f"before the server started {_load_text(load_before)}"] if load_before else []
    loads.append(f"after the runs {_load_text(os.getloadavg())}")
    print(f"\nLoad average (1, 5, 15 min): {'; '.join(loads)}")


def _load_text(load: tuple[float, float, float]) -> str:
    return " ".join(f"{v:.2f}" for v in load)


def page_arguments(description: str) -> argparse.ArgumentParser:
    """The options both page benchmarks take: --weights, --data, --repeats, --size."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--data", default=str(settings.DEFAULT_DATA_DIR))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", default="2048x1024", type=lambda v: tuple(int(n) for n in v.lower().split("x")),
                        help="upload width x height")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="ms Chromium adds to each request, as a visitor's network would (default 0: loopback)")
    return parser


def upload_title(size: tuple[int, int], latency_ms: float) -> str:
    return f"{size[0]}x{size[1]} upload" + (f", {latency_ms:g} ms a request" if latency_ms else "")


def main() -> None:
    parser = page_arguments(__doc__.split("\n")[0])
    parser.add_argument("--shots", default=None, help="folder to write the 1440 and 390 px screenshots into")
    args = parser.parse_args()
    if CHROMIUM is None:
        raise SystemExit(NO_CHROMIUM)
    size, load_before = args.size, os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, serve_app(Path(args.weights), Path(args.data), Path(tmp) / "streamlit.log") as url:
        rows = measure(url, args.repeats, size, Path(tmp), latency_ms=args.latency) if args.repeats else []
        print_table(rows, upload_title(size, args.latency), (("upload_sent", "the file at the server (s)"),) + UPLOAD_FIELDS + (
            ("code_fetched", "scripts fetched after the drop"),
            ("opacity_ms", "opacity step to paint (ms)"), ("opacity_frames_sent", "opacity step: frames sent to the server"),
            ("seam_ms", "before/after step to paint (ms)"), ("frames_sent", "before/after: frames sent to the server")),
            load_before)
        if args.shots:
            Path(args.shots).mkdir(parents=True, exist_ok=True)
            screenshots(url, Path(args.shots), Path(tmp))


if __name__ == "__main__":
    main()
