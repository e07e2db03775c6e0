"""``segment`` on the local engine and on Ray (a local cluster), side by side in one run: images/s and the ratio.

Writes the photo halves of the first ``--limit`` pairs of ``--val`` as JPEG files in a temp folder,
segments them with ``seg_core.segment.run`` (the local engine: one process, the models on all
cores) and then with ``seg_core.ray_engine.run_segment`` on a local Ray of ``--cpus`` CPUs, once
per ``--threads`` value (threads per actor; actors = CPUs / threads), each into its own folder.
The Ray figure counts the actors' start (loading the models) but not Ray's own start, which is
printed apart; the outputs of each Ray run are compared byte for byte with the local engine's.
Prints the load average beside the figures (the machine may be busy), then JSON on the last line.
``--stages N`` instead splits one worker's time on N photos into decoding, the models and writing
the PNGs (what limits a node).

    python -m benchmarks.bench_ray                      # 400 val photos, every model + ensemble
    python -m benchmarks.bench_ray --limit 40 --models unet --threads 1 2
    python -m benchmarks.bench_ray --stages 40
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

from PIL import Image  # noqa: E402

from seg_core import settings  # noqa: E402


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def photos(val: Path, limit: int, folder: Path) -> Path:
    from seg_core.data import list_pairs, read_pair

    folder.mkdir(parents=True)
    for path in list_pairs(val)[:limit]:
        Image.fromarray(read_pair(path)[0]).save(folder / f"{path.stem}.jpg", quality=95)
    return folder


def differing(a: Path, b: Path) -> int:
    """Files of ``a`` missing from ``b`` or with other bytes, and files only in ``b``."""
    left = {p.relative_to(a): p for p in a.rglob("*") if p.is_file()}
    right = {p.relative_to(b): p for p in b.rglob("*") if p.is_file()}
    return len(set(left) ^ set(right)) + sum(left[k].read_bytes() != right[k].read_bytes() for k in set(left) & set(right))


def stages(inputs: Path, predictor, names: tuple[str, ...]) -> dict[str, float]:
    """Milliseconds a photo of each step of ``seg_core.segment.segment_image`` (the masks, no colour
    or overlay), one after the other, the kB read and written a photo, and the resident memory."""
    from seg_core.files import atomic_path
    from seg_core.inference import load_image
    from seg_core.viz import png_bytes

    ms = {"decode": 0.0, "models": 0.0, "write": 0.0}
    files = sorted(inputs.iterdir())
    written = 0
    with tempfile.TemporaryDirectory() as out:
        for path in files:
            t0 = time.perf_counter()
            rgb = load_image(path)
            t1 = time.perf_counter()
            preds = predictor.predict(rgb, names=names)
            t2 = time.perf_counter()
            for name, pred in preds.items():
                with atomic_path(Path(out) / f"{path.stem}_{name}.png") as tmp:
                    data = png_bytes(pred.mask)
                    tmp.write_bytes(data)
                written += len(data)
            t3 = time.perf_counter()
            for key, seconds in zip(ms, (t1 - t0, t2 - t1, t3 - t2)):
                ms[key] += 1000 * seconds / len(files)
    read = sum(p.stat().st_size for p in files)
    return {**{k: round(v, 1) for k, v in ms.items()}, "kb_read": round(read / len(files) / 1000, 1),
            "kb_written": round(written / len(files) / 1000, 1), "worker_rss_mb": resident_mb()}


def resident_mb() -> float | None:
    """This process's resident memory (what one Ray actor holds: the imports and the predictor)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    return round(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=ROOT / "weights")
    parser.add_argument("--val", type=Path, default=settings.DATA_ROOT / "val")
    parser.add_argument("--limit", type=int, default=400, help="photos (the first N val pairs)")
    parser.add_argument("--models", nargs="+", default=None, help="default: every model and the ensemble")
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray and of the local engine")
    parser.add_argument("--threads", type=int, nargs="+", default=[None], help="threads per Ray actor, one run each "
                                                                                "(default: seg_core.ray_engine's)")
    parser.add_argument("--stages", type=int, default=None, metavar="N",
                        help="only split one worker's time on N photos into decode, models, write")
    args = parser.parse_args(argv)

    import torch

    from seg_core import segment
    from seg_core.predictor import Predictor
    from seg_core.ray_engine import DEFAULT_THREADS, connected, run_segment

    torch.set_num_threads(args.cpus)
    result = {"photos": 0, "models": args.models, "cpus": args.cpus, "load_before": loadavg(), "ray": []}
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        tmp = Path(tmp)
        inputs = photos(args.val, args.stages or args.limit, tmp / "photos")
        result["photos"] = n = len(list(inputs.iterdir()))
        predictor = Predictor.from_dir(args.weights)  # threads: torch's, i.e. --cpus (as the CLI)
        names = segment.chosen_names(predictor, tuple(args.models) if args.models else None)
        result["models"] = list(names)
        if args.stages:
            result["stage_ms"] = stages(inputs, predictor, names)
            print(f"one worker on {args.cpus} thread(s), ms a photo: {result['stage_ms']} (load {loadavg()})")
            print(json.dumps(result))
            return result
        t0 = time.perf_counter()
        report = segment.run([inputs], tmp / "local", predictor, names=names, progress=False)
        local_s = time.perf_counter() - t0
        assert report.images == n and not report.failed, report.failed
        result["local"] = {"seconds": round(local_s, 1), "images_per_s": round(n / local_s, 2),
                           "load": loadavg()}
        print(f"local engine: {n} photos, {len(names)} masks each, in {local_s:.1f} s = {n / local_s:.2f} images/s "
              f"(load {result['local']['load']})", flush=True)
        t0 = time.perf_counter()
        with connected(num_cpus=args.cpus, object_store_memory=200 * 2**20) as ray:
            result["ray_start_s"] = round(time.perf_counter() - t0, 1)
            for threads in args.threads:
                out = tmp / f"ray_{threads}"
                t0 = time.perf_counter()
                report = run_segment([inputs], out, predictor, args.weights, names=names, threads=threads,
                                     progress=False)
                seconds = time.perf_counter() - t0
                assert report.images == n and not report.failed, report.failed
                threads = threads or min(DEFAULT_THREADS, args.cpus)
                run = {"threads_per_actor": threads, "actors": max(1, args.cpus // threads),
                       "seconds": round(seconds, 1), "images_per_s": round(n / seconds, 2),
                       "overhead": round(seconds / local_s - 1, 3), "files_differing": differing(tmp / "local", out),
                       "load": loadavg()}
                result["ray"].append(run)
                print(f"ray, {run['actors']} actor(s) x {threads} thread(s): {seconds:.1f} s = {run['images_per_s']} "
                      f"images/s, {100 * run['overhead']:+.1f} % time against local, {run['files_differing']} output "
                      f"file(s) differ (load {run['load']})", flush=True)
        print(f"ray start (not counted above): {result['ray_start_s']} s; load before {result['load_before']}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
