"""Training steps per second with and without ``seg_core.runtime.keep_freed_memory``.

Each setting runs in its own process (the malloc setting cannot be undone), alternating, so
drift of a shared machine hits both:

    python benchmarks/bench_malloc.py --arch unet --size 256 --batch-size 16 --steps 4 --rounds 2

Prints one line per process (seconds per step, page faults per step, kernel share of CPU time)
and one line of JSON with the medians.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run(arch: str, size: int, batch: int, steps: int, keep: bool) -> dict:
    import torch

    from seg_core.config import ModelConfig
    from seg_core.runtime import keep_freed_memory
    from seg_core.models import build_model
    from seg_core.palette import NUM_CLASSES

    took = keep_freed_memory() if keep else False
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, input_size=(size, size))).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, NUM_CLASSES, (batch, size, size))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up: oneDNN primitives, the heap's first growth
        step()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    return {"keep": keep, "took": took, "s_per_step": wall / steps,
            "faults_per_step": (r1.ru_minflt - r0.ru_minflt) / steps, "kernel_share": system / (user + system)}


def main(argv: list[str] | None = None) -> int:
    from seg_core.registry import ARCH_NAMES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arch", default="unet", choices=ARCH_NAMES)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", choices=("default", "keep"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(one_run(args.arch, args.size, args.batch_size, args.steps, args.child == "keep")))
        return 0
    results: dict[str, list[dict]] = {"default": [], "keep": []}
    for _ in range(args.rounds):
        for mode in ("default", "keep"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--arch", args.arch,
                                  "--size", str(args.size), "--batch-size", str(args.batch_size),
                                  "--steps", str(args.steps)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results[mode].append(r)
            print(f"{mode:8s} {r['s_per_step']:.3f} s/step  {r['faults_per_step']:.0f} faults/step  "
                  f"kernel {100 * r['kernel_share']:.1f} %", flush=True)
    summary = {mode: {k: statistics.median(r[k] for r in rs) for k in ("s_per_step", "faults_per_step", "kernel_share")}
               for mode, rs in results.items()}
    summary["speedup"] = summary["default"]["s_per_step"] / summary["keep"]["s_per_step"]
    print(json.dumps({"arch": args.arch, "size": args.size, "batch_size": args.batch_size, **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
