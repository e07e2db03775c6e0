"""The Streamlit Video page (AppTest) and its helpers in ``ui/video.py``: upload, play, chart, frames, Compare, queue."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PIL import Image

from seg_core.predictor import Predictor
from seg_core.serve.jobs import VIDEO_JOBS
from seg_core.video import VideoError
from tests.clips import panning_frames, write_clip
from tests.test_app import TIMEOUT, AppTest, captions, no_exception, page, texts
from tests.conftest import ROOT
from ui import video as ui_video


@pytest.fixture
def clip_bytes(tmp_path) -> bytes:
    return write_clip(tmp_path / "drive.mp4", panning_frames(8)).read_bytes()


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="video_upload").set_value((name, data, "video/mp4"))
    return at.run()


def test_video_page_without_upload_explains(env):
    at = page("video").run()
    no_exception(at)
    assert "Upload a clip" in texts(at.info) and "1500 frames" in texts(at.caption)


def test_the_example_clip_is_segmented_on_a_click_and_stays_until_an_upload(env, clip_bytes):
    """A Space has no clip of its own: the page offers one panned across a KITTI scene, made on the
    server (``seg_core.examples.example_clip``); it stays the page's clip until the visitor uploads."""
    from seg_core import examples

    at = page("video").run()
    assert "try the example clip" in texts(at.info)
    at.button(key="video_example_button").click().run()
    no_exception(at)
    assert at.session_state[ui_video.JOB_KEY].name == examples.CLIP_NAME
    assert "24 frames (24 segmented)" in texts(at.caption) and "panned across the first KITTI" in texts(at.caption)
    assert captions(at) == ["Photo", "U-Net", "FCN-VGG16", "FCN-ResNet50"]
    at.number_input(key="video_every").set_value(6).run()  # still the example clip, segmented again
    assert "24 frames (4 segmented)" in texts(at.caption)
    at = upload(at, "drive.mp4", clip_bytes)
    assert at.session_state[ui_video.JOB_KEY].name == "drive.mp4" and "8 frames" in texts(at.caption)
    assert ui_video.EXAMPLE_KEY not in at.session_state


def test_video_page_plays_charts_and_scrubs(env, clip_bytes):
    at = upload(page("video").run(), "drive.mp4", clip_bytes)
    no_exception(at)
    assert len(at.get("video")) == 1 and len(at.get("plotly_chart")) == 1
    assert captions(at) == ["Photo", "U-Net", "FCN-VGG16", "FCN-ResNet50"]
    assert "8 frames (8 segmented)" in texts(at.caption)
    at.slider(key=ui_video.FRAME_KEY).set_value(5).run()
    no_exception(at)
    assert "Frame 5 at 0.50 s" in texts(at.caption)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Comparison video (MP4)", "Per-frame statistics (CSV)"]
    folder = Path(at.session_state[ui_video.JOB_KEY].folder.name)
    assert sorted(p.name for p in folder.iterdir()) == ["compare.mp4", "frames.csv", "source.mp4"]


def test_every_n_on_the_page(env, clip_bytes):
    at = page("video").run()
    at.number_input(key="video_every").set_value(4)
    at = upload(at, "drive.mp4", clip_bytes)
    no_exception(at)
    assert "8 frames (2 segmented)" in texts(at.caption)
    at.slider(key=ui_video.FRAME_KEY).set_value(3).run()
    assert "mask held from an earlier frame" in texts(at.caption)


def test_a_new_job_removes_the_previous_jobs_files_at_once(env, clip_bytes):
    """One job per session: the next one (here: another "every") deletes the first one's folder
    before it runs, without waiting for the garbage collector."""
    at = upload(page("video").run(), "drive.mp4", clip_bytes)
    first = Path(at.session_state[ui_video.JOB_KEY].folder.name)
    at.number_input(key="video_every").set_value(2).run()
    no_exception(at)
    assert not first.exists()
    assert Path(at.session_state[ui_video.JOB_KEY].folder.name).is_dir()


def test_open_a_frame_in_compare(env, clip_bytes):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/video.py").run()
    at = upload(at, "drive.mp4", clip_bytes)
    at.slider(key=ui_video.FRAME_KEY).set_value(3).run()
    at.button(key="video_to_compare").click().run()
    no_exception(at)
    assert any("label every pixel" in c.value for c in at.caption)  # Compare (no title: its introduction a caption)
    assert at.session_state["scene"].name == "drive frame 3"
    assert at.session_state["scene"].photo.shape == (64, 96, 3)


@pytest.mark.parametrize("name, make, message", [
    ("notes.mp4", lambda p: p.write_text("plain text"), "not a video file we can read"),
    ("still.mp4", lambda p: Image.fromarray(panning_frames(1)[0]).save(p, format="PNG"), "is an image (png)"),
])
def test_bad_upload_is_one_sentence(env, tmp_path, name, make, message):
    path = tmp_path / name
    make(path)
    at = upload(page("video").run(), name, path.read_bytes())
    no_exception(at)
    assert message in texts(at.error) and "Upload a clip" in texts(at.info)


# --- helpers --------------------------------------------------------------------------------------

class Recorder:
    """Stands in for a Streamlit placeholder / progress bar."""

    def __init__(self):
        self.messages: list[str] = []
        self.waiting = threading.Event()  # set by a "Waiting ..." message

    def info(self, text):
        self.messages.append(text)
        if text.startswith("Waiting"):
            self.waiting.set()

    def progress(self, value, text=""):
        self.messages.append(text)

    def empty(self):
        pass


def test_a_second_job_waits_with_its_position_and_then_runs(weights_dir, clip_bytes):
    pred = Predictor.from_dir(weights_dir)
    status, bar, done = Recorder(), Recorder(), {}
    held, release = threading.Event(), threading.Event()

    def hold():
        with VIDEO_JOBS.slot():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    worker = threading.Thread(target=lambda: done.setdefault("job", ui_video.run_job("a.mp4", clip_bytes, pred, 1,
                                                                                     status, bar)))
    worker.start()
    assert status.waiting.wait(30)
    assert "job" not in done and status.messages[-1] == "Waiting for another video to finish: position 1 in the line."
    release.set()
    worker.join(60)
    holder.join(10)
    job = done["job"]
    assert len(job.rows) == 8 and bar.messages[-1] == "Segmenting frame 8 of 8…"
    folder = Path(job.folder.name)
    del job, done["job"]
    import gc
    gc.collect()
    assert not folder.exists(), "a dropped job's files are removed"


def test_a_refused_upload_leaves_no_files(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(VideoError, match="not a video"):
        ui_video.run_job("x.mp4", b"not a video at all", Predictor.from_dir(weights_dir), 1, Recorder(), Recorder())
    assert list(tmp_path.iterdir()) == []


def test_chart_points_carry_their_frame():
    class Job:
        names = ("unet", "fcn_vgg16")
        rows = [{"frame": i, "time_s": i / 10, "segmented": 1, "disagreement": 0.1, "flicker_unet": "" if i == 0 else 0.2,
                 "flicker_flow_unet": "", "flicker_fcn_vgg16": 0.1, "flicker_flow_fcn_vgg16": 0.05} for i in range(3)]

    fig = ui_video.chart(Job())
    assert [t.name for t in fig.data] == ["disagreement", "U-Net flicker", "FCN-VGG16 flicker",
                                          "FCN-VGG16 flicker, motion-compensated"]
    assert list(fig.data[0].customdata) == [0, 1, 2]
    # one legend entry per model (its dotted motion-compensated line shares it): a short legend on a phone
    assert [t.name for t in fig.data if t.showlegend is not False] == ["disagreement", "U-Net flicker", "FCN-VGG16 flicker"]
    assert fig.data[3].legendgroup == fig.data[2].legendgroup == "fcn_vgg16"
    assert "dotted: motion-compensated" in fig.layout.legend.title.text
    assert fig.layout.margin.l + fig.layout.margin.r <= 80  # plotly's 80 + 80 left a phone's chart 160 px wide
    assert ui_video.frame_from_selection({"selection": {"points": [{"x": 0.2, "customdata": 2}]}}) == 2
    assert ui_video.frame_from_selection({"selection": {"points": [{"customdata": [1]}]}}) == 1
    assert ui_video.frame_from_selection({"selection": {"points": []}}) is None
    assert ui_video.frame_from_selection(None) is None
