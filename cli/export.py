"""``train_cli.py export``, ``pack`` and ``interpolate``: checkpoints to ONNX / OpenVINO (int8, checked
against the PyTorch original), a pairs folder into one .npz file, and two checkpoints into their
weight-space mix (WiSE-FT, ``seg_core.weight_average``)."""

from __future__ import annotations

from cli.common import UsageError, check_writable, progress_bar
from seg_core.registry import ARCH_NAMES


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
    check_writable(out_dir)
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


def cmd_pack(args) -> int:
    from seg_core.data import pack_split

    info = pack_split(args.data, args.out, quality=args.quality)
    print(f"packed {info['pairs']} pairs into {info['path']} ({info['bytes'] / 2**20:.1f} MiB)")
    return 0


def cmd_interpolate(args) -> int:
    from seg_core.weight_average import check_alpha, interpolate_checkpoints

    try:
        check_alpha(args.alpha)
    except ValueError as err:
        raise UsageError(str(err)) from None
    cfg = interpolate_checkpoints(args.a, args.b, args.alpha, args.out)
    record = cfg.training["interpolated"]
    print(f"{args.out}: {cfg.arch}/{cfg.encoder} = {1 - args.alpha:g} x {args.a} + {args.alpha:g} x {args.b} "
          f"(from {record['from']['sha256'][:12]}, to {record['to']['sha256'][:12]}); metrics not measured yet")
    return 0
