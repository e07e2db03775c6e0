"""The GPU campaign's homecoming: reassemble what the device calls returned, score each new model
against the shipped one on val (paired bootstrap over images), replace only on a gain above zero,
and write the model card's rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .campaign_chunks import read_manifest, reassemble, write_atomic
from .files import atomic_path


def home(incoming: list[str | Path], out: str | Path, weights: str | Path, val: str | Path,
         limit: int | None = None, apply: bool = False, n_boot: int = 2000, batch_size: int = 16) -> dict:
    """Reassemble what the device commands returned, score each new model against the shipped one on
    val (paired bootstrap over images) and, with ``apply``, copy in those whose interval is above 0."""
    from .analysis import paired_bootstrap
    from .data import load_split
    from .evaluate import evaluate_many
    from .metrics import summarize
    from .runners import load_runner

    def per_image_confusions(path: Path, arch: str) -> tuple[np.ndarray, tuple[str, ...]]:
        runner = load_runner(path, arch=arch)
        return evaluate_many({arch: runner}, images, labels, batch_size)[arch]["image_matrices"], runner.config.class_names

    out, weights = Path(out), Path(weights)
    new, manifests = {}, {}
    for folder in incoming:
        got = reassemble(folder, out)
        new.update(got)
        manifests.update({arch: read_manifest(folder) for arch in got})
    images, labels = load_split(val, limit=limit)
    report = {"val": str(val), "pairs": len(images), "models": {}}
    for arch, path in new.items():
        cm_new, class_names = per_image_confusions(path, arch)
        entry = {"new": summarize(cm_new.sum(0), class_names), "checkpoint": str(path),
                 "campaign": {k: manifests[arch].get(k) for k in ("name", "device", "torch", "plan", "augment")},
                 "training": manifests[arch]["models"][arch].get("result")}
        shipped = weights / f"{arch}.safetensors"
        if shipped.is_file():
            cm_old, _ = per_image_confusions(shipped, arch)
            entry["shipped"] = summarize(cm_old.sum(0), class_names)
            boot = paired_bootstrap(cm_new, cm_old, n_boot=n_boot)
            entry["bootstrap"] = {k: v for k, v in boot.items() if k != "per_class"}
            entry["replace"] = entry["bootstrap"]["lo"] > 0
        else:
            entry["replace"] = True  # nothing shipped to beat
        report["models"][arch] = entry
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "home_report.json", json.dumps(report, indent=1).encode())
    write_atomic(out / "model_card.md", model_card(report).encode())
    if apply:
        for arch, entry in report["models"].items():
            if entry["replace"]:
                with atomic_path(weights / f"{arch}.safetensors") as tmp:
                    shutil.copyfile(new[arch], tmp)
                entry["replaced"] = True
    return report


def _fmt(v, spec: str = ".4f") -> str:
    return "–" if v is None else format(v, spec) if isinstance(v, float) else str(v)


def _augment_words(augment: dict) -> str:
    return ", ".join(f"{k} {'-'.join(f'{x:g}' for x in v) if isinstance(v, (list, tuple)) else f'{v:g}'}"
                     for k, v in augment.items())


def model_card(report: dict) -> str:
    """The campaign's rows for ``weights/README.md``: recipe, device, speeds, epochs, the decision
    and per-class IoU, from the manifests and the homecoming's own evaluation."""
    models = report["models"]
    if not models:
        return ""
    first = next(iter(models.values()))["campaign"]
    lines = [f"GPU campaign on {first.get('device')}, torch {first.get('torch')}; val: {report['val']} "
             f"({report['pairs']} pairs). Recipe (all three, scripts/gpu_campaign.py): from scratch, AdamW, one-cycle LR with "
             "3 % linear warm-up, peak LR 2e-3 * sqrt(batch / 16), EMA 0.999 ** (batch / 16), 128x128 crops "
             "for 75 % of the steps then 256x256, CE (class weights, power 0.5) + 0.5 Dice"
             + (f"; augmentation {_augment_words(first['augment'])}." if first.get("augment") else "."), "",
             "| model | epochs | steps | batch | peak LR | compile | img/s 128 | img/s 256 | GPU GiB | train s | "
             "val mIoU | shipped | difference (95 % interval) | decision |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for arch, e in models.items():
        t = e.get("training") or {}
        bs = e.get("bootstrap")
        diff = f"{bs['delta']:+.4f} ({bs['lo']:+.4f} .. {bs['hi']:+.4f})" if bs else "–"
        lines.append(f"| {arch} | {_fmt(t.get('epochs'))} | {_fmt(t.get('steps'))} | {_fmt(t.get('batch'))} | "
                     f"{_fmt(t.get('lr'), 'g')} | {_fmt(t.get('compile'))} | {_fmt(t.get('img_s_crop'), '.0f')} | "
                     f"{_fmt(t.get('img_s_final'), '.0f')} | {_fmt(t.get('max_mem_gib'), '.1f')} | "
                     f"{_fmt(t.get('elapsed_s'), '.0f')} | {e['new']['miou']:.4f} | "
                     f"{_fmt(e.get('shipped', {}).get('miou'))} | {diff} | "
                     f"{'replace' if e['replace'] else 'keep shipped'} |")
    classes = list(next(iter(models.values()))["new"]["iou"])
    lines += ["", "| class | " + " | ".join(models) + " |", "| --- |" + " --- |" * len(models)]
    for c in classes:
        lines.append(f"| {c} | " + " | ".join(_fmt(e["new"]["iou"][c]) for e in models.values()) + " |")
    return "\n".join(lines) + "\n"
