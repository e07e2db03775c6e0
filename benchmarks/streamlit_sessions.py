"""Server memory under many Streamlit sessions: the RSS of ``streamlit run app.py`` while browser
sessions open scenes and upload photos, and after they close.

Each session is a tab of one headless Chromium (its own websocket, so its own Streamlit session):
it opens Compare on ``?scene=NAME`` (a different val scene each), waits for the three masks,
uploads a drawn street photo of ``--size`` (a different one each, so that no cached mask is
reused), waits for its masks, opens Ground truth and comes back to Compare. The tabs stay open
until the last session is done; then they close. Streamlit keeps a closed tab's session for
``server.disconnectedSessionTTL`` (``--session-ttl``) and drops expired ones only when its session
store is next written, so after the wait one more tab opens About and closes, as any later visitor
would. RSS is VmRSS of the server and its children, read after each step and every 0.2 s (the max);
beside it, Streamlit's own count of what it holds, by kind (``/_stcore/metrics``).
No GPU, no network; at most ``MAX_SESSIONS`` sessions and ``--timeout`` seconds in all::

    python -m benchmarks.streamlit_sessions --sessions 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.browser import CHROMIUM, NO_CHROMIUM, ROOT, SETTLED_JS, Browser, Tab, app_server, model_images, wait_for
from benchmarks.load_test import rss_mib
from benchmarks.scenes import jpeg, synthetic_street
from seg_core import settings
from seg_core.data import DataError, list_pairs

MAX_SESSIONS = 20
METRICS_TTL = 5.2  # seconds: Streamlit answers /_stcore/metrics' memory figures from a 5 s cache
STEP_TIMEOUT = 180.0  # seconds for one page to show its masks on a busy 2-core machine


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from ``/proc/*/stat``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    out, todo = [pid], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def tree_rss_mib(pid: int) -> float:
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            total += rss_mib(p)
    return total


#: Streamlit's names for what it holds (``/_stcore/metrics``), shortened for the table.
KINDS = {"UploadedFileManager": "uploads", "st_memory_media_file_storage": "media", "st_cache_data": "cache_data",
         "st_cache_resource": "cache_resource", "st_session_state": "session_state"}


def streamlit_mib(url: str) -> dict[str, float]:
    """Streamlit's own count of the bytes it holds, by kind, from ``/_stcore/metrics``: exact for
    uploads, media and ``st.cache_data``; its session-state and ``st.cache_resource`` figures do
    not follow references (arrays in a ``Scene`` count as nothing), so RSS is the measure."""
    text = urllib.request.urlopen(f"{url}/_stcore/metrics", timeout=60).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("cache_memory_bytes{"):
            kind = re.search(r'cache_type="([^"]*)"', line)
            key = KINDS.get(kind.group(1), kind.group(1)) if kind else "other"
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1]) / 2**20
    return {k: round(v, 3) for k, v in sorted(out.items())}


class Sampler:
    """Reads the server's RSS every ``interval`` seconds in a thread, keeping the maximum."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval, self.max = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.read()
            self._stop.wait(self.interval)

    def read(self) -> float:
        rss = tree_rss_mib(self.pid)
        self.max = max(self.max, rss)
        return rss

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def heading_js(name: str) -> str:
    # Compare names its scene in a bold line above the pictures (a heading before the masks-first layout).
    return f"[...document.querySelectorAll('h3, strong')].some(h => h.innerText.startsWith({json.dumps(name)}))"


def shows_masks_of(tab: Tab, name: str, timeout: float) -> None:
    """Wait until Compare shows ``name`` with the three masks, and the page has settled."""
    wait_for(lambda: tab.evaluate(heading_js(name)) and len(model_images(tab)) >= 3 and tab.evaluate(SETTLED_JS),
             timeout, f"the masks of {name}")


def click_nav(tab: Tab, page: str) -> None:
    """Click the navigation link to ``page`` (its URL path; "" for the default page)."""
    js = ("(() => { const a = [...document.querySelectorAll('a')].find(e => { const u = new URL(e.href, location.href);"
          f" return u.origin === location.origin && u.pathname.split('/').pop() === {json.dumps(page)}; }});"
          " if (a) a.click(); return !!a; })()")
    wait_for(lambda: tab.evaluate(js), 30, f"the sidebar link to {page or 'Compare'}")


def session(tab: Tab, url: str, scene: str, photo: Path, timeout: float) -> None:
    """One visitor: a val scene from a link, an upload, Ground truth, and back to Compare."""
    tab.call("Page.navigate", url=f"{url}/?scene={scene}")
    shows_masks_of(tab, scene, timeout)
    tab.set_files('[data-testid="stFileUploaderDropzoneInput"]', photo)
    shows_masks_of(tab, photo.name, timeout)
    click_nav(tab, "ground_truth")
    wait_for(lambda: "Against the ground truth" in tab.text()
             and tab.evaluate(SETTLED_JS), timeout, "the Ground truth page")
    click_nav(tab, "")
    shows_masks_of(tab, photo.name, timeout)  # the upload survived the page change


def measure(sessions: int, weights: Path, data: Path, size: tuple[int, int], session_ttl: int,
            timeout: float, tmp: Path) -> dict:
    deadline = time.monotonic() + timeout

    def left() -> float:
        if (rest := deadline - time.monotonic()) <= 0:
            raise TimeoutError(f"the benchmark ran past --timeout {timeout:.0f} s")
        return min(STEP_TIMEOUT, rest)

    scenes = [p.name for p in list_pairs(data)]
    photos = []
    for i in range(sessions):
        photos.append(tmp / f"street_{i + 1}.jpg")
        photos[-1].write_bytes(jpeg(synthetic_street(size[1], size[0], seed=100 + i)))
    rows: list[dict] = []
    options = ("--server.disconnectedSessionTTL", str(session_ttl))
    with app_server(weights, data, tmp / "streamlit.log", options=options) as (url, proc), Sampler(proc.pid) as rss:
        t0 = time.monotonic()
        last = t0 - METRICS_TTL

        def record(step: str) -> None:
            nonlocal last
            time.sleep(max(0.0, last + METRICS_TTL - time.monotonic()))
            last = time.monotonic()
            rows.append({"step": step, "rss_mib": round(rss.read(), 1), "t_s": round(time.monotonic() - t0, 1),
                         "streamlit_mib": streamlit_mib(url)})

        record("server up, no session")
        browser = Browser(width=1400, height=1000)
        tabs: list[Tab] = []
        try:
            for i in range(sessions):
                tabs.append(Tab(browser))
                session(tabs[-1], url, scenes[i % len(scenes)], photos[i], left())
                record(f"after session {i + 1}")
            peak_open = rss.max
            for tab in tabs:
                tab.close()
            tabs.clear()
            time.sleep(2)
            record("tabs closed")
            wait = session_ttl + 5
            time.sleep(min(wait, left()))
            probe = Tab(browser)
            try:
                probe.call("Page.navigate", url=f"{url}/about")
                wait_for(lambda: "The architectures" in (probe.evaluate("document.body.innerText") or ""), left(),
                         "the About page")
            finally:
                probe.close()
            time.sleep(5)
            record(f"{wait} s later, after one more visit")
        finally:
            for tab in tabs:
                tab.close()
            browser.close()
        peak = rss.max
    after = [r["rss_mib"] for r in rows if r["step"].startswith("after session")]
    return {"sessions": sessions, "upload": f"{size[1]}x{size[0]} JPEG", "session_ttl_s": session_ttl,
            "rows": rows, "max_rss_mib": round(peak, 1), "max_rss_open_mib": round(peak_open, 1),
            "growth_per_session_mib": round((after[-1] - after[0]) / (len(after) - 1), 1) if len(after) > 1 else None}


def table(result: dict) -> str:
    kinds = [k for k in KINDS.values() if any(k in r["streamlit_mib"] for r in result["rows"])]
    lines = ["| step | server RSS (MiB) | t (s) | " + " | ".join(f"{k} (MiB)" for k in kinds) + " |",
             "|---|---:|---:|" + "---:|" * len(kinds)]
    lines += [f"| {r['step']} | {r['rss_mib']:.0f} | {r['t_s']:.0f} | "
              + " | ".join(f"{r['streamlit_mib'].get(k, 0):.2f}" for k in kinds) + " |" for r in result["rows"]]
    lines.append(f"| max (sampled every 0.2 s) | {result['max_rss_mib']:.0f} | |" + " |" * len(kinds))
    return "\n".join(lines)


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HxW, e.g. 1024x2048") from None
    if not (64 <= h <= 4096 and 64 <= w <= 4096):
        raise argparse.ArgumentTypeError("each side must be 64 to 4096 pixels")
    return h, w


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10, help=f"browser sessions, one after another (1..{MAX_SESSIONS})")
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--data", default=str(settings.data_dir()), help="a folder of val pairs (the gallery)")
    parser.add_argument("--size", type=parse_size, default=(1024, 2048), help="uploaded photo HxW")
    parser.add_argument("--session-ttl", type=int, default=30,
                        help="server.disconnectedSessionTTL: seconds a closed tab's session is kept (Streamlit: 120)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole run")
    args = parser.parse_args(argv)
    if not 1 <= args.sessions <= MAX_SESSIONS:
        parser.exit(2, f"--sessions must be 1 to {MAX_SESSIONS}.\n")
    if CHROMIUM is None:
        parser.exit(2, NO_CHROMIUM + ".\n")
    try:
        list_pairs(Path(args.data))
    except DataError as err:
        parser.exit(2, f"no gallery scenes: {err}.\n")
    with tempfile.TemporaryDirectory(prefix="streamlit_sessions_") as tmp:
        result = measure(args.sessions, Path(args.weights), Path(args.data), args.size, args.session_ttl,
                         args.timeout, Path(tmp))
    print(table(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
