"""One entry point for the apps and ``eval``: the models of a weights folder, loaded once.

``Predictor.from_dir("weights")`` loads, for each architecture of ``seg_core.registry``, the
fastest runner it finds:

1. ``weights/<name>.int8.xml`` (OpenVINO int8), then ``<name>.xml``, ``<name>.int8.onnx`` and
   ``<name>.onnx`` (ONNX Runtime), when its runtime is installed and the file was exported from
   the ``<name>.safetensors`` beside it (a stale export is skipped, with a note);
2. otherwise ``weights/<name>.safetensors`` in PyTorch.

``backend="pytorch"`` (or ``SEG_BACKEND=pytorch``) always uses PyTorch. For a model without a
usable file the predictor records a ``Missing``: why, and the command that trains it, so a UI can
show the others and explain the gap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import settings
from .checkpoint import CheckpointError
from .inference import ENSEMBLE, Predictions, predict_many
from .registry import ARCH_NAMES
from .runners import Runner, RunnerError, find_exported, load_runner



@dataclass(frozen=True)
class Missing:
    """Why a model is not available, and the shell command that trains it."""

    reason: str
    command: str

    def __str__(self) -> str:
        return f"{self.reason}; train it with: {self.command}"


#: ``weights/ensemble.json``: ``{"weights": {model name: weight}, ...}``, the ensemble's weights and
#: how they were chosen (``benchmarks/analyse_val.py``); without it the models weigh the same.
ENSEMBLE_FILE = "ensemble.json"


def read_ensemble_weights(weights_dir: Path) -> dict[str, float] | None:
    path = Path(weights_dir) / ENSEMBLE_FILE
    if not path.is_file():
        return None
    try:
        weights = json.loads(path.read_text())["weights"]
        return {str(k): float(v) for k, v in weights.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # an unreadable file: equal weights, as without one


def train_command(name: str) -> str:
    return (f"python train_cli.py train --arch {name} --out runs/{name} --time-budget 140m && "
            f"cp runs/{name}/best.safetensors weights/{name}.safetensors")


@dataclass
class Predictor:
    models: dict[str, Runner] = field(default_factory=dict)
    missing: dict[str, Missing] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # name → why an exported file was not used
    #: ``{model name: weight}`` of the ensemble; ``None``: the loaded models, equally weighted.
    ensemble_weights: dict[str, float] | None = None

    @classmethod
    def from_dir(cls, weights_dir: str | Path = "weights", names: tuple[str, ...] = ARCH_NAMES,
                 device: str | torch.device = "cpu", backend: str | None = None,
                 threads: int | None = None, parallel: int = 1) -> "Predictor":
        """``threads``: CPU threads of each exported model's inference (default: torch's);
        ``parallel``: inferences a server runs at once on each model (each on ``threads``)."""
        weights_dir = Path(weights_dir)
        backend = backend or settings.backend()
        if backend not in settings.BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {settings.BACKENDS}")
        self = cls()
        self.ensemble_weights = read_ensemble_weights(weights_dir)
        for name in names:
            path = weights_dir / f"{name}.safetensors"
            if backend == "auto" and torch.device(device).type == "cpu" and self._load_exported(weights_dir, name, path, threads, parallel):
                continue
            if not path.is_file():
                self.missing[name] = Missing(f"no weights at {path}", train_command(name))
                continue
            try:
                self.models[name] = load_runner(path, arch=name, device=device)
            except CheckpointError as err:
                self.missing[name] = Missing(str(err), train_command(name))
        return self

    def _load_exported(self, weights_dir: Path, name: str, source: Path, threads: int | None, parallel: int) -> bool:
        exported, why = find_exported(weights_dir, name, source if source.is_file() else None)
        if exported is None:
            if why:
                self.notes[name] = why
            return False
        try:
            self.models[name] = load_runner(exported, threads=threads, arch=name, parallel=parallel)
        except RunnerError as err:
            self.notes[name] = f"{err}; using PyTorch"
            return False
        return True

    def backends(self) -> dict[str, str]:
        return {name: runner.label for name, runner in self.models.items()}

    def ensemble(self) -> dict[str, float]:
        """The ensemble's members and weights among the loaded models (empty with fewer than two)."""
        weights = self.ensemble_weights or {n: 1.0 for n in self.models}
        members = {n: w for n, w in weights.items() if n in self.models and w > 0}
        return members if len(members) > 1 else {}

    def predict(self, image, names: tuple[str, ...] | None = None, tta: str = "none", confidence: bool = False,
                ensemble: bool = False) -> Predictions:
        """Masks of the chosen (default: all loaded) models for one image.

        ``tta="flip"`` averages each model's probabilities over the photo and its mirror image
        (twice the time); ``confidence`` adds each model's confidence map; ``ensemble`` (or
        ``"ensemble"`` among ``names``) adds the ensemble's mask, from the same passes. With
        ``names=("ensemble",)`` the members compute only their probabilities (no masks): the
        ensemble alone, e.g. after the models' masks are already shown.
        """
        members = self.ensemble() if ensemble or (names is not None and ENSEMBLE in names) else {}
        chosen = {n: r for n, r in self.models.items() if names is None or n in names or n in members}
        out = predict_many(chosen, image, tta, confidence, members or None, names)
        if names is not None:
            for extra in [n for n in out if n not in names and not (ensemble and n == ENSEMBLE)]:
                del out[extra]
        return out
