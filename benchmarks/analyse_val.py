"""Confidence and ensemble on the val split: which confidence tells right from wrong pixels best
(AUROC), how calibrated the top-1 probability is (ECE), and whether averaging the three models
beats the best one (weights chosen on one half of val, measured on the other, paired bootstrap).

    python benchmarks/analyse_val.py --weights weights --data ../shared/data/cityscapes_pairs/val [--backend pytorch]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seg_core.analysis import CONFIDENCE_KINDS, ConfidenceStats, confidence, miou_of, paired_bootstrap
from seg_core.data import load_split
from seg_core.inference import model_input
from seg_core.predictor import Predictor
from seg_core.runners import classes


def per_image_confusions(pred: torch.Tensor, target: torch.Tensor, n: int = 19) -> np.ndarray:
    """``N x C x C`` confusion matrices of ``N x H x W`` predictions against targets (255 ignored)."""
    out = np.zeros((len(pred), n, n), np.int64)
    for i, (p, t) in enumerate(zip(pred, target)):
        keep = t != 255
        out[i] = torch.bincount(n * t[keep].long() + p[keep].long(), minlength=n * n).reshape(n, n).numpy()
    return out


def weight_grid(k: int, step: float) -> list[tuple[float, ...]]:
    m = round(1 / step)
    return [tuple(c / m for c in combo) for combo in itertools.product(range(m + 1), repeat=k) if sum(combo) == m]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=Path("weights"))
    ap.add_argument("--data", type=Path, required=True, help="val pairs folder or pack")
    ap.add_argument("--backend", choices=("auto", "pytorch"), default="auto")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--step", type=float, default=0.1, help="grid step of the ensemble weights (chosen on half A)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the val halves and the bootstrap")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    pred = Predictor.from_dir(args.weights, backend=args.backend)
    names = list(pred.models)
    images, labels = load_split(args.data, limit=args.limit)
    cfg = pred.models[names[0]].config
    stats = {n: {k: ConfidenceStats() for k in CONFIDENCE_KINDS} for n in names}
    grid = weight_grid(len(names), args.step)
    equal = tuple(1 / len(names) for _ in names)
    # "confmean": each model's probabilities weighted, pixel by pixel, by its own top-1 probability.
    rules = [("mean", w) for w in grid] + [("mean", equal), ("logmean", equal), ("confmean", equal)]
    # Halves of val, seeded: ensemble weights are chosen on A (every rule) and measured on B (the
    # chosen rule, the plain mean and the mean of log-probabilities).
    order = np.random.default_rng(args.seed).permutation(len(images))
    half_a, half_b = order[: len(order) // 2], order[len(order) // 2 :]
    mats = {n: {} for n in names}
    ens: dict[tuple, dict[int, np.ndarray]] = {r: {} for r in rules}
    t0, done = time.perf_counter(), 0
    for half in (half_a, half_b):
        if half is half_b:
            best_rule = max(rules, key=lambda r: miou_of(sum(ens[r].values())))
            rules = list(dict.fromkeys([best_rule, ("mean", equal), ("logmean", equal), ("confmean", equal)]))
        for i in range(0, len(half), args.batch_size):
            idx = torch.from_numpy(np.sort(half[i : i + args.batch_size]))
            x = model_input(images[idx], cfg).numpy()
            y = labels[idx]
            probs = {n: torch.from_numpy(pred.models[n].probabilities(x)) for n in names}
            for n, p in probs.items():
                top = classes(p)
                mats[n].update(zip(idx.tolist(), per_image_confusions(top, y)))
                top1 = p.max(1).values.numpy()
                for k in CONFIDENCE_KINDS:
                    stats[n][k].update(confidence(p.numpy(), k), top.numpy(), y.numpy(), top1=top1)
            stack = torch.stack([probs[n] for n in names])  # M x N x C x H x W
            logs = stack.clamp_min(1e-12).log()
            sure = stack.max(2, keepdim=True).values  # M x N x 1 x H x W
            for rule in rules:
                w = torch.tensor(rule[1], dtype=torch.float32).view(-1, 1, 1, 1, 1)
                if rule[0] == "confmean":
                    mixed = (w * sure * stack).sum(0) / (w * sure).sum(0)
                else:
                    mixed = (w * (stack if rule[0] == "mean" else logs)).sum(0)
                ens[rule].update(zip(idx.tolist(), per_image_confusions(classes(mixed), y)))
            done += len(idx)
            print(f"\r{done}/{len(images)} images, {time.perf_counter() - t0:.0f} s", end="", file=sys.stderr)
    print(file=sys.stderr)
    mats = {n: np.stack([m[i] for i in range(len(images))]) for n, m in mats.items()}
    ens = {r: np.stack([m[i] for i in range(len(images))]) for r, m in ens.items() if len(m) == len(images)}

    result = {"backend": pred.backends(), "images": len(images), "models": {}}
    for n in names:
        result["models"][n] = {"miou": float(miou_of(mats[n].sum(0))),
                               "auroc": {k: round(stats[n][k].auroc(), 4) for k in CONFIDENCE_KINDS},
                               "ece_top1": round(stats[n]["top1"].ece(), 4),
                               "reliability": stats[n]["top1"].reliability()}
    best_single = max(names, key=lambda n: miou_of(mats[n][half_a].sum(0)))
    report = {}
    for label, rule in (("chosen", best_rule), ("plain_mean", ("mean", equal)), ("log_mean", ("logmean", equal)),
                        ("confidence_weighted", ("confmean", equal))):
        boot = paired_bootstrap(ens[rule][half_b], mats[best_single][half_b], seed=args.seed)
        report[label] = {"rule": rule[0], "weights": dict(zip(names, rule[1])),
                         "miou_b": float(miou_of(ens[rule][half_b].sum(0))), "miou_all": float(miou_of(ens[rule].sum(0))),
                         "gain_b": boot["delta"], "interval_b": [boot["lo"], boot["hi"]]}
    result["ensemble"] = {"best_single_on_a": best_single,
                          "best_single_miou_b": float(miou_of(mats[best_single][half_b].sum(0))), **report}
    pairs = {}
    for a, b in itertools.combinations(names, 2):
        boot = paired_bootstrap(mats[a], mats[b], seed=args.seed)
        pairs[f"{a} - {b}"] = {"difference": boot["delta"], "interval": [boot["lo"], boot["hi"]],
                               "per_class": boot["per_class"]}
    result["pairs"] = pairs
    for n, r in result["models"].items():
        print(f"{n:<14} mIoU {r['miou']:.4f}  AUROC " + " ".join(f"{k} {v:.4f}" for k, v in r["auroc"].items())
              + f"  ECE(top1) {r['ece_top1']:.4f}")
    e = result["ensemble"]
    print(f"best single on half A: {e['best_single_on_a']} (half B mIoU {e['best_single_miou_b']:.4f})")
    for label in ("chosen", "plain_mean", "log_mean", "confidence_weighted"):
        r = e[label]
        print(f"ensemble {label:<10} {r['rule']} {r['weights']}: half B mIoU {r['miou_b']:.4f}, gain {r['gain_b']:+.4f} "
              f"[{r['interval_b'][0]:+.4f}, {r['interval_b'][1]:+.4f}], all val {r['miou_all']:.4f}")
    for k, v in pairs.items():
        print(f"{k}: {v['difference']:+.4f} [{v['interval'][0]:+.4f}, {v['interval'][1]:+.4f}]")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "models"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
