"""``train_cli.py segment``: the user's images, folders and videos through every model, locally or
on a Ray cluster; failures listed, finished outputs kept on Ctrl-C."""

from __future__ import annotations

import sys

from cli.common import UsageError, check_writable, engine_flags, weights_folder


def cmd_segment(args) -> int:
    """Exit 0 when every input was segmented; 2 when any failed (each reported on its own line)."""
    import torch

    from seg_core import segment
    from seg_core.ray_engine import RayUnavailable, run_segment
    from seg_core.video import Limits

    engine_flags(args)
    if args.threads and args.engine == "local":
        torch.set_num_threads(args.threads)
    pred = weights_folder(args.weights, "auto") if args.weights.is_dir() else None
    if pred is None:
        raise UsageError(f"--weights {args.weights} is not a weights folder")
    check_writable(args.out)
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
