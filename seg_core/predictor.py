"""One entry point for the apps and ``eval``: the shipped models of ``weights/``, loaded once.

``Predictor.from_dir("weights")`` loads, for each of ``unet``, ``fcn_vgg16`` and ``fcn_resnet50``,
the fastest backend it finds:

1. ``weights/<name>.int8.xml`` (OpenVINO int8), then ``<name>.xml``, ``<name>.int8.onnx`` and
   ``<name>.onnx`` (ONNX Runtime), when its runtime is installed and the file was exported from
   the ``<name>.safetensors`` beside it (a stale export is skipped, with a note);
2. otherwise ``weights/<name>.safetensors`` in PyTorch.

``backend="pytorch"`` (or ``SEG_BACKEND=pytorch`` in the environment) always uses PyTorch. For a
model that has no usable file the predictor records why and the command that trains it, so a UI
can show the others and explain the gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import settings
from .checkpoint import CheckpointError, load_model
from .fast import FastModel, FastModelError, find_fast, load_fast
from .inference import Prediction, predict_many
from .models import SegmentationModel

MODEL_NAMES = ("unet", "fcn_vgg16", "fcn_resnet50")
DISPLAY_NAMES = {"unet": "U-Net", "fcn_vgg16": "FCN-VGG16", "fcn_resnet50": "FCN-ResNet50"}
BACKENDS = ("auto", "pytorch")


def train_command(name: str) -> str:
    return (f"python train_cli.py train --arch {name} --out runs/{name} --time-budget 120m && "
            f"cp runs/{name}/best.safetensors weights/{name}.safetensors")


def backend_label(model) -> str:
    """'PyTorch fp32', 'OpenVINO int8', ... for captions and benchmark tables."""
    return model.label if isinstance(model, FastModel) else "PyTorch fp32"


@dataclass
class Predictor:
    models: dict[str, SegmentationModel | FastModel] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # name → why it is not available
    paths: dict[str, Path] = field(default_factory=dict)  # name → the file the model was loaded from
    notes: dict[str, str] = field(default_factory=dict)  # name → why the fast file was not used

    @classmethod
    def from_dir(cls, weights_dir: str | Path = "weights", names: tuple[str, ...] = MODEL_NAMES,
                 device: str | torch.device = "cpu", backend: str | None = None,
                 threads: int | None = None) -> "Predictor":
        """``threads``: CPU threads of each exported model (default: torch's); a server running
        several inferences at once gives each fewer."""
        weights_dir = Path(weights_dir)
        backend = backend or settings.backend()
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        self = cls()
        for name in names:
            path = weights_dir / f"{name}.safetensors"
            if backend == "auto" and torch.device(device).type == "cpu" and self._load_fast(weights_dir, name, path, threads):
                continue
            if not path.is_file():
                self.missing[name] = f"no weights at {path}; train them with: {train_command(name)}"
                continue
            try:
                self.models[name] = load_model(path, arch=name, device=device)
                self.paths[name] = path
            except CheckpointError as err:
                self.missing[name] = f"{err}; retrain with: {train_command(name)}"
        return self

    def _load_fast(self, weights_dir: Path, name: str, source: Path, threads: int | None = None) -> bool:
        fast, why = find_fast(weights_dir, name, source if source.is_file() else None)
        if fast is None:
            if why:
                self.notes[name] = why
            return False
        try:
            model = load_fast(fast, threads)
        except FastModelError as err:
            self.notes[name] = f"{err}; using PyTorch"
            return False
        if model.config.arch != name:
            self.notes[name] = f"{fast.name} holds a {model.config.arch} model, not {name}"
            return False
        self.models[name], self.paths[name] = model, fast
        return True

    def backends(self) -> dict[str, str]:
        return {name: backend_label(model) for name, model in self.models.items()}

    def predict(self, image, names: tuple[str, ...] | None = None, tta: str = "none") -> dict[str, Prediction]:
        """Masks of the chosen (default: all loaded) models for one image; ``tta="flip"`` averages
        each model's probabilities over the photo and its mirror image (twice the time)."""
        chosen = {n: m for n, m in self.models.items() if names is None or n in names}
        return predict_many(chosen, image, tta)
