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


def test_inference_benchmark_runs(weights_dir):
    proc = subprocess.run([sys.executable, "benchmarks/bench_inference.py", "--weights", str(weights_dir),
                           "--repeats", "1", "--upload", "48x96"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["model"] for r in result["models"]] == ["unet", "fcn_vgg16", "fcn_resnet50"]
    assert all(r["weights"] == "trained" and r["forward_ms"] > 0 for r in result["models"])
    assert result["three_models_end_to_end_ms"]["48x96"] > 0
