"""seg_core.checkpoint: safetensors checkpoints with the config inside; no pickle anywhere."""

from __future__ import annotations

import json
import re

import huggingface_hub
import pytest
import torch
from safetensors.torch import save_file

from seg_core.checkpoint import (
    CheckpointError,
    load_model,
    read_config,
    read_tensors,
    save_model,
    write_hub_folder,
)
from seg_core.config import ModelConfig
from seg_core.models import build_model
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="unet", input_size=(64, 96), mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25),
                                    training={"epochs": 3}, metrics={"val_miou": 0.42}))
    # Non-trivial BatchNorm statistics, so that buffers must round-trip too.
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 96))
    return model.eval()


@pytest.fixture(scope="module")
def x():
    return torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def ckpt(unet, tmp_path):
    return save_model(unet, tmp_path / "unet.safetensors")


def test_round_trip_fp32_identical(unet, ckpt, x):
    loaded = load_model(ckpt)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), unet(x))
    # no temp file left behind by the atomic write
    assert [p.name for p in ckpt.parent.iterdir()] == ["unet.safetensors"]


def test_round_trip_half_close(unet, tmp_path, x):
    path = save_model(unet, tmp_path / "half.safetensors", half=True)
    tensors, _ = read_tensors(path)
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float16}
    loaded = load_model(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    with torch.no_grad():
        a, b = loaded(x), unet(x)
    assert not torch.equal(a, b)  # it really was rounded
    assert torch.allclose(a, b, atol=0.05 * b.abs().max().item())
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.95


def test_config_rebuilds_the_model(unet, ckpt):
    cfg = read_config(ckpt)
    assert cfg.arch == "unet" and cfg.encoder == "resnet18"
    assert cfg.input_size == (64, 96)
    assert cfg.mean == (0.5, 0.4, 0.3) and cfg.std == (0.2, 0.3, 0.25)
    assert cfg.training == {"epochs": 3} and cfg.metrics == {"val_miou": 0.42}
    assert load_model(ckpt).config == unet.config


def test_fcn_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(arch="fcn_resnet50", input_size=(64, 64)).eval()
    with torch.no_grad():
        model.net.head.score8.weight.normal_()  # so the skip path matters for the comparison
    path = save_model(model, tmp_path / "fcn.safetensors")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(load_model(path, arch="fcn_resnet50")(x), model(x))


def test_hub_folder(unet, tmp_path, x):
    folder = write_hub_folder(unet, tmp_path / "repo", card="# my card\n")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["arch"] == "unet"
    assert (folder / "README.md").read_text() == "# my card\n"
    loaded = load_model(folder)
    with torch.no_grad():
        assert torch.allclose(loaded(x), unet(x), atol=0.05 * unet(x).abs().max().item())


def test_hf_uri_goes_through_snapshot_download(unet, tmp_path, monkeypatch):
    folder = write_hub_folder(unet, tmp_path / "snap")
    calls = []

    def fake_snapshot_download(repo_id, revision=None, **kwargs):
        calls.append((repo_id, revision))
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    assert load_model("hf://org/name").config.arch == "unet"
    assert load_model("hf://org/name@v1", arch="unet").config.input_size == (64, 96)
    assert calls == [("org/name", None), ("org/name", "v1")]


def test_hf_download_failure(monkeypatch):
    def failing(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing)
    with pytest.raises(CheckpointError, match="could not download hf://org/name"):
        load_model("hf://org/name")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path)  # a folder without model.safetensors


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "pickle"])
def test_corrupt_file(ckpt, kind):
    raw = ckpt.read_bytes()
    content = {
        "garbage": b"\x00\x01 definitely not safetensors " * 20,
        "empty": b"",
        "truncated": raw[: len(raw) // 2],
        "pickle": b"\x80\x04\x95PK\x03\x04 a torch.save zip would look like this",
    }[kind]
    ckpt.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a valid safetensors checkpoint"):
        load_model(ckpt)


def test_safetensors_without_config(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="no model config"):
        load_model(path)


def test_invalid_config(unet, tmp_path):
    state = {k: v.contiguous() for k, v in unet.state_dict().items()}
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path), metadata={"config": "{not json"})
    with pytest.raises(CheckpointError, match="invalid model config"):
        load_model(path)
    save_file(state, str(path), metadata={"config": json.dumps({"arch": "segformer", "encoder": "resnet18"})})
    with pytest.raises(CheckpointError, match="unknown arch 'segformer'"):
        load_model(path)


def test_weights_do_not_match_config(unet, tmp_path):
    cfg = ModelConfig(arch="fcn_resnet50")  # the config says FCN, the tensors are a U-Net's
    path = tmp_path / "mismatch.safetensors"
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(path), metadata={"config": cfg.to_json()})
    with pytest.raises(CheckpointError, match="does not match a fcn_resnet50/resnet50 model"):
        load_model(path)


def test_arch_guard(ckpt):
    with pytest.raises(CheckpointError, match="holds a unet model, not fcn_vgg16"):
        load_model(ckpt, arch="fcn_vgg16")


def test_checkpoint_errors_are_one_line(ckpt):
    ckpt.write_bytes(b"junk")
    with pytest.raises(CheckpointError) as info:
        load_model(ckpt)
    assert "\n" not in str(info.value) and str(ckpt) in str(info.value)


def test_no_pickle_anywhere():
    """No module of the project deserialises with pickle (``torch.load`` is pickle)."""
    # The patterns are assembled so that this file does not match itself.
    banned = [
        r"\btorch\s*\.\s*" + "load" + r"\s*\(",
        r"\bimport\s+" + "pickle",
        r"\bfrom\s+" + "pickle" + r"\s+import",
        r"\b(c?)" + "pickle" + r"\s*\.\s*(load|loads|Unpickler)\b",
        r"\bimport\s+(dill|joblib|cloudpickle)\b",
        r"allow_" + r"pickle\s*=\s*True",
        r"weights_only\s*=\s*" + "False",
    ]
    skip = {".venv", ".git", "runs", "__pycache__", "node_modules"}
    files = [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]
    assert any(p.name == "checkpoint.py" for p in files) and len(files) > 10
    offenders = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in files
        for pattern in banned
        for m in [re.search(pattern, p.read_text(errors="replace"))]
        if m
    ]
    assert not offenders, offenders


def test_a_failed_write_leaves_the_old_checkpoint_intact(unet, ckpt, monkeypatch):
    import seg_core.checkpoint as checkpoint

    before = ckpt.read_bytes()

    def crash_midway(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", crash_midway)
    with pytest.raises(OSError):
        save_model(unet, ckpt)
    assert ckpt.read_bytes() == before  # written to a temp file, renamed only when complete
    assert [p.name for p in ckpt.parent.iterdir()] == [ckpt.name]  # and the temp file is gone
    load_model(ckpt)
