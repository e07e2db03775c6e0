"""Train, evaluate, pack and export the three segmentation models.

    python train_cli.py train --arch unet --data ../shared/data/cityscapes_pairs/train --out runs/unet --time-budget 120m
    python train_cli.py eval  --weights weights/unet.safetensors --data ../shared/data/cityscapes_pairs/val
    python train_cli.py pack  --data ../shared/data/cityscapes_pairs/train --out packs/train.npz
    python train_cli.py export --weights weights --format openvino --int8 --check ../shared/data/cityscapes_pairs/val
    python train_cli.py interpolate --a weights/unet.safetensors --b runs/robust/best.safetensors --alpha 0.5 --out mix.safetensors
    python train_cli.py eval  --weights weights     # every model in the folder, on its fastest backend
    python train_cli.py eval  --weights weights/unet.safetensors --tta flip   # photo + mirror image
    python train_cli.py segment photos/ clip.mp4 street.jpg --out segmented --colour --overlay
    python train_cli.py segment archive/ --out segmented --engine ray --address auto   # on a Ray cluster (docs/ray.md)

Every error a user can cause (missing folder, unknown arch, wrong checkpoint, bad flag) ends with
one line on stderr and exit code 2, never a traceback. The handlers live in ``cli/``, one module per job (docs/layout.md).
"""

from __future__ import annotations

import sys

from cli.common import UsageError, parse_duration
from cli.deploy import cmd_campaign, cmd_deploy_space
from cli.evaluate import cmd_eval, cmd_scores
from cli.export import cmd_export, cmd_interpolate, cmd_pack
from cli.parser import build_parser
from cli.segment import cmd_segment
from cli.train import cmd_train

__all__ = ["COMMANDS", "UsageError", "build_parser", "main", "parse_duration"]

COMMANDS = {"train": cmd_train, "eval": cmd_eval, "export": cmd_export, "scores": cmd_scores,
            "segment": cmd_segment, "pack": cmd_pack, "interpolate": cmd_interpolate,
            "campaign": cmd_campaign, "deploy-space": cmd_deploy_space}


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
