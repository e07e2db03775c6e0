"""seg_core.weight_average and ``train_cli.py interpolate``: WiSE-FT between two checkpoints of one model."""

from __future__ import annotations

import json

import pytest
import torch

import train_cli
from seg_core.checkpoint import (
    CONFIG_KEY,
    CheckpointError,
    load_model,
    read_config,
    read_tensors,
    save_model,
    save_tensors,
)
from seg_core.config import ModelConfig
from seg_core.files import file_sha256
from seg_core.models import build_model
from seg_core.weight_average import interpolate_checkpoints, interpolate_states


def _model(seed: int, **overrides):
    torch.manual_seed(seed)
    cfg = dict(arch="unet", encoder="mobilenet_v2", input_size=(64, 64), training={"run": seed},
               metrics={"miou": 0.1 * seed})
    model = build_model(ModelConfig(**{**cfg, **overrides}))
    model.train()
    with torch.no_grad():  # distinct BatchNorm running stats and counters in each model
        for _ in range(seed):
            model(torch.randn(2, 3, 64, 64))
    return model.eval()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wise")
    a = save_model(_model(1), folder / "shipped.safetensors", half=True)
    b = save_model(_model(2), folder / "robust.safetensors", half=True)
    return a, b


def _states(path):
    return read_tensors(path)[0]


def test_endpoints_are_the_inputs_bit_for_bit(pair, tmp_path):
    a, b = pair
    for alpha, source in ((0.0, a), (1.0, b)):
        out = tmp_path / f"mix{alpha}.safetensors"
        interpolate_checkpoints(a, b, alpha, out)
        mixed, want = _states(out), _states(source)
        for name, tensor in want.items():
            if tensor.is_floating_point():
                assert mixed[name].dtype == tensor.dtype and torch.equal(mixed[name], tensor), name


def test_half_way_is_the_mean_and_integer_buffers_come_from_b(pair, tmp_path):
    a, b = pair
    out = tmp_path / "mix.safetensors"
    interpolate_checkpoints(a, b, 0.5, out)
    mixed, ta, tb = _states(out), _states(a), _states(b)
    counters = [n for n in tb if n.endswith("num_batches_tracked")]
    assert counters and all(torch.equal(mixed[n], tb[n]) and not torch.equal(ta[n], tb[n]) for n in counters)
    stats = [n for n in tb if n.endswith("running_var")]
    assert stats and not torch.equal(ta[stats[0]], tb[stats[0]])
    for name, tensor in tb.items():
        if tensor.is_floating_point():
            want = ((ta[name].float() + tensor.float()) / 2).half()
            assert mixed[name].dtype == torch.float16
            torch.testing.assert_close(mixed[name], want, atol=1e-3, rtol=1e-3, msg=name)
    load_model(out)  # a loadable model


def test_the_config_is_b_with_a_truthful_record(pair, tmp_path):
    a, b = pair
    out = tmp_path / "mix.safetensors"
    interpolate_checkpoints(a, b, 0.3, out)
    cfg, cfg_b = read_config(out), read_config(b)
    assert cfg.metrics == {}
    record = cfg.training.pop("interpolated")
    assert cfg.training == cfg_b.training == {"run": 2}
    assert record == {"alpha": 0.3, "method": "WiSE-FT",
                      "from": {"name": "shipped.safetensors", "sha256": file_sha256(a)},
                      "to": {"name": "robust.safetensors", "sha256": file_sha256(b)}}


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_0_1_is_refused(pair, tmp_path, alpha):
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
        interpolate_checkpoints(*pair, alpha, tmp_path / "mix.safetensors")
    assert not (tmp_path / "mix.safetensors").exists()


@pytest.mark.parametrize("overrides, field", [({"encoder": "resnet18"}, "encoder"),
                                              ({"arch": "fcn_vgg16", "encoder": "vgg16_bn"}, "arch"),
                                              ({"num_classes": 3, "class_names": ("a", "b", "c")}, "num_classes")])
def test_another_model_is_refused(pair, tmp_path, overrides, field):
    # Only the config differs (one dummy tensor): the refusal comes before any tensor is compared.
    cfg = json.loads(read_config(pair[1]).to_json()) | overrides
    other = save_tensors({"w": torch.zeros(1)}, tmp_path / "other.safetensors",
                         {CONFIG_KEY: ModelConfig(**cfg).to_json(), "format": "pt"})
    with pytest.raises(CheckpointError, match=f"not the same model: {field} is"):
        interpolate_checkpoints(pair[0], other, 0.5, tmp_path / "mix.safetensors")


def test_different_shapes_are_refused():
    with pytest.raises(CheckpointError, match="has shape"):
        interpolate_states({"w": torch.zeros(2, 3)}, {"w": torch.zeros(3, 2)}, 0.5)
    with pytest.raises(CheckpointError, match="different tensors"):
        interpolate_states({"w": torch.zeros(2)}, {"v": torch.zeros(2)}, 0.5)


def test_cli_writes_the_mix_and_refuses_in_one_line(pair, tmp_path, capsys):
    a, b = pair
    out = tmp_path / "mix.safetensors"
    assert train_cli.main(["interpolate", "--a", str(a), "--b", str(b), "--alpha", "0.7", "--out", str(out)]) == 0
    assert "metrics not measured yet" in capsys.readouterr().out
    assert json.loads(read_config(out).to_json())["training"]["interpolated"]["alpha"] == 0.7
    assert train_cli.main(["interpolate", "--a", str(a), "--b", str(b), "--alpha", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "alpha must be a number in [0, 1]" in err
    assert train_cli.main(["interpolate", "--a", str(a), "--b", str(tmp_path / "none.safetensors"),
                           "--alpha", "0.5", "--out", str(out)]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_eval_record_writes_the_measured_metrics_into_the_mix(pair, tmp_path, pairs_dir, capsys):
    out = tmp_path / "mix.safetensors"
    interpolate_checkpoints(*pair, 0.5, out)
    before = read_tensors(out)[0]
    assert train_cli.main(["eval", "--weights", str(out), "--data", str(pairs_dir), "--record",
                           "--json", str(tmp_path / "m.json")]) == 0
    measured = json.loads((tmp_path / "m.json").read_text())
    cfg = read_config(out)
    assert cfg.metrics["miou"] == measured["miou"] and cfg.metrics["split"] == pairs_dir.name
    assert cfg.training["interpolated"]["alpha"] == 0.5  # the record stays
    after = read_tensors(out)[0]
    assert all(torch.equal(after[k], v) for k, v in before.items())
    capsys.readouterr()
    assert train_cli.main(["eval", "--weights", str(out), "--data", str(pairs_dir), "--record", "--limit", "2"]) == 2
    assert "--record needs one .safetensors checkpoint" in capsys.readouterr().err
