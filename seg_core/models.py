"""The three architectures behind one factory: ``build_model(cfg)`` builds the entry of
``seg_core.registry.ARCHITECTURES`` that the config names.

* ``unet``: smp's U-Net (encoder configurable, ``resnet18`` by default).
* ``fcn_vgg16`` / ``fcn_resnet50``: an smp encoder with our FCN-8s head (``seg_core.heads``).

Every model maps a normalised ``N x 3 x H x W`` batch (H, W multiples of 32) to ``N x C x H x W``
logits and carries its ``ModelConfig`` as ``model.config``.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .registry import architecture


class OfflineError(RuntimeError):
    """Pretrained weights were asked for but cannot be downloaded."""


class SegmentationNetwork(nn.Module):
    """A network plus the config that built it (kept so a checkpoint can rebuild it)."""

    def __init__(self, net: nn.Module, config: ModelConfig):
        super().__init__()
        self.net = net
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(cfg: ModelConfig | dict | None = None, **overrides) -> SegmentationNetwork:
    """Build the model a config describes; ``build_model(arch="fcn_resnet50")`` works too."""
    if cfg is None:
        cfg = ModelConfig(**overrides)
    elif isinstance(cfg, dict):
        cfg = ModelConfig(**{**cfg, **overrides})
    elif overrides:
        raise TypeError("pass either a ModelConfig or keyword overrides, not both")
    build = architecture(cfg.arch).build
    if cfg.encoder_weights not in (None, "imagenet"):
        raise ValueError(f"encoder_weights must be None or 'imagenet', got {cfg.encoder_weights!r}")
    try:
        net = build(cfg)
    except KeyError as err:  # smp's message for an unknown encoder name
        raise ValueError(f"unknown encoder {cfg.encoder!r} for {cfg.arch}: {err}") from None
    except Exception as err:
        if cfg.encoder_weights is None:
            raise
        raise OfflineError(
            f"could not download the {cfg.encoder_weights} weights of encoder {cfg.encoder!r} "
            f"(no network?); use encoder_weights=None to train from scratch ({type(err).__name__})"
        ) from None
    return SegmentationNetwork(net, cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
