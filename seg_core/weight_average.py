"""Weight-space interpolation of two checkpoints of one model (WiSE-FT, Wortsman et al. 2022,
"Robust fine-tuning of zero-shot models"): θ = (1 − α)·θ_a + α·θ_b, no training.

Used to trade between the shipped weights (a) and a robustness fine-tune of them (b): the fine-tune
gains corruption mIoU but loses clean mIoU, and the straight line between the two often keeps most
of the gain while winning the clean accuracy back. BatchNorm running means and variances are
floating tensors, so they are interpolated with the weights; integer buffers (``num_batches_tracked``)
cannot be, and are taken from b. The result's config is b's, with ``training["interpolated"]``
saying where it came from and ``metrics`` emptied: nobody has measured the new weights yet.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import CONFIG_KEY, CheckpointError, read_config, read_tensors, save_tensors
from .config import ModelConfig
from .files import file_sha256

METHOD = "WiSE-FT"
# Fields that must agree for the two checkpoints to be the same network; training and metrics may differ.
SAME_FIELDS = ("arch", "encoder", "num_classes", "class_names", "input_size", "mean", "std", "head_channels")


def interpolate_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                       alpha: float) -> dict[str, torch.Tensor]:
    """(1 − alpha)·a + alpha·b for every floating tensor (computed in fp32, stored in b's dtype);
    b's value for every integer tensor. alpha 0 gives a and alpha 1 gives b, bit for bit."""
    check_alpha(alpha)
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())
        raise CheckpointError(f"the two checkpoints hold different tensors ({len(only)} not in both, e.g. {only[0]})")
    out = {}
    for name, tb in b.items():
        ta = a[name]
        if ta.shape != tb.shape:
            raise CheckpointError(f"tensor {name} has shape {tuple(ta.shape)} in one checkpoint "
                                  f"and {tuple(tb.shape)} in the other")
        if not tb.is_floating_point():
            out[name] = tb.clone()
        elif alpha == 0.0:  # exact endpoints, whatever the dtypes round to
            out[name] = ta.to(tb.dtype).clone()
        elif alpha == 1.0:
            out[name] = tb.clone()
        else:
            mixed = (1.0 - alpha) * ta.float() + alpha * tb.float()
            out[name] = mixed.to(tb.dtype)
    return out


def check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, (int, float)) and 0.0 <= float(alpha) <= 1.0):
        raise ValueError(f"alpha must be a number in [0, 1] (0 = the first checkpoint, 1 = the second), not {alpha!r}")


def check_same_model(cfg_a: ModelConfig, cfg_b: ModelConfig) -> None:
    """Refuse two checkpoints that are not the same network, in one sentence."""
    for name in SAME_FIELDS:
        va, vb = getattr(cfg_a, name), getattr(cfg_b, name)
        if va != vb:
            raise CheckpointError(f"the checkpoints are not the same model: {name} is {va!r} in one "
                                  f"and {vb!r} in the other")


def interpolate_checkpoints(a: str | Path, b: str | Path, alpha: float, out: str | Path) -> ModelConfig:
    """Write ``out``: the interpolation of checkpoint files ``a`` (alpha 0) and ``b`` (alpha 1).

    Returns the config written (b's, with the ``interpolated`` record and no metrics)."""
    check_alpha(alpha)
    a, b, out = Path(a), Path(b), Path(out)
    for path in (a, b):
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} is not a file (give the .safetensors file itself)")
    if out.resolve() in (a.resolve(), b.resolve()):
        raise CheckpointError(f"--out {out} would overwrite one of its own inputs")
    cfg_a, cfg_b = read_config(a), read_config(b)  # refused before a tensor is read
    check_same_model(cfg_a, cfg_b)
    tensors_a, _ = read_tensors(a)
    tensors_b, meta_b = read_tensors(b)
    mixed = interpolate_states(tensors_a, tensors_b, float(alpha))
    cfg_b.training = dict(cfg_b.training, interpolated={
        "alpha": float(alpha), "method": METHOD,
        "from": {"name": a.name, "sha256": file_sha256(a)},
        "to": {"name": b.name, "sha256": file_sha256(b)},
    })
    cfg_b.metrics = {}
    metadata = dict(meta_b)
    metadata[CONFIG_KEY] = cfg_b.to_json()
    save_tensors(mixed, out, metadata)
    return cfg_b
