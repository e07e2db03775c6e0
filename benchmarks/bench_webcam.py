"""The Gradio Webcam tab's frame rate as the viewer gets it, in headless Chromium with a fake camera.

Chromium's ``--use-fake-device-for-media-stream`` supplies a synthetic video stream; the script
serves ``gradio_app`` on a free port, opens the Webcam tab, starts recording and reads, once a
second, the frame rate the page reports (frames handed back per second, over the last 10)::

    python -m benchmarks.bench_webcam --seconds 30
"""

from __future__ import annotations

import re
import time

from benchmarks.browser import FAKE_CAMERA, Browser, wait_for
from benchmarks.load_test import free_port

CLICK_JS = ("[...document.querySelectorAll('button')].filter(x => x.offsetParent && {test})"
            ".forEach(x => x.click())")


def webcam_rates(url: str, seconds: float) -> list[float]:
    """Open the Webcam tab at ``url``, record for ``seconds`` and return the rates shown, one a second."""
    browser = Browser(height=1400, flags=FAKE_CAMERA)
    try:
        browser.call("Page.navigate", url=url)
        wait_for(lambda: "Webcam" in browser.text(), 120, "the page")
        browser.evaluate(CLICK_JS.format(test="x.innerText.trim() == 'Webcam'"))
        wait_for(lambda: browser.evaluate(CLICK_JS.format(test="x.innerText.includes('Access Webcam')") + " || true")
                 and "Record" in browser.text(), 30, "the camera")
        browser.evaluate(CLICK_JS.format(test="x.innerText.trim() == 'Record'"))
        rates, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(1)  # a sample a second: the page's own figure is a 10 s window
            found = re.search(r"([\d.]+) frames/s", browser.text())
            if found:
                rates.append(float(found.group(1)))
        return rates
    finally:
        browser.close()


def median_of_second_half(rates: list[float]) -> float:
    """The steady rate: the first seconds include the camera's start and the models' warm-up."""
    tail = sorted(rates[len(rates) // 2 :])
    return tail[len(tail) // 2] if tail else 0.0


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
    print(f"median of the second half: {median_of_second_half(rates):.1f} frames/s")


if __name__ == "__main__":
    main()
