"""seg_core.models and seg_core.heads: the three architectures and our FCN-8s head."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest
import torch
from torch import nn

from seg_core.config import ModelConfig
from seg_core.heads import FCN8s, FCN8sHead, bilinear_kernel, upsample_layer
from seg_core.models import SegmentationNetwork, build_model, count_parameters
from seg_core.registry import ARCH_NAMES, ARCHITECTURES, display_name
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def models() -> dict[str, SegmentationNetwork]:
    torch.manual_seed(0)
    return {arch: build_model(arch=arch, input_size=(64, 64)).eval() for arch in ARCH_NAMES}


def test_the_registry_holds_the_three_architectures_in_display_order():
    assert ARCH_NAMES == ("unet", "fcn_vgg16", "fcn_resnet50")
    assert [display_name(n) for n in ARCH_NAMES] == ["U-Net", "FCN-VGG16", "FCN-ResNet50"]
    assert display_name("ensemble") == "All three (averaged)" and display_name("mine") == "mine"
    with pytest.raises(ValueError, match="unknown arch 'deeplab'"):
        ModelConfig(arch="deeplab")


@pytest.mark.parametrize("hw", [(64, 64), (64, 128), (96, 160)])
def test_every_arch_gives_full_resolution_logits(models, hw):
    x = torch.randn(2, 3, *hw)
    for arch, model in models.items():
        with torch.no_grad():
            out = model(x)
        assert out.shape == (2, 19, *hw), arch
        assert torch.isfinite(out).all(), arch


def test_models_carry_their_config(models):
    for arch, model in models.items():
        assert isinstance(model, SegmentationNetwork)
        assert model.config.arch == arch and model.config.encoder == ARCHITECTURES[arch].encoder
        assert count_parameters(model) > 1_000_000
    assert isinstance(models["fcn_vgg16"].net, FCN8s) and isinstance(models["fcn_resnet50"].net, FCN8s)
    assert not isinstance(models["unet"].net, FCN8s)


def test_fcn_head_has_bilinear_transposed_convolutions(models):
    head = models["fcn_resnet50"].net.head
    assert isinstance(head, FCN8sHead)
    ups = [m for m in head.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == 3
    for layer, factor in ((head.up32, 2), (head.up16, 2), (head.up8, 8)):
        assert isinstance(layer, nn.ConvTranspose2d) and layer.stride == (factor, factor)
        assert layer.weight.requires_grad  # learnable, as in the paper
        assert torch.equal(layer.weight.detach(), bilinear_kernel(19, 2 * factor))


def test_bilinear_kernel_values():
    k = bilinear_kernel(2, 4)
    assert k.shape == (2, 2, 4, 4)
    row = torch.tensor([0.25, 0.75, 0.75, 0.25])
    assert torch.allclose(k[0, 0], row[:, None] * row[None, :])
    assert torch.equal(k[0, 1], torch.zeros(4, 4)) and torch.equal(k[1, 0], torch.zeros(4, 4))


@pytest.mark.parametrize("factor", [2, 8])
def test_upsample_layer_keeps_constants_constant(factor):
    layer = upsample_layer(3, factor)
    x = torch.tensor([1.0, -2.0, 5.0]).view(1, 3, 1, 1).expand(1, 3, 6, 5)
    with torch.no_grad():
        y = layer(x)
    assert y.shape == (1, 3, 6 * factor, 5 * factor)
    inner = y[..., factor:-factor, factor:-factor]
    assert torch.allclose(inner, x[..., :1, :1].expand_as(inner), atol=1e-6)


def test_upsample_layer_interpolates_linearly():
    # A ramp stays a ramp in the interior: bilinear, not nearest (which would give steps).
    layer = upsample_layer(1, 2)
    x = torch.arange(6.0).view(1, 1, 1, 6).expand(1, 1, 4, 6)
    with torch.no_grad():
        y = layer(x)[0, 0, 3, 2:-2]
    assert torch.allclose(y[1:] - y[:-1], torch.full_like(y[1:], 0.5))


def _head_and_features():
    torch.manual_seed(0)
    head = FCN8sHead((16, 24, 32), num_classes=5, head_channels=8).eval()
    feats = [torch.randn(1, 16, 8, 8), torch.randn(1, 24, 4, 4), torch.randn(1, 32, 2, 2)]
    return head, feats


def test_skip_scores_start_at_zero_so_the_head_is_fcn32s():
    head, (f8, f16, f32) = _head_and_features()
    with torch.no_grad():
        out = head([f8, f16, f32])
        fcn32 = head.up8(head.up16(head.up32(head.score32(head.fc(f32)))))
    assert out.shape == (1, 5, 64, 64)
    assert torch.allclose(out, fcn32, atol=1e-5)


@pytest.mark.parametrize("skip", ["score8", "score16"])
def test_skip_scores_are_summed(skip):
    head, feats = _head_and_features()
    with torch.no_grad():
        before = head(feats)
        getattr(head, skip).bias.fill_(0.7)
        after = head(feats)
        # Summation is linear: the change is exactly the constant pushed through the remaining
        # upsampling, which is 0.7 away from the borders.
        const = torch.full((1, 5, 8, 8) if skip == "score8" else (1, 5, 4, 4), 0.7)
        delta = head.up8(const) if skip == "score8" else head.up8(head.up16(const))
    assert torch.allclose(after - before, delta, atol=1e-5)
    inner = (after - before)[..., 16:-16, 16:-16]
    assert torch.allclose(inner, torch.full_like(inner, 0.7), atol=1e-5)


def test_skip_features_reach_the_output():
    # With non-zero skip weights the stride-8 features change the output (gradients flow there).
    head, (f8, f16, f32) = _head_and_features()
    nn.init.normal_(head.score8.weight)
    with torch.no_grad():
        a = head([f8, f16, f32])
        b = head([f8 + 1, f16, f32])
    assert not torch.allclose(a, b)


def test_unknown_arch_and_encoder():
    with pytest.raises(ValueError, match="unknown arch 'nope'"):
        build_model(arch="nope", encoder="resnet18")
    with pytest.raises(ValueError, match="unknown arch"):
        ModelConfig(arch="nope")
    for arch in ("unet", "fcn_resnet50"):
        with pytest.raises(ValueError, match="unknown encoder 'nope'"):
            build_model(arch=arch, encoder="nope")
    with pytest.raises(ValueError, match="encoder_weights"):
        build_model(arch="unet", encoder_weights="coco")


def test_bad_config():
    with pytest.raises(ValueError, match="multiples of 32"):
        ModelConfig(input_size=(100, 64))
    with pytest.raises(ValueError, match="class names"):
        ModelConfig(num_classes=3)
    with pytest.raises(TypeError):
        build_model(ModelConfig(), arch="unet")


def test_config_json_round_trip():
    cfg = ModelConfig(arch="fcn_vgg16", input_size=(96, 160), training={"lr": 0.01}, metrics={"miou": 0.5})
    back = ModelConfig.from_json(cfg.to_json())
    assert back == cfg and back.input_size == (96, 160) and isinstance(back.mean, tuple)
    with pytest.raises(ValueError, match="unknown config keys"):
        ModelConfig.from_json('{"arch": "unet", "bogus": 1}')


def test_pretrained_weights_offline_raise_offline_error():
    # In a subprocess with an empty cache and the Hub offline, so nothing is downloaded and it
    # fails fast.
    code = (
        "from seg_core.models import build_model, OfflineError\n"
        "try:\n"
        "    build_model(arch='unet', encoder_weights='imagenet')\n"
        "except OfflineError as err:\n"
        "    print('OFFLINE:', err)\n"
        "else:\n"
        "    print('BUILT')\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": cache, "TORCH_HOME": cache,
               "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip()
    assert line.startswith("OFFLINE: could not download the imagenet weights of encoder 'resnet18'"), line
    assert "encoder_weights=None" in line
    assert "\n" not in line  # one sentence, no traceback
