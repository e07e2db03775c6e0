"""One entry point for the apps: the shipped models of ``weights/``, loaded once, compared on a photo.

``Predictor.from_dir("weights")`` loads whichever of ``unet``, ``fcn_vgg16`` and ``fcn_resnet50``
has a checkpoint (``weights/<name>.safetensors``) and records, for each that has none or a broken
one, why, and the command that trains it, so a UI can show the others and explain the gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_model
from .inference import Prediction, predict_many
from .models import SegmentationModel

MODEL_NAMES = ("unet", "fcn_vgg16", "fcn_resnet50")
DISPLAY_NAMES = {"unet": "U-Net", "fcn_vgg16": "FCN-VGG16", "fcn_resnet50": "FCN-ResNet50"}


def train_command(name: str) -> str:
    return (f"python train_cli.py train --arch {name} --out runs/{name} --time-budget 120m && "
            f"cp runs/{name}/best.safetensors weights/{name}.safetensors")


@dataclass
class Predictor:
    models: dict[str, SegmentationModel] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # name → why it is not available
    paths: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def from_dir(cls, weights_dir: str | Path = "weights", names: tuple[str, ...] = MODEL_NAMES,
                 device: str | torch.device = "cpu") -> "Predictor":
        weights_dir = Path(weights_dir)
        self = cls()
        for name in names:
            path = weights_dir / f"{name}.safetensors"
            if not path.is_file():
                self.missing[name] = f"no weights at {path}; train them with: {train_command(name)}"
                continue
            try:
                self.models[name] = load_model(path, arch=name, device=device)
                self.paths[name] = path
            except CheckpointError as err:
                self.missing[name] = f"{err}; retrain with: {train_command(name)}"
        return self

    def predict(self, image, names: tuple[str, ...] | None = None) -> dict[str, Prediction]:
        """Masks of the chosen (default: all loaded) models for one image."""
        chosen = {n: m for n, m in self.models.items() if names is None or n in names}
        return predict_many(chosen, image)
