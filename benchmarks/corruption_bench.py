"""The corruption benchmark (Cityscapes-C protocol on our val pairs): per model, clean mIoU, mIoU
per corruption and severity (``seg_core.corruptions``), mean corruption mIoU, relative robustness
(mean corruption / clean) and the scale probe (input 384x384 instead of 256x256).

    python -m benchmarks.corruption_bench --weights weights --data ../shared/data/cityscapes_pairs/val \\
        [--split judge|select|all] [--backend int8|fp32] [--corruptions fog,snow] [--severities 1,3,5] \\
        [--compare OTHER_WEIGHTS] [--summary weights/corruption_bench.json]

``--split``: the halves of ``seg_core.data.val_halves`` (seed 33; select checkpoints on *select*,
judge on *judge*) or all of val. Every (model file, data listing, backend, corruption, severity,
split) has its per-image confusion matrices cached under ``--cache`` (git-ignored ``runs/``), so a
rerun, a figure or a comparison costs nothing. ``--compare OTHER`` also scores the weights folder
OTHER and gives, per model, the paired bootstrap (over images) of the mean-corruption mIoU gain
and of the clean gain of ``--weights`` over OTHER, with 95 % intervals. The figure (mIoU vs
severity, a line per model, a menu per corruption) is written beside the JSON as HTML.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from seg_core.analysis import paired_bootstrap
from seg_core.corruptions import CORRUPTION_NAMES, SEVERITIES
from seg_core.data import DataError, PACK_SUFFIX, list_pairs, load_split, val_halves
from seg_core.files import atomic_path, file_sha256
from seg_core.predictor import Predictor
from seg_core.registry import display_name
from seg_core.robustness import CORRUPTION_SEED, PROBE_SIZE, corrupted_images, image_matrices, summarize_grid

BACKENDS = {"int8": "auto", "fp32": "pytorch"}
SPLITS = ("judge", "select", "all")
CACHE = Path("runs/corruption_bench")


def load() -> str:
    """The 1, 5 and 15 minute load averages: every timing here was taken on a shared machine."""
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "?"


def data_hash(data: Path) -> str:
    """The data listing: names and sizes of the pairs (a pack: its bytes)."""
    if data.suffix == PACK_SUFFIX:
        return file_sha256(data)
    h = hashlib.sha256()
    for p in list_pairs(data):
        h.update(f"{p.name}:{p.stat().st_size}\n".encode())
    return h.hexdigest()


def model_hash(runner) -> str:
    """sha256 of the file the runner was loaded from (an OpenVINO model: its .xml and .bin)."""
    files = [runner.path] + ([runner.path.with_suffix(".bin")] if runner.path.suffix == ".xml" else [])
    return hashlib.sha256("".join(file_sha256(f) for f in files).encode()).hexdigest()


def selection(split: str, n: int) -> np.ndarray:
    if split == "all":
        return np.arange(n)
    select, judge = val_halves(n)
    return select if split == "select" else judge


class Cache:
    """Per-image confusion matrices in ``.npz`` files named by the hash of what produced them."""

    def __init__(self, folder: Path, common: dict):
        self.folder, self.common = folder, common
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, model_sha: str, condition: str) -> Path:
        key = json.dumps({**self.common, "model": model_sha, "condition": condition}, sort_keys=True)
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"

    def get(self, model_sha: str, condition: str, compute) -> np.ndarray:
        path = self.path(model_sha, condition)
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                return z["matrices"]
        mats = compute()
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(tmp, matrices=mats)
        return mats


def score_folder(weights: Path, args, images, labels, idx, cache_common: dict) -> tuple[dict, dict]:
    """``({model: summary}, {model: {condition: N x C x C}})`` for one weights folder."""
    pred = Predictor.from_dir(weights, backend=BACKENDS[args.backend], threads=args.threads)
    wrong = {n: r.label for n, r in pred.models.items() if (args.backend == "int8") != ("int8" in r.label)}
    if wrong or not pred.models:
        raise DataError(f"{weights}: no {args.backend} model for {wrong or 'any architecture'}; export it or pick --backend")
    cache = Cache(args.cache, {**cache_common, "backend": args.backend})
    shas = {n: model_hash(r) for n, r in pred.models.items()}
    all_mats: dict[str, dict[str, np.ndarray]] = {n: {} for n in pred.models}
    conditions = [("clean", 0)] + [(c, s) for c in args.corruptions for s in args.severities]
    for cond in conditions + [("probe", 0)]:
        key = f"{cond[0]}/{cond[1]}"
        todo = [n for n in pred.models if not cache.path(shas[n], key).is_file()]
        t0 = time.perf_counter()
        batch = None
        if todo and cond[0] not in ("clean", "probe"):
            batch = corrupted_images(images, idx, cond[0], cond[1])  # once for all models
        for n, r in pred.models.items():
            feed = batch if batch is not None else images
            size = PROBE_SIZE if cond[0] == "probe" else None
            all_mats[n][key] = cache.get(shas[n], key, lambda: image_matrices(r, feed, labels, args.batch_size, size))
        if todo:
            print(f"{weights} {key}: {', '.join(todo)} in {time.perf_counter() - t0:.1f} s (load {load()})",
                  file=sys.stderr)
    summaries = {}
    for n, mats in all_mats.items():
        grid = {(c, s): mats[f"{c}/{s}"] for c, s in conditions[1:]}
        summaries[n] = {"backend": pred.models[n].label, "sha256": shas[n],
                        **summarize_grid(mats["clean/0"], grid, mats["probe/0"])}
    return summaries, all_mats


def compare(new: dict, old: dict, conditions: list[str], seed: int = 0) -> dict:
    """Per model: paired bootstrap of new - old on mean-corruption mIoU and on clean mIoU."""
    out = {}
    for n in new.keys() & old.keys():
        stack = lambda m: np.stack([m[c] for c in conditions], axis=1)  # N x K x C x C
        corr = paired_bootstrap(stack(new[n]), stack(old[n]), seed=seed)
        clean = paired_bootstrap(new[n]["clean/0"], old[n]["clean/0"], seed=seed)
        out[n] = {"mean_corruption_gain": corr["delta"], "interval": [corr["lo"], corr["hi"]],
                  "clean_gain": clean["delta"], "clean_interval": [clean["lo"], clean["hi"]], "images": corr["images"]}
    return out


def table(summary: dict) -> str:
    """A markdown table: a row per model."""
    names = list(next(iter(summary.values()))["per_corruption_mean"])
    head = ["model", "clean", "mean corr.", "rel.", f"{PROBE_SIZE[0]} probe"] + names
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n, s in summary.items():
        probe = f"{s['probe']['miou']:.3f} ({s['probe']['delta']:+.3f})"
        rows.append(f"| {display_name(n)} | {s['clean']:.3f} | {s['mean_corruption']:.3f} | {s['relative']:.2f} | {probe} | "
                    + " | ".join(f"{s['per_corruption_mean'][c]:.3f}" for c in names) + " |")
    return "\n".join(rows)


def parse_list(text: str, allowed, kind=str) -> list:
    items = [kind(t) for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad:
        raise SystemExit(f"unknown {bad}; choose from {', '.join(map(str, allowed))}")
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=Path("weights"))
    ap.add_argument("--data", type=Path, required=True, help="val pairs folder or pack")
    ap.add_argument("--split", choices=SPLITS, default="judge")
    ap.add_argument("--backend", choices=tuple(BACKENDS), default="int8")
    ap.add_argument("--corruptions", default=",".join(CORRUPTION_NAMES))
    ap.add_argument("--severities", default=",".join(map(str, SEVERITIES)))
    ap.add_argument("--limit", type=int, default=None, help="keep the first N pairs of the split (a quick look)")
    ap.add_argument("--compare", type=Path, default=None, help="another weights folder: paired bootstrap against it")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="inference threads (the machine is shared)")
    ap.add_argument("--cache", type=Path, default=CACHE / "cache")
    ap.add_argument("--out", type=Path, default=CACHE, help="folder of the JSON and the HTML figure")
    ap.add_argument("--summary", type=Path, default=None, help="also write the summary JSON here (e.g. for the app)")
    args = ap.parse_args(argv)
    args.corruptions = parse_list(args.corruptions, CORRUPTION_NAMES)
    args.severities = parse_list(args.severities, SEVERITIES, int)

    try:
        images, labels = load_split(args.data)
        idx = selection(args.split, len(images))[: args.limit]
        common = {"data": data_hash(args.data), "split": args.split, "limit": args.limit, "seed": CORRUPTION_SEED}
        print(f"{len(idx)} images ({args.split}), {args.backend}, load {load()}", file=sys.stderr)
        images, labels = images[idx], labels[idx]
        t0 = time.perf_counter()
        summary, mats = score_folder(args.weights, args, images, labels, idx, common)
        result = {"command": "python -m benchmarks.corruption_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
                  "split": args.split, "images": len(idx), "backend": args.backend,
                  "corruptions": args.corruptions, "severities": args.severities, "models": summary}
        if args.compare:
            other, other_mats = score_folder(args.compare, args, images, labels, idx, common)
            conds = [f"{c}/{s}" for c in args.corruptions for s in args.severities]
            result["compare"] = {"against": str(args.compare), "models": other,
                                 "bootstrap": compare(mats, other_mats, conds)}
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result["seconds"], result["load"] = round(time.perf_counter() - t0, 1), load()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.weights.name}_{args.backend}_{args.split}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    if args.summary:
        args.summary.write_text(json.dumps(result, indent=1) + "\n")
    try:
        from ui.robustness import severity_figure  # plotly lives in the UI layer

        severity_figure(result).write_html(args.out / f"{stem}.html", include_plotlyjs="cdn")
        figure = f", figure {args.out / f'{stem}.html'}"
    except ImportError:
        figure = ""
    print(table(summary))
    for n, b in result.get("compare", {}).get("bootstrap", {}).items():
        print(f"{n}: mean-corruption gain {b['mean_corruption_gain']:+.4f} [{b['interval'][0]:+.4f}, {b['interval'][1]:+.4f}], "
              f"clean gain {b['clean_gain']:+.4f} [{b['clean_interval'][0]:+.4f}, {b['clean_interval'][1]:+.4f}]")
    print(f"{result['seconds']} s, load {result['load']}; JSON {args.out / f'{stem}.json'}{figure}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
