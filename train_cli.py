"""Train, evaluate, pack and export the three segmentation models.

    python train_cli.py train --arch unet --data ../shared/data/cityscapes_pairs/train --out runs/unet --time-budget 120m
    python train_cli.py eval  --weights weights/unet.safetensors --data ../shared/data/cityscapes_pairs/val
    python train_cli.py pack  --data ../shared/data/cityscapes_pairs/train --out packs/train.npz
    python train_cli.py export --weights weights --format openvino --int8 --check ../shared/data/cityscapes_pairs/val
    python train_cli.py eval  --weights weights     # every model in the folder, on its fastest backend
    python train_cli.py eval  --weights weights/unet.safetensors --tta flip   # photo + mirror image
    python train_cli.py segment photos/ clip.mp4 street.jpg --out segmented --colour --overlay
    python train_cli.py segment archive/ --out segmented --engine ray --address auto   # on a Ray cluster (docs/ray.md)

Every error a user can cause (missing folder, unknown arch, wrong checkpoint, bad flag) ends with
one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
from pathlib import Path

from seg_core import settings
from seg_core.config import TTA_MODES, TrainConfig
from seg_core.registry import ARCH_NAMES

DEFAULT_DATA = settings.DATA_ROOT


class UsageError(Exception):
    """A user error: printed as one line, exit code 2."""


def parse_duration(text: str) -> float:
    """'90s', '45m', '2h', '1h30m' or plain seconds → seconds."""
    m = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or not m or not any(m.groups()):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use e.g. 90s, 45m, 2h or 1h30m")
    h, mnt, s = (float(g) if g else 0.0 for g in m.groups())
    total = h * 3600 + mnt * 60 + s
    if total <= 0:
        raise argparse.ArgumentTypeError("the duration must be positive")
    return total


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def default_val(data: Path) -> Path | None:
    """The val split next to a train folder or pack (``.../train`` → ``.../val``)."""
    if data.suffix == ".npz":
        candidate = data.with_name(data.name.replace("train", "val"))
    else:
        candidate = data.parent / "val"
    return candidate if candidate != data and candidate.exists() else None


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


PARSERS = {"positive": positive_int, "duration": parse_duration, "fraction": fraction, "int": int, "float": float,
           "str": str}
CHOICES = {"archs": ARCH_NAMES}


def add_config_flags(parser: argparse.ArgumentParser, cls) -> None:
    """One flag per field of the dataclass ``cls`` made with ``seg_core.config.option``: its name
    (``--final-size``), default, help, parser and choices all come from the field."""
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        if "help" not in meta:
            continue
        target = parser
        if "group" in meta:
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_mutually_exclusive_group()
            target = groups[meta["group"]]
        kw: dict = {"dest": f.name, "default": f.default, "help": meta["help"]}
        if isinstance(f.default, bool):
            kw["action"] = "store_false" if f.default else "store_true"
        elif isinstance(f.default, tuple):
            kw.update(nargs=len(f.default), type=float, metavar=("LOW", "HIGH"))
        else:
            kw["type"] = PARSERS[meta.get("type", type(f.default).__name__)]
        if "choices" in meta:
            kw["choices"] = CHOICES.get(meta["choices"], meta["choices"])
        target.add_argument(meta.get("flag", "--" + f.name.replace("_", "-")), **kw)


def add_engine_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="'ray': spread the files over a Ray cluster (pip install -e \".[ray]\"; docs/ray.md); "
                             "the same outputs, and a rerun skips what is done")
    parser.add_argument("--address", default=None,
                        help="with --engine ray: the cluster, 'auto' or ray://host:port (default: $RAY_ADDRESS, "
                             "else a local Ray started for the run)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train and evaluate Cityscapes segmentation models.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", type=Path, default=DEFAULT_DATA / "train", help="train pairs folder or .npz pack")
    t.add_argument("--val", type=Path, default=None, help="val pairs folder or pack (default: 'val' beside --data)")
    t.add_argument("--no-val", action="store_true", help="train without validation (best = last)")
    t.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, logs, resume state")
    t.add_argument("--resume", action="store_true", help="continue the run in --out after its last finished epoch")
    t.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: all cores)")
    add_config_flags(t, TrainConfig)

    e = sub.add_parser("eval", help="evaluate a checkpoint", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("--weights", required=True,
                   help="checkpoint (.safetensors, exported .onnx / .xml, Hub folder or hf://org/name), or a "
                        "weights folder: every model in it, each on its fastest backend (see --backend)")
    e.add_argument("--backend", choices=("auto", "pytorch"), default="auto",
                   help="for a weights folder: 'auto' uses the exported int8/ONNX files when present")
    e.add_argument("--data", type=Path, default=DEFAULT_DATA / "val", help="pairs folder or .npz pack")
    e.add_argument("--arch", choices=ARCH_NAMES, default=None, help="fail unless the checkpoint is this arch")
    e.add_argument("--batch-size", type=positive_int, default=16, help="images per forward pass")
    e.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N pairs")
    e.add_argument("--tta", choices=TTA_MODES, default="none",
                   help="test-time augmentation: 'flip' averages the probabilities of each photo and its mirror "
                        "image (twice the time)")
    e.add_argument("--ensemble", action="store_true",
                   help="for a weights folder: also score the ensemble (the weighted mean of the models' "
                        "probabilities, weights from <folder>/ensemble.json or equal)")
    e.add_argument("--confusion", type=Path, default=None,
                   help="write the confusion matrix here (.csv; a row-normalised .html plot beside it)")
    e.add_argument("--json", type=Path, default=None, help="write the metrics as JSON")
    e.add_argument("--threads", type=positive_int, default=None, help="CPU threads")

    x = sub.add_parser("export", help="export checkpoints for the fast CPU path (ONNX Runtime / OpenVINO, int8)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    x.add_argument("--weights", type=Path, required=True,
                   help="a .safetensors checkpoint, or a folder: each of its unet / fcn_vgg16 / fcn_resnet50")
    x.add_argument("--format", choices=("onnx", "openvino"), default="openvino", help="file format and runtime")
    x.add_argument("--int8", action="store_true", help="quantise to int8 (static, calibrated on --calib)")
    x.add_argument("--calib", type=Path, default=DEFAULT_DATA / "train",
                   help="pairs folder or pack whose photos calibrate the int8 ranges (train split)")
    x.add_argument("--calib-count", type=positive_int, default=128, help="calibration images (random, seeded)")
    x.add_argument("--calib-method", choices=("minmax", "percentile", "entropy"), default="minmax",
                   help="how activation ranges are set from the calibration images")
    x.add_argument("--keep-float", action="append", default=None, metavar="SUBSTRING",
                   help="with --int8, keep the ONNX nodes whose name contains this in float (repeatable; "
                        "'none' quantises every layer); default: the layers that make the class scores, "
                        "seg_core.export.DEFAULT_KEEP_FLOAT")
    x.add_argument("--check", type=Path, default=None,
                   help="val pairs folder or pack: report mIoU of the export against the PyTorch original "
                        "and the share of pixels whose class agrees")
    x.add_argument("--check-limit", type=positive_int, default=None, help="check on the first N pairs only")
    x.add_argument("--out", type=Path, default=None, help="output folder (default: beside the checkpoint)")
    x.add_argument("--threads", type=positive_int, default=None, help="CPU threads")

    s = sub.add_parser("scores", help="per-image scores of every model (and the ensemble) on a folder, as CSV",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("--weights", type=Path, default=Path("weights"), help="weights folder")
    s.add_argument("--data", type=Path, default=DEFAULT_DATA / "val", help="pairs folder")
    s.add_argument("--out", type=Path, required=True, help="output .csv")
    s.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation")
    s.add_argument("--no-ensemble", action="store_true", help="leave the ensemble out")
    s.add_argument("--backend", choices=("auto", "pytorch"), default="auto", help="as for eval")
    s.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads (with --engine ray: per actor; actors = cluster CPUs / threads)")
    add_engine_flags(s)

    p = sub.add_parser("pack", help="pack a pairs folder into one .npz file",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="pairs folder")
    p.add_argument("--out", type=Path, required=True, help="output .npz (outside ../shared)")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality of the re-encoded photos")

    g = sub.add_parser("segment", help="segment your own images, folders of images and videos",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files, folders of images, videos")
    g.add_argument("--out", type=Path, required=True, help="output folder")
    g.add_argument("--weights", type=Path, default=Path(__file__).resolve().parent / "weights",
                   help="weights folder (each model on its fastest backend)")
    g.add_argument("--models", nargs="+", choices=(*ARCH_NAMES, "ensemble"), default=None,
                   help="models to run (default: every model in --weights); 'ensemble': their weighted mean")
    g.add_argument("--colour", action="store_true", help="also write each image's colour mask")
    g.add_argument("--overlay", action="store_true", help="also write each image's overlay")
    g.add_argument("--every", type=positive_int, default=1, help="videos: segment every Nth frame, hold the mask between")
    g.add_argument("--no-flow", action="store_true", help="videos: skip the motion-compensated flicker (optical flow)")
    g.add_argument("--max-seconds", type=float, default=60.0, help="videos: refuse longer ones")
    g.add_argument("--max-frames", type=positive_int, default=1500, help="videos: refuse ones with more frames")
    g.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads (with --engine ray: per actor; actors = cluster CPUs / threads)")
    add_engine_flags(g)

    d = sub.add_parser("deploy-space", help="deploy the app as a Hugging Face Space (HfApi uploads, not git)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument("space", metavar="ORG/NAME", help="the Space to create or update")
    d.add_argument("--sdk", choices=("streamlit", "gradio"), default="streamlit",
                   help="which app the Space runs: app.py (streamlit) or gradio_app.py (gradio)")
    d.add_argument("--weights-repo", metavar="ORG/MODEL", default=None,
                   help="push weights/ to this model repo and pin the Space to that commit "
                        "(default: the weights are uploaded with the Space)")
    d.add_argument("--dry-run", action="store_true", help="print every file that would be sent, with its size, "
                                                          "and the total; contact nothing")
    d.add_argument("--private", action="store_true", help="create the Space (and model repo) private")

    c = sub.add_parser("campaign", help="the GPU campaign: bundle, detach/restore weights, homecoming (README)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("step", choices=("bundle", "detach", "restore", "home"),
                   help="bundle: packs + smp wheel into .campaign/, check sizes, print the two run calls; "
                        "detach / restore: weights/ out of / back into the git index around the calls; "
                        "home: reassemble, compare with the shipped models, replace with --apply")
    c.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent, help="repository root")
    c.add_argument("--data", type=Path, default=DEFAULT_DATA, help="bundle: folder with train/ and val/ pairs")
    c.add_argument("--repack", action="store_true", help="bundle: rewrite the packs even if present")
    c.add_argument("--incoming", type=Path, action="append", default=[],
                   help="home: a folder the device tool returned (files_at); give both commands' folders")
    c.add_argument("--out", type=Path, default=Path("runs/campaign"), help="home: reassembled models and report")
    c.add_argument("--weights", type=Path, default=Path("weights"), help="home: the shipped models")
    c.add_argument("--val", type=Path, default=DEFAULT_DATA / "val", help="home: val pairs folder or pack")
    c.add_argument("--limit", type=positive_int, default=None, help="home: only the first N val pairs")
    c.add_argument("--apply", action="store_true",
                   help="home: copy each new model whose bootstrap interval is above 0 into --weights")
    return parser


def _check_writable(out: Path) -> None:
    """Fail before training when --out cannot take checkpoints (unwritable or a nearly full disk)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write_test.{os.getpid()}"  # per process: DDP ranks probe the same folder at once
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"--out {out} is not writable: {err.strerror or err}") from None
    free = shutil.disk_usage(out).free
    if free < 512 * 2**20:
        raise UsageError(f"--out {out} has only {free / 2**20:.0f} MiB free; checkpoints need at least 512 MiB")


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
    _check_writable(args.out)
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


def _weights_folder(folder: Path, backend: str):
    """The ``Predictor`` of a weights folder (None when ``folder`` is a single Hub-layout checkpoint)."""
    from seg_core.checkpoint import HUB_WEIGHTS
    from seg_core.predictor import Predictor

    if not folder.is_dir() or (folder / HUB_WEIGHTS).is_file():
        return None
    pred = Predictor.from_dir(folder, backend=backend)
    for name, why in {**pred.notes, **pred.missing}.items():
        print(f"{name}: {why}", file=sys.stderr)
    if not pred.models:
        raise UsageError(f"{folder} holds no model checkpoint ({' / '.join(ARCH_NAMES)} .safetensors)")
    return pred


def progress_bar(desc: str):
    """An ``on_batch(done, total)`` callback that draws a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = None

    def on_batch(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return on_batch


def cmd_eval(args) -> int:
    import time

    import torch

    from seg_core.data import load_split
    from seg_core.evaluate import evaluate, evaluate_many
    from seg_core.inference import ENSEMBLE
    from seg_core.runners import load_runner

    if args.threads:
        torch.set_num_threads(args.threads)
    pred = _weights_folder(Path(args.weights), args.backend)
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
    if args.json:
        args.json.write_text(json.dumps(results["model"] if "model" in results else results, indent=1))
    return 0


def cmd_export(args) -> int:
    import torch

    from seg_core.data import load_split
    from seg_core.evaluate import compare_runners
    from seg_core.export import DEFAULT_KEEP_FLOAT, export_checkpoint
    from seg_core.runners import load_runner, model_file_bytes

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.weights.is_dir():
        sources = [p for n in ARCH_NAMES if (p := args.weights / f"{n}.safetensors").is_file()]
        if not sources:
            raise UsageError(f"{args.weights} holds no {' / '.join(ARCH_NAMES)} .safetensors checkpoint")
    elif args.weights.is_file():
        sources = [args.weights]
    else:
        raise UsageError(f"--weights {args.weights} does not exist")
    if args.keep_float and not args.int8:
        raise UsageError("--keep-float only applies with --int8")
    keep_float = DEFAULT_KEEP_FLOAT if args.keep_float is None else tuple(k for k in args.keep_float if k != "none")
    out_dir = args.out or (args.weights if args.weights.is_dir() else args.weights.parent)
    _check_writable(out_dir)
    calib_images = load_split(args.calib, limit=None)[0] if args.int8 else None
    check = load_split(args.check, limit=args.check_limit) if args.check else None
    for source in sources:
        target = export_checkpoint(source, out_dir, args.format, args.int8, calib_images, args.calib_count,
                                   args.calib_method, keep_float)
        print(f"{source} -> {target} ({model_file_bytes(target) / 2**20:.1f} MiB)")
        if check is not None:
            reference, exported = load_runner(source), load_runner(target)
            report = compare_runners(reference, exported, *check,
                                     on_batch=progress_bar(f"compare {reference.config.arch}"))
            print(f"  check on {args.check} ({len(check[0])} pairs): mIoU {report['reference']['miou']:.4f} (PyTorch) "
                  f"-> {report['exported']['miou']:.4f} ({report['miou_delta']:+.4f}), pixel acc "
                  f"{report['reference']['pixel_acc']:.4f} -> {report['exported']['pixel_acc']:.4f}, "
                  f"masks agree on {100 * report['agreement']:.2f}% of pixels")
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

    _engine_flags(args)
    pred = _weights_folder(args.weights, args.backend)
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


def _engine_flags(args) -> None:
    if args.address and args.engine != "ray":
        raise UsageError("--address needs --engine ray")


def cmd_pack(args) -> int:
    from seg_core.data import pack_split

    info = pack_split(args.data, args.out, quality=args.quality)
    print(f"packed {info['pairs']} pairs into {info['path']} ({info['bytes'] / 2**20:.1f} MiB)")
    return 0


def cmd_deploy_space(args) -> int:
    from seg_core.space import DeployError, deploy_space, describe, plan_space

    try:
        plan = plan_space(args.space, args.sdk, args.weights_repo, private=args.private)
        print(describe(plan))
        if args.dry_run:
            print("dry run: nothing was sent to the Hub")
            return 0
        deploy_space(plan)
    except DeployError as err:
        raise UsageError(str(err)) from None
    return 0


def cmd_campaign(args) -> int:
    from seg_core import campaign

    try:
        print(campaign.run_step(args.step, args), end="")
    except campaign.CampaignError as err:
        raise UsageError(str(err)) from None
    return 0


def cmd_segment(args) -> int:
    """Exit 0 when every input was segmented; 2 when any failed (each reported on its own line)."""
    import torch

    from seg_core import segment
    from seg_core.ray_engine import RayUnavailable, run_segment
    from seg_core.video import Limits

    _engine_flags(args)
    if args.threads and args.engine == "local":
        torch.set_num_threads(args.threads)
    pred = _weights_folder(args.weights, "auto") if args.weights.is_dir() else None
    if pred is None:
        raise UsageError(f"--weights {args.weights} is not a weights folder")
    _check_writable(args.out)
    options = dict(names=args.models, every=args.every, colour=args.colour, with_overlay=args.overlay,
                   flow=not args.no_flow, limits=Limits(max_seconds=args.max_seconds, max_frames=args.max_frames))
    try:
        if args.engine == "ray":
            report = run_segment(args.inputs, args.out, pred, args.weights, threads=args.threads,
                                 address=args.address, **options)
        else:
            report = segment.run(args.inputs, args.out, pred, **options)
    except (segment.SegmentError, RayUnavailable) as err:
        raise UsageError(str(err)) from None
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept, none is left half-written", file=sys.stderr)
        return 130
    segment.write_failures(report.failed, args.out / "failed.csv")
    for line in report.lines:
        print(line)
    print(report.summary())
    return 2 if report.failed else 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "export": cmd_export, "scores": cmd_scores,
            "segment": cmd_segment, "pack": cmd_pack, "campaign": cmd_campaign, "deploy-space": cmd_deploy_space}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from seg_core.checkpoint import CheckpointError
    from seg_core.data import DataError
    from seg_core.models import OfflineError
    from seg_core.runners import RunnerError

    try:
        return COMMANDS[args.command](args)
    except (UsageError, DataError, CheckpointError, OfflineError, RunnerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; resume with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
