"""The argument parser of ``train_cli.py``: one sub-command per job; the train flags come from
``TrainConfig`` (``add_config_flags``), so their defaults and help have one source."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.common import DEFAULT_DATA, REPO, add_config_flags, add_engine_flags, positive_int
from seg_core.config import TTA_MODES, TrainConfig
from seg_core.registry import ARCH_NAMES


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
    e.add_argument("--record", action="store_true",
                   help="write the measured metrics into the checkpoint's config (one .safetensors file, "
                        "every pair, no TTA), e.g. after 'interpolate', before 'export'")

    x = sub.add_parser("export", help="export checkpoints for the fast CPU path (ONNX Runtime / OpenVINO, int8)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    x.add_argument("--weights", type=Path, required=True,
                   help=f"a .safetensors checkpoint, or a folder: each of its {' / '.join(ARCH_NAMES)}")
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

    w = sub.add_parser("interpolate", help="mix two checkpoints of one model in weight space (WiSE-FT), no training",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    w.add_argument("--a", type=Path, required=True, help="first .safetensors checkpoint (alpha 0), e.g. the shipped one")
    w.add_argument("--b", type=Path, required=True, help="second checkpoint of the same model (alpha 1), e.g. a fine-tune")
    w.add_argument("--alpha", type=float, required=True, help="weight of --b in [0, 1]: (1 - alpha) * a + alpha * b")
    w.add_argument("--out", type=Path, required=True, help="output .safetensors (config: b's, with the mix recorded)")

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
    g.add_argument("--weights", type=Path, default=REPO / "weights",
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
    c.add_argument("--repo", type=Path, default=REPO, help="repository root")
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
