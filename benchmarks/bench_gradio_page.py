"""How fast the Gradio page feels: ``benchmarks.bench_page``'s first-paint measure on ``python gradio_app.py``.

The same runs as the Streamlit page's (``bench_page``, whose page watcher, runs and table this shares):
``python gradio_app.py`` (``--weights``, ``--data``) on a free local port, headless Chromium at
1440x1000 and, ``--repeats`` times, a new page and a new synthetic ``--size`` street photo
(``benchmarks.scenes``, so that no cached mask is reused) set on the Compare tab's file input;
from the input's ``change`` event to the three models' masks decoded in the page (``masks``), to
the ensemble's (``ensemble``: Gradio's one answer carries all four, so the two often coincide)
and to the page idle: no progress bar shown for 300 ms (``idle``; the 300 ms are not counted). The
first run warms the models up and is not counted. Medians and the worst go to stdout as a
Markdown table, with the load average before and after (``bench_page``)::

    python -m benchmarks.bench_gradio_page --repeats 5

``mask_boxes`` and ``serve_gradio`` are shared with the browser tests of the Gradio page's layout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

from benchmarks.bench_page import (UPLOAD_FIELDS, Page, measure, open_compare, page_arguments, print_table, upload,
                                   upload_title)
from benchmarks.browser import CHROMIUM, GRADIO_BUSY_JS, MODEL_TITLES, NO_CHROMIUM
from benchmarks.load_test import free_port, start_server, stop, wait_ready
from seg_core.inference import ENSEMBLE
from seg_core.registry import display_name

#: The Compare tab's file input (its photo's upload area, the page's first file input; ``gradio_tabs.photo``).
GRADIO_INPUT = "input[type=file]"
#: What a person reads above each model's picture: the three models and the ensemble.
TITLES = (*MODEL_TITLES, display_name(ENSEMBLE))
#: The models' decoded pictures (their boxes' labels are the models' names) and where they are
#: drawn (``object-fit: contain``: the picture inside its element) in page coordinates.
MASKS_JS = """[...document.querySelectorAll('.block img')].filter(i => i.complete && i.naturalWidth > 0 && i.offsetParent)
  .map(i => { const l = i.closest('.block').querySelector('[data-testid="block-label"]'), r = i.getBoundingClientRect();
    const s = Math.min(r.width / i.naturalWidth, r.height / i.naturalHeight), w = i.naturalWidth * s, h = i.naturalHeight * s;
    return {title: l ? l.innerText.trim() : '', left: r.left + (r.width - w) / 2, top: r.top + scrollY + (r.height - h) / 2,
            width: w, height: h, box_width: r.width}; }).filter(m => %s.includes(m.title))""" % json.dumps(TITLES)
GRADIO_PAGE = {"images": f"({MASKS_JS}).map(m => m.title)", "notes": "[]", "busy": GRADIO_BUSY_JS,
               "models": f"^({'|'.join(MODEL_TITLES)})$", "ensemble": f"^{re.escape(TITLES[-1])}$"}


@contextlib.contextmanager
def serve_gradio(weights: Path, data: Path, timeout: float = 180):
    """``python gradio_app.py``, as a Space runs it, on 127.0.0.1 (own port; ``data`` its
    ``SEG_DATA_DIR``, the examples cropped into a temporary folder); yields its URL."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(weights, port, {"SEG_DATA_DIR": str(data), "SEG_EXAMPLES_CACHE": tmp})
        try:
            wait_ready(f"http://127.0.0.1:{port}/", proc, timeout)
            yield f"http://127.0.0.1:{port}/"
        finally:
            stop(proc)


def mask_boxes(page: Page) -> list[dict]:
    """The Compare tab's decoded result pictures: title, left, top (page), drawn width and height,
    and their element's width."""
    return page.evaluate(MASKS_JS) or []


def gradio_run(page: Page, url: str, path: Path) -> dict:
    """One run on the Gradio page: the upload."""
    open_compare(page, url, GRADIO_INPUT, GRADIO_PAGE)
    return upload(page, path, file_input=GRADIO_INPUT)


def main() -> None:
    args = page_arguments(__doc__.split("\n")[0]).parse_args()
    if CHROMIUM is None:
        raise SystemExit(NO_CHROMIUM)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, serve_gradio(Path(args.weights), Path(args.data)) as url:
        rows = measure(url, args.repeats, args.size, Path(tmp), gradio_run, args.latency)
    print_table(rows, f"Gradio, {upload_title(args.size, args.latency)}", UPLOAD_FIELDS, load_before)


if __name__ == "__main__":
    main()
