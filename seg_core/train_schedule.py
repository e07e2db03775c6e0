"""The training schedules: learning rate and augmentation as functions of progress, and when to
evaluate and write checkpoints.

Progress p in [0, 1] is steps / total steps (``epochs``) or wall-clock elapsed / budget
(``time_budget``): one-cycle LR (warm-up then cosine) and progressive resizing (small crops while
p < 1 - final_frac, full-size images after). Checkpoints come every ``eval_every`` epochs, or in
GPU mode (``eval_interval_s``) on a wall-clock timer, always at the end; a ``deadline_s`` ends an
epochs run early when the next epoch and the final writes would not fit.
"""

from __future__ import annotations

import math

from .config import TrainConfig
from .transforms import Augment

#: The TrainConfig fields that are Augment fields of the same name (the photometric and camera ops).
AUGMENT_FIELDS = ("brightness", "contrast", "saturation", "hue", "gamma", "aspect", "blur_p", "blur_sigma",
                  "motion_length", "noise_p", "noise_std", "jpeg_p", "jpeg_quality")


def schedule_lr(p: float, cfg: TrainConfig) -> float:
    """One-cycle: linear warm-up to ``lr``, cosine down to ``lr / 100``."""
    if p < cfg.warmup:
        return cfg.lr * (0.05 + 0.95 * p / cfg.warmup)
    q = min(1.0, (p - cfg.warmup) / max(1e-8, 1 - cfg.warmup))
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * q)))


def augment_problem(cfg: TrainConfig) -> str | None:
    """One sentence on what is wrong with the augmentation settings of ``cfg``, or None."""
    lo, hi = cfg.jpeg_quality
    checks = [
        (min(cfg.brightness, cfg.contrast, cfg.saturation, cfg.gamma, cfg.aspect, cfg.noise_std) >= 0,
         "--brightness, --contrast, --saturation, --gamma, --aspect and --noise-std must not be negative"),
        (0 <= cfg.hue <= 0.5, "--hue is a fraction of a turn either way: 0 to 0.5"),
        (1 <= lo <= hi <= 100, "--jpeg-quality LOW HIGH must satisfy 1 <= LOW <= HIGH <= 100"),
        (cfg.blur_sigma >= 0.5, "--blur-sigma must be at least 0.5 (the smallest sigma drawn)"),
        (cfg.motion_length >= 3, "--motion-length must be at least 3 (the shortest streak drawn)"),
    ]
    return next((msg for ok, msg in checks if not ok), None)


def make_augment(cfg: TrainConfig, size: int, scale: tuple[float, float]) -> Augment:
    return Augment(size=(size, size), scale=scale, **{k: getattr(cfg, k) for k in AUGMENT_FIELDS})


def phase_augment(p: float, cfg: TrainConfig) -> Augment:
    if p < 1 - cfg.final_frac:
        return make_augment(cfg, cfg.crop, cfg.crop_scale)
    return make_augment(cfg, cfg.final_size, cfg.final_scale)


class CheckpointSchedule:
    """When an epoch ends in an evaluation and checkpoint writes, and what they cost: the slowest
    seen (not the last: one epoch may have skipped its evaluation) sizes the budget's reserve and
    the deadline's margin."""

    def __init__(self, cfg: TrainConfig, now: float):
        self.cfg, self.last, self.end_cost = cfg, now, 0.0

    def end_reserve(self) -> float:
        """Seconds of the budget kept for one more evaluation and set of writes: 1.5x the slowest
        seen, or 5 % of the budget until one was timed."""
        budget = self.cfg.time_budget or 0
        return 1.5 * self.end_cost + 0.02 * budget if self.end_cost else 0.05 * budget

    def checkpoint_due(self, done: bool, now: float) -> bool:
        interval = self.cfg.eval_interval_s
        return done or interval is None or now - self.last >= interval

    def evaluate_due(self, done: bool, epoch: int) -> bool:
        """At a checkpoint: whether to evaluate too (on the timer always; else every ``eval_every``)."""
        return done or self.cfg.eval_interval_s is not None or epoch % self.cfg.eval_every == 0

    def past_deadline(self, run_s: float, epoch_s: float) -> bool:
        """Whether another epoch as long as the last one, plus the final writes, would end after the deadline."""
        deadline = self.cfg.deadline_s
        return deadline is not None and run_s + 1.2 * epoch_s + self.end_cost > deadline

    def written(self, started: float, now: float) -> None:
        self.end_cost, self.last = max(self.end_cost, now - started), now
