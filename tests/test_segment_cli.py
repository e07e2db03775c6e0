"""``train_cli.py segment``: images, folders and videos in one call; bad inputs; what is written where."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import train_cli
from tests.clips import panning_frames, write_clip
from tests.conftest import ROOT, synthetic_pair


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(synthetic_pair(48, seed=i)[0]).save(folder / f"p{i}.png")
    (folder / "notes.txt").write_text("not an image: ignored in a folder")
    single = tmp_path / "street.jpg"
    Image.fromarray(synthetic_pair(40, seed=5)[0]).save(single)
    return {"folder": folder, "image": single, "video": write_clip(tmp_path / "drive.mp4", panning_frames(6))}


def segment(*args, capsys) -> tuple[int, str, str]:
    code = train_cli.main(["segment", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_images_folders_and_video_in_one_call(inputs, weights_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = segment(inputs["folder"], inputs["image"], inputs["video"], "--out", out,
                                   "--weights", weights_dir, "--colour", "--overlay", "--every", "2", capsys=capsys)
    assert code == 0, stderr
    for model in ("unet", "fcn_vgg16", "fcn_resnet50"):
        ids = np.asarray(Image.open(out / "photos" / f"p0_{model}.png"))
        assert ids.shape == (48, 48) and ids.max() < 19
        assert np.asarray(Image.open(out / f"street_{model}_colour.png")).shape == (40, 40, 3)
        assert (out / f"street_{model}_overlay.png").is_file()
    rows = list(csv.DictReader((out / "drive_frames.csv").open()))
    assert [r["segmented"] for r in rows] == ["1", "0"] * 3
    assert (out / "drive_compare.mp4").stat().st_size > 0
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], "no temp file left"
    assert "segmented 3 image(s) and 1 video(s) (6 frames)" in stdout and "frames/s" in stdout
    assert "drive.mp4: 6 frames (3 segmented)" in stdout and "flicker" in stdout


def test_only_the_chosen_models(inputs, weights_dir, tmp_path, capsys):
    code, _, _ = segment(inputs["image"], "--out", tmp_path / "out", "--weights", weights_dir, "--models", "unet",
                         capsys=capsys)
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["street_unet.png"]


def test_bad_inputs_are_reported_and_the_rest_is_done(inputs, weights_dir, tmp_path, capsys):
    (tmp_path / "fake.mp4").write_text("text, not a video")
    Image.fromarray(synthetic_pair(32)[0]).save(tmp_path / "still.mp4", format="PNG")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    code, stdout, stderr = segment(tmp_path / "fake.mp4", tmp_path / "still.mp4", tmp_path / "broken.png",
                                   tmp_path / "readme.txt", tmp_path / "missing.jpg", tmp_path / "empty",
                                   inputs["image"], "--out", out, "--weights", weights_dir, "--models", "unet",
                                   capsys=capsys)
    assert code == 2
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 6, stderr
    for expected in ("fake.mp4 is not a video file", "still.mp4 is an image (png)", "broken.png: this file is not an image",
                     "readme.txt is neither an image nor a video", "missing.jpg does not exist",
                     "holds no image or video"):
        assert any(expected in e for e in errors), (expected, errors)
    assert "Traceback" not in stderr
    assert (out / "street_unet.png").is_file()
    assert "6 input(s) failed" in stdout


def test_an_output_folder_that_cannot_be_written_is_a_sentence_and_the_rest_is_done(inputs, weights_dir, tmp_path,
                                                                                   capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "photos").write_text("a file where the folder's results would go")
    clips = tmp_path / "clips"
    clips.mkdir()
    inputs["video"].rename(clips / "drive.mp4")
    (out / "clips").write_text("a file too")
    code, stdout, stderr = segment(inputs["folder"], clips, inputs["image"], "--out", out, "--weights", weights_dir,
                                   "--models", "unet", capsys=capsys)
    assert code == 2 and "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3 and all("cannot write its results in" in e for e in errors), stderr
    assert (out / "street_unet.png").is_file()  # the input after them was done


def test_too_long_video_is_refused(inputs, weights_dir, tmp_path, capsys):
    code, _, stderr = segment(inputs["video"], "--out", tmp_path / "out", "--weights", weights_dir,
                              "--max-frames", "3", capsys=capsys)
    assert code == 2 and "drive.mp4 has 6 frames; the limit is 3" in stderr


def test_no_weights_is_one_line(inputs, tmp_path, capsys):
    (tmp_path / "w").mkdir()
    code, _, stderr = segment(inputs["image"], "--out", tmp_path / "out", "--weights", tmp_path / "w", capsys=capsys)
    assert code == 2 and stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in stderr


def test_a_killed_run_leaves_no_half_video(weights_dir, tmp_path, capsys):
    """SIGKILL in the middle of a video: no file under the output name; the hidden temp file is
    removed by the next run over the same output. (An exception or Ctrl-C removes it at once:
    tests/test_video.py.)"""
    clip = write_clip(tmp_path / "long.mp4", panning_frames(120, h=128, w=192, step=1))
    out = tmp_path / "out"
    args = ["segment", str(clip), "--out", str(out), "--weights", str(weights_dir), "--models", "unet", "--no-flow"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "train_cli.py"), *args, "--threads", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    parts = lambda: list(out.glob(".long_compare.mp4.*.tmp"))  # noqa: E731
    deadline = time.time() + 60
    while time.time() < deadline and not parts():
        time.sleep(0.02)
    proc.kill()
    proc.wait(20)
    assert parts(), "the run was writing when it was killed"
    assert not (out / "long_compare.mp4").exists() and not (out / "long_frames.csv").exists()
    assert train_cli.main([*args, "--max-frames", "5"]) == 2  # refused (too long), but it sweeps first
    assert not parts()


def test_ctrl_c_is_one_line(inputs, weights_dir, tmp_path, capsys, monkeypatch):
    from seg_core import segment as seg

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(seg, "run", interrupted)
    code, _, stderr = segment(inputs["image"], "--out", tmp_path / "out", "--weights", weights_dir, capsys=capsys)
    assert code == 130 and stderr.strip().startswith("interrupted") and len(stderr.strip().splitlines()) == 1
