"""End to end in headless Chromium with a fake camera: the Gradio Webcam tab streams overlays back.

Chromium's ``--use-fake-device-for-media-stream`` supplies a synthetic video stream; the test opens
the Webcam tab, starts recording and reads the frame rate the page reports (frames handed back per
second, as the viewer gets them). Run as a script it prints that rate for the shipped weights::

    python -m tests.test_gradio_browser --seconds 30
"""

from __future__ import annotations

import importlib
import re
import sys
import time

import pytest

from benchmarks.load_test import free_port
from tests import test_app_browser as tb

pytestmark = [  # pandas deprecations inside gradio's queue, not ours
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
FAKE_CAMERA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
CLICK_JS = ("[...document.querySelectorAll('button')].filter(x => x.offsetParent && {test})"
            ".forEach(x => x.click())")


def webcam_rates(url: str, seconds: float, monkeypatch=None) -> list[float]:
    """Open the Webcam tab at ``url``, record for ``seconds`` and return the rates shown meanwhile."""
    flags = tb.CHROMIUM_FLAGS + FAKE_CAMERA
    if monkeypatch is not None:
        monkeypatch.setattr(tb, "CHROMIUM_FLAGS", flags)
    else:
        tb.CHROMIUM_FLAGS = flags
    browser = tb.Browser(height=1400)
    try:
        browser.call("Page.navigate", url=url)
        tb.wait_for(lambda: "Webcam" in (browser.evaluate("document.body.innerText") or ""), 120, "the page")
        browser.evaluate(CLICK_JS.format(test="x.innerText.trim() == 'Webcam'"))
        tb.wait_for(lambda: browser.evaluate(CLICK_JS.format(test="x.innerText.includes('Access Webcam')") + " || true")
                    and "Record" in (browser.evaluate("document.body.innerText") or ""), 30, "the camera")
        browser.evaluate(CLICK_JS.format(test="x.innerText.trim() == 'Record'"))
        rates, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(1)
            found = re.search(r"([\d.]+) frames/s", browser.evaluate("document.body.innerText") or "")
            if found:
                rates.append(float(found.group(1)))
        return rates
    finally:
        browser.close()


@pytest.mark.skipif(tb.CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_webcam_tab_streams_overlays_in_chromium(weights_dir, monkeypatch):
    monkeypatch.setenv("SEG_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("SEG_DATA_DIR", "/nonexistent")
    app = (importlib.reload(sys.modules["gradio_app"]) if "gradio_app" in sys.modules
           else importlib.import_module("gradio_app"))
    port = free_port()
    app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        rates = webcam_rates(f"http://127.0.0.1:{port}/", 12, monkeypatch)
    finally:
        app.demo.close()
    assert rates and max(rates) > 0, rates  # overlays came back, more than one of them


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="The webcam frame rate in Chromium with a fake camera.")
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    import gradio_app

    port = free_port()
    gradio_app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        rates = webcam_rates(f"http://127.0.0.1:{port}/", args.seconds)
    finally:
        gradio_app.demo.close()
    print(f"frames/s shown (one a second): {rates}")
    tail = rates[len(rates) // 2 :]
    print(f"median of the second half: {sorted(tail)[len(tail) // 2] if tail else 0:.1f} frames/s")


if __name__ == "__main__":
    main()
