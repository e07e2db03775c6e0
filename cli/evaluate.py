"""``train_cli.py eval`` and ``scores``: metrics of a checkpoint or a weights folder (with the
ensemble, a confusion matrix, JSON), and per-image scores of a folder as CSV."""

from __future__ import annotations

import json
from pathlib import Path

from cli.common import UsageError, engine_flags, weights_folder, progress_bar


def cmd_eval(args) -> int:
    import time

    import torch

    from seg_core.data import load_split
    from seg_core.evaluate import evaluate, evaluate_many
    from seg_core.inference import ENSEMBLE
    from seg_core.runners import load_runner

    if args.threads:
        torch.set_num_threads(args.threads)
    pred = weights_folder(Path(args.weights), args.backend)
    if args.record and (pred is not None or Path(args.weights).suffix != ".safetensors" or args.limit
                        or args.tta != "none"):
        raise UsageError("--record needs one .safetensors checkpoint scored on every pair without TTA")
    if pred is None:
        if args.ensemble:
            raise UsageError("--ensemble needs a weights folder (several models), not one checkpoint")
        models = {"model": load_runner(args.weights, arch=args.arch)}
    else:
        models = {n: m for n, m in pred.models.items() if not args.arch or n == args.arch}
    images, labels = load_split(args.data, limit=args.limit)
    tta = "" if args.tta == "none" else f", tta {args.tta}"
    if args.ensemble:
        members = pred.ensemble()
        if not members:
            raise UsageError("--ensemble needs at least two models in the weights folder")
        t0 = time.perf_counter()
        evaluated = evaluate_many(pred.models, images, labels, args.batch_size, args.tta, members,
                                  on_batch=progress_bar("eval all + ensemble"))
        seconds = time.perf_counter() - t0
        labels_of = {n: f"{models[n].config.arch} ({models[n].config.encoder}, {models[n].label}{tta})" for n in pred.models}
        labels_of[ENSEMBLE] = "ensemble (" + ", ".join(f"{n} {w:.2g}" for n, w in members.items()) + f"{tta})"
        found = {n: (r["metrics"], r["matrix"], labels_of[n], seconds) for n, r in evaluated.items()}
    else:
        found = {}
        for key, model in models.items():
            cfg = model.config
            t0 = time.perf_counter()
            metrics, mat = evaluate(model, images, labels, batch_size=args.batch_size, tta=args.tta,
                                    on_batch=progress_bar(f"eval {cfg.arch}"))
            found[key] = (metrics, mat, f"{cfg.arch} ({cfg.encoder}, {model.label}{tta})", time.perf_counter() - t0)
    results = {}
    for key, (metrics, mat, title, seconds) in found.items():
        print(f"{title} on {args.data} ({len(images)} pairs, {labels.shape[-1]}x{labels.shape[-2]}, {seconds:.1f} s)")
        print(f"pixel acc {metrics['pixel_acc']:.4f}  class acc {metrics['class_acc']:.4f}  mIoU {metrics['miou']:.4f}")
        for name, iou in metrics["iou"].items():
            print(f"  {name:<14} {iou:.4f}")
        backend = models[key].label if key in models else "ensemble"
        results[key] = {**metrics, "backend": backend, "tta": args.tta, "seconds": seconds}
        if args.confusion:
            out = args.confusion if len(found) == 1 else args.confusion.with_name(f"{key}_{args.confusion.name}")
            write_confusion(mat, next(iter(models.values())).config.class_names, out)
    if args.record:
        from seg_core.checkpoint import record_metrics

        measured = {k: v for k, v in results["model"].items() if k in ("pixel_acc", "class_acc", "miou", "iou")}
        record_metrics(args.weights, {**measured, "split": Path(args.data).name})
        print(f"recorded in {args.weights}'s config")
    if args.json:
        args.json.write_text(json.dumps(results["model"] if "model" in results else results, indent=1))
    return 0


def write_confusion(mat, class_names, path: Path) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    header = "target\\pred," + ",".join(class_names)
    rows = [f"{name}," + ",".join(str(int(v)) for v in row) for name, row in zip(class_names, mat)]
    path.with_suffix(".csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    try:
        import plotly.graph_objects as go
    except ImportError:
        return
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = mat / mat.sum(1, keepdims=True)
    fig = go.Figure(go.Heatmap(z=norm, x=list(class_names), y=list(class_names), colorscale="Blues",
                               hovertemplate="target %{y}<br>pred %{x}<br>%{z:.3f}<extra></extra>"))
    fig.update_layout(title="Confusion matrix (rows normalised)", xaxis_title="predicted", yaxis_title="target",
                      yaxis_autorange="reversed", width=800, height=750)
    fig.write_html(path.with_suffix(".html"), include_plotlyjs="cdn")


def cmd_scores(args) -> int:
    """Exit 0 when every pair was scored; 2 when any could not be (--engine ray goes on without it)."""
    from seg_core.folder_scores import folder_scores, rows, write_csv
    from seg_core.segment import write_failures

    engine_flags(args)
    pred = weights_folder(args.weights, args.backend)
    if pred is None:
        raise UsageError(f"--weights {args.weights} must be a weights folder")
    failed = []
    if args.engine == "ray":
        from seg_core.ray_engine import RayUnavailable, run_scores

        try:
            scores, failed = run_scores(pred, args.weights, args.data, args.tta, ensemble=not args.no_ensemble,
                                        threads=args.threads, address=args.address)
        except RayUnavailable as err:
            raise UsageError(str(err)) from None
    else:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        scores = folder_scores(pred, args.data, args.tta, ensemble=not args.no_ensemble,
                               on_batch=progress_bar("scoring"))
    table = rows(scores, next(iter(pred.models.values())).config.class_names)
    write_csv(table, args.out)
    write_failures(failed, args.out.with_name(f"{args.out.stem}_failed.csv"))
    note = " (from the cache)" if scores["cached"] else ""
    failures = f"; {len(failed)} file(s) could not be scored" if failed else ""
    print(f"{len(table)} images x {len(scores['models'])} models -> {args.out}{note}{failures}")
    return 2 if failed else 0
