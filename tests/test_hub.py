"""The Hub round trip a new user follows: push a trained model, pull it by name, serve it.

The Hub is replaced by a local folder: ``HfApi.create_repo`` / ``upload_folder`` copy into
``remote/<org>/<name>``, and the "download" lays that folder out exactly as huggingface_hub's cache
does (``models--org--name/blobs/<sha256>``, ``snapshots/<commit>/<file>`` symlinks, ``refs/main``).
The real ``snapshot_download`` then resolves ``hf://org/name`` from that cache with
``HF_HUB_OFFLINE`` on, so nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import constants as hf_constants

from seg_core.checkpoint import HUB_WEIGHTS, CheckpointError, load_model, push_to_hub, save_model
from seg_core.config import ModelConfig
from seg_core.inference import predict
from seg_core.models import build_model
from seg_core.predictor import Predictor
from seg_core.runners import TorchRunner

REPO = "cityscapes-lab/unet-demo"


@pytest.fixture
def trained():
    """A model that looks trained: BatchNorm statistics set, metrics in its config.

    ``write_hub_folder`` stores fp16 weights, so the weights are first rounded to values fp16
    holds exactly; the pulled model must then give the very same outputs.
    """
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="unet", input_size=(64, 64), training={"epochs": 2},
                                    metrics={"val_miou": 0.31}))
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    return model.eval()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A local Hub: pushes land in ``remote/``; ``pull(repo_id)`` fills the HF cache from it."""
    remote, cache = tmp_path / "remote", tmp_path / "hf_cache"

    def create_repo(self, repo_id, *, private=False, exist_ok=False, **kwargs):
        (remote / repo_id).mkdir(parents=True, exist_ok=exist_ok)
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        assert (remote / repo_id).is_dir(), "upload_folder before create_repo"
        shutil.copytree(folder_path, remote / repo_id, dirs_exist_ok=True)

    def pull(repo_id: str, ref: str = "main") -> str:
        """What a download leaves in the cache; returns the commit hash."""
        src = remote / repo_id
        storage = cache / f"models--{repo_id.replace('/', '--')}"
        files = sorted(p for p in src.rglob("*") if p.is_file())
        commit = hashlib.sha1(b"".join(p.read_bytes() for p in files)).hexdigest()
        for path in files:
            data = path.read_bytes()
            blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
            link = storage / "snapshots" / commit / path.relative_to(src)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
        (storage / "refs").mkdir(exist_ok=True)
        (storage / "refs" / ref).write_text(commit)
        return commit

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    pull.remote = remote
    return pull


def test_push_pull_serve(trained, hub, tmp_path):
    url = push_to_hub(trained, REPO, card="# U-Net demo\n\nTrained on Cityscapes pairs.\n")
    assert url == f"https://huggingface.co/{REPO}"
    pushed = hub.remote / REPO
    assert sorted(p.name for p in pushed.iterdir()) == ["README.md", "config.json", HUB_WEIGHTS]
    assert (pushed / "README.md").read_text().startswith("# U-Net demo")

    commit = hub(REPO)
    pulled = load_model(f"hf://{REPO}", arch="unet")
    assert pulled.config.metrics == {"val_miou": 0.31} and pulled.config.input_size == (64, 64)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(pulled(x), trained(x))
    pinned = load_model(f"hf://{REPO}@{commit}")
    with torch.no_grad():
        assert torch.equal(pinned(x), trained(x))

    # Serving it: a pulled model saved as weights/unet.safetensors is what the apps load.
    weights = tmp_path / "weights"
    save_model(pulled, weights / "unet.safetensors", half=True)
    served = Predictor.from_dir(weights)
    assert list(served.models) == ["unet"] and set(served.missing) == {"fcn_vgg16", "fcn_resnet50"}
    photo = torch.rand(40, 72, 3).mul(255).to(torch.uint8).numpy()
    assert (served.predict(photo)["unet"].mask == predict(TorchRunner(trained), photo)).all()


def test_pull_of_unknown_repo_or_revision_is_a_clear_error(trained, hub):
    push_to_hub(trained, REPO)
    hub(REPO)
    with pytest.raises(CheckpointError, match="could not download hf://cityscapes-lab/other"):
        load_model("hf://cityscapes-lab/other")
    with pytest.raises(CheckpointError, match=f"could not download hf://{REPO}@v2"):
        load_model(f"hf://{REPO}@v2")


def test_pushed_repo_does_not_depend_on_the_local_checkout(trained, hub, tmp_path):
    """The Hub folder alone rebuilds the model: load it from a plain copy, no seg_core paths involved."""
    push_to_hub(trained, REPO)
    copy = shutil.copytree(hub.remote / REPO, tmp_path / "elsewhere")
    loaded = load_model(Path(copy))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x))
