"""End to end in headless Chromium: upload a clip to the Video page and check that the comparison plays.

A ``<video>`` element that plays has a duration and a current time that advances; Chromium plays
H.264 only from a browser-compatible encode (yuv420p, even sides), so this also checks the encoder
settings of ``seg_core.video``.
"""

from __future__ import annotations

import time

import pytest

from tests.clips import panning_frames, write_clip
from tests.test_app_browser import CHROMIUM, Browser, serve_app, wait_for

VIDEO_JS = "(() => { const v = document.querySelector('[data-testid=\"stMain\"] video'); " \
           "return v ? {duration: v.duration, time: v.currentTime, ready: v.readyState, error: v.error && v.error.code} : null })()"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_video_page_comparison_plays_in_chromium(weights_dir, pairs_dir, tmp_path):
    clip = write_clip(tmp_path / "drive.mp4", panning_frames(30, h=64, w=96, step=2))
    with serve_app(weights_dir, pairs_dir, tmp_path / "streamlit.log") as url:
        browser = Browser(height=1600)
        try:
            browser.call("Page.navigate", url=f"{url}/video")
            wait_for(lambda: browser.evaluate("document.querySelector('input[type=file]') !== null"), 120,
                     "the video uploader")
            root = browser.call("DOM.getDocument")["root"]["nodeId"]
            node = browser.call("DOM.querySelector", nodeId=root, selector="input[type=file]")["nodeId"]
            browser.call("DOM.setFileInputFiles", files=[str(clip)], nodeId=node)
            state = wait_for(lambda: (s := browser.evaluate(VIDEO_JS)) and s["ready"] >= 1 and s, 180,
                             "the comparison video to load")
            assert state["error"] is None and state["duration"] == pytest.approx(3.0, abs=0.2)
            browser.evaluate("(() => { const v = document.querySelector('[data-testid=\"stMain\"] video'); "
                             "v.muted = true; v.play(); })()")
            time.sleep(1.5)
            after = browser.evaluate(VIDEO_JS)
            assert after["error"] is None and after["time"] > 0.3, after
            text = browser.evaluate("document.body.innerText")
            assert "30 frames (30 segmented)" in text and "Traceback" not in text
            browser.screenshot(tmp_path / "video.png")
        finally:
            browser.close()
