"""seg_core.extra_models: a user's own checkpoint, from a file or hf://, checked before it is loaded.

The Hub is replaced at ``huggingface_hub.snapshot_download``; checkpoints are the random-weight
64x64 ones of the ``weights_dir`` fixture.
"""

from __future__ import annotations

import json

import pytest
import torch

from seg_core.checkpoint import CONFIG_KEY, HUB_WEIGHTS, read_tensors, save_tensors
from seg_core.extra_models import ExtraModelError, load_extra_model


def test_a_local_checkpoint_of_one_of_the_three_archs_loads(weights_dir):
    extra = load_extra_model(str(weights_dir / "fcn_vgg16.safetensors"), public=False)
    assert extra.runner.config.arch == "fcn_vgg16" and extra.label == "FCN-VGG16 (fcn_vgg16.safetensors)"
    assert str(weights_dir) not in extra.label
    assert extra.runner.masks(torch.zeros(1, 3, 64, 64).numpy(), (64, 64)).shape == (1, 64, 64)


def test_refusals_are_one_sentence_without_server_paths(weights_dir, tmp_path):
    pickle_file = tmp_path / "model.pt"
    pickle_file.write_bytes(b"\x80\x04 a pickle")
    with pytest.raises(ExtraModelError, match=r"model.pt is not a .safetensors checkpoint"):
        load_extra_model(str(pickle_file), public=False)
    with pytest.raises(ExtraModelError, match="no checkpoint gone.safetensors"):
        load_extra_model(str(tmp_path / "gone.safetensors"), public=False)
    with pytest.raises(ExtraModelError, match=r"unet.safetensors is \d+ MiB; the limit is 1 MiB"):
        load_extra_model(str(weights_dir / "unet.safetensors"), public=False, max_bytes=2**20)

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes((weights_dir / "unet.safetensors").read_bytes()[:1000])
    with pytest.raises(ExtraModelError) as err:
        load_extra_model(str(broken), public=False)
    assert str(err.value).startswith("cannot use broken.safetensors: it is not a valid safetensors checkpoint")
    assert str(tmp_path) not in str(err.value)

    # Another architecture than the three: its config names it, and it is refused.
    tensors, meta = read_tensors(weights_dir / "unet.safetensors")
    cfg = json.loads(meta[CONFIG_KEY])
    cfg["arch"] = "deeplabv3"
    save_tensors(tensors, tmp_path / "deeplab.safetensors", {**meta, CONFIG_KEY: json.dumps(cfg)})
    with pytest.raises(ExtraModelError, match="cannot use deeplab.safetensors: it has an invalid model config: unknown arch 'deeplabv3'"):
        load_extra_model(str(tmp_path / "deeplab.safetensors"), public=False)


def test_a_hub_checkpoint_is_downloaded_alone_at_its_revision(hub):
    extra = load_extra_model("hf://lab/unet-ft@abc123", public=False)
    assert extra.runner.config.arch == "unet" and extra.label == "U-Net (hf://lab/unet-ft@abc123)"
    assert hub == [("lab/unet-ft", {"revision": "abc123", "allow_patterns": [HUB_WEIGHTS]})]
    with pytest.raises(ExtraModelError, match="could not download hf://lab/other: RepositoryNotFoundError"):
        load_extra_model("hf://lab/other", public=False)


def test_public_mode_adds_only_the_models_the_deployer_listed(hub, weights_dir, monkeypatch):
    listed = str(weights_dir / "fcn_resnet50.safetensors")
    monkeypatch.setenv("SEG_EXTRA_MODELS", f"{listed}, hf://lab/unet-ft")
    monkeypatch.setenv("SEG_PUBLIC", "1")
    with pytest.raises(ExtraModelError) as err:
        load_extra_model(str(weights_dir / "unet.safetensors"))  # a path a visitor typed
    assert str(err.value) == ("unet.safetensors is not offered here; this server adds only the models it lists "
                              "(offered: fcn_resnet50.safetensors, hf://lab/unet-ft)")
    assert "SEG_EXTRA_MODELS" not in str(err.value)  # visitors are not told how the server is configured
    with pytest.raises(ExtraModelError, match="is not offered here"):
        load_extra_model("hf://lab/unet-ft@other-revision")
    assert hub == []  # nothing was fetched for a refused source
    assert load_extra_model("fcn_resnet50.safetensors").runner.config.arch == "fcn_resnet50"  # by its shown name
    assert load_extra_model("hf://lab/unet-ft").runner.config.arch == "unet"
    monkeypatch.setenv("SEG_EXTRA_MODELS", "")
    with pytest.raises(ExtraModelError, match=r"\(offered: none\)"):
        load_extra_model("hf://lab/unet-ft")
