"""CPU inference benchmark of the models in a weights folder (eager PyTorch, fp32).

Measures, in one run on one machine: each model's forward latency at its input size, the
end-to-end time of the three-model comparison for one upload (JPEG decode, resize, predict,
upsample, colourise) at 256x512 and 1024x2048, peak resident memory and file sizes. Models whose
weights are missing are built with random weights (marked ``random``): latency does not depend on
the weight values.

    python benchmarks/bench_inference.py --weights weights --repeats 10
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seg_core.checkpoint import load_model  # noqa: E402
from seg_core.inference import predict_many  # noqa: E402
from seg_core.models import build_model, count_parameters  # noqa: E402
from seg_core.palette import colorize  # noqa: E402
from seg_core.predictor import MODEL_NAMES  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def jpeg_bytes(h: int, w: int) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=ROOT / "weights", help="weights folder")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per figure (median)")
    parser.add_argument("--size", type=int, default=256, help="input side for random-weight models")
    parser.add_argument("--upload", default="256x512,1024x2048", help="end-to-end upload sizes HxW")
    args = parser.parse_args(argv)

    models, rows = {}, []
    for name in MODEL_NAMES:
        path = args.weights / f"{name}.safetensors"
        if path.is_file():
            model, source = load_model(path), "trained"
        else:
            model, source = build_model(arch=name, input_size=(args.size, args.size)).eval(), "random"
        models[name] = model
        h, w = model.config.input_size
        x = torch.randn(1, 3, h, w)
        with torch.inference_mode():
            latency = timed(lambda: model(x), args.repeats)
        rows.append({"model": name, "weights": source, "input": f"{h}x{w}",
                     "params_m": round(count_parameters(model) / 1e6, 2),
                     "file_mib": round(path.stat().st_size / 2**20, 1) if path.is_file() else None,
                     "forward_ms": round(latency * 1000, 1)})

    end_to_end = {}
    for size in args.upload.split(","):
        h, w = (int(v) for v in size.split("x"))
        data = jpeg_bytes(h, w)

        def compare():
            for pred in predict_many(models, data).values():
                colorize(pred.mask)

        end_to_end[size] = round(timed(compare, max(1, args.repeats // 2)) * 1000, 1)

    result = {"threads": torch.get_num_threads(), "torch": torch.__version__, "models": rows,
              "three_models_end_to_end_ms": end_to_end,
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    print(f"{'model':<14}{'weights':<9}{'input':<9}{'params M':>9}{'file MiB':>10}{'forward ms':>12}")
    for r in rows:
        print(f"{r['model']:<14}{r['weights']:<9}{r['input']:<9}{r['params_m']:>9}{str(r['file_mib']):>10}{r['forward_ms']:>12}")
    for size, ms in end_to_end.items():
        print(f"three models end to end, {size} upload: {ms} ms")
    print(f"peak RSS {result['peak_rss_mib']} MiB, {result['threads']} threads")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
