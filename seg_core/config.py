"""The model config: the single source of truth saved inside every checkpoint.

A checkpoint holds one ``ModelConfig`` as JSON, so a checkpoint alone rebuilds its model and knows
how to feed it (input size, mean/std, classes). Training settings and measured metrics ride along
as plain dicts for the model card.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .palette import CLASS_NAMES
from .registry import architecture

#: ImageNet statistics, hard-coded: smp's ``get_preprocessing_fn`` would reach for the hub.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Test-time augmentation: ``"none"`` (one pass) or ``"flip"`` (the photo and its mirror image).
TTA_MODES = ("none", "flip")


@dataclass
class ModelConfig:
    arch: str = "unet"
    encoder: str | None = None  # None → the architecture's default (seg_core.registry)
    num_classes: int = len(CLASS_NAMES)
    class_names: tuple[str, ...] = CLASS_NAMES
    input_size: tuple[int, int] | None = (256, 256)  # (H, W) fed to the model; None = native size
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    encoder_weights: str | None = None  # what the encoder started from: None or "imagenet"
    head_channels: int = 512  # width of the FCN-8s conv "fc6/fc7" layers
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.encoder is None:
            self.encoder = architecture(self.arch).encoder
        self.class_names = tuple(self.class_names)
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if self.input_size is not None:
            self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
            if any(s % 32 or s <= 0 for s in self.input_size):
                raise ValueError(f"input_size {self.input_size} must be positive multiples of 32")
        self.mean, self.std = tuple(self.mean), tuple(self.std)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}")
        return cls(**data)
