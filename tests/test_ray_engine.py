"""``--engine ray`` on ``segment`` and ``scores``: the local engine's outputs, bad files as rows, a killed actor.

One local Ray (2 CPUs, a 200 MB object store) serves the module and is shut down after it, so no
Ray process outlives these tests. The models are the tiny random-weight checkpoints of conftest.
"""

from __future__ import annotations

import csv
import os
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import train_cli
from seg_core.ray_engine import connected, run_segment
from seg_core.segment import run as run_local
from tests.clips import panning_frames, write_clip
from tests.conftest import synthetic_pair, write_pairs


@pytest.fixture(scope="module")
def ray_local():
    with connected(num_cpus=2, object_store_memory=200 * 2**20) as ray:
        yield ray
    import ray as ray_module

    assert not ray_module.is_initialized()


def hostile_png(path: Path) -> Path:
    """A PNG that claims 100000 x 100000 pixels (a decompression bomb) and holds a few bytes of them."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def pool_processes() -> set[int]:
    """The pids of this test run's pool actors: processes below this one (the local Ray's raylet
    starts them) whose title Ray sets to ``ray::MapWorker(...)``."""
    procs = {}
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) if entry.name.isdigit() else None
            title = (entry / "cmdline").read_bytes() if ppid is not None else b""
        except (OSError, IndexError, ValueError):
            continue
        if ppid is not None:
            procs[int(entry.name)] = (ppid, title)

    def ours(pid: int) -> bool:
        while pid > 1 and pid in procs:
            pid = procs[pid][0]
            if pid == os.getpid():
                return True
        return False

    return {pid for pid, (_, title) in procs.items() if title.startswith(b"ray::MapWorker") and ours(pid)}


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def segment(*args, capsys) -> tuple[int, str, str]:
    code = train_cli.main(["segment", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow  # Ray's start and actors that load three models
def test_segment_on_ray_writes_what_the_local_engine_writes(ray_local, weights_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths, as typed: the workers resolve them as the driver does
    photos = Path("photos")
    photos.mkdir()
    for i in range(4):
        Image.fromarray(synthetic_pair(40 + 8 * i, seed=i)[0]).save(photos / f"p{i}.png")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    hostile_png(photos / "bomb.png")
    clip = write_clip(Path("drive.mp4"), panning_frames(6))
    Path("fake.mp4").write_text("text, not a video")
    inputs = [photos, clip, Path("fake.mp4")]
    common = ["--weights", weights_dir, "--colour", "--overlay", "--every", "2"]

    code, local_out, _ = segment(*inputs, "--out", "local", *common, capsys=capsys)
    assert code == 2
    code, ray_out, ray_err = segment(*inputs, "--out", "ray", *common, "--engine", "ray", "--threads", "1",
                                     capsys=capsys)
    assert code == 2, ray_err
    local, on_ray = files(tmp_path / "local"), files(tmp_path / "ray")
    assert sorted(local) == sorted(on_ray) and "photos/p3_fcn_vgg16_overlay.png" in on_ray
    assert [name for name in local if local[name] != on_ray[name]] == []
    rows = list(csv.DictReader((tmp_path / "ray" / "failed.csv").open()))
    assert [Path(r["input"]).name for r in rows] == ["bomb.png", "broken.png", "fake.mp4"]
    assert "limit is 40 megapixels" in rows[0]["reason"] and "not an image" in rows[1]["reason"]
    assert ray_out.splitlines()[-1].split(" in ")[0] == local_out.splitlines()[-1].split(" in ")[0]
    assert "segmented 4 image(s) and 1 video(s) (6 frames)" in ray_out and "Traceback" not in ray_err

    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").rglob("*.png")}
    code, again, _ = segment(*inputs, "--out", "ray", *common, "--engine", "ray", capsys=capsys)
    assert code == 2 and "5 input(s) already done, skipped" in again  # 4 photos and the video
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").rglob("*.png")} == before


@pytest.mark.slow
def test_scores_on_ray_equal_the_local_engine_and_a_bad_pair_is_a_row(ray_local, weights_dir, tmp_path,
                                                                       monkeypatch, capsys):
    pairs = write_pairs(tmp_path / "pairs", n=7)
    args = ["scores", "--weights", str(weights_dir), "--data", str(pairs)]
    monkeypatch.setenv("SEG_CACHE_DIR", str(tmp_path / "cache-local"))
    assert train_cli.main([*args, "--out", str(tmp_path / "local.csv")]) == 0
    monkeypatch.setenv("SEG_CACHE_DIR", str(tmp_path / "cache-ray"))
    assert train_cli.main([*args, "--out", str(tmp_path / "ray.csv"), "--engine", "ray", "--threads", "1"]) == 0
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert len((tmp_path / "ray.csv").read_text().splitlines()) == 8
    assert list((tmp_path / "cache-ray").glob("scores-*.npz")), "a clean run is cached for the rerun"
    capsys.readouterr()

    (pairs / "9.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    code = train_cli.main([*args, "--out", str(tmp_path / "bad.csv"), "--engine", "ray", "--threads", "1"])
    stdout, stderr = capsys.readouterr()
    assert code == 2 and "1 file(s) could not be scored" in stdout and "Traceback" not in stderr
    assert (tmp_path / "bad.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    rows = list(csv.DictReader((tmp_path / "bad_failed.csv").open()))
    assert len(rows) == 1 and rows[0]["input"].endswith("9.jpg") and "not a readable image" in rows[0]["reason"]


@pytest.mark.slow
def test_an_actor_killed_mid_run_is_restarted_and_nothing_is_lost(ray_local, weights_dir, tmp_path):
    """SIGKILL to one actor of the pool while the rows come back; Ray restarts it and runs its batch
    again: every output equals the local engine's and no temp file is left."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(16):
        Image.fromarray(synthetic_pair(96, seed=i)[0]).save(photos / f"p{i:02d}.png")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    from seg_core.predictor import Predictor

    predictor = Predictor.from_dir(weights_dir)
    local = run_local([photos], tmp_path / "local", predictor, colour=True, with_overlay=True, progress=False)
    killed, seen = [], set()

    def on_row(path: str) -> None:  # on the driver, as each row comes back
        pids = pool_processes()
        seen.update(pids)
        if not killed:
            os.kill(min(pids), signal.SIGKILL)
            killed.append(min(pids))

    report = run_segment([photos], tmp_path / "ray", predictor, weights_dir, colour=True, with_overlay=True,
                         threads=1, batch_size=1, progress=False, on_row=on_row)
    assert killed and len(seen) >= 3, f"two actors, and the killed one restarted in a new process: {seen}"
    assert (report.images, [p.name for p, _ in report.failed]) == (local.images, ["broken.png"]) == (16, ["broken.png"])
    local_files, ray_files = files(tmp_path / "local"), files(tmp_path / "ray")
    assert sorted(ray_files) == sorted(local_files) and len(ray_files) == 16 * 4 * 3  # 3 models and the ensemble, 3 files each
    assert [name for name in local_files if local_files[name] != ray_files[name]] == []
    assert not [p for p in (tmp_path / "ray").rglob(".*")], "no temp file left"


def test_without_ray_installed_the_cli_says_how_to_get_it(weights_dir, tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    image = tmp_path / "a.png"
    Image.fromarray(synthetic_pair(32)[0]).save(image)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    code, _, stderr = segment(image, "--out", tmp_path / "out", "--weights", weights_dir, "--engine", "ray",
                              capsys=capsys)
    assert code == 2 and stderr.strip().splitlines()[-1] == 'error: --engine ray needs Ray: pip install -e ".[ray]"'


def test_address_needs_the_ray_engine(weights_dir, tmp_path, capsys):
    code, _, stderr = segment(tmp_path, "--out", tmp_path / "out", "--weights", weights_dir, "--address", "auto",
                              capsys=capsys)
    assert code == 2 and "--address needs --engine ray" in stderr


@pytest.mark.slow
def test_masks_of_the_shipped_int8_models_match_across_engines(ray_local, tmp_path, real_data):
    """The int8 OpenVINO path (the default) on three real val photos: the same PNGs on both engines."""
    from seg_core.data import list_pairs, read_pair
    from seg_core.predictor import Predictor

    weights = Path(train_cli.__file__).resolve().parent / "weights"
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in list_pairs(real_data / "val")[:3]:
        Image.fromarray(read_pair(path)[0]).save(photos / f"{path.stem}.png")
    predictor = Predictor.from_dir(weights, threads=1)
    assert set(predictor.backends().values()) == {"OpenVINO int8"}
    run_local([photos], tmp_path / "local", predictor, names=("unet", "ensemble"), progress=False)
    run_segment([photos], tmp_path / "ray", predictor, weights, names=("unet", "ensemble"), threads=1, progress=False)
    local, on_ray = files(tmp_path / "local"), files(tmp_path / "ray")
    assert len(local) == 6 and local == on_ray
    assert np.asarray(Image.open(tmp_path / "ray" / "photos" / f"{list_pairs(real_data / 'val')[0].stem}_unet.png")).max() < 19
