"""CPU inference benchmark of the three models, per backend, in one run on one machine.

Backends: ``eager`` (PyTorch fp32, the naive baseline), ``onnxruntime`` (fp32), ``openvino``
(fp32) and ``openvino-int8`` (the shipped ``weights/<name>.int8.xml`` when it matches its
checkpoint; otherwise quantised here, calibrated on ``--calib``). For each backend, in a fresh
process (so that its peak memory is its own): each model's forward latency at its input size,
the end-to-end three-model comparison of one upload (JPEG decode, resize, predict, upsample,
argmax, colourise) at 256x512 and 1024x2048, the same at the first size with mirror-image
averaging (``tta="flip"``, the apps' switch), with confidence maps, and with confidence maps and
the ensemble, peak resident memory, file sizes and, with
``--val``, each model's val mIoU and the time of the whole evaluation. Models without weights are
built with random weights (marked ``random``): latency does not depend on the weight values.
With ``--train-steps N`` it also measures training images/s per model (on the GPU when there is
one, at 256x256; on the CPU at 128x128).

    python benchmarks/bench_inference.py --weights weights --val ../shared/data/cityscapes_pairs/val
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from seg_core.checkpoint import load_model, save_model
from seg_core.models import build_model
from seg_core.registry import ARCH_NAMES
from seg_core.runners import model_file_bytes

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("eager", "onnxruntime", "openvino", "openvino-int8")


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


def file_mib(path: Path) -> float:
    return round(model_file_bytes(path) / 2**20, 1)


# --- parent: prepare the files of every backend, run one child per backend, print the table ------

def prepare(args, work: Path) -> tuple[dict, dict]:
    """``{backend: {model: file}}`` and ``{model: "trained" | "random"}``."""
    from seg_core.export import calibration_batches, export_onnx, quantize_onnx, to_openvino
    from seg_core.runners import find_exported

    files: dict[str, dict[str, str]] = {b: {} for b in args.backends}
    sources = {}
    calib = None
    for name in ARCH_NAMES:
        path = args.weights / f"{name}.safetensors"
        if path.is_file():
            sources[name] = "trained"
        else:
            sources[name] = "random"
            torch.manual_seed(0)
            path = save_model(build_model(arch=name, input_size=(args.size, args.size)), work / f"{name}.safetensors")
        if "eager" in files:
            files["eager"][name] = str(path)
        if not set(files) - {"eager"}:
            continue
        model = load_model(path)
        onnx_path = export_onnx(model, work / f"{name}.onnx", source=path)
        if "onnxruntime" in files:
            files["onnxruntime"][name] = str(onnx_path)
        if "openvino" in files:
            files["openvino"][name] = str(to_openvino(onnx_path, work / f"{name}.xml"))
        if "openvino-int8" in files:
            shipped, _ = find_exported(args.weights, name, path)
            if shipped is not None and shipped.name.endswith(".int8.xml"):
                files["openvino-int8"][name] = str(shipped)
                continue
            if calib is None:
                calib = load_calibration(args)
            batches = calibration_batches(calib, model.config, count=args.calib_count)
            int8 = quantize_onnx(onnx_path, work / f"{name}.int8.onnx", batches)
            files["openvino-int8"][name] = str(to_openvino(int8, work / f"{name}.int8.xml"))
            print(f"{name}: no current int8 export in {args.weights}; quantised one here", file=sys.stderr)
    return files, sources


def load_calibration(args) -> torch.Tensor:
    if args.calib is not None:
        from seg_core.data import load_split

        return load_split(args.calib)[0]
    print("no --calib data: calibrating on random images (latency only; accuracy is meaningless)", file=sys.stderr)
    return torch.randint(0, 256, (args.calib_count, 3, args.size, args.size), dtype=torch.uint8)


def run_child(args, backend: str, files: dict[str, str]) -> dict:
    cmd = [sys.executable, __file__, "--child", backend, "--files", json.dumps(files), "--repeats", str(args.repeats),
           "--upload", args.upload, "--threads", str(args.threads)]
    if args.val:
        cmd += ["--val", str(args.val)] + (["--val-limit", str(args.val_limit)] if args.val_limit else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the {backend} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=ROOT / "weights", help="weights folder")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated, from {BACKENDS}")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per figure (median)")
    parser.add_argument("--size", type=int, default=256, help="input side for random-weight models")
    parser.add_argument("--upload", default="256x512,1024x2048", help="end-to-end upload sizes HxW")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads per backend")
    parser.add_argument("--val", type=Path, default=None, help="val pairs folder or pack: mIoU per backend")
    parser.add_argument("--val-limit", type=int, default=None, help="evaluate the first N val pairs only")
    parser.add_argument("--calib", type=Path, default=None, help="train pairs for int8 calibration when needed")
    parser.add_argument("--calib-count", type=int, default=128, help="calibration images")
    parser.add_argument("--train-steps", type=int, default=0, help="also measure training images/s (N steps)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--files", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown or not args.backends:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {BACKENDS}")

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        files, sources = prepare(args, Path(tmp))
        results = {b: run_child(args, b, files[b]) for b in args.backends}
        for b in args.backends:
            for name, row in results[b]["models"].items():
                row["file_mib"] = file_mib(Path(files[b][name]))
    result = {"machine": machine(), "threads": args.threads, "torch": torch.__version__, "weights": sources,
              "backends": results}
    if args.train_steps:
        result["training"] = train_speed(args.train_steps, args.size)
    print_table(result, args)
    print(json.dumps(result))
    return 0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{os.cpu_count()} cores, {cpu}{gpu}"


def print_table(result: dict, args) -> None:
    backends = result["backends"]
    base = backends.get("eager")
    print(f"machine: {result['machine']}; {result['threads']} threads")
    print(f"{'backend':<15}{'model':<14}{'weights':<9}{'file MiB':>9}{'forward ms':>12}"
          + (f"{'val mIoU':>10}" if args.val else ""))
    for b, r in backends.items():
        for name, row in r["models"].items():
            miou = f"{row['val_miou']:>10.4f}" if "val_miou" in row else ""
            print(f"{b:<15}{name:<14}{result['weights'][name]:<9}{row['file_mib']:>9}{row['forward_ms']:>12}{miou}")
    first = args.upload.split(",")[0]
    print(f"{'backend':<15}" + "".join(f"{'e2e ' + s + ' ms':>20}" for s in args.upload.split(","))
          + f"{'speed-up':>10}{'flip ' + first + ' ms':>20}{'+confidence':>13}{'+ensemble':>11}{'peak RSS MiB':>14}"
          + (f"{'val s':>8}" if args.val else ""))
    for b, r in backends.items():
        e2e = r["three_models_end_to_end_ms"]
        speed = f"{base['three_models_end_to_end_ms'][first] / e2e[first]:.1f}x" if base else "-"
        val = f"{r['val_seconds']:>8.1f}" if "val_seconds" in r else ""
        print(f"{b:<15}" + "".join(f"{e2e[s]:>20}" for s in e2e) + f"{speed:>10}{r['three_models_flip_ms'][first]:>20}"
              + f"{r['three_models_confidence_ms'][first]:>13}{r['three_models_confidence_ensemble_ms'][first]:>11}"
              + f"{r['peak_rss_mib']:>14}{val}")
    for name, ips in result.get("training", {}).get("images_per_s", {}).items():
        print(f"training {name}: {ips} img/s ({result['training']['device']}, {result['training']['size']}px)")


# --- child: one backend ---------------------------------------------------------------------------

def child(args) -> int:
    from seg_core.evaluate import evaluate
    from seg_core.inference import predict_many
    from seg_core.palette import colorize
    from seg_core.runners import forward_latency, load_runner

    torch.set_num_threads(args.threads)
    files = json.loads(args.files)
    models = {n: load_runner(p, threads=args.threads) for n, p in files.items()}
    rows = {}
    for name, model in models.items():
        h, w = model.config.input_size
        rows[name] = {"input": f"{h}x{w}", "params_m": round(model.num_parameters / 1e6, 2),
                      "forward_ms": round(forward_latency(model, args.repeats) * 1000, 1)}
    end_to_end = {}
    for size in args.upload.split(","):
        h, w = (int(v) for v in size.split("x"))
        data = jpeg_bytes(h, w)

        def compare():
            for pred in predict_many(models, data).values():
                colorize(pred.mask)

        end_to_end[size] = round(timed(compare, args.repeats) * 1000, 1)
    out = {"models": rows, "three_models_end_to_end_ms": end_to_end}
    first = args.upload.split(",")[0]
    data = jpeg_bytes(*(int(v) for v in first.split("x")))

    def compare_flip():  # the apps' mirror-image averaging switch
        for pred in predict_many(models, data, tta="flip").values():
            colorize(pred.mask)

    out["three_models_flip_ms"] = {first: round(timed(compare_flip, args.repeats) * 1000, 1)}

    def compare_confidence():  # the confidence maps of the analysis view, and the ensemble
        for pred in predict_many(models, data, confidence=True).values():
            colorize(pred.mask)

    def compare_ensemble():
        members = {n: 1.0 for n in models}
        for pred in predict_many(models, data, confidence=True, ensemble=members).values():
            colorize(pred.mask)

    out["three_models_confidence_ms"] = {first: round(timed(compare_confidence, args.repeats) * 1000, 1)}
    out["three_models_confidence_ensemble_ms"] = {first: round(timed(compare_ensemble, args.repeats) * 1000, 1)}
    if args.val:
        from seg_core.data import load_split

        images, labels = load_split(args.val, limit=args.val_limit)
        t0 = time.perf_counter()
        for name, model in models.items():
            rows[name]["val_miou"] = round(evaluate(model, images, labels)[0]["miou"], 4)
        out["val_seconds"] = round(time.perf_counter() - t0, 1)
        out["val_images"] = len(images)
    out["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(out))
    return 0


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    from the parent through fork and exec, so every child would report at least its parent's peak."""
    try:
        with open("/proc/self/status") as f:
            return round(next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024, 1)
    except (OSError, StopIteration):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def train_speed(steps: int, size: int) -> dict:
    """Training images/s per model: bf16 autocast, channels_last and batch 32 on a GPU; fp32,
    batch 16 at 128x128 on the CPU (what ``train_cli.py`` does in its low-resolution phase)."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    side, batch = (size, 32) if cuda else (128, 16)
    out = {}
    for name in ARCH_NAMES:
        model = build_model(arch=name).to(device).to(memory_format=torch.channels_last).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.randn(batch, 3, side, side, device=device).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 19, (batch, side, side), device=device)

        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step()
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize()
        out[name] = round(steps * batch / (time.perf_counter() - t0), 1)
    return {"device": str(device), "size": side, "batch": batch, "images_per_s": out}


if __name__ == "__main__":
    sys.exit(main())
