"""What a training run keeps between steps and across a kill: the EMA of the weights and the resume state.

The resume state is one safetensors file (model, EMA and AdamW tensors, the rest as JSON metadata),
written atomically at the end of an epoch, so ``--resume`` after a kill -9 loses at most the epoch
under way. No pickle: the optimiser's state dict is flattened into named tensors and scalars.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .checkpoint import CheckpointError, read_tensors, save_tensors


class EMA:
    """Exponential moving average of every float entry of a state dict (weights and BN stats).

    Not timm's ``ModelEmaV3``: its warm-up differs and its state keys would not load the resume
    states already written; a paired run showing equal val mIoU is what would justify the switch."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        ema_f, new_f, ema_i, new_i = [], [], [], []
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                ema_f.append(self.state[k])
                new_f.append(v.detach())
            else:
                ema_i.append(self.state[k])
                new_i.append(v)
        # One multi-tensor kernel each instead of one launch per tensor (ResNet-50: ~320 per step).
        torch._foreach_lerp_(ema_f, new_f, 1 - d)
        if ema_i:
            torch._foreach_copy_(ema_i, new_i)


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{name}"] = value
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, scalars


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], scalars: dict) -> None:
    state = opt.state_dict()
    entries: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            entries.setdefault(int(idx), {})[name] = value
    for key, value in scalars.items():
        idx, name = key.split(".", 1)
        entries.setdefault(int(idx), {})[name] = value
    state["state"] = entries
    opt.load_state_dict(state)


def save_state(path: Path, model: torch.nn.Module, ema: EMA, opt: torch.optim.Optimizer, meta: dict) -> None:
    """Write the resume state: ``meta`` (counters, history, the run's config) rides as JSON."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state.items()})
    opt_tensors, opt_scalars = _optimizer_tensors(opt)
    tensors.update(opt_tensors)
    save_tensors(tensors, path, {"trainer": json.dumps({**meta, "optim_scalars": opt_scalars})})


def load_state(path: Path, arch: str, model: torch.nn.Module, ema: EMA, opt: torch.optim.Optimizer,
               device: torch.device) -> dict:
    """Load a resume state into ``model``, ``ema`` and ``opt``; returns its metadata."""
    if not path.is_file():
        raise CheckpointError(f"nothing to resume: {path} does not exist")
    tensors, metadata = read_tensors(path)
    meta = json.loads(metadata["trainer"])
    saved = meta["train_config"]
    if saved["arch"] != arch:
        raise CheckpointError(f"{path} is a {saved['arch']} run, not {arch}")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.state = {k[4:]: v.to(device) for k, v in tensors.items() if k.startswith("ema.")}
    _load_optimizer(opt, {k: v.to(device) for k, v in tensors.items() if k.startswith("optim.")},
                    meta["optim_scalars"])
    return meta
