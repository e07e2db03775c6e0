"""Runners: one interface over the backends that run a trained model (PyTorch, ONNX Runtime, OpenVINO).

A ``Runner`` takes a prepared batch (``seg_core.inference.model_input`` or ``single_input``: a
normalised float32 ``N x 3 x h x w`` array at the model's input size) and returns numpy:

    runner.masks(x, out_hw, tta)      # N x H x W uint8 class ids at out_hw
    runner.probabilities(x, tta)      # N x C x h x w float32 softmax at the model's resolution
    runner.masks_and_probabilities(x, out_hw, tta)   # both from one pass of the network
    runner.logits(x)                  # N x C x h x w float32

and carries ``config``, ``path``, ``label`` ("OpenVINO int8"), ``num_parameters`` and
``file_bytes``. ``load_runner(path)`` picks the backend from the file: ``.safetensors`` (or a
Hub folder, ``hf://``) runs in PyTorch, ``.onnx`` in ONNX Runtime, ``.xml`` in OpenVINO. The
OpenVINO runner, the apps' default, does the upsampling and the argmax (and mirror-image
averaging) inside its graph. Every exported file carries the ``ModelConfig`` JSON, the SHA-256 of
the checkpoint it came from and its precision (``seg_core.export`` writes them).

The backends live in ``seg_core/backends/`` (``base``: the protocol and shared torch helpers;
``torch_runner``, ``onnx_runner``, ``openvino_runner``); this module picks one for a file and
re-exports their public names, so ``from seg_core.runners import X`` is the one import.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .backends.base import (EXPORT_SUFFIXES, INPUT_NAME, META_KEYS, OUTPUT_NAME, Runner, RunnerError, check_tta,
                            classes, model_file_bytes, upsampled_classes)
from .backends.onnx_runner import OnnxRunner, onnx_meta
from .backends.openvino_runner import OpenVinoRunner, ov_core, ov_meta
from .backends.torch_runner import TorchRunner
from .checkpoint import load_model
from .config import TTA_MODES
from .files import file_sha256

__all__ = ["EXPORT_SUFFIXES", "INPUT_NAME", "LOADERS", "META_KEYS", "OUTPUT_NAME", "TTA_MODES", "OnnxRunner",
           "OpenVinoRunner", "Runner", "RunnerError", "TorchRunner", "check_tta", "classes", "find_exported",
           "forward_latency", "latency_size", "load_runner", "model_file_bytes", "onnx_meta", "ov_meta",
           "upsampled_classes"]


def latency_size(runner: Runner) -> tuple[int, int]:
    """(H, W) of ``forward_latency``'s image: the model's input size; 256x256, the training
    size, for a model that takes any size."""
    return runner.config.input_size or (256, 256)


def forward_latency(runner: Runner, repeats: int = 10) -> float:
    """Median seconds of one forward pass (``logits``) on one random image of ``latency_size``,
    after one warm-up pass: the per-model figure of ``benchmarks/bench_inference.py``."""
    h, w = latency_size(runner)
    x = np.random.default_rng(0).standard_normal((1, 3, h, w), dtype=np.float32)
    runner.logits(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        runner.logits(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


#: How each kind of file is run; anything else is a PyTorch checkpoint (file, Hub folder, hf://).
LOADERS = {".onnx": OnnxRunner, ".xml": OpenVinoRunner}


def load_runner(source: str | Path, threads: int | None = None, device: str | torch.device = "cpu",
                arch: str | None = None, parallel: int = 1) -> Runner:
    """The runner of a model file, chosen by its suffix; ``arch`` guards against another
    architecture's file (``CheckpointError`` / ``RunnerError``). ``parallel``: inferences a server
    runs at once on the model, each on ``threads`` threads (exported files)."""
    loader = LOADERS.get(Path(str(source)).suffix)
    if loader is None:
        return TorchRunner(load_model(source, arch=arch, device=device),
                           None if str(source).startswith("hf://") else Path(source))
    if not Path(source).is_file():
        raise RunnerError(f"{source} does not exist")
    runner = loader(source, threads, parallel)
    if arch is not None and runner.config.arch != arch:
        raise RunnerError(f"{source} holds a {runner.config.arch} model, not {arch}")
    return runner


def find_exported(weights_dir: str | Path, name: str, source: Path | None = None) -> tuple[Path | None, str | None]:
    """The preferred exported file of model ``name`` in ``weights_dir``, or ``(None, why not)``.

    A file exported from another checkpoint than ``source`` (when given) is skipped as stale.
    """
    weights_dir = Path(weights_dir)
    source_hash = file_sha256(source) if source is not None and source.is_file() else None
    why = None
    for suffix in EXPORT_SUFFIXES:
        path = weights_dir / f"{name}{suffix}"
        if not path.is_file():
            continue
        if source_hash is not None and _recorded_source(path) != source_hash:
            why = f"{path.name} was exported from another checkpoint than {source.name}; re-export it"
            continue
        return path, None
    return None, why


def _recorded_source(path: Path) -> str | None:
    """The source hash an exported file records, read without compiling it."""
    try:
        if path.suffix == ".onnx":
            import onnx

            return onnx_meta(onnx.load(str(path), load_external_data=False)).get("source_sha256")
        return ov_meta(ov_core().read_model(str(path))).get("source_sha256")
    except Exception:  # noqa: BLE001 - unreadable or runtime missing: treated as not matching
        return None
