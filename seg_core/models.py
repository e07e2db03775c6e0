"""The three architectures behind one factory: ``build_model(cfg)`` looks the arch up in ``ARCHS``.

* ``unet``: smp's U-Net (encoder configurable, ``resnet18`` by default).
* ``fcn_vgg16`` / ``fcn_resnet50``: an smp encoder with our FCN-8s head (``seg_core.heads``).
  VGG16 defaults to the batch-normalised variant (``vgg16_bn``): the shipped weights are trained
  from scratch, and plain VGG16 does not train from scratch in a CPU budget.

Every model maps a normalised ``N x 3 x H x W`` batch (H, W multiples of 32) to ``N x C x H x W``
logits and carries its ``ModelConfig`` as ``model.config``.
"""

from __future__ import annotations

from typing import Callable

import segmentation_models_pytorch as smp
import torch
from torch import nn

from .config import ModelConfig
from .heads import FCN8sHead


class OfflineError(RuntimeError):
    """Pretrained weights were asked for but cannot be downloaded."""


class FCN8s(nn.Module):
    def __init__(self, encoder: str, num_classes: int, encoder_weights: str | None, head_channels: int):
        super().__init__()
        self.encoder = smp.encoders.get_encoder(encoder, in_channels=3, depth=5, weights=encoder_weights)
        self.head = FCN8sHead(self.encoder.out_channels, num_classes, head_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def _unet(cfg: ModelConfig) -> nn.Module:
    return smp.Unet(encoder_name=cfg.encoder, encoder_weights=cfg.encoder_weights, classes=cfg.num_classes)


def _fcn(cfg: ModelConfig) -> nn.Module:
    return FCN8s(cfg.encoder, cfg.num_classes, cfg.encoder_weights, cfg.head_channels)


ARCHS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "unet": _unet,
    "fcn_vgg16": _fcn,
    "fcn_resnet50": _fcn,
}


class SegmentationModel(nn.Module):
    """A network plus the config that built it (kept so a checkpoint can rebuild it)."""

    def __init__(self, net: nn.Module, config: ModelConfig):
        super().__init__()
        self.net = net
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(cfg: ModelConfig | dict | None = None, **overrides) -> SegmentationModel:
    """Build the model a config describes; ``build_model(arch="fcn_resnet50")`` works too."""
    if cfg is None:
        cfg = ModelConfig(**overrides)
    elif isinstance(cfg, dict):
        cfg = ModelConfig(**{**cfg, **overrides})
    elif overrides:
        raise TypeError("pass either a ModelConfig or keyword overrides, not both")
    if cfg.arch not in ARCHS:
        raise ValueError(f"unknown arch {cfg.arch!r}; choose one of {sorted(ARCHS)}")
    if cfg.encoder_weights not in (None, "imagenet"):
        raise ValueError(f"encoder_weights must be None or 'imagenet', got {cfg.encoder_weights!r}")
    try:
        net = ARCHS[cfg.arch](cfg)
    except KeyError as err:  # smp's message for an unknown encoder name
        raise ValueError(f"unknown encoder {cfg.encoder!r} for {cfg.arch}: {err}") from None
    except Exception as err:
        if cfg.encoder_weights is None:
            raise
        raise OfflineError(
            f"could not download the {cfg.encoder_weights} weights of encoder {cfg.encoder!r} "
            f"(no network?); use encoder_weights=None to train from scratch ({type(err).__name__})"
        ) from None
    return SegmentationModel(net, cfg)


def count_parameters(model) -> int:
    """Parameters of a PyTorch model, or the count an exported ``FastModel`` recorded."""
    if isinstance(model, nn.Module):
        return sum(p.numel() for p in model.parameters())
    return int(model.num_parameters)


def model_device(model) -> torch.device:
    """Where a model's inputs must live: a PyTorch model's parameters, or a ``FastModel``'s CPU."""
    if isinstance(model, nn.Module):
        return next(model.parameters()).device
    return model.device
