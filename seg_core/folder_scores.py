"""Per-image scores of every model (and the ensemble) on a folder of pairs, computed once and cached.

``folder_scores(predictor, folder)`` runs ``seg_core.evaluate.evaluate_many`` on the folder and
keeps, per image and model, the confusion matrix (summed: the whole-folder metrics), the models'
disagreement and the label's fringe classes; ``rows`` turns them into per-image pixel accuracy and
mIoU under ``seg_core.metrics.IMAGE_SCORE_RULE``, the table the val explorer sorts and the CLI
writes as CSV. ``seg_core.ray_engine`` scores a folder's batches on a Ray cluster with ``score_split``
and keeps the result in the same cache.
The cache (``SEG_CACHE_DIR``, default ``~/.cache/seg-workbench``) is keyed by the hashes of the
model files, the test-time augmentation and the folder's listing, so new weights or new images
are scored afresh and nothing stale is shown.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np

from . import settings
from .data import list_pairs, load_split
from .evaluate import evaluate_many
from .files import atomic_path, file_sha256
from .metrics import fringe_classes, image_summary

VERSION = 2  # bump when what is stored changes


def cache_key(predictor, folder: Path, tta: str, ensemble: dict[str, float]) -> str:
    """A digest of what the scores depend on: model files, TTA, ensemble weights, the folder's files."""
    h = hashlib.sha256(f"v{VERSION}|{tta}|{json.dumps(ensemble, sort_keys=True)}".encode())
    for name, runner in sorted(predictor.models.items()):
        source = getattr(runner, "meta", {}).get("source_sha256") or ""
        digest = file_sha256(runner.path) if runner.path and runner.path.is_file() else ""
        h.update(f"|{name}:{runner.label}:{source}:{digest}".encode())
    for path in list_pairs(folder):
        stat = path.stat()
        h.update(f"|{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def cache_path(kind: str, predictor, folder: str | Path, tta: str = "none", ensemble: bool = True,
               cache_dir: Path | None = None, suffix: str = ".npz") -> Path:
    """Where the ``kind`` numbers ("scores", "confidence") of ``folder`` are cached: a page can tell
    whether they would be computed (minutes over a whole val split) before asking for them."""
    members = predictor.ensemble() if ensemble else {}
    return Path(cache_dir or settings.cache_dir()) / f"{kind}-{cache_key(predictor, Path(folder), tta, members)}{suffix}"


def read_cached(path: Path) -> dict | None:
    """The scores stored at ``path`` (``"cached": True``), or ``None`` when there are none."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        names = [str(n) for n in z["models"]]
        return {"images": [str(n) for n in z["images"]], "models": names, "fringe": z["fringe"],
                "matrices": {n: z[f"m_{n}"] for n in names}, "disagreement": z["disagreement"], "cached": True}


def store(path: Path, scores: dict) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, images=np.array(scores["images"]), models=np.array(scores["models"]),
                            fringe=scores["fringe"], disagreement=scores["disagreement"],
                            **{f"m_{n}": m for n, m in scores["matrices"].items()})


def score_split(runners: dict, images, labels, tta: str = "none", members: dict[str, float] | None = None,
                on_batch: Callable[[int, int], None] | None = None) -> dict:
    """``{"models", "matrices", "disagreement", "fringe"}`` (as ``folder_scores``) of uint8
    ``images`` / ``labels`` held in memory: the whole folder here, one batch in ``seg_core.ray_engine``."""
    evaluated = evaluate_many(runners, images, labels, tta=tta, ensemble=members or None, on_batch=on_batch)
    n_cls = next(iter(evaluated.values()))["matrix"].shape[0]
    fringe = np.zeros((len(labels), n_cls), bool)
    for i, label in enumerate(labels.numpy()):
        fringe[i, [c for c in fringe_classes(label) if c < n_cls]] = True
    return {"models": list(evaluated), "fringe": fringe,
            "matrices": {n: r["image_matrices"] for n, r in evaluated.items()},
            "disagreement": next(iter(evaluated.values()))["disagreement"]}


def folder_scores(predictor, folder: str | Path, tta: str = "none", ensemble: bool = True,
                  on_batch: Callable[[int, int], None] | None = None, cache_dir: Path | None = None) -> dict:
    """``{"images": [names], "models": [names], "matrices": {model: N x C x C}, "disagreement": (N,),
    "fringe": N x C bool (the classes each image's scores skip), "cached": bool}`` for the pairs of
    ``folder``, from the cache when it is current."""
    folder = Path(folder)
    members = predictor.ensemble() if ensemble else {}
    path = cache_path("scores", predictor, folder, tta, ensemble, cache_dir)
    if (cached := read_cached(path)) is not None:
        return cached
    images, labels = load_split(folder)
    out = {"images": [p.name for p in list_pairs(folder)],
           **score_split(predictor.models, images, labels, tta, members, on_batch), "cached": False}
    store(path, out)
    return out


def rows(scores: dict, class_names: tuple[str, ...]) -> list[dict]:
    """One row per image: its name, the disagreement, and each model's pixel accuracy and mIoU
    (per-image rule)."""
    table = []
    for i, image in enumerate(scores["images"]):
        row = {"image": image, "disagreement": float(scores["disagreement"][i])}
        skipped = np.flatnonzero(scores["fringe"][i])
        for name in scores["models"]:
            m = image_summary(scores["matrices"][name][i], skipped, class_names)
            row[f"{name} pixel acc"], row[f"{name} mIoU"] = m["pixel_acc"], m["miou"]
        table.append(row)
    return table


def write_csv(table: list[dict], path: str | Path) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]) if table else ["image"])
        writer.writeheader()
        writer.writerows(table)
    return Path(path)
