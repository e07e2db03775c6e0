"""Per-image scores of every model (and the ensemble) on a folder of pairs, computed once and cached.

``folder_scores(predictor, folder)`` scores the folder with ``seg_core.evaluate.evaluate_many`` and
keeps, per image and model, the confusion matrix (summed: the whole-folder metrics), the models'
disagreement and the label's fringe classes; ``rows`` turns them into per-image pixel accuracy and
mIoU under ``seg_core.metrics.IMAGE_SCORE_RULE``, the table the val explorer sorts and the CLI
writes as CSV. ``iter_folder_scores`` is the same scoring a chunk of images at a time, yielding the
images scored so far, so that a page can show the first rows of a cold folder in a second or two
rather than after a minute. ``seg_core.ray_engine`` scores a folder's batches on a Ray cluster with
``score_pairs`` and keeps the result in the same cache.

The cache (``SEG_CACHE_DIR``, default ``~/.cache/seg-workbench``) is keyed by the digests of the
model files (an OpenVINO model's ``.bin`` too), the test-time augmentation, the ensemble weights and
the folder's listing (names, sizes, modification times), so new weights or changed images are scored
afresh and nothing stale is shown. The whole-folder file is written only once every image is scored;
until then the finished chunks sit in a ``.parts`` folder beside it, which no reader takes for the
whole folder and from which an interrupted run resumes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from . import settings
from .backends.base import model_files
from .data import list_pairs, read_pair
from .evaluate import evaluate_many
from .files import atomic_path, file_sha256
from .metrics import fringe_classes, image_summary
from .registry import ENSEMBLE

VERSION = 2  # bump when what is stored changes
#: What is cached per folder, and the file type each is stored as.
KINDS = {"scores": ".npz", "confidence": ".json"}
#: Images per chunk of ``iter_folder_scores``: about a second of the three int8 models and the
#: ensemble on 512x256 pairs on an idle 2-core machine, so the first rows come well within 5 s.
CHUNK = 8

_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256: a rerun rereads no weights


def _file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = file_sha256(path)
    return _digests[key]


def weights_digest(runner) -> str:
    """What identifies the weights a runner computes with: the digests of its model files (an
    OpenVINO ``.xml`` with its ``.bin``), or, for a model held only in memory, of its parameters."""
    path = getattr(runner, "path", None)
    if path is not None and Path(path).is_file():
        return ",".join(_file_digest(p) for p in model_files(path) if p.is_file())
    model = getattr(runner, "model", None)
    if model is None or not hasattr(model, "state_dict"):
        raise ValueError(f"cannot tell which weights the {runner.label} model runs: no model file and no parameters")
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cache_key(predictor, folder: Path, tta: str, ensemble: dict[str, float]) -> str:
    """A digest of what the scores depend on: the models' weights, TTA, ensemble weights, the folder's files."""
    h = hashlib.sha256(f"v{VERSION}|{tta}|{json.dumps(ensemble, sort_keys=True)}".encode())
    for name, runner in sorted(predictor.models.items()):
        source = getattr(runner, "meta", {}).get("source_sha256") or ""
        h.update(f"|{name}:{runner.label}:{source}:{weights_digest(runner)}".encode())
    for path in list_pairs(folder):
        stat = path.stat()
        h.update(f"|{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def cache_path(kind: str, predictor, folder: str | Path, *, tta: str = "none", ensemble: bool = True,
               cache_dir: Path | None = None) -> Path:
    """Where the ``kind`` numbers (``KINDS``: "scores", "confidence") of ``folder`` are cached, for
    every caller alike (the local engine, Ray, a page asking whether they would be computed)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of folder numbers {kind!r}; one of {', '.join(KINDS)}")
    members = predictor.ensemble() if ensemble else {}
    key = cache_key(predictor, Path(folder), tta, members)
    return Path(cache_dir or settings.cache_dir()) / f"{kind}-{key}{KINDS[kind]}"


def score_names(predictor, ensemble: bool = True) -> list[str]:
    """The names the scores come under: the loaded models, then the ensemble when it has members."""
    return [*predictor.models, *([ENSEMBLE] if ensemble and predictor.ensemble() else [])]


def read_cached(path: Path) -> dict | None:
    """The scores stored at ``path`` (``"cached": True``), or ``None`` when there are none (or the
    file cannot be read: it is scored again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["models"]]
            return {"images": [str(n) for n in z["images"]], "models": names, "fringe": z["fringe"],
                    "matrices": {n: z[f"m_{n}"] for n in names}, "disagreement": z["disagreement"],
                    "cached": True}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def store(path: Path, scores: dict) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, images=np.array(scores["images"]), models=np.array(scores["models"]),
                            fringe=scores["fringe"], disagreement=scores["disagreement"],
                            **{f"m_{n}": m for n, m in scores["matrices"].items()})


def score_split(runners: dict, images, labels, tta: str = "none", members: dict[str, float] | None = None) -> dict:
    """``{"models", "matrices", "disagreement", "fringe"}`` (as ``folder_scores``) of uint8
    ``images`` / ``labels`` of one size held in memory."""
    evaluated = evaluate_many(runners, images, labels, tta=tta, ensemble=members or None)
    n_cls = next(iter(evaluated.values()))["matrix"].shape[0]
    fringe = np.zeros((len(labels), n_cls), bool)
    for i, label in enumerate(labels.numpy()):
        fringe[i, [c for c in fringe_classes(label) if c < n_cls]] = True
    return {"models": list(evaluated), "fringe": fringe,
            "matrices": {n: r["image_matrices"] for n, r in evaluated.items()},
            "disagreement": next(iter(evaluated.values()))["disagreement"]}


def score_pairs(runners: dict, pairs: list[tuple[np.ndarray, np.ndarray]], tta: str = "none",
                members: dict[str, float] | None = None) -> dict:
    """``score_split`` of ``(photo, label)`` pairs (at least one) that may differ in size: each size
    is scored apart, the results in the pairs' order. A chunk of a folder here, a batch on Ray."""
    by_size: dict[tuple, list[int]] = {}
    for i, (photo, _) in enumerate(pairs):
        by_size.setdefault(photo.shape, []).append(i)
    out: dict = {}
    for idx in by_size.values():
        images = torch.from_numpy(np.stack([pairs[i][0] for i in idx])).permute(0, 3, 1, 2).contiguous()
        labels = torch.from_numpy(np.stack([pairs[i][1] for i in idx]))
        scored = score_split(runners, images, labels, tta, members)
        if not out:
            out = {"models": scored["models"], "disagreement": np.zeros(len(pairs)),
                   "fringe": np.zeros((len(pairs), *scored["fringe"].shape[1:]), bool),
                   "matrices": {n: np.zeros((len(pairs), *m.shape[1:]), m.dtype) for n, m in scored["matrices"].items()}}
        out["disagreement"][idx], out["fringe"][idx] = scored["disagreement"], scored["fringe"]
        for name, m in scored["matrices"].items():
            out["matrices"][name][idx] = m
    return out


def _joined(parts: list[dict]) -> dict:
    """Chunks' scores as one, in their order."""
    models = parts[0]["models"]
    return {"images": [n for p in parts for n in p["images"]], "models": models,
            "fringe": np.concatenate([p["fringe"] for p in parts]),
            "disagreement": np.concatenate([p["disagreement"] for p in parts]),
            "matrices": {n: np.concatenate([p["matrices"][n] for p in parts]) for n in models}, "cached": False}


def iter_folder_scores(predictor, folder: str | Path, tta: str = "none", ensemble: bool = True,
                       cache_dir: Path | None = None, chunk: int | None = None) -> Iterator[dict]:
    """The scores of ``folder`` (as ``folder_scores``, with ``"done"`` and ``"total"`` images) as
    they come: after each chunk of ``chunk`` images (``CHUNK`` unless given), those of the images
    scored so far, and under ``"chunk"`` the scores of that chunk alone (a page adds its rows
    rather than redoing all); the last one is the whole folder, already cached. From the cache,
    only that one.

    Each finished chunk is stored as it comes, so a run stopped midway (a visitor who leaves, a
    page rerun, a kill) leaves only chunks, which the next run reuses instead of scoring them again."""
    folder = Path(folder)
    path = cache_path("scores", predictor, folder, tta=tta, ensemble=ensemble, cache_dir=cache_dir)
    if (cached := read_cached(path)) is not None:
        yield {**cached, "done": len(cached["images"]), "total": len(cached["images"])}
        return
    members = predictor.ensemble() if ensemble else {}
    names = score_names(predictor, ensemble)
    files, chunk = list_pairs(folder), chunk or CHUNK
    chunks_dir = path.with_suffix(".parts")
    parts: list[dict] = []
    for start in range(0, len(files), chunk):
        batch = files[start : start + chunk]
        chunk_path = chunks_dir / f"{start:06d}.npz"
        part = read_cached(chunk_path)
        if part is None or part["images"] != [p.name for p in batch] or part["models"] != names:
            part = {"images": [p.name for p in batch],
                    **score_pairs(predictor.models, [read_pair(p) for p in batch], tta, members)}
            store(chunk_path, part)
        parts.append(part)
        if start + chunk < len(files):
            yield {**_joined(parts), "done": start + len(batch), "total": len(files), "chunk": part}
    scores = _joined(parts)
    store(path, scores)
    shutil.rmtree(chunks_dir, ignore_errors=True)  # the whole file holds them now
    yield {**scores, "done": len(files), "total": len(files)}


def folder_scores(predictor, folder: str | Path, tta: str = "none", ensemble: bool = True,
                  on_batch: Callable[[int, int], None] | None = None, cache_dir: Path | None = None,
                  chunk: int | None = None) -> dict:
    """``{"images": [names], "models": [names], "matrices": {model: N x C x C}, "disagreement": (N,),
    "fringe": N x C bool (the classes each image's scores skip), "cached": bool}`` for the pairs of
    ``folder``, from the cache when it is current; ``on_batch(done, total)`` after each chunk scored."""
    for scores in iter_folder_scores(predictor, folder, tta, ensemble, cache_dir, chunk):
        if on_batch and not scores["cached"]:
            on_batch(scores["done"], scores["total"])
    return scores


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
