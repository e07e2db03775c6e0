"""Train, evaluate, pack and export the three segmentation models.

    python train_cli.py train --arch unet --data ../shared/data/cityscapes_pairs/train --out runs/unet --time-budget 120m
    python train_cli.py eval  --weights weights/unet.safetensors --data ../shared/data/cityscapes_pairs/val
    python train_cli.py pack  --data ../shared/data/cityscapes_pairs/train --out packs/train.npz
    python train_cli.py export --weights weights --format openvino --int8 --check ../shared/data/cityscapes_pairs/val
    python train_cli.py eval  --weights weights     # every model in the folder, on its fastest backend
    python train_cli.py eval  --weights weights/unet.safetensors --tta flip   # photo + mirror image
    python train_cli.py segment photos/ clip.mp4 street.jpg --out segmented --colour --overlay

Every error a user can cause (missing folder, unknown arch, wrong checkpoint, bad flag) ends with
one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parent.parent / "shared" / "data" / "cityscapes_pairs"
ARCH_CHOICES = ("unet", "fcn_vgg16", "fcn_resnet50")
TTA_CHOICES = ("none", "flip")  # seg_core.inference.TTA_MODES, without importing torch for --help


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train and evaluate Cityscapes segmentation models.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--arch", choices=ARCH_CHOICES, default="unet", help="architecture")
    t.add_argument("--encoder", default=None, help="smp encoder name (default: resnet18 / vgg16_bn / resnet50)")
    t.add_argument("--encoder-weights", choices=("imagenet",), default=None,
                   help="start the encoder from ImageNet weights (needs the network)")
    t.add_argument("--data", type=Path, default=DEFAULT_DATA / "train", help="train pairs folder or .npz pack")
    t.add_argument("--val", type=Path, default=None, help="val pairs folder or pack (default: 'val' beside --data)")
    t.add_argument("--no-val", action="store_true", help="train without validation (best = last)")
    t.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, logs, resume state")
    length = t.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive_int, help="train for this many epochs")
    length.add_argument("--time-budget", type=parse_duration,
                        help="wall-clock budget (e.g. 120m): the LR and resolution schedule follow time, "
                             "and the run ends with evaluated checkpoints inside it")
    t.add_argument("--batch-size", type=positive_int, default=16, help="images per step (per process)")
    t.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (AdamW, one-cycle)")
    t.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay")
    t.add_argument("--crop", type=positive_int, default=128, help="crop side during the low-resolution phase")
    t.add_argument("--final-size", type=positive_int, default=256, help="image side of the last phase and model input")
    t.add_argument("--final-frac", type=float, default=0.25, help="fraction of the schedule at --final-size")
    t.add_argument("--dice-weight", type=float, default=0.5, help="weight of the Dice term added to cross-entropy")
    t.add_argument("--class-weight-power", type=float, default=0.5,
                   help="class weights (median freq / freq) ** power; 0 turns them off")
    t.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay of the evaluated weights")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    t.add_argument("--eval-every", type=positive_int, default=1, help="evaluate every N epochs")
    t.add_argument("--init", type=Path, default=None, help="start from this checkpoint (fine-tuning)")
    t.add_argument("--freeze-encoder-epochs", type=int, default=0, help="keep the encoder frozen this many epochs")
    t.add_argument("--resume", action="store_true", help="continue the run in --out after its last finished epoch")
    t.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: all cores)")
    t.add_argument("--compile", action="store_true", help="torch.compile the model (helps on a GPU)")
    t.add_argument("--limit", type=positive_int, default=None, help="use only the first N train pairs")
    t.add_argument("--val-limit", type=positive_int, default=None, help="use only the first N val pairs")

    e = sub.add_parser("eval", help="evaluate a checkpoint", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("--weights", required=True,
                   help="checkpoint (.safetensors, exported .onnx / .xml, Hub folder or hf://org/name), or a "
                        "weights folder: every model in it, each on its fastest backend (see --backend)")
    e.add_argument("--backend", choices=("auto", "pytorch"), default="auto",
                   help="for a weights folder: 'auto' uses the exported int8/ONNX files when present")
    e.add_argument("--data", type=Path, default=DEFAULT_DATA / "val", help="pairs folder or .npz pack")
    e.add_argument("--arch", choices=ARCH_CHOICES, default=None, help="fail unless the checkpoint is this arch")
    e.add_argument("--batch-size", type=positive_int, default=16, help="images per forward pass")
    e.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N pairs")
    e.add_argument("--tta", choices=TTA_CHOICES, default="none",
                   help="test-time augmentation: 'flip' averages the probabilities of each photo and its mirror "
                        "image (twice the time)")
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
                        "seg_core.fast.DEFAULT_KEEP_FLOAT")
    x.add_argument("--check", type=Path, default=None,
                   help="val pairs folder or pack: report mIoU of the export against the PyTorch original "
                        "and the share of pixels whose class agrees")
    x.add_argument("--check-limit", type=positive_int, default=None, help="check on the first N pairs only")
    x.add_argument("--out", type=Path, default=None, help="output folder (default: beside the checkpoint)")
    x.add_argument("--threads", type=positive_int, default=None, help="CPU threads")

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
    g.add_argument("--models", nargs="+", choices=ARCH_CHOICES, default=None,
                   help="models to run (None: every model in --weights)")
    g.add_argument("--colour", action="store_true", help="also write each image's colour mask")
    g.add_argument("--overlay", action="store_true", help="also write each image's overlay")
    g.add_argument("--every", type=positive_int, default=1, help="videos: segment every Nth frame, hold the mask between")
    g.add_argument("--no-flow", action="store_true", help="videos: skip the motion-compensated flicker (optical flow)")
    g.add_argument("--max-seconds", type=float, default=60.0, help="videos: refuse longer ones")
    g.add_argument("--max-frames", type=positive_int, default=1500, help="videos: refuse ones with more frames")
    g.add_argument("--threads", type=positive_int, default=None, help="CPU threads")
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


def cmd_train(args) -> int:
    import torch

    from seg_core.data import load_split
    from seg_core.engine import TrainConfig, Trainer, keep_freed_memory

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resume and not (args.out / "state.safetensors").is_file():
        raise UsageError(f"--resume: {args.out} holds no run to resume (no state.safetensors)")
    if args.resume:
        # The schedule must not change under a resumed run: reuse the saved flags.
        from seg_core.checkpoint import read_tensors

        _, meta = read_tensors(args.out / "state.safetensors")
        saved = json.loads(meta["trainer"])["train_config"]
        cfg = TrainConfig(**{**saved, "crop_scale": tuple(saved["crop_scale"]),
                             "final_scale": tuple(saved["final_scale"])})
    else:
        if args.epochs is None and args.time_budget is None:
            raise UsageError("give --epochs N or --time-budget DURATION")
        if not 0 <= args.final_frac <= 1:
            raise UsageError("--final-frac must be between 0 and 1")
        cfg = TrainConfig(arch=args.arch, encoder=args.encoder, encoder_weights=args.encoder_weights,
                          epochs=args.epochs, time_budget=args.time_budget, batch_size=args.batch_size,
                          lr=args.lr, weight_decay=args.weight_decay, crop=args.crop, final_size=args.final_size,
                          final_frac=args.final_frac, dice_weight=args.dice_weight,
                          class_weight_power=args.class_weight_power, ema_decay=args.ema_decay, seed=args.seed,
                          eval_every=args.eval_every, init=str(args.init) if args.init else None,
                          freeze_encoder_epochs=args.freeze_encoder_epochs, compile=args.compile,
                          limit=args.limit, val_limit=args.val_limit)
    if cfg.final_size % 32:
        raise UsageError("--final-size must be a multiple of 32")
    if cfg.crop % 32:
        raise UsageError("--crop must be a multiple of 32")
    _check_writable(args.out)
    keep_freed_memory()  # no page faults for each step's activation buffers (once the flags are checked)
    train = load_split(args.data, limit=cfg.limit)
    val_path = None if args.no_val else (args.val or default_val(args.data))
    if args.val and not args.val.exists():
        raise UsageError(f"--val {args.val} does not exist")
    val = load_split(val_path, limit=cfg.val_limit) if val_path else None
    if val is None and not args.no_val:
        print("no val split found beside --data; training without validation (pass --val)", file=sys.stderr)
    trainer = Trainer(cfg, train, val, args.out, resume=args.resume)
    result = trainer.run()
    if trainer.is_main:
        if val is None:
            shutil.copyfile(args.out / "last.safetensors", args.out / "best.safetensors")
        print(json.dumps(result))
    return 0


def _load_any(weights: str, arch: str | None = None):
    """A PyTorch model from a checkpoint, or a FastModel from an exported .onnx / .xml file."""
    from seg_core.checkpoint import CheckpointError, load_model
    from seg_core.fast import FastModelError, load_fast

    if Path(weights).suffix in (".onnx", ".xml"):
        try:
            model = load_fast(weights)
        except FastModelError as err:
            raise UsageError(str(err)) from None
        if arch is not None and model.config.arch != arch:
            raise CheckpointError(f"{weights} holds a {model.config.arch} model, not {arch}")
        return model
    return load_model(weights, arch=arch)


def _weights_folder_models(folder: Path, backend: str) -> dict | None:
    """The models of a weights folder (None when ``folder`` is a single Hub-layout checkpoint)."""
    from seg_core.checkpoint import HUB_WEIGHTS
    from seg_core.predictor import Predictor

    if not folder.is_dir() or (folder / HUB_WEIGHTS).is_file():
        return None
    pred = Predictor.from_dir(folder, backend=backend)
    for name, why in {**pred.notes, **pred.missing}.items():
        print(f"{name}: {why}", file=sys.stderr)
    if not pred.models:
        raise UsageError(f"{folder} holds no model checkpoint (unet / fcn_vgg16 / fcn_resnet50 .safetensors)")
    return pred.models


def cmd_eval(args) -> int:
    import time

    import torch

    from seg_core.data import load_split
    from seg_core.engine import evaluate
    from seg_core.predictor import backend_label

    if args.threads:
        torch.set_num_threads(args.threads)
    models = _weights_folder_models(Path(args.weights), args.backend)
    if models is None:
        models = {"model": _load_any(args.weights, arch=args.arch)}
    elif args.arch:
        models = {n: m for n, m in models.items() if n == args.arch}
    images, labels = load_split(args.data, limit=args.limit)
    results = {}
    for key, model in models.items():
        t0 = time.perf_counter()
        metrics, mat = evaluate(model, images, labels, batch_size=args.batch_size, progress=True, tta=args.tta)
        seconds = time.perf_counter() - t0
        cfg = model.config
        tta = "" if args.tta == "none" else f", tta {args.tta}"
        print(f"{cfg.arch} ({cfg.encoder}, {backend_label(model)}{tta}) on {args.data} "
              f"({len(images)} pairs, {labels.shape[-1]}x{labels.shape[-2]}, {seconds:.1f} s)")
        print(f"pixel acc {metrics['pixel_acc']:.4f}  class acc {metrics['class_acc']:.4f}  mIoU {metrics['miou']:.4f}")
        for name, iou in metrics["iou"].items():
            print(f"  {name:<14} {iou:.4f}")
        results[cfg.arch if key != "model" else key] = {**metrics, "backend": backend_label(model), "tta": args.tta,
                                                        "seconds": seconds}
        if args.confusion:
            out = args.confusion if len(models) == 1 else args.confusion.with_name(f"{cfg.arch}_{args.confusion.name}")
            write_confusion(mat, cfg.class_names, out)
    if args.json:
        args.json.write_text(json.dumps(results["model"] if "model" in results else results, indent=1))
    return 0


def cmd_export(args) -> int:
    import tempfile

    import torch

    from seg_core.checkpoint import load_model
    from seg_core.data import load_split
    from seg_core.engine import compare_models
    from seg_core.fast import (calibration_batches, export_onnx, load_fast, model_file_bytes, quantize_onnx,
                               to_openvino)
    from seg_core.predictor import MODEL_NAMES

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.weights.is_dir():
        sources = [p for n in MODEL_NAMES if (p := args.weights / f"{n}.safetensors").is_file()]
        if not sources:
            raise UsageError(f"{args.weights} holds no unet / fcn_vgg16 / fcn_resnet50 .safetensors checkpoint")
    elif args.weights.is_file():
        sources = [args.weights]
    else:
        raise UsageError(f"--weights {args.weights} does not exist")
    from seg_core.fast import DEFAULT_KEEP_FLOAT

    if args.keep_float and not args.int8:
        raise UsageError("--keep-float only applies with --int8")
    keep_float = DEFAULT_KEEP_FLOAT if args.keep_float is None else tuple(k for k in args.keep_float if k != "none")
    out_dir = args.out or (args.weights if args.weights.is_dir() else args.weights.parent)
    _check_writable(out_dir)
    calib_images = load_split(args.calib, limit=None)[0] if args.int8 else None
    check = load_split(args.check, limit=args.check_limit) if args.check else None
    for source in sources:
        model = load_model(source)
        cfg = model.config
        suffix = (".int8" if args.int8 else "") + (".xml" if args.format == "openvino" else ".onnx")
        target = out_dir / f"{cfg.arch}{suffix}"
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
            onnx_path = export_onnx(model, Path(tmp) / "fp32.onnx", source=source)
            if args.int8:
                batches = calibration_batches(calib_images, cfg, count=args.calib_count)
                onnx_path = quantize_onnx(onnx_path, Path(tmp) / "int8.onnx", batches,
                                          keep_float=keep_float, method=args.calib_method)
            if args.format == "openvino":
                to_openvino(onnx_path, Path(tmp) / "model.xml")
                for ext in (".xml", ".bin"):  # the pair replaces the old one only when both are written
                    (Path(tmp) / f"model{ext}").replace(target.with_suffix(ext))
            else:
                onnx_path.replace(target)
        print(f"{source} -> {target} ({model_file_bytes(target) / 2**20:.1f} MiB)")
        if check is not None:
            report = compare_models(model, load_fast(target), *check, progress=True)
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


def cmd_pack(args) -> int:
    from seg_core.data import pack_split

    info = pack_split(args.data, args.out, quality=args.quality)
    print(f"packed {info['pairs']} pairs into {info['path']} ({info['bytes'] / 2**20:.1f} MiB)")
    return 0


def cmd_segment(args) -> int:
    """Exit 0 when every input was segmented; 2 when any failed (each reported on its own line)."""
    import torch

    from seg_core import segment
    from seg_core.video import Limits

    if args.threads:
        torch.set_num_threads(args.threads)
    models = _weights_folder_models(args.weights, "auto") if args.weights.is_dir() else None
    if models is None:
        raise UsageError(f"--weights {args.weights} is not a weights folder")
    from seg_core.predictor import Predictor

    _check_writable(args.out)
    try:
        report = segment.run(args.inputs, args.out, Predictor(models=models), names=args.models, every=args.every,
                             colour=args.colour, with_overlay=args.overlay, flow=not args.no_flow,
                             limits=Limits(max_seconds=args.max_seconds, max_frames=args.max_frames))
    except segment.SegmentError as err:
        raise UsageError(str(err)) from None
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept, none is left half-written", file=sys.stderr)
        return 130
    for line in report.lines:
        print(line)
    print(report.summary())
    return 2 if report.failed else 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "export": cmd_export, "pack": cmd_pack, "segment": cmd_segment}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from seg_core.checkpoint import CheckpointError
    from seg_core.data import DataError
    from seg_core.fast import FastModelError
    from seg_core.models import OfflineError

    try:
        return COMMANDS[args.command](args)
    except (UsageError, DataError, CheckpointError, OfflineError, FastModelError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; resume with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
