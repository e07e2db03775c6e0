"""The training loop: whole split in memory as uint8, batched augmentation, one schedule.

Built for 2 CPU cores first and a GPU when there is one, and split the way torchvision's
references are: ``train_one_epoch`` is the loop over steps, ``Trainer`` holds the model, optimiser
and EMA and runs epochs, evaluating and writing checkpoints when ``CheckpointSchedule`` says
(``seg_core.train_schedule``, with the LR and augmentation schedules), the resume state and EMA
live in ``seg_core.train_state``, the DDP helpers in ``seg_core.runtime``, and what only the GPU
campaign needs (timed benchmark steps) beside ``scripts/gpu_campaign.py``.

* the split lives in memory (CPU or GPU) as uint8 and is augmented batched in torch
  (``seg_core.transforms``), so no worker processes compete with the model for the two cores;
* loss = class-weighted cross-entropy + Dice (both favour the rare classes, which decide mIoU);
* an EMA of the weights is what gets evaluated and shipped;
* every epoch ends with an atomic resume state, so ``--resume`` after a kill -9 loses at most the
  epoch under way, and each epoch's randomness is seeded from (seed, epoch), so a resumed run
  matches an uninterrupted one;
* on CUDA: bf16 autocast, channels_last, cudnn.benchmark, optional ``torch.compile``, data,
  augmentation and EMA on the GPU with no per-step host sync (the second epoch counts them); with
  ``torchrun`` the steps are split over processes with DDP (gloo on CPU, nccl on GPU);
* GPU mode (``eval_interval_s``, ``save_state=False``, ``deadline_s``): an epoch of a few seconds
  is cheaper than evaluating and writing checkpoints, so those run on a wall-clock timer and at the
  end, with no resume state (see ``scripts/gpu_campaign.py``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss

from .checkpoint import load_model, save_model
from .config import ModelConfig, TrainConfig
from .evaluate import evaluate
from .files import atomic_path
from .models import SegmentationNetwork, build_model
from .palette import IGNORE_INDEX, NUM_CLASSES
from .runners import TorchRunner
from .runtime import SyncCounter, any_rank, init_distributed, wrap_ddp
from .train_schedule import CheckpointSchedule, make_augment, phase_augment, schedule_lr
from .train_state import EMA, load_state, save_state
from .transforms import Augment, augment_batch

__all__ = ["TrainConfig", "Trainer", "class_weights", "schedule_lr", "make_augment", "train_one_epoch"]


def class_weights(labels: torch.Tensor, power: float, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Median-frequency balancing softened by ``power`` and clipped to [0.1, 10]."""
    counts = torch.bincount(labels.reshape(-1).long(), minlength=256)[:num_classes].double().cpu()
    freq = counts / counts.sum()
    present = freq > 0
    w = torch.ones(num_classes, dtype=torch.float64)
    w[present] = (freq[present].median() / freq[present]) ** power
    return w.clamp(0.1, 10).float()


def train_one_epoch(trainer: "Trainer", wall_start: float) -> dict:
    """One pass over this process's share of the shuffled train pairs, seeded from (seed, epoch);
    ends early when the time budget is spent. Returns the epoch's stats."""
    cfg = trainer.cfg
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + trainer.epoch)
    torch.manual_seed(cfg.seed * 100_003 + trainer.epoch)  # dropout
    order = torch.randperm(len(trainer.train_images), generator=g)[trainer.rank :: trainer.world]
    order = order.to(trainer.device)
    trainer.set_train_mode()
    loss_sum = torch.zeros((), device=trainer.device)
    images, n_steps, stopped, p = 0, 0, False, 0.0
    # The second CUDA epoch counts the host syncs of its steps (there should be none; the first
    # epoch's cuDNN autotuning may sync).
    count_syncs = trainer.device.type == "cuda" and trainer.epoch == 1
    with SyncCounter(count_syncs) as syncs:
        for i in trainer.step_range():
            p = trainer.progress(wall_start)
            if cfg.time_budget and trainer.should_stop(p, i):
                stopped = True
                break
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            loss_sum += trainer.train_step(idx, phase_augment(p, cfg), g, schedule_lr(p, cfg))
            images, n_steps = images + len(idx), n_steps + 1
    seconds = time.monotonic() - wall_start
    stats = {"loss": (loss_sum / max(1, n_steps)).item(),  # the epoch's one wait for the device
             "lr": schedule_lr(p, cfg), "res": phase_augment(p, cfg).size[0],
             "img_s": images * trainer.world / max(seconds, 1e-9), "stopped": stopped, "steps": n_steps}
    if trainer.device.type == "cuda":
        stats["max_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if count_syncs:
            stats["host_syncs"] = syncs.count
    return stats


class Trainer:
    """One training run; ``run()`` trains, evaluates, checkpoints and returns the best metrics."""

    def __init__(self, cfg: TrainConfig, train: tuple[torch.Tensor, torch.Tensor],
                 val: tuple[torch.Tensor, torch.Tensor] | None, out: str | Path, resume: bool = False,
                 log=print):
        self.cfg, self.out, self.log = cfg, Path(out), log
        self.rank, self.world, self.device = init_distributed()
        self.is_main = self.rank == 0
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        mcfg = ModelConfig(arch=cfg.arch, encoder=cfg.encoder, encoder_weights=cfg.encoder_weights,
                           input_size=(cfg.final_size, cfg.final_size))
        self.model = build_model(mcfg)
        if cfg.init:
            src = load_model(cfg.init, arch=cfg.arch)
            self.model.load_state_dict(src.state_dict())
        self.model.to(self.device).to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes per phase: autotune each conv once
            torch.set_float32_matmul_precision("high")
        self.train_images, self.train_labels = (t.to(self.device) for t in train)
        on_gpu = self.device.type == "cuda" and val is not None
        self.val = tuple(t.to(self.device) for t in val) if on_gpu else val
        self._eval_model: SegmentationNetwork | None = None
        self.weights = class_weights(train[1], cfg.class_weight_power).to(self.device)
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
                                     fused=self.device.type == "cuda")
        self.ema = EMA(self.model, cfg.ema_decay)
        self.dice = DiceLoss("multiclass", from_logits=True, ignore_index=IGNORE_INDEX)
        self.step, self.epoch, self.elapsed, self.best = 0, 0, 0.0, -1.0
        self.history: list[dict] = []
        self.schedule = CheckpointSchedule(cfg, time.monotonic())
        self.net = wrap_ddp(self.model, find_unused=cfg.freeze_encoder_epochs > 0)
        # dynamic=False: the two phases' crop sizes compile once each instead of into slower dynamic kernels.
        self.forward = torch.compile(self.net, dynamic=False) if cfg.compile else self.net
        if resume:
            meta = load_state(self.state_path, cfg.arch, self.model, self.ema, self.opt, self.device)
            self.step, self.epoch, self.elapsed = meta["step"], meta["epoch"], meta["elapsed"]
            self.best, self.history = meta["best"], meta["history"]
            self.log(f"resumed {cfg.arch} after epoch {self.epoch} (step {self.step}, {self.elapsed:.0f}s)")

    @property
    def state_path(self) -> Path:
        return self.out / "state.safetensors"

    # -- steps ---------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        n = len(self.train_images) // self.world
        return max(1, n // self.cfg.batch_size)

    def step_range(self):
        steps = range(self.steps_per_epoch())
        if self.is_main and sys.stderr.isatty():
            from tqdm import tqdm

            return tqdm(steps, desc=f"epoch {self.epoch + 1}", unit="step", file=sys.stderr, leave=False)
        return steps

    def set_train_mode(self) -> None:
        """Train mode, with the encoder frozen (weights and BatchNorm statistics) for the first
        ``freeze_encoder_epochs``."""
        encoder = getattr(self.model.net, "encoder", None)
        frozen = self.epoch < self.cfg.freeze_encoder_epochs and encoder is not None
        if encoder is not None:
            encoder.requires_grad_(not frozen)
        self.model.train()
        if frozen:
            encoder.eval()

    def progress(self, wall_start: float) -> float:
        cfg = self.cfg
        if cfg.time_budget:
            spent = self.elapsed + (time.monotonic() - wall_start)
            return min(1.0, spent / max(1.0, cfg.time_budget - self.schedule.end_reserve()))
        return min(1.0, self.step / (cfg.epochs * self.steps_per_epoch()))

    def should_stop(self, p: float, step_in_epoch: int) -> bool:
        """Whether the time budget is spent. One process decides on the host (no device sync);
        under DDP the processes agree every 8 steps, so they stop on the same step."""
        if self.world == 1:
            return p >= 1.0
        return step_in_epoch % 8 == 0 and any_rank(p >= 1.0, self.device)

    def train_step(self, idx: torch.Tensor, aug: Augment, g: torch.Generator, lr: float) -> torch.Tensor:
        """One optimiser step on the train pairs ``idx`` (a tensor on the device); returns the loss
        as a device tensor, so nothing here waits for the GPU."""
        x, y = augment_batch(self.train_images[idx], self.train_labels[idx], aug, g,
                             mean=self.model.config.mean, std=self.model.config.std)
        x = x.contiguous(memory_format=torch.channels_last)
        for group in self.opt.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            logits = self.forward(x)
        logits = logits.float()
        loss = F.cross_entropy(logits, y, weight=self.weights, ignore_index=IGNORE_INDEX)
        if self.cfg.dice_weight:
            loss = loss + self.cfg.dice_weight * self.dice(logits, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        self.ema.update(self.model, self.step)
        return loss.detach()

    # -- epochs, evaluation, checkpoints -------------------------------------------------
    def run(self) -> dict:
        cfg = self.cfg
        run_start = time.monotonic()
        self.schedule = CheckpointSchedule(cfg, run_start)
        total_epochs = cfg.epochs or 10**9
        if self.is_main:
            sys_info = f"{self.device}, {torch.get_num_threads()} threads, world {self.world}"
            self.log(f"training {cfg.arch} on {len(self.train_images)} pairs ({sys_info})")
        done = False
        while not done and self.epoch < total_epochs:
            wall_start, elapsed_before = time.monotonic(), self.elapsed
            stats = train_one_epoch(self, wall_start)
            if stats["stopped"] and stats["steps"] == 0 and self.epoch > 0:
                break  # the budget ran out on the epoch boundary: the last epoch's files stand
            del stats["steps"]
            done = stats.pop("stopped") or (cfg.epochs is not None and self.epoch + 1 >= cfg.epochs)
            self.epoch += 1
            train_time = time.monotonic() - wall_start
            if not done and cfg.deadline_s is not None:
                # The next epoch (as long as this one, plus the final evaluation) must end inside the deadline.
                if any_rank(self.schedule.past_deadline(time.monotonic() - run_start, train_time), self.device):
                    done = stats["cut_by_deadline"] = True
            if self.is_main:
                self._end_epoch(stats, done, wall_start, elapsed_before, train_time)
            else:
                self.elapsed = elapsed_before + (time.monotonic() - wall_start)
            if self.world > 1:
                dist.barrier()
        return {"best_miou": self.best, "epochs": self.epoch, "steps": self.step, "elapsed_s": self.elapsed}

    def _end_epoch(self, stats: dict, done: bool, wall_start: float, elapsed_before: float, train_time: float) -> None:
        """The main process's end of an epoch: evaluate and write when the schedule says, log."""
        t0 = time.monotonic()
        checkpoint = self.schedule.checkpoint_due(done, t0)
        if checkpoint:
            model = self._ema_model()
            if self.val is not None and self.schedule.evaluate_due(done, self.epoch):
                metrics, _ = evaluate(TorchRunner(model), *self.val, batch_size=self.cfg.batch_size)
                stats.update(val_miou=metrics["miou"], val_pixel_acc=metrics["pixel_acc"],
                             val_class_acc=metrics["class_acc"], eval_s=time.monotonic() - t0)
                if metrics["miou"] > self.best:
                    self.best = metrics["miou"]
                    self._export(model, self.out / "best.safetensors", metrics)
            self._export(model, self.out / "last.safetensors", None)
        self.elapsed = elapsed_before + (time.monotonic() - wall_start)
        stats.update(epoch=self.epoch, step=self.step, elapsed_s=round(self.elapsed, 1), train_s=round(train_time, 1))
        self.history.append(stats)
        if checkpoint:
            if self.cfg.save_state:
                self._save_state()  # the resume point comes first: the logs never run ahead of it
            self._write_logs()
        self.elapsed = elapsed_before + (time.monotonic() - wall_start)  # count the writes too
        self.log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items()))
        if checkpoint:
            self.schedule.written(t0, time.monotonic())

    def _save_state(self) -> None:
        meta = {"step": self.step, "epoch": self.epoch, "elapsed": self.elapsed, "best": self.best,
                "history": self.history, "train_config": dataclasses.asdict(self.cfg)}
        save_state(self.state_path, self.model, self.ema, self.opt, meta)

    def _ema_model(self) -> SegmentationNetwork:
        """The EMA weights in a model built once per run (building costs a CPU init of every layer)."""
        if self._eval_model is None:
            self._eval_model = build_model(self.model.config).to(self.device)
            if self.device.type == "cuda":
                self._eval_model.to(memory_format=torch.channels_last)
        model = self._eval_model
        model.load_state_dict(self.ema.state)
        model.config.metrics = {}
        return model.eval()

    def _export(self, model: SegmentationNetwork, path: Path, metrics: dict | None) -> None:
        model.config.training = {**dataclasses.asdict(self.cfg), "epochs_done": self.epoch, "steps": self.step,
                                 "elapsed_s": round(self.elapsed, 1), "device": str(self.device),
                                 "threads": torch.get_num_threads(), "world_size": self.world,
                                 "torch": torch.__version__}
        if metrics is not None:
            model.config.metrics = {"split": "val (select half)" if self.cfg.val_select else "val", **metrics}
        save_model(model, path, half=True)

    def _write_logs(self) -> None:
        with atomic_path(self.out / "log.json") as tmp:
            tmp.write_text(json.dumps(self.history, indent=1))
        keys = sorted({k for row in self.history for k in row})
        with atomic_path(self.out / "log.csv") as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
