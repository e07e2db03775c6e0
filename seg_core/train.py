"""The training loop: whole split in memory as uint8, batched augmentation, one schedule.

Built for 2 CPU cores first and a GPU when there is one:

* the split lives in memory (CPU or GPU) as uint8 and is augmented batched in torch
  (``seg_core.transforms``), so no worker processes compete with the model for the two cores;
* the schedule is a function of *progress* p in [0, 1], either steps / total steps (``epochs``) or
  wall-clock elapsed / budget (``time_budget``): one-cycle LR (warm-up then cosine) and progressive
  resizing (small crops while p < 1 - final_frac, full-size images after);
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
import math
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss

from .checkpoint import CheckpointError, load_model, read_tensors, save_model, save_tensors
from .config import ModelConfig, TrainConfig
from .evaluate import evaluate
from .files import atomic_path
from .models import SegmentationNetwork, build_model
from .palette import IGNORE_INDEX, NUM_CLASSES
from .runners import TorchRunner
from .runtime import init_distributed
from .transforms import Augment, augment_batch


def schedule_lr(p: float, cfg: TrainConfig) -> float:
    """One-cycle: linear warm-up to ``lr``, cosine down to ``lr / 100``."""
    if p < cfg.warmup:
        return cfg.lr * (0.05 + 0.95 * p / cfg.warmup)
    q = min(1.0, (p - cfg.warmup) / max(1e-8, 1 - cfg.warmup))
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * q)))


#: The TrainConfig fields that are Augment fields of the same name (the photometric and camera ops).
AUGMENT_FIELDS = ("brightness", "contrast", "saturation", "hue", "gamma", "aspect", "blur_p", "blur_sigma",
                  "motion_length", "noise_p", "noise_std", "jpeg_p", "jpeg_quality")


def make_augment(cfg: TrainConfig, size: int, scale: tuple[float, float]) -> Augment:
    return Augment(size=(size, size), scale=scale, **{k: getattr(cfg, k) for k in AUGMENT_FIELDS})


def phase_augment(p: float, cfg: TrainConfig) -> Augment:
    if p < 1 - cfg.final_frac:
        return make_augment(cfg, cfg.crop, cfg.crop_scale)
    return make_augment(cfg, cfg.final_size, cfg.final_scale)


def class_weights(labels: torch.Tensor, power: float, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Median-frequency balancing softened by ``power`` and clipped to [0.1, 10]."""
    counts = torch.bincount(labels.reshape(-1).long(), minlength=256)[:num_classes].double().cpu()
    freq = counts / counts.sum()
    present = freq > 0
    w = torch.ones(num_classes, dtype=torch.float64)
    w[present] = (freq[present].median() / freq[present]) ** power
    return w.clamp(0.1, 10).float()


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


class _SyncCounter:
    """Counts CUDA host syncs inside a ``with`` block (``torch.cuda.set_sync_debug_mode``); a no-op
    when not ``enabled``."""

    def __init__(self, enabled: bool):
        self.enabled, self.count = enabled, 0

    def __enter__(self):
        if self.enabled:
            import warnings

            self._catch = warnings.catch_warnings(record=True)
            self._caught = self._catch.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc):
        if self.enabled:
            torch.cuda.set_sync_debug_mode("default")
            self.count = sum("synchroniz" in str(w.message) for w in self._caught)
            self._catch.__exit__(*exc)
        return False


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
        self.net = self.model
        if self.world > 1:
            # A frozen encoder leaves parameters without gradients for a while: DDP must know.
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, find_unused_parameters=cfg.freeze_encoder_epochs > 0)
        # dynamic=False: the two phases' crop sizes compile once each instead of into slower dynamic kernels.
        self.forward = torch.compile(self.net, dynamic=False) if cfg.compile else self.net
        if resume:
            self._load_state()

    # -- state ---------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.out / "state.safetensors"

    def _save_state(self) -> None:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in self.ema.state.items()})
        opt_tensors, opt_scalars = _optimizer_tensors(self.opt)
        tensors.update(opt_tensors)
        meta = {"step": self.step, "epoch": self.epoch, "elapsed": self.elapsed, "best": self.best,
                "history": self.history, "optim_scalars": opt_scalars,
                "train_config": dataclasses.asdict(self.cfg)}
        save_tensors(tensors, self.state_path, {"trainer": json.dumps(meta)})

    def _load_state(self) -> None:
        if not self.state_path.is_file():
            raise CheckpointError(f"nothing to resume: {self.state_path} does not exist")
        tensors, metadata = read_tensors(self.state_path)
        meta = json.loads(metadata["trainer"])
        saved = meta["train_config"]
        if saved["arch"] != self.cfg.arch:
            raise CheckpointError(f"{self.state_path} is a {saved['arch']} run, not {self.cfg.arch}")
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.ema.state = {k[4:]: v.to(self.device) for k, v in tensors.items() if k.startswith("ema.")}
        _load_optimizer(self.opt, {k: v.to(self.device) for k, v in tensors.items() if k.startswith("optim.")},
                        meta["optim_scalars"])
        self.step, self.epoch, self.elapsed = meta["step"], meta["epoch"], meta["elapsed"]
        self.best, self.history = meta["best"], meta["history"]
        self.log(f"resumed {self.cfg.arch} after epoch {self.epoch} (step {self.step}, {self.elapsed:.0f}s)")

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

    # -- loop ----------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        n = len(self.train_images) // self.world
        return max(1, n // self.cfg.batch_size)

    def _end_reserve(self) -> float:
        """Seconds of the budget kept for one more evaluation and set of checkpoint writes: 1.5x the
        slowest seen, or 5 % of the budget until one was timed."""
        budget = self.cfg.time_budget or 0
        return 1.5 * self._end_cost + 0.02 * budget if self._end_cost else 0.05 * budget

    def progress(self, wall_start: float) -> float:
        cfg = self.cfg
        if cfg.time_budget:
            spent = self.elapsed + (time.monotonic() - wall_start)
            return min(1.0, spent / max(1.0, cfg.time_budget - self._end_reserve()))
        return min(1.0, self.step / (cfg.epochs * self.steps_per_epoch()))

    def _should_stop(self, p: float, step_in_epoch: int) -> bool:
        """Whether the time budget is spent. One process decides on the host (no device sync);
        under DDP the processes agree every 8 steps, so they stop on the same step."""
        if self.world == 1:
            return p >= 1.0
        if step_in_epoch % 8:
            return False
        stop = torch.tensor([1.0 if p >= 1.0 else 0.0], device=self.device)
        dist.all_reduce(stop, op=dist.ReduceOp.MAX)
        return bool(stop.item())

    def run(self) -> dict:
        cfg = self.cfg
        self._end_cost = 0.0  # the slowest evaluation + checkpoint writes seen so far, in seconds
        run_start = self._last_eval = time.monotonic()
        total_epochs = cfg.epochs or 10**9
        sys_info = f"{self.device}, {torch.get_num_threads()} threads, world {self.world}"
        if self.is_main:
            self.log(f"training {cfg.arch} on {len(self.train_images)} pairs ({sys_info})")
        done = False
        while not done and self.epoch < total_epochs:
            wall_start, elapsed_before = time.monotonic(), self.elapsed
            stats = self._train_epoch(wall_start)
            if stats["stopped"] and stats["steps"] == 0 and self.epoch > 0:
                break  # the budget ran out on the epoch boundary: the last epoch's files stand
            del stats["steps"]
            done = stats.pop("stopped") or (cfg.epochs is not None and self.epoch + 1 >= cfg.epochs)
            self.epoch += 1
            train_time = time.monotonic() - wall_start
            if not done and cfg.deadline_s is not None:
                # The next epoch (as long as this one, plus the final evaluation) must end inside the deadline.
                cut = time.monotonic() - run_start + 1.2 * train_time + self._end_cost > cfg.deadline_s
                if self.world > 1:  # every process stops after the same epoch
                    flag = torch.tensor([float(cut)], device=self.device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                    cut = bool(flag.item())
                if cut:
                    done = stats["cut_by_deadline"] = True
            if self.is_main:
                t0 = time.monotonic()
                on_timer = cfg.eval_interval_s is not None
                checkpoint = done or not on_timer or t0 - self._last_eval >= cfg.eval_interval_s
                if checkpoint:
                    model = self._ema_model()
                    if self.val is not None and (done or on_timer or self.epoch % cfg.eval_every == 0):
                        metrics, _ = evaluate(TorchRunner(model), *self.val, batch_size=cfg.batch_size)
                        stats.update(val_miou=metrics["miou"], val_pixel_acc=metrics["pixel_acc"],
                                     val_class_acc=metrics["class_acc"], eval_s=time.monotonic() - t0)
                        if metrics["miou"] > self.best:
                            self.best = metrics["miou"]
                            self._export(model, self.out / "best.safetensors", metrics)
                    self._export(model, self.out / "last.safetensors", None)
                self.elapsed = elapsed_before + (time.monotonic() - wall_start)
                stats.update(epoch=self.epoch, step=self.step, elapsed_s=round(self.elapsed, 1),
                             train_s=round(train_time, 1))
                self.history.append(stats)
                if checkpoint:
                    if cfg.save_state:
                        self._save_state()  # the resume point comes first: the logs never run ahead of it
                    self._write_logs()
                    self._last_eval = time.monotonic()
                self.elapsed = elapsed_before + (time.monotonic() - wall_start)  # count the writes too
                self.log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items()))
                if checkpoint:
                    # The slowest, not the last: one epoch may have skipped its evaluation, or been quick.
                    self._end_cost = max(self._end_cost, time.monotonic() - t0)
            else:
                self.elapsed = elapsed_before + (time.monotonic() - wall_start)
            if self.world > 1:
                dist.barrier()
        return {"best_miou": self.best, "epochs": self.epoch, "steps": self.step, "elapsed_s": self.elapsed}

    def _step(self, idx: torch.Tensor, aug: Augment, g: torch.Generator, lr: float) -> torch.Tensor:
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

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def benchmark(self, size: int, steps: int = 8, warmup: int = 2) -> dict:
        """Time real training steps (augmentation, loss, optimiser, EMA) at crop ``size``: the first
        step's seconds (autotuning, compilation) and the mean of ``steps`` after ``warmup`` more.
        It trains the weights: use a throwaway Trainer (the smoke step of ``scripts/gpu_campaign.py``)."""
        self.model.train()
        g = torch.Generator().manual_seed(self.cfg.seed)
        n, batch = len(self.train_images), self.cfg.batch_size
        picks = torch.randint(n, (1 + warmup + steps, batch), generator=g).to(self.device)
        aug = make_augment(self.cfg, size, self.cfg.final_scale)
        lr = schedule_lr(0.5, self.cfg)
        self._sync()
        t0 = time.monotonic()
        loss = self._step(picks[0], aug, g, lr)
        self._sync()
        first = time.monotonic() - t0
        for i in range(warmup):
            self._step(picks[1 + i], aug, g, lr)
        self._sync()
        t0 = time.monotonic()
        for i in range(steps):
            loss = self._step(picks[1 + warmup + i], aug, g, lr)
        self._sync()
        per_step = (time.monotonic() - t0) / max(1, steps)
        if not math.isfinite(float(loss)):
            raise FloatingPointError(f"{self.cfg.arch}: the loss is not finite at crop {size}")
        return {"first_s": first, "step_s": per_step, "img_s": batch / per_step}

    def _train_epoch(self, wall_start: float) -> dict:
        cfg = self.cfg
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + self.epoch)
        torch.manual_seed(cfg.seed * 100_003 + self.epoch)  # dropout
        order = torch.randperm(len(self.train_images), generator=g)[self.rank :: self.world].to(self.device)
        encoder = getattr(self.model.net, "encoder", None)
        frozen = self.epoch < cfg.freeze_encoder_epochs and encoder is not None
        if encoder is not None:
            encoder.requires_grad_(not frozen)
        self.model.train()
        if frozen:
            encoder.eval()  # a frozen encoder keeps its BatchNorm statistics too
        loss_sum = torch.zeros((), device=self.device)
        images, n_steps, stopped, p = 0, 0, False, 0.0
        steps = range(self.steps_per_epoch())
        if self.is_main and sys.stderr.isatty():
            from tqdm import tqdm

            steps = tqdm(steps, desc=f"epoch {self.epoch + 1}", unit="step", file=sys.stderr, leave=False)
        # The second CUDA epoch counts the host syncs of its steps (there should be none; the first
        # epoch's cuDNN autotuning may sync).
        count_syncs = self.device.type == "cuda" and self.epoch == 1
        with _SyncCounter(count_syncs) as syncs:
            for i in steps:
                p = self.progress(wall_start)
                if cfg.time_budget and self._should_stop(p, i):
                    stopped = True
                    break
                idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                loss_sum += self._step(idx, phase_augment(p, cfg), g, schedule_lr(p, cfg))
                images += len(idx)
                n_steps += 1
        loss = (loss_sum / max(1, n_steps)).item()  # the epoch's one wait for the device
        seconds = time.monotonic() - wall_start
        stats = {"loss": loss, "lr": schedule_lr(p, cfg), "res": phase_augment(p, cfg).size[0],
                 "img_s": images * self.world / max(seconds, 1e-9), "stopped": stopped, "steps": n_steps}
        if self.device.type == "cuda":
            stats["max_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
            if count_syncs:
                stats["host_syncs"] = syncs.count
        return stats

    def _export(self, model: SegmentationNetwork, path: Path, metrics: dict | None) -> None:
        model.config.training = {**dataclasses.asdict(self.cfg), "epochs_done": self.epoch, "steps": self.step,
                                 "elapsed_s": round(self.elapsed, 1), "device": str(self.device),
                                 "threads": torch.get_num_threads(), "world_size": self.world,
                                 "torch": torch.__version__}
        if metrics is not None:
            model.config.metrics = {"split": "val", **metrics}
        save_model(model, path, half=True)

    def _write_logs(self) -> None:
        with atomic_path(self.out / "log.json") as tmp:
            tmp.write_text(json.dumps(self.history, indent=1))
        keys = sorted({k for row in self.history for k in row})
        with atomic_path(self.out / "log.csv") as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
