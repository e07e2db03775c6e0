"""Shared fixtures: synthetic pairs, tiny random-weight checkpoints of the three archs, real data path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seg_core import settings
from seg_core.registry import ARCH_NAMES

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
torch.set_num_threads(int(os.environ.get("SEG_TEST_THREADS", "1")))

ROOT = Path(__file__).resolve().parent.parent
REAL_DATA = settings.DATA_ROOT
ARCHS = ARCH_NAMES


def synthetic_pair(h: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A photo and a colour label made of random rectangles of palette colours."""
    from seg_core.palette import COLORS

    rng = np.random.default_rng(seed)
    label = np.zeros((h, h), dtype=np.uint8)
    for _ in range(6):
        y0, x0 = rng.integers(0, h, 2)
        label[y0 : y0 + h // 2, x0 : x0 + h // 2] = rng.integers(0, len(COLORS))
    photo = (COLORS[label].astype(np.int16) // 2 + rng.integers(0, 60, (h, h, 3))).clip(0, 255).astype(np.uint8)
    return photo, label


def write_pairs(folder: Path, n: int = 6, h: int = 64, quality: int = 95) -> Path:
    from seg_core.palette import colorize

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo, label = synthetic_pair(h, seed=i)
        Image.fromarray(np.concatenate([photo, colorize(label)], axis=1)).save(folder / f"{i + 1}.jpg", quality=quality)
    return folder


@pytest.fixture
def pairs_dir(tmp_path) -> Path:
    return write_pairs(tmp_path / "pairs")


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> Path:
    """Random-weight checkpoints of the three archs at input size 64x64, as ``weights/`` lays them out."""
    from seg_core.checkpoint import save_model
    from seg_core.models import build_model

    folder = tmp_path_factory.mktemp("weights")
    for arch in ARCHS:
        torch.manual_seed(0)
        save_model(build_model(arch=arch, input_size=(64, 64)), folder / f"{arch}.safetensors", half=True)
    return folder


@pytest.fixture
def real_data() -> Path:
    if not (REAL_DATA / "val").is_dir():
        pytest.skip(f"real data not found at {REAL_DATA} (the Cityscapes pairs are not redistributed)")
    return REAL_DATA


def refuse_hub_downloads(monkeypatch, error: type, message: str) -> None:
    """Make ``huggingface_hub.snapshot_download`` raise ``error`` (an HfHubHTTPError kind) as the Hub
    does, with a 404 response; the apps' cached download is cleared first (the test clears it after)."""
    import httpx2
    import huggingface_hub

    from seg_core import served_weights

    def snapshot_download(repo_id, **kwargs):
        request = httpx2.Request("GET", f"https://huggingface.co/api/models/{repo_id}")
        raise error(message, response=httpx2.Response(404, request=request))

    served_weights._download.cache_clear()
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)


@pytest.fixture
def env(monkeypatch, weights_dir, tmp_path):
    """The app pointed at the test checkpoints and a folder of synthetic val pairs."""
    data = write_pairs(tmp_path / "val")
    monkeypatch.setenv("SEG_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("SEG_DATA_DIR", str(data))
    return data


@pytest.fixture
def hub(monkeypatch, tmp_path, weights_dir):
    """``huggingface_hub.snapshot_download`` replaced: ``lab/unet-ft`` holds a model.safetensors (a
    copy of the test U-Net), ``lab/offline`` cannot be reached, no other repo exists. Returns the calls."""
    import shutil

    import httpx2
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    from seg_core.checkpoint import HUB_WEIGHTS

    calls = []

    def snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        if repo_id == "lab/offline":
            raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache and outgoing traffic "
                                          "has been disabled.")
        if repo_id != "lab/unet-ft":
            request = httpx2.Request("GET", f"https://huggingface.co/api/models/{repo_id}")
            raise RepositoryNotFoundError("404 Repository Not Found", response=httpx2.Response(404, request=request))
        folder = tmp_path / "snapshot"
        folder.mkdir(exist_ok=True)
        shutil.copy(weights_dir / "unet.safetensors", folder / HUB_WEIGHTS)
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls
