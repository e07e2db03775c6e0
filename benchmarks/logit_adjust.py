"""How far a checkpoint's class weighting tilts its masks toward the rare classes.

The trainer's loss weights class c by w_c = (median freq / freq_c) ** power, which raises the
logits of rare classes. Subtracting tau * log(w_c) from the logits (post-hoc logit adjustment,
Menon et al., ICLR 2021) takes a share tau of that tilt back: tau = 0 is the model as trained,
tau = 1 roughly the model an unweighted loss would have given. Scoring val for a few tau shows
whether the weighting was too strong (pixel accuracy and mIoU both rise with tau) or about right
(mIoU falls). It measures; it changes no checkpoint.

    python benchmarks/logit_adjust.py --weights weights/unet.safetensors \
        --train ../shared/data/cityscapes_pairs/train --data ../shared/data/cityscapes_pairs/val

The class frequencies come from the train labels, the power from the checkpoint's training
settings (or ``--power``). One line of JSON closes the output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from seg_core.checkpoint import CheckpointError, load_model
from seg_core.data import DataError, load_split
from seg_core.inference import model_input
from seg_core.metrics import ConfusionMatrix, summarize
from seg_core.runners import upsampled_classes
from seg_core.train import class_weights

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--weights", type=Path, required=True, help="a .safetensors checkpoint")
    p.add_argument("--train", type=Path, required=True, help="train pairs folder or pack (class frequencies)")
    p.add_argument("--data", type=Path, required=True, help="val pairs folder or pack (scores)")
    p.add_argument("--power", type=float, default=None,
                   help="class-weight power (default: the one the checkpoint was trained with)")
    p.add_argument("--taus", default="0,0.25,0.5,0.75,1", help="comma-separated shares of the tilt to take back")
    p.add_argument("--limit", type=int, default=None, help="score only the first N val pairs")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    return p.parse_args(argv)


@torch.inference_mode()
def scores(model, images: torch.Tensor, labels: torch.Tensor, log_w: torch.Tensor, taus: list[float],
           batch_size: int) -> dict[float, dict]:
    """Val metrics of ``model`` with ``tau * log_w`` taken off its logits, for each tau."""
    model.eval()
    cms = {tau: ConfusionMatrix(model.config.num_classes) for tau in taus}
    bias = log_w.view(1, -1, 1, 1)
    for i in range(0, len(images), batch_size):
        logits = model(model_input(images[i : i + batch_size], model.config))
        y = labels[i : i + batch_size]
        for tau in taus:  # a per-class constant commutes with bilinear upsampling
            cms[tau].update(upsampled_classes(logits - tau * bias, y.shape[-2:]), y)
    return {tau: summarize(cm.mat.numpy(), model.config.class_names) for tau, cm in cms.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        taus = [float(t) for t in args.taus.split(",")]
        model = load_model(args.weights)
        power = args.power if args.power is not None else model.config.training.get("class_weight_power")
        if power is None:
            raise ValueError(f"{args.weights} records no class_weight_power; pass --power")
        _, train_labels = load_split(args.train)
        log_w = class_weights(train_labels, power, model.config.num_classes).log()
        del train_labels
        images, labels = load_split(args.data, limit=args.limit)
    except (CheckpointError, DataError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = scores(model, images, labels, log_w, taus, args.batch_size)
    print(f"{args.weights.name}: class-weight power {power}, {len(images)} val pairs")
    print("| tau | val mIoU | pixel acc | class acc |\n|---|---|---|---|")
    for tau, s in result.items():
        print(f"| {tau:g} | {s['miou']:.4f} | {s['pixel_acc']:.4f} | {s['class_acc']:.4f} |")
    print(json.dumps({"power": power, "val_images": len(images),
                      "scores": {f"{tau:g}": {k: round(s[k], 4) for k in ("miou", "pixel_acc", "class_acc")}
                                 for tau, s in result.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
