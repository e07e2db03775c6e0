"""Folder scores streamed a chunk at a time, resumed after an interruption, and their cache key.

A counting runner tells how many images a model had segmented when each chunk's scores came out:
the first rows exist before the rest of the folder is scored, and a run stopped midway leaves
only chunks, never a file that reads as the whole folder.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from seg_core import ray_engine
from seg_core.data import list_pairs, load_split
from seg_core.folder_scores import cache_path, folder_scores, iter_folder_scores, read_cached, rows, score_split
from seg_core.models import build_model
from seg_core.palette import CLASS_NAMES
from seg_core.predictor import Predictor
from seg_core.runners import TorchRunner
from tests.conftest import write_pairs


class Killed(Exception):
    """The process scoring a chunk dies."""


class Counted:
    """A runner that records how many images it segments per call (and can fail on a later call,
    as a process killed mid-chunk would)."""

    def __init__(self, runner, seen: list[int], fail_after: int | None = None):
        self._runner, self._seen, self._fail_after = runner, seen, fail_after

    def __getattr__(self, name):
        return getattr(self._runner, name)

    def _count(self, x) -> None:
        if self._fail_after is not None and sum(self._seen) + len(x) > self._fail_after:
            raise Killed
        self._seen.append(len(x))

    def masks(self, x, *args, **kwargs):
        self._count(x)
        return self._runner.masks(x, *args, **kwargs)

    def masks_and_probabilities(self, x, *args, **kwargs):
        self._count(x)
        return self._runner.masks_and_probabilities(x, *args, **kwargs)


def counted(weights_dir, fail_after: int | None = None) -> tuple[Predictor, list[int]]:
    """The test checkpoints, U-Net counting the images it segments."""
    pred, seen = Predictor.from_dir(weights_dir), []
    pred.models["unet"] = Counted(pred.models["unet"], seen, fail_after)
    return pred, seen


def unstreamed(pred, folder) -> dict:
    """The whole folder in one ``score_split`` call, as ``folder_scores`` scored it before streaming."""
    images, labels = load_split(folder)
    return {"images": [p.name for p in list_pairs(folder)],
            **score_split(pred.models, images, labels, members=pred.ensemble())}


def assert_same_scores(got: dict, want: dict) -> None:
    assert got["images"] == want["images"] and got["models"] == want["models"]
    assert np.array_equal(got["fringe"], want["fringe"])
    assert np.allclose(got["disagreement"], want["disagreement"])
    for name in want["models"]:
        assert np.array_equal(got["matrices"][name], want["matrices"][name]), name
    assert rows(got, CLASS_NAMES) == rows(want, CLASS_NAMES)


def test_scores_stream_chunk_by_chunk_and_end_as_the_unstreamed_scores(weights_dir, pairs_dir, tmp_path):
    pred, seen = counted(weights_dir)
    steps = [(part["done"], part["total"], len(part["images"]), sum(seen))
             for part in iter_folder_scores(pred, pairs_dir, cache_dir=tmp_path, chunk=2)]
    # each chunk's rows come out before the next images are segmented
    assert steps == [(2, 6, 2, 2), (4, 6, 4, 4), (6, 6, 6, 6)]
    final = read_cached(cache_path("scores", pred, pairs_dir, cache_dir=tmp_path))
    assert final is not None and not list(tmp_path.glob("*.parts"))  # the chunks are folded into it
    assert_same_scores(final, unstreamed(pred, pairs_dir))
    seen.clear()
    again = list(iter_folder_scores(pred, pairs_dir, cache_dir=tmp_path, chunk=2))
    assert len(again) == 1 and again[0]["cached"] and again[0]["done"] == 6 and not seen


def test_an_interrupted_run_leaves_no_whole_folder_file_and_the_next_resumes(weights_dir, pairs_dir, tmp_path):
    pred, seen = counted(weights_dir)
    path = cache_path("scores", pred, pairs_dir, cache_dir=tmp_path)
    stream = iter_folder_scores(pred, pairs_dir, cache_dir=tmp_path, chunk=2)
    assert next(stream)["done"] == 2
    stream.close()  # the visitor left after the first chunk
    assert read_cached(path) is None and not list(tmp_path.glob("scores-*.npz"))

    killed, _ = counted(weights_dir, fail_after=1)  # killed while the second chunk is scored
    with pytest.raises(Killed):
        folder_scores(killed, pairs_dir, cache_dir=tmp_path, chunk=2)
    assert read_cached(path) is None and not list(tmp_path.glob("scores-*.npz"))

    seen.clear()
    done = []
    scores = folder_scores(pred, pairs_dir, cache_dir=tmp_path, chunk=2, on_batch=lambda d, n: done.append(d))
    assert sum(seen) == 4 and done == [2, 4, 6]  # the first chunk was not scored again
    assert not scores["cached"] and read_cached(path) is not None
    assert_same_scores(scores, unstreamed(pred, pairs_dir))


def test_a_damaged_chunk_is_scored_again(weights_dir, pairs_dir, tmp_path):
    pred, seen = counted(weights_dir)
    stream = iter_folder_scores(pred, pairs_dir, cache_dir=tmp_path, chunk=2)
    next(stream)
    stream.close()
    (chunk,) = tmp_path.glob("scores-*.parts/*.npz")
    chunk.write_bytes(chunk.read_bytes()[:40])  # a disk that lost its end
    seen.clear()
    scores = folder_scores(pred, pairs_dir, cache_dir=tmp_path, chunk=2)
    assert sum(seen) == 6
    seen.clear()
    assert_same_scores(scores, unstreamed(pred, pairs_dir))


def test_the_cache_key_follows_the_data_files_times(weights_dir, pairs_dir, tmp_path):
    pred = Predictor.from_dir(weights_dir)
    before = cache_path("scores", pred, pairs_dir, cache_dir=tmp_path)
    assert cache_path("scores", pred, pairs_dir, cache_dir=tmp_path) == before
    one = pairs_dir / "3.jpg"
    stat = one.stat()
    os.utime(one, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten: same name and size
    assert cache_path("scores", pred, pairs_dir, cache_dir=tmp_path) != before
    assert cache_path("scores", pred, pairs_dir, tta="flip", cache_dir=tmp_path) != before
    assert cache_path("confidence", pred, pairs_dir, cache_dir=tmp_path).suffix == ".json"
    with pytest.raises(ValueError, match="unknown kind"):
        cache_path("masks", pred, pairs_dir)


def test_the_cache_key_follows_an_openvino_bin_and_a_model_held_in_memory(pairs_dir, tmp_path):
    xml, binary = tmp_path / "unet.int8.xml", tmp_path / "unet.int8.bin"
    xml.write_text("<net/>")
    binary.write_bytes(b"\x01" * 64)
    exported = SimpleNamespace(models={"unet": SimpleNamespace(path=xml, label="OpenVINO int8", meta={})},
                               ensemble=dict)
    before = cache_path("scores", exported, pairs_dir, cache_dir=tmp_path)
    binary.write_bytes(b"\x02" * 64)  # new weights, the same graph
    assert cache_path("scores", exported, pairs_dir, cache_dir=tmp_path) != before

    def in_memory(seed: int) -> SimpleNamespace:
        torch.manual_seed(seed)
        return SimpleNamespace(models={"unet": TorchRunner(build_model(arch="unet", input_size=(64, 64)))},
                               ensemble=dict)

    assert (cache_path("scores", in_memory(0), pairs_dir, cache_dir=tmp_path)
            == cache_path("scores", in_memory(0), pairs_dir, cache_dir=tmp_path))
    assert (cache_path("scores", in_memory(0), pairs_dir, cache_dir=tmp_path)
            != cache_path("scores", in_memory(1), pairs_dir, cache_dir=tmp_path))


def test_ray_scores_share_the_local_cache_and_load_the_drivers_backend(weights_dir, tmp_path, monkeypatch):
    """Ray's actors run in this process here (a fake pool): the cache the local engine writes is the
    one Ray reads, and with ``--backend pytorch`` the actors score with PyTorch too, not with the
    ONNX export beside the checkpoint that "auto" would pick (and then cache under PyTorch's key)."""
    from seg_core.checkpoint import load_model
    from seg_core.export import export_onnx

    folder = tmp_path / "weights"
    shutil.copytree(weights_dir, folder)
    export_onnx(load_model(folder / "unet.safetensors"), folder / "unet.onnx", source=folder / "unet.safetensors")
    pairs = write_pairs(tmp_path / "pairs", n=3)
    actors = []

    @contextmanager
    def connected(address, **kwargs):
        yield None

    def pool(ray, rows, worker, kwargs, n_actors, threads, batch_size):
        actor = worker(**kwargs)
        actors.append(actor)
        batch = {"index": np.array([r["index"] for r in rows]), "path": np.array([r["path"] for r in rows])}
        return SimpleNamespace(iter_batches=lambda **_: iter([actor(batch)]))

    monkeypatch.setattr(ray_engine, "connected", connected)
    monkeypatch.setattr(ray_engine, "layout", lambda ray, threads: (1, 1))
    monkeypatch.setattr(ray_engine, "_pool", pool)
    driver = Predictor.from_dir(folder, backend="pytorch")
    on_ray, failed = ray_engine.run_scores(driver, folder, pairs, cache_dir=tmp_path / "cache", progress=False)
    assert not failed and actors
    assert {n: r.label for n, r in actors[0].predictor.models.items()} == {n: r.label for n, r in driver.models.items()}
    local = folder_scores(driver, pairs, cache_dir=tmp_path / "cache")
    assert local["cached"]  # the file Ray wrote, found by the local engine
    assert_same_scores(local, {**unstreamed(driver, pairs), "images": on_ray["images"]})
    assert ray_engine.run_scores(driver, folder, pairs, cache_dir=tmp_path / "cache")[0]["cached"]
    assert Predictor.from_dir(folder).models["unet"].label != driver.models["unet"].label  # "auto" takes the export
    assert (cache_path("scores", Predictor.from_dir(folder), pairs, cache_dir=tmp_path / "cache")
            != cache_path("scores", driver, pairs, cache_dir=tmp_path / "cache"))
