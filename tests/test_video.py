"""seg_core.video, video_compare and serve.jobs: refusals of bad files, the comparison video and CSV, flicker, temp files, the job queue.

Clips are synthetic (``tests/clips.py``); models are the random 64x64 checkpoints of ``weights_dir``.
"""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from seg_core.predictor import Predictor
from seg_core.serve.jobs import JobQueue
from seg_core.serve.slots import PhotosFirst
from seg_core.video import Limits, VideoError, VideoWriter, probe, read_frame, read_frames
from seg_core.video_compare import Composer, FlickerMeter, disagreement_share, segment_video
from tests.clips import panning_frames, write_audio, write_clip


@pytest.fixture(scope="module")
def predictor(weights_dir) -> Predictor:
    return Predictor.from_dir(weights_dir)


@pytest.fixture
def clip(tmp_path) -> Path:
    return write_clip(tmp_path / "clip.mp4")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- probing and refusals -------------------------------------------------------------------------

def test_probe_reads_size_rate_and_length(clip):
    info = probe(clip)
    assert (info.width, info.height, info.fps, info.frames, info.codec) == (96, 64, 10, 12, "h264")
    assert info.seconds == pytest.approx(1.2, abs=0.05)


def _text(p: Path) -> Path:
    p.write_text("this is a text file, not a video\n" * 20)
    return p


def _image(fmt: str):
    def make(p: Path) -> Path:
        Image.fromarray(panning_frames(1)[0]).save(p, format=fmt)
        return p
    return make


def _truncated(faststart: bool):
    def make(p: Path) -> Path:
        data = write_clip(p.with_name("full.mp4"), faststart=faststart).read_bytes()
        p.write_bytes(data[: len(data) // 2])
        return p
    return make


def _unknown_codec(p: Path) -> Path:
    p.write_bytes(write_clip(p.with_name("full.mp4")).read_bytes().replace(b"avc1", b"zzzz"))
    return p


BAD_FILES = {
    "empty": (lambda p: (p.write_bytes(b""), p)[1], "is empty"),
    "text named .mp4": (_text, "not a video file we can read"),
    "png named .mp4": (_image("PNG"), r"is an image \(png\)"),
    "jpeg named .mp4": (_image("JPEG"), r"is an image \(jpeg\)"),
    "truncated, index at the end": (_truncated(False), "not a video file we can read"),
    "truncated, index first": (_truncated(True), "corrupt or truncated"),
    "unknown codec": (_unknown_codec, "codec this build cannot decode"),
    "audio only": (lambda p: write_audio(p), "only audio and no video track"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_files_are_refused_with_one_sentence(tmp_path, kind):
    make, message = BAD_FILES[kind]
    path = make(tmp_path / "bad.mp4")
    with pytest.raises(VideoError, match=message) as err:
        probe(path)
    assert "\n" not in str(err.value)


def _lists(folder: Path, clip: Path) -> dict[str, tuple[Path, str]]:
    """Files that make FFmpeg open other files, each naming ``clip`` (a video that decodes)."""
    hls, concat = folder / "list.m3u8", folder / "list.mp4"
    hls.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{clip}\n#EXT-X-ENDLIST\n")
    concat.write_text(f"ffconcat version 1.0\nfile '{clip}'\n")
    protocol = Path(f"concat:{clip.name}|{clip.name}")  # relative: run in ``folder``
    (folder / protocol).write_bytes(b"not a video")  # a file of that name exists: it must be read as itself
    return {"hls": (hls, "is a playlist"), "concat list": (concat, "is a concat list"),
            "concat protocol": (protocol, "not a video file we can read")}


@pytest.mark.parametrize("kind", ["hls", "concat list", "concat protocol"])
def test_files_that_name_other_files_are_refused(tmp_path, clip, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, message = _lists(tmp_path, clip)[kind]
    for read in (probe, lambda p: next(read_frames(p)), lambda p: read_frame(p, 0)):
        with pytest.raises(VideoError, match=message):
            read(path)


def test_zero_frame_video_is_refused(tmp_path):
    with pytest.raises(VideoError, match="has no frames"):
        probe(write_clip(tmp_path / "zero.avi", frames=[]))


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        probe(tmp_path / "nope.mp4")


@pytest.mark.parametrize("limits, message", [
    (Limits(max_seconds=0.5), r"1 s long; the limit is 0.5 s"),
    (Limits(max_frames=5), "has 12 frames; the limit is 5"),
    (Limits(max_bytes=100), "the limit is 0 MB"),
    (Limits(max_pixels=64 * 64), "is 96x64; the limit is"),
])
def test_limits(clip, limits, message):
    with pytest.raises(VideoError, match=message):
        probe(clip, limits)


def test_a_header_that_understates_the_length_is_caught_while_decoding(clip):
    frames = read_frames(clip, Limits(max_frames=5))
    with pytest.raises(VideoError, match="more than 5 frames"):
        list(frames)


def test_corruption_part_way_is_a_video_error(tmp_path, predictor):
    noisy = [np.random.default_rng(i).integers(0, 256, (64, 96, 3), dtype=np.uint8) for i in range(12)]
    data = bytearray(write_clip(tmp_path / "full.mp4", noisy).read_bytes())
    mdat = data.index(b"mdat")
    data[mdat + len(data) // 3 :] = np.random.default_rng(0).integers(0, 256, len(data) - mdat - len(data) // 3,
                                                                        dtype=np.uint8).tobytes()
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    (tmp_path / "full.mp4").unlink()
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VideoError, match="corrupt or truncated"):
        segment_video(tmp_path / "bad.mp4", out / "bad_compare.mp4", predictor)
    assert leftovers(out) == []


# --- the comparison video and its statistics ------------------------------------------------------

def test_segment_video_writes_a_playable_comparison_and_csv(tmp_path, clip, predictor):
    seen = []
    result = segment_video(clip, tmp_path / "out.mp4", predictor, out_csv=tmp_path / "out.csv",
                           progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (12, 12) and len(seen) == 12
    data = (tmp_path / "out.mp4").read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "faststart: the index comes first, a browser plays while loading"
    with av.open(str(tmp_path / "out.mp4")) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.pix_fmt, s.average_rate) == ("h264", "yuv420p", 10)
        assert s.codec_context.width % 2 == 0 and s.codec_context.height % 2 == 0
        assert sum(1 for _ in c.decode(s)) == 12
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert len(rows) == result.frames == 12
    assert rows[0]["flicker_unet"] == "" and rows[1]["flicker_unet"] != ""
    for name in ("unet", "fcn_vgg16", "fcn_resnet50"):
        shares = [float(rows[3][k]) for k in rows[3] if k.startswith(f"share_{name}_")]
        assert len(shares) == 19 and sum(shares) == pytest.approx(1, abs=1e-3)
        assert 0 <= float(rows[5][f"flicker_flow_{name}"]) <= 1
    assert 0 <= float(rows[2]["disagreement"]) <= 1
    assert "frames/s" in result.summary() and "flicker" in result.summary()
    assert leftovers(tmp_path) == ["clip.mp4", "out.csv", "out.mp4"]


def test_every_n_holds_the_masks_and_measures_flicker_between_segmented_frames(tmp_path, clip, predictor):
    result = segment_video(clip, tmp_path / "out.mp4", predictor, names=("unet",), every=4, flow=False)
    rows = result.rows
    assert [r["segmented"] for r in rows] == [1, 0, 0, 0] * 3
    assert result.segmented == 3
    assert [i for i, r in enumerate(rows) if r["flicker_unet"] != ""] == [4, 8]
    share = [k for k in rows[0] if k.startswith("share_unet_")]
    assert all(rows[1][k] == rows[0][k] for k in share)  # held, not recomputed
    assert rows[0]["disagreement"] == "" and "fcn_vgg16" not in result.summary()


def test_read_frame_returns_that_frame(clip):
    frames = list(read_frames(clip))
    assert np.array_equal(read_frame(clip, 7), frames[7])
    with pytest.raises(VideoError, match="no frame 12"):
        read_frame(clip, 12)


def test_composer_caps_the_panels_and_splits_frames_back():
    comp = Composer(1080, 1920, ["A", "B", "C"], panel_side=640)
    assert (comp.ph, comp.pw) == (360, 640) and (comp.rows, comp.cols) == (2, 2)
    assert comp.width == 1280 and comp.height % 2 == 0 and comp.height > 720
    photo = np.full((1080, 1920, 3), 200, np.uint8)
    masks = [np.full((1080, 1920), c, np.uint8) for c in (0, 10, 13)]
    frame = comp.compose(photo, masks)
    panels = comp.panels(frame)
    assert list(panels) == ["Photo", "A", "B", "C"]
    assert tuple(panels["C"][-1, -1]) != tuple(panels["B"][-1, -1]) != (200, 200, 200)
    assert tuple(panels["Photo"][-1, -1]) == (200, 200, 200)
    # the legend is the top strip: a player's controls cover the bottom of a video
    assert comp.top == len(comp.legend) > 0 and np.array_equal(frame[: comp.top], comp.legend)
    assert np.array_equal(frame[-comp.ph :, comp.pw :], panels["C"])
    assert Composer(64, 96, ["A"]).cols == 2 and Composer(64, 96, ["A", "B", "C", "D"]).cols == 3


def test_flicker_counts_changed_pixels_and_the_flow_discounts_motion():
    rng = np.random.default_rng(0)
    texture = np.asarray(Image.fromarray(rng.integers(0, 256, (30, 40), dtype=np.uint8)).resize((200, 150),
                                                                                                    Image.BICUBIC))
    photo = np.repeat(texture[..., None], 3, axis=2)
    mask = (texture > 128).astype(np.uint8) * 13
    meter = FlickerMeter(flow=True)
    assert meter.update(photo, {"m": mask}) == {}
    shifted = {"m": np.roll(mask, 3, axis=1)}
    plain, moved = meter.update(np.roll(photo, 3, axis=1), shifted)["m"]
    assert plain == pytest.approx(float((shifted["m"] != mask).mean()))
    assert plain > 0.05 and moved < plain / 3  # the scene moved; the classes did not flicker
    same, _ = FlickerMeter(flow=False).update(photo, {"m": mask}) or (0, None)
    assert same == 0


def test_disagreement_share():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0] = 1
    assert disagreement_share([a, a]) == 0 and disagreement_share([a, b, a]) == 0.25


# --- temp files: an error or interrupt leaves nothing behind ---------------------------------------

class Failing:
    """A predictor that fails at its ``at``-th call."""

    def __init__(self, inner: Predictor, at: int, error: BaseException):
        self.inner, self.at, self.error, self.calls = inner, at, error, 0
        self.models = inner.models

    def predict(self, image, names=None):
        self.calls += 1
        if self.calls == self.at:
            raise self.error
        return self.inner.predict(image, names=names)


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_error_mid_encode_leaves_no_file(tmp_path, clip, predictor, error):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.mp4").write_bytes(b"an earlier result")
    with pytest.raises(type(error)):
        segment_video(clip, out / "old.mp4", Failing(predictor, 6, error), out_csv=out / "old.csv")
    assert leftovers(out) == ["old.mp4"] and (out / "old.mp4").read_bytes() == b"an earlier result"


def test_writer_needs_even_sides(tmp_path):
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "x.mp4", 63, 64, 10)


# --- one job at a time ----------------------------------------------------------------------------

def test_job_queue_runs_one_job_at_a_time_and_tells_the_position():
    queue = JobQueue()
    order, positions = [], {}
    release = threading.Event()

    queued = {name: threading.Event() for name in "abc"}  # a: in the slot; b, c: told their place

    def job_then_signal(name: str):
        def on_wait(pos):
            positions.setdefault(name, []).append(pos)
            queued[name].set()

        with queue.slot(on_wait=on_wait, poll=0.01):
            queued[name].set()
            order.append(name)
            if name == "a":
                release.wait(5)

    first = threading.Thread(target=job_then_signal, args=("a",))
    first.start()
    assert queued["a"].wait(5)
    others = []
    for name in "bc":  # one after the other, so the line's order is known
        others.append(threading.Thread(target=job_then_signal, args=(name,)))
        others[-1].start()
        assert queued[name].wait(5)
    assert order == ["a"] and queue.waiting() == 2
    release.set()
    for t in [first, *others]:
        t.join(5)
    assert order == ["a", "b", "c"]
    assert positions["b"][0] == 1 and positions["c"][0] == 2
    assert all(x >= y for x, y in zip(positions["c"], positions["c"][1:]))  # only ever moves up the line


def test_a_waiter_that_gives_up_leaves_the_line():
    queue = JobQueue()

    def give_up(position):
        raise KeyboardInterrupt

    with queue.slot():
        with pytest.raises(KeyboardInterrupt):
            with queue.slot(on_wait=give_up):
                pass
        assert queue.waiting() == 0
    with queue.slot():  # the slot is free again
        pass


def test_a_video_waits_while_a_photo_is_segmented(tmp_path, clip, predictor):
    gate = PhotosFirst(timeout=10)
    done = []
    photo_in, photo_out = threading.Event(), threading.Event()

    def photo():
        with gate.photo():
            photo_in.set()
            photo_out.wait(10)

    holder = threading.Thread(target=photo)
    holder.start()
    photo_in.wait(5)
    at_gate, passed = threading.Event(), threading.Event()
    passed_during_photo = []

    def pause():  # the gate, watched: when the video reached it, and whether it passed while the photo ran
        at_gate.set()
        gate.wait()
        passed_during_photo.append(not photo_out.is_set())
        passed.set()

    worker = threading.Thread(target=lambda: segment_video(clip, tmp_path / "out.mp4", predictor, names=("unet",),
                                                           progress=lambda d, t: done.append(d), pause=pause))
    worker.start()
    assert at_gate.wait(30)  # the video is ready for its first frame
    assert not passed.wait(0.5)  # and held there: an open gate lets it through at once
    assert done == []  # not even the first frame while the photo runs
    photo_out.set()
    worker.join(30)
    holder.join(5)
    assert done[-1] == 12 and passed_during_photo[0] is False


def test_photos_first_never_stops_a_video_for_good():
    gate = PhotosFirst(timeout=0.05)
    with gate.photo():
        t0 = time.perf_counter()
        gate.wait()
        assert 0.04 < time.perf_counter() - t0 < 1
