"""Timed training steps for the GPU campaign's smoke step and compile trial (``scripts/gpu_campaign.py``).

Campaign-only, so it lives beside the campaign script rather than in ``seg_core.train``: it times
real steps of a ``Trainer`` (augmentation, loss, optimiser, EMA), which trains that Trainer's
weights, so it is only ever given a throwaway one.
"""

from __future__ import annotations

import math
import time

import torch

from seg_core.train import Trainer, make_augment, schedule_lr


def _sync(trainer: Trainer) -> None:
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)


def benchmark(trainer: Trainer, size: int, steps: int = 8, warmup: int = 2) -> dict:
    """The first step's seconds (autotuning, compilation) at crop ``size`` and the mean of ``steps``
    after ``warmup`` more: ``{"first_s", "step_s", "img_s"}``."""
    cfg = trainer.cfg
    trainer.model.train()
    g = torch.Generator().manual_seed(cfg.seed)
    n, batch = len(trainer.train_images), cfg.batch_size
    picks = torch.randint(n, (1 + warmup + steps, batch), generator=g).to(trainer.device)
    aug = make_augment(cfg, size, cfg.final_scale)
    lr = schedule_lr(0.5, cfg)
    _sync(trainer)
    t0 = time.monotonic()
    loss = trainer.train_step(picks[0], aug, g, lr)
    _sync(trainer)
    first = time.monotonic() - t0
    for i in range(warmup):
        trainer.train_step(picks[1 + i], aug, g, lr)
    _sync(trainer)
    t0 = time.monotonic()
    for i in range(steps):
        loss = trainer.train_step(picks[1 + warmup + i], aug, g, lr)
    _sync(trainer)
    per_step = (time.monotonic() - t0) / max(1, steps)
    if not math.isfinite(float(loss)):
        raise FloatingPointError(f"{cfg.arch}: the loss is not finite at crop {size}")
    return {"first_s": first, "step_s": per_step, "img_s": batch / per_step}
