"""The three architectures, one entry each: name, display name, default encoder and builder.

Everything that lists or names the architectures (the config, ``build_model``, the CLI's choices,
the predictor, both apps, the benchmarks) reads ``ARCHITECTURES``. Builders import torch and smp
only when called, so ``train_cli.py --help`` stays quick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


def _unet(cfg):
    import segmentation_models_pytorch as smp

    return smp.Unet(encoder_name=cfg.encoder, encoder_weights=cfg.encoder_weights, classes=cfg.num_classes)


def _fcn8s(cfg):
    from .heads import FCN8s

    return FCN8s(cfg.encoder, cfg.num_classes, cfg.encoder_weights, cfg.head_channels)


@dataclass(frozen=True)
class Architecture:
    name: str  # the key in configs, file names (weights/<name>.safetensors) and the CLI
    display: str  # for people
    color: str  # its colour in every chart of both apps (Okabe-Ito: told apart by colour-blind readers)
    encoder: str  # default smp encoder
    build: Callable[[Any], Any]  # a ModelConfig -> the torch network


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("unet", "U-Net", "#0072B2", "resnet18", _unet),
    # Batch-normalised VGG16: plain VGG16 does not train from scratch in a CPU budget.
    Architecture("fcn_vgg16", "FCN-VGG16", "#E69F00", "vgg16_bn", _fcn8s),
    Architecture("fcn_resnet50", "FCN-ResNet50", "#009E73", "resnet50", _fcn8s),
)}
ARCH_NAMES: tuple[str, ...] = tuple(ARCHITECTURES)
#: The smp encoders a model may use (``train --encoder``; each architecture's default among them).
#: A fixed list, because a checkpoint's config names its encoder and an arbitrary name can cost
#: gigabytes before it is refused, or make timm download from the Hub (``tu-hf-hub:...``).
ENCODERS: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "vgg16_bn", "mobilenet_v2", "efficientnet-b0")
#: The name of the ensemble of the loaded models (``Predictor.predict(ensemble=True)``) and its title.
ENSEMBLE, ENSEMBLE_DISPLAY = "ensemble", "All three (averaged)"
ENSEMBLE_COLOR = "#CC79A7"
#: Colours of a user's own models, by their place among them (the rest of Okabe-Ito's set).
OTHER_COLORS = ("#D55E00", "#56B4E9", "#000000", "#999999")


def display_name(name: str) -> str:
    """``"U-Net"`` for ``"unet"``, the ensemble's title for it; any other name (a user's model) as it is."""
    if name == ENSEMBLE:
        return ENSEMBLE_DISPLAY
    arch = ARCHITECTURES.get(name)
    return arch.display if arch else name


def model_color(name: str, others: tuple[str, ...] = ()) -> str:
    """The colour of ``name`` in charts: its architecture's, the ensemble's, or for a user's model
    (one of ``others``, in their order) one of ``OTHER_COLORS``."""
    if name == ENSEMBLE:
        return ENSEMBLE_COLOR
    if name in ARCHITECTURES:
        return ARCHITECTURES[name].color
    place = others.index(name) if name in others else 0
    return OTHER_COLORS[place % len(OTHER_COLORS)]


def architecture(name: str) -> Architecture:
    """The entry of ``name``, or a ``ValueError`` that lists the choices."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown arch {name!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]
