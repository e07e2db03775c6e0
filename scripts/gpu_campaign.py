"""The GPU campaign's device-side script: smoke step, one epoch count, train, write each model to $OUT.

Run on the borrowed GPU machine by the two commands that ``python train_cli.py campaign bundle``
prints (docs/gpu_campaign.md), and on CPU by ``tests/test_campaign.py``'s rehearsal. In order:

1. smoke step per model: real training steps (augmentation, bf16 autocast, channels_last, loss,
   optimiser, EMA) at the chosen batch, at both crop sizes, eager; a smaller batch if that fails.
   ``torch.compile`` is timed meanwhile in a child process with a time cap, so a slow compile
   costs the cap, not the budget;
2. plan: one epoch count E for all three models (command A times the two models of command B too
   and leaves the plan in /tmp for it), from the measured speeds and each command's seconds;
   compile only where the measured gain over E epochs exceeds the measured compile time;
3. train each model for E epochs (GPU mode: evaluation and saving every ``--eval-interval`` s, no
   resume state, a deadline guard) and write it to ``--out`` at once as <= 16 MiB chunks with
   sha256 (``manifest.json``), plus a gzipped log; a timed-out command still returns them.

Recipe (the same for all three, as the CPU runs but for the batch): AdamW, weight decay 1e-2,
one-cycle LR with linear warm-up over 3 % of the steps, peak LR 2e-3 * sqrt(batch / 16), EMA decay
0.999 ** (batch / 16) (the same horizon in images as at batch 16), 128x128 crops for the first
75 % of the steps then 256x256, cross-entropy with class weights (power 0.5) + 0.5 Dice, the
robustness augmentation ``seg_core.campaign.AUGMENT`` (photometric, blur, noise, JPEG; the zoom
range stays the CPU runs'; ``--plain-augment`` turns it off); from
scratch (no ImageNet weights: nothing can be downloaded there, and the shipped weights cannot
travel with the packs inside 64 MiB).
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the GPU machine runs the checkout as it travels, without installing it

from seg_core.campaign import AUGMENT, LOG_NAME, MANIFEST, check_return, write_chunks  # noqa: E402  (no torch import)
from seg_core.files import atomic_path  # noqa: E402

T0 = time.monotonic()


class Log:
    """Unbuffered log lines with the seconds since start; kept for the gzipped copy in --out."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, msg: str) -> None:
        line = f"[{time.monotonic() - T0:6.1f}s] {msg}"
        print(line, flush=True)
        self.lines.append(line)

    def save(self, out: Path, keep: int | None = None) -> None:
        lines = self.lines if keep is None else self.lines[-keep:]
        with atomic_path(out / LOG_NAME) as tmp:
            tmp.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), 9))


@contextmanager
def gpu_lock(work: Path):
    """Timed sections of this process and of the compile trial never overlap on the GPU."""
    with open(work / "gpu.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def augment(args) -> dict:
    return {} if args.plain_augment else dict(AUGMENT)


def train_config(args, arch: str, batch: int, **kw):
    from seg_core.train import TrainConfig

    return TrainConfig(arch=arch, batch_size=batch, lr=args.lr16 * math.sqrt(batch / 16),
                       ema_decay=0.999 ** (batch / 16), crop=args.crop, final_size=args.final_size,
                       final_frac=args.final_frac, eval_interval_s=args.eval_interval, save_state=False,
                       **augment(args), **kw)


def epoch_seconds(speed: dict, args, n_train: int) -> float:
    """Seconds per epoch from the smoke step: the crop/final mix of the schedule, plus 15 % for
    evaluations on the timer and the first epochs' autotuning."""
    steps = max(1, n_train // speed["batch"])
    q = 1 - args.final_frac
    return 1.15 * steps * (q * speed["crop"]["step_s"] + (1 - q) * speed["final"]["step_s"])


def smoke(arch: str, args, train, work: Path, log) -> dict | None:
    """Time eager training steps at both crop sizes; halve the batch on failure (saying so)."""
    import torch

    from campaign_steps import benchmark
    from seg_core.train import Trainer

    batch = args.batch
    while batch >= args.min_batch:
        try:
            trainer = Trainer(train_config(args, arch, batch, epochs=1), train, None, work / f"smoke_{arch}",
                              log=lambda *_: None)
            with gpu_lock(work):
                crop = benchmark(trainer, args.crop, steps=args.smoke_steps, warmup=args.smoke_warmup)
                final = crop if args.final_size == args.crop else benchmark(
                    trainer, args.final_size, steps=args.smoke_steps, warmup=args.smoke_warmup)
            mem = f", max GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if torch.cuda.is_available() else ""
            log(f"smoke {arch} eager, batch {batch}: {crop['img_s']:.0f} img/s at {args.crop}, "
                f"{final['img_s']:.0f} img/s at {args.final_size} (first steps {crop['first_s']:.1f}+"
                f"{final['first_s']:.1f} s){mem}")
            return {"batch": batch, "crop": crop, "final": final}
        except Exception as err:  # OOM, a kernel that fails on this GPU, a NaN loss: a smaller batch
            log(f"smoke {arch} FAILED at batch {batch} ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
                + (f"; falling back to batch {batch // 2}" if batch // 2 >= args.min_batch else ""))
            trainer = None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            batch //= 2
    return None


def compile_trial(args) -> int:
    """Child process: time compiled training steps on synthetic data, one JSON line per arch."""
    import torch

    from campaign_steps import benchmark  # beside this script (its folder is sys.path[0])
    from seg_core.train import Trainer
    from seg_core.palette import NUM_CLASSES

    work = Path(args.work)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    s = args.final_size
    images = torch.randint(0, 256, (2 * args.batch, 3, s, s), dtype=torch.uint8, device=device)
    labels = torch.randint(0, NUM_CLASSES, (2 * args.batch, s, s), dtype=torch.uint8, device=device)
    for arch in args.compile_trial.split(","):
        trainer = Trainer(train_config(args, arch, args.batch, epochs=1, compile=True), (images, labels), None,
                          work / f"trial_{arch}", log=lambda *_: None)
        row = {"arch": arch}
        for size, key in ((args.crop, "crop"), (args.final_size, "final")):
            first = benchmark(trainer, size, steps=0, warmup=0)["first_s"]  # compiles, off the lock
            with gpu_lock(work):
                timed = benchmark(trainer, size, steps=args.smoke_steps, warmup=args.smoke_warmup)
                row[key] = {**timed, "compile_s": first}
        with open(work / "compile_trial.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        del trainer
    return 0


def start_trial(archs: list[str], args, work: Path, cap_s: float):
    """Start the compile trial in its own process group, killed at ``cap_s`` so that it stops
    taking CPU time then, not when the parent gets round to it."""
    (work / "compile_trial.jsonl").unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--compile-trial", ",".join(archs), "--work", str(work),
           "--batch", str(args.batch), "--crop", str(args.crop), "--final-size", str(args.final_size),
           "--smoke-steps", str(args.smoke_steps), "--smoke-warmup", str(args.smoke_warmup), "--out", str(work),
           "--budget", "0"]
    env = {**os.environ, "TORCHINDUCTOR_COMPILE_THREADS": str(max(1, (os.cpu_count() or 2) // 2))}
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(work / "compile_trial.err", "w"),
                             start_new_session=True)

    def stop() -> None:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)  # the child and its compile workers, nothing else

    child.timer = threading.Timer(cap_s, stop)
    child.timer.daemon = True  # an early exit of the parent does not wait for it
    child.timer.start()
    return child


def finish_trial(child, work: Path, log) -> dict:
    child.wait()
    child.timer.cancel()
    if child.returncode == -signal.SIGKILL:
        log("compile trial: stopped at its time cap")
    rows = {}
    path = work / "compile_trial.jsonl"
    if path.is_file():
        rows = {r["arch"]: r for r in map(json.loads, path.read_text().splitlines())}
    if child.returncode not in (0, -signal.SIGKILL):
        err = (work / "compile_trial.err").read_text().strip().splitlines()
        log(f"compile trial failed ({err[-1][:200] if err else child.returncode}): eager only")
    return rows


class Manifest:
    """``--out/manifest.json``, rewritten atomically after each step, so a timeout still leaves it."""

    def __init__(self, out: Path, **fields):
        self.out, self.data = out, {"campaign": 1, **fields, "models": {}, "notes": []}

    def save(self, history: bool = True) -> None:
        data = self.data if history else {**self.data, "models": {
            a: {k: v for k, v in m.items() if k != "history"} for a, m in self.data["models"].items()}}
        with atomic_path(self.out / MANIFEST) as tmp:
            tmp.write_text(json.dumps(data, separators=(",", ":")))


def _round(row: dict) -> dict:
    return {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in row.items()}


def summary(trainer, result: dict, args) -> dict:
    rows = trainer.history[1:] or trainer.history  # epoch 1 carries the autotuning
    def median(res):
        vals = sorted(r["img_s"] for r in rows if r["res"] == res)
        return round(vals[len(vals) // 2], 1) if vals else None
    cfg = trainer.cfg
    return {**_round(result), "epochs_planned": cfg.epochs, "batch": cfg.batch_size, "lr": float(f"{cfg.lr:.4g}"),
            "ema_decay": round(cfg.ema_decay, 6), "compile": cfg.compile,
            "img_s_crop": median(args.crop), "img_s_final": median(args.final_size),
            "max_mem_gib": round(max((r.get("max_mem_gib", 0) for r in trainer.history), default=0), 2),
            "host_syncs_epoch2": trainer.history[1].get("host_syncs") if len(trainer.history) > 1 else None,
            "cut_by_deadline": any(r.get("cut_by_deadline") for r in trainer.history)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default="A", help="which campaign command this is (A or B)")
    p.add_argument("--archs", default="fcn_resnet50", help="models trained and written to --out, in order")
    p.add_argument("--plan-archs", default="", help="models only timed here, for the shared epoch count")
    p.add_argument("--plan-seconds", type=float, default=280, help="training seconds the --plan-archs get later")
    p.add_argument("--train", default=".campaign/train.npz")
    p.add_argument("--val", default=".campaign/val.npz")
    p.add_argument("--out", required=True, help="the device's $OUT")
    p.add_argument("--work", default="/tmp/seg_campaign", help="run folders and the plan, kept while warm")
    p.add_argument("--budget", type=float, required=True, help="seconds from start to the last write")
    p.add_argument("--reserve", type=float, default=12, help="seconds kept for the final writes")
    p.add_argument("--cold-start", type=float, default=120,
                   help="seconds taken off --budget when a consumer finds no plan (a fresh machine was started)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--min-batch", type=int, default=16)
    p.add_argument("--lr16", type=float, default=2e-3, help="peak LR at batch 16 (scaled by sqrt(batch/16))")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--final-size", type=int, default=256)
    p.add_argument("--final-frac", type=float, default=0.25)
    p.add_argument("--eval-interval", type=float, default=20)
    p.add_argument("--smoke-steps", type=int, default=8, help="timed steps per crop size")
    p.add_argument("--smoke-warmup", type=int, default=2, help="untimed steps after the first, per crop size")
    p.add_argument("--compile-trial-s", type=float, default=30,
                   help="cap of the compile trial (all models of this command together); 0: none")
    p.add_argument("--max-epochs", type=int, default=500)
    p.add_argument("--limit", type=int, default=None, help="rehearsal: train on the first N pairs (all are loaded)")
    p.add_argument("--val-limit", type=int, default=None, help="rehearsal: evaluate on the first N val pairs")
    p.add_argument("--plain-augment", action="store_true",
                   help="train without the robustness augmentation (seg_core.campaign.AUGMENT)")
    p.add_argument("--compile-trial", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.compile_trial:
        return compile_trial(args)

    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    log = Log()
    archs = [a for a in args.archs.split(",") if a]
    plan_archs = [a for a in args.plan_archs.split(",") if a]
    import torch

    from seg_core.data import load_split
    from seg_core.train import Trainer

    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)"
    log(f"command {args.name}: {device}, torch {torch.__version__}, python {sys.version.split()[0]}, "
        f"budget {args.budget:.0f} s, models {archs}, timed only {plan_archs}")
    manifest = Manifest(out, name=args.name, device=device, torch=torch.__version__, augment=augment(args))
    # Heaviest first: the model with the most training time is the one compile could pay for.
    heavy_first = sorted(archs, key=("fcn_vgg16", "fcn_resnet50", "unet").index)
    child = start_trial(heavy_first, args, work, args.compile_trial_s) if args.compile_trial_s > 0 else None

    dev = torch.device("cuda" if cuda else "cpu")
    train = tuple(t[: args.limit].to(dev) for t in load_split(args.train))
    val = tuple(t[: args.val_limit].to(dev) for t in load_split(args.val))
    log(f"data: {len(train[0])} train, {len(val[0])} val pairs on {dev}")

    plan_file = work / "plan.json"
    plan = json.loads(plan_file.read_text()) if (not plan_archs and plan_file.is_file()) else None
    budget = args.budget
    if not plan_archs and plan is None:
        budget -= args.cold_start
        manifest.data["notes"].append(f"no plan from command A here (a fresh machine): budget {budget:.0f} s")
        log(f"no plan from command A on this machine (a fresh one?): budget cut to {budget:.0f} s, epochs chosen here")
    speeds = {arch: smoke(arch, args, train, work, log) for arch in archs + plan_archs}
    trials = finish_trial(child, work, log) if child else {}
    failed = [a for a, s in speeds.items() if s is None]
    if failed:
        log(f"smoke failed for {failed} at every batch down to {args.min_batch}: they are skipped")
    n_train = len(train[0])
    epoch_s = {a: epoch_seconds(s, args, n_train) for a, s in speeds.items() if s}
    own = [a for a in archs if a in epoch_s]
    writes_s = 3.0 * len(own)  # chunking + sha256 of each model
    own_s = budget - (time.monotonic() - T0) - args.reserve - writes_s
    fit_here = max(0, int(own_s / max(1e-9, sum(epoch_s[a] for a in own)))) if own else args.max_epochs
    if plan is not None:
        epochs, source = plan["epochs"], "plan of command A"
        if epochs > fit_here:
            log(f"the plan's {epochs} epochs do not fit here ({fit_here} do): each model stops at its deadline")
    else:
        fits = [fit_here]
        timed = [a for a in plan_archs if a in epoch_s]
        if timed:
            fits.append(int(args.plan_seconds / max(1e-9, sum(epoch_s[a] for a in timed))))
        epochs, source = max(1, min(args.max_epochs, *fits)), "measured here"
    log(f"plan: {epochs} epochs for every model ({source}); seconds per epoch "
        + ", ".join(f"{a} {s:.2f}" for a, s in epoch_s.items()) + f"; {own_s:.0f} s for training here")
    manifest.data["plan"] = {"epochs": epochs, "source": source, "epoch_s": _round(epoch_s),
                             "smoke": {a: s and {"batch": s["batch"], "crop": _round(s["crop"]),
                                                 "final": _round(s["final"])} for a, s in speeds.items()},
                             "compile_trial": trials}
    if plan_archs:
        with atomic_path(plan_file) as tmp:
            tmp.write_text(json.dumps({"epochs": epochs, "epoch_s": epoch_s}))
    manifest.save()
    log.save(out)

    planned = {a: epochs * epoch_s[a] for a in own}
    for i, arch in enumerate(own):
        use_compile = False
        trial = trials.get(arch)
        if trial and speeds[arch]["batch"] == args.batch:
            compiled = {"batch": args.batch, "crop": trial["crop"], "final": trial["final"]}
            gain = planned[arch] - epochs * epoch_seconds(compiled, args, n_train)
            cost = trial["crop"]["compile_s"] + trial["final"]["compile_s"]
            use_compile = gain > cost
            log(f"{arch}: compile would save {gain:.0f} s over {epochs} epochs and costs {cost:.0f} s to compile: "
                + ("compiled" if use_compile else "eager"))
        elif args.compile_trial_s > 0:
            log(f"{arch}: no compile measurement within {args.compile_trial_s:.0f} s: eager")
        later = sum(planned[a] for a in own[i + 1 :]) + 3.0 * (len(own) - i - 1)
        deadline = budget - (time.monotonic() - T0) - args.reserve - 3.0 - later
        batch = speeds[arch]["batch"]
        extra = {"campaign": args.name, "device": device, "epochs_source": source,
                 "lr_rule": f"{args.lr16:g} * sqrt(batch / 16)", "ema_rule": "0.999 ** (batch / 16)"}
        cfg = train_config(args, arch, batch, epochs=epochs, compile=use_compile, deadline_s=deadline, extra=extra)
        log(f"training {arch}: {epochs} epochs, batch {batch}, lr {cfg.lr:.2e}, compile {use_compile}, "
            f"deadline {deadline:.0f} s (planned {planned[arch]:.0f} s)")
        t_model = time.monotonic()
        if cuda:
            torch.cuda.reset_peak_memory_stats()  # each model's own peak, not the smoke step's
        try:
            trainer = Trainer(cfg, train, val, work / arch, log=log)
            result = trainer.run()
        except Exception as err:
            log(f"{arch} FAILED ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})")
            if not use_compile:
                manifest.data["notes"].append(f"{arch} failed: {type(err).__name__}")
                continue
            left = deadline - (time.monotonic() - t_model)
            cfg.compile, cfg.epochs = False, max(1, min(epochs, int(left / epoch_s[arch])))
            cfg.deadline_s = left
            log(f"{arch}: again without compile, {cfg.epochs} epochs in {left:.0f} s")
            manifest.data["notes"].append(f"{arch}: compiled run failed, retrained eager for {cfg.epochs} epochs")
            trainer = Trainer(cfg, train, val, work / f"{arch}_eager", log=log)
            result = trainer.run()
        source_file = trainer.out / "best.safetensors"
        if not source_file.is_file():  # no evaluation ever beat -1 (a NaN mIoU): ship the last weights, say so
            source_file = trainer.out / "last.safetensors"
            manifest.data["notes"].append(f"{arch}: no best checkpoint, the last one was returned")
        entry = write_chunks(source_file, out, f"{arch}.safetensors")
        entry["result"] = {**summary(trainer, result, args), "wall_s": round(time.monotonic() - t_model, 1)}
        entry["history"] = [_round(r) for r in trainer.history]
        manifest.data["models"][arch] = entry
        manifest.save()
        log(f"{arch} written to --out: {entry['bytes']} bytes in {len(entry['parts'])} chunks; "
            + " ".join(f"{k}={v}" for k, v in entry["result"].items()))
        log.save(out)
        del trainer
        if cuda:
            torch.cuda.empty_cache()
    problems = check_return(out)
    if problems:  # drop the per-epoch history, then the log's head, to fit the way back
        manifest.save(history=False)
        log.save(out, keep=60)
        problems = check_return(out)
    files = [f for f in out.iterdir() if f.is_file()]
    log(f"command {args.name} done in {time.monotonic() - T0:.0f} s: {len(files)} files, "
        f"{sum(f.stat().st_size for f in files)} bytes in --out" + (f"; DOES NOT FIT: {problems}" if problems else ""))
    log.save(out, keep=None if not problems else 60)
    return 0 if not problems and manifest.data["models"] else 1


if __name__ == "__main__":
    sys.exit(main())
