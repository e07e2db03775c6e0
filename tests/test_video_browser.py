"""End to end in headless Chromium: upload a clip to the Video page and check that the comparison plays.

A ``<video>`` element that plays has a duration and a current time that advances; Chromium plays
H.264 only from a browser-compatible encode (yuv420p, even sides), so this also checks the encoder
settings of ``seg_core.video``.
"""

from __future__ import annotations

import pytest

from benchmarks.browser import CHROMIUM, NO_CHROMIUM, Browser, serve_app, wait_for
from tests.clips import panning_frames, write_clip

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)]
VIDEO = "document.querySelector('[data-testid=\"stMain\"] video')"
VIDEO_JS = f"(() => {{ const v = {VIDEO}; " \
           "return v ? {duration: v.duration, time: v.currentTime, ready: v.readyState, error: v.error && v.error.code} : null })()"
#: Resolves once the video has played past 0.3 s (its own ``timeupdate`` events), or with its error.
PLAYED_JS = f"""new Promise(done => {{ const v = {VIDEO}; v.muted = true;
  v.addEventListener('timeupdate', () => {{ if (v.currentTime > 0.3) done({{time: v.currentTime, error: null}}); }});
  v.addEventListener('error', () => done({{time: v.currentTime, error: v.error && v.error.code}}));
  v.play().catch(e => done({{time: v.currentTime, error: String(e)}})); }})"""


def test_video_page_comparison_plays_in_chromium(weights_dir, pairs_dir, tmp_path):
    clip = write_clip(tmp_path / "drive.mp4", panning_frames(30, h=64, w=96, step=2))
    with serve_app(weights_dir, pairs_dir, tmp_path / "streamlit.log") as url:
        browser = Browser(height=1600)
        try:
            browser.call("Page.navigate", url=f"{url}/video")
            wait_for(lambda: browser.evaluate("document.querySelector('input[type=file]') !== null"), 120,
                     "the video uploader")
            browser.set_files("input[type=file]", clip)
            state = wait_for(lambda: (s := browser.evaluate(VIDEO_JS)) and s["ready"] >= 1 and s, 180,
                             "the comparison video to load")
            assert state["error"] is None and state["duration"] == pytest.approx(3.0, abs=0.2)
            played = browser.wait_js(PLAYED_JS)
            assert played["error"] is None and played["time"] > 0.3, played
            text = browser.text()
            assert "30 frames (30 segmented)" in text and "Traceback" not in text
            browser.screenshot(tmp_path / "video.png")
            # The classes' key above the player: on a phone only (the video's own legend is ~4 px letters there).
            key_js = ("(() => { const k = document.querySelector('.seg-phone-only'); return k && k.offsetParent ?"
                      " {text: k.innerText, font: parseFloat(getComputedStyle(k).fontSize)} : null })()")
            assert browser.evaluate(key_js) is None
            browser.viewport(390, 844)
            key = wait_for(lambda: browser.evaluate(key_js), 10, "the class key on a phone")
            assert "motorcycle" in key["text"] and key["font"] >= 11, key
        finally:
            browser.close()
