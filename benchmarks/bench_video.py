"""Video throughput end to end: decode, the three models, the comparison grid, flicker, H.264 encode.

Makes a clip by panning a window of ``--size`` across a scene (the first photo of ``--val`` scaled
up, or a synthetic scene without it), then times ``seg_core.video_compare.segment_video`` on it with the
models of ``--weights`` (their fastest backend, as the CLI and the apps use them), pinned to
``--cores`` CPU cores. Prints one summary line, then the result as JSON on the last line.

    python benchmarks/bench_video.py --weights weights --val ../shared/data/cityscapes_pairs/val
    python benchmarks/bench_video.py --frames 20 --still docs/video_demo.jpg   # synthetic scene: the README still
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

TARGET_FPS = 7.0  # issue 22: three models on 256x512, 2 cores


def scene(val: Path | None, h: int, w: int, frames: int, step: int) -> np.ndarray:
    """A picture wide enough to pan ``frames`` steps of ``step`` pixels with an ``h x w`` window."""
    need = (h, w + frames * step)
    if val is not None:
        photo = Image.open(sorted(val.glob("*.jpg"))[0]).convert("RGB")
        photo = photo.crop((0, 0, photo.width // 2, photo.height))  # the photo half of a pair
    else:
        from seg_core.palette import COLORS

        rng = np.random.default_rng(0)
        label = np.zeros((64, 128), np.uint8)
        for _ in range(24):
            y, x = rng.integers(0, 64), rng.integers(0, 128)
            label[y : y + 16, x : x + 24] = rng.integers(0, len(COLORS))
        photo = Image.fromarray(COLORS[label])
    scale = max(need[0] / photo.height, need[1] / photo.width)
    photo = photo.resize((int(np.ceil(photo.width * scale)), int(np.ceil(photo.height * scale))), Image.BICUBIC)
    return np.asarray(photo)


def stage_times(clip: Path, pred, tmp: Path, flow: bool, n: int = 20) -> dict[str, float]:
    """Milliseconds a frame of each stage run alone, on the first ``n`` frames."""
    from seg_core.registry import display_name
    from seg_core.video import VideoWriter, read_frames
    from seg_core.video_compare import Composer, FlickerMeter, frame_row

    def ms(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return round(1000 * (time.perf_counter() - t0) / n, 1)

    frames = []
    out = {"decode": ms(lambda: frames.extend(f for f, _ in zip(read_frames(clip), range(n))))}
    masks = []
    out["models"] = ms(lambda: masks.extend({k: p.mask for k, p in pred.predict(f).items()} for f in frames))
    names = list(masks[0])
    comp = Composer(*frames[0].shape[:2], [display_name(k) for k in names])
    grids = []
    out["grid"] = ms(lambda: grids.extend(comp.compose(f, [m[k] for k in names]) for f, m in zip(frames, masks)))
    meter = FlickerMeter(flow=flow)
    out["flicker"] = ms(lambda: [meter.update(f, m) for f, m in zip(frames, masks)])
    out["csv_row"] = ms(lambda: [frame_row(i, 0.0, True, m, {}) for i, m in enumerate(masks)])

    def encode():
        with VideoWriter(tmp / "stages.mp4", comp.width, comp.height, 25) as writer:
            for g in grids:
                writer.write(g)

    out["encode"] = ms(encode)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=ROOT / "weights")
    parser.add_argument("--val", type=Path, default=None, help="val pairs folder: pan across a real photo")
    parser.add_argument("--size", default="256x512", help="clip frame size HxW")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--fps", type=int, default=25, help="the clip's frame rate (does not change the timing)")
    parser.add_argument("--cores", type=int, default=2, help="pin to this many CPU cores (0: no pinning)")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--no-flow", action="store_true", help="skip the motion-compensated flicker")
    parser.add_argument("--stages", action="store_true", help="also time each stage alone (ms a frame)")
    parser.add_argument("--still", type=Path, default=None, help="also save the middle frame of the comparison (an image file)")
    args = parser.parse_args(argv)

    if args.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(threads)  # before loading: the OpenVINO models take their thread count from it

    from seg_core.predictor import Predictor
    from seg_core.video import VideoWriter
    from seg_core.video_compare import segment_video

    h, w = (int(v) for v in args.size.lower().split("x"))
    pred = Predictor.from_dir(args.weights)
    if not pred.models:
        print(f"error: no models in {args.weights}", file=sys.stderr)
        return 2
    step = 2
    picture = scene(args.val, h, w, args.frames, step)
    with tempfile.TemporaryDirectory(prefix="bench_video_") as tmp:
        clip = Path(tmp) / "clip.mp4"
        with VideoWriter(clip, w, h, args.fps) as writer:
            for i in range(args.frames):
                writer.write(np.ascontiguousarray(picture[:h, i * step : i * step + w]))
        pred.predict(picture[:h, :w])  # warm-up: first-call allocations are not part of a video
        stages = stage_times(clip, pred, Path(tmp), not args.no_flow, min(20, args.frames)) if args.stages else None
        t0 = time.perf_counter()
        result = segment_video(clip, Path(tmp) / "out.mp4", pred, every=args.every, flow=not args.no_flow,
                               out_csv=Path(tmp) / "out.csv")
        seconds = time.perf_counter() - t0
        out_bytes = (Path(tmp) / "out.mp4").stat().st_size
        if args.still:
            from seg_core.video import read_frame

            Image.fromarray(read_frame(Path(tmp) / "out.mp4", result.frames // 2)).save(args.still, quality=85)
    fps = result.frames / seconds
    out = {"size": f"{h}x{w}", "frames": result.frames, "cores": threads, "every": args.every, "flow": not args.no_flow,
           "backends": pred.backends(), "seconds": round(seconds, 3), "frames_per_s": round(fps, 2),
           "ms_per_frame": round(1000 * seconds / result.frames, 1), "target_frames_per_s": TARGET_FPS,
           "output_mib": round(out_bytes / 2**20, 2), "source": "val photo" if args.val else "synthetic",
           "stages_ms": stages}
    print(f"{len(pred.models)} models on {h}x{w}, {threads} cores: {fps:.1f} frames/s end to end "
          f"({out['ms_per_frame']} ms a frame; target {TARGET_FPS:g}); {result.summary()}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
