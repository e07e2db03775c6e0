"""The benchmark scripts run end to end on tiny inputs (their figures are not asserted: they are
benchmarks, not timed tests)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_load_test_script_runs(weights_dir):
    proc = subprocess.run([sys.executable, "benchmarks/load_test.py", "--clients", "2", "--seconds", "3",
                           "--weights", str(weights_dir)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["requests"] > 0 and result["errors"] == 0
    assert result["p50_s"] <= result["p95_s"]


def test_inference_benchmark_runs(weights_dir, pairs_dir):
    proc = subprocess.run([sys.executable, "benchmarks/bench_inference.py", "--weights", str(weights_dir),
                           "--repeats", "1", "--upload", "48x96", "--threads", "1", "--calib", str(pairs_dir),
                           "--calib-count", "4", "--val", str(pairs_dir), "--train-steps", "1"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert list(result["backends"]) == ["eager", "onnxruntime", "openvino", "openvino-int8"]
    assert result["weights"] == {"unet": "trained", "fcn_vgg16": "trained", "fcn_resnet50": "trained"}
    for backend, r in result["backends"].items():
        assert list(r["models"]) == ["unet", "fcn_vgg16", "fcn_resnet50"], backend
        assert all(m["forward_ms"] > 0 and m["file_mib"] > 0 and 0 <= m["val_miou"] <= 1 for m in r["models"].values())
        assert r["three_models_end_to_end_ms"]["48x96"] > 0 and r["peak_rss_mib"] > 0 and r["val_images"] == 6
    sizes = {b: r["models"]["fcn_resnet50"]["file_mib"] for b, r in result["backends"].items()}
    assert sizes["openvino-int8"] < sizes["openvino"] / 3  # int8 weights: a quarter of fp32
    assert set(result["training"]["images_per_s"]) == {"unet", "fcn_vgg16", "fcn_resnet50"}
    assert "speed-up" in proc.stdout


def test_inference_benchmark_refuses_unknown_backends():
    proc = subprocess.run([sys.executable, "benchmarks/bench_inference.py", "--backends", "tensorrt"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "unknown backends" in proc.stderr
