"""``train_cli.py train``: a new run from the flags, or ``--resume`` with the run's saved settings."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys

from cli.common import UsageError, check_writable, default_val
from seg_core.config import TrainConfig


def _check_unchanged(args, saved: TrainConfig) -> None:
    """A resumed run keeps its saved settings: a flag given with another value is refused, not ignored
    (a flag is seen as given when its value is not the default)."""
    for f in dataclasses.fields(TrainConfig):
        if "help" not in f.metadata:
            continue
        given = getattr(args, f.name)
        if given != f.default and given != getattr(saved, f.name):
            flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
            raise UsageError(f"--resume continues the saved run, whose {flag} is {getattr(saved, f.name)!r}, "
                             f"not {given!r}: drop the flag, or start a new run in another --out")


def cmd_train(args) -> int:
    import torch

    from seg_core.data import load_split
    from seg_core.runtime import keep_freed_memory
    from seg_core.train import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resume and not (args.out / "state.safetensors").is_file():
        raise UsageError(f"--resume: {args.out} holds no run to resume (no state.safetensors)")
    if args.resume:
        # The schedule must not change under a resumed run: reuse the saved flags.
        from seg_core.checkpoint import read_tensors

        _, meta = read_tensors(args.out / "state.safetensors", tensors=False)
        try:
            saved = json.loads(meta["trainer"])["train_config"]
            cfg = TrainConfig(**saved)
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"--resume: {args.out}/state.safetensors has no readable run settings "
                             "(not written by train_cli.py train?); start a new run in another --out") from None
        _check_unchanged(args, cfg)
    else:
        if args.epochs is None and args.time_budget is None:
            raise UsageError("give --epochs N or --time-budget DURATION")
        cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                             if "help" in f.metadata})
    if cfg.final_size % 32:
        raise UsageError("--final-size must be a multiple of 32")
    if cfg.crop % 32:
        raise UsageError("--crop must be a multiple of 32")
    from seg_core.train_schedule import augment_problem

    if problem := augment_problem(cfg):
        raise UsageError(problem)
    check_writable(args.out)
    keep_freed_memory()  # no page faults for each step's activation buffers (once the flags are checked)
    train = load_split(args.data, limit=cfg.limit)
    val_path = None if args.no_val else (args.val or default_val(args.data))
    if args.val and not args.val.exists():
        raise UsageError(f"--val {args.val} does not exist")
    val = load_split(val_path, limit=cfg.val_limit) if val_path else None
    if val is None and not args.no_val:
        print("no val split found beside --data; training without validation (pass --val)", file=sys.stderr)
    if val is not None and cfg.val_select:
        from seg_core.data import val_halves

        keep = torch.from_numpy(val_halves(len(val[0]))[0])
        val = (val[0][keep], val[1][keep])
    trainer = Trainer(cfg, train, val, args.out, resume=args.resume)
    result = trainer.run()
    if trainer.is_main:
        if val is None:
            shutil.copyfile(args.out / "last.safetensors", args.out / "best.safetensors")
        print(json.dumps(result))
    return 0
