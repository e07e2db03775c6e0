"""The benchmark scripts run end to end on tiny inputs (their figures are not asserted: they are
benchmarks, not timed tests)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
import numpy as np
import torch

from tests.conftest import ROOT


@pytest.mark.slow
@pytest.mark.parametrize("api", ["/segment", "/v1/segment"])
def test_load_test_script_runs(weights_dir, api):
    proc = subprocess.run([sys.executable, "benchmarks/load_test.py", "--clients", "2", "--seconds", "3",
                           "--weights", str(weights_dir), "--api", api],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["requests"] > 0 and result["errors"] == 0
    assert result["p50_s"] <= result["p95_s"]
    # the server's CPU is part of the machine's (/proc counts both in 10 ms ticks: some slack)
    assert 0 < result["server_cpu_ms_per_request"] <= 1.05 * result["machine_cpu_ms_per_request"] + 2
    assert result["client_cpu_ms_per_request"] > 0 and result["queue_full_retries"] == 0
    assert result["api"] == api and result["rss_mib_each_minute"][0] == result["rss_mib_start"]


def test_load_test_clients_back_off_with_jitter_up_to_a_cap():
    spec = importlib.util.spec_from_file_location("load_test", ROOT / "benchmarks" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first = [module.backoff_s(0) for _ in range(200)]
    assert max(first) <= module.BACKOFF_BASE_S and len(set(first)) == 200  # spread, not all at once
    later = [module.backoff_s(20) for _ in range(200)]
    assert max(later) <= module.BACKOFF_CAP_S and sum(later) / 200 > module.BACKOFF_CAP_S / 4
    assert module.process_cpu_s(os.getpid()) > 0


@pytest.mark.slow
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
        assert r["three_models_flip_ms"]["48x96"] > 0
        assert r["three_models_confidence_ms"]["48x96"] > 0 and r["three_models_confidence_ensemble_ms"]["48x96"] > 0
    sizes = {b: r["models"]["fcn_resnet50"]["file_mib"] for b, r in result["backends"].items()}
    assert sizes["openvino-int8"] < sizes["openvino"] / 3  # int8 weights: a quarter of fp32
    assert set(result["training"]["images_per_s"]) == {"unet", "fcn_vgg16", "fcn_resnet50"}
    assert "speed-up" in proc.stdout


def test_inference_benchmark_refuses_unknown_backends():
    proc = subprocess.run([sys.executable, "benchmarks/bench_inference.py", "--backends", "tensorrt"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "unknown backends" in proc.stderr


def _logit_adjust():
    spec = importlib.util.spec_from_file_location("logit_adjust", ROOT / "benchmarks" / "logit_adjust.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_logit_adjust_scores_the_model_as_trained_at_tau_0_and_shifts_toward_frequent_classes(weights_dir, pairs_dir, capsys):
    from seg_core.checkpoint import load_model
    from seg_core.data import load_split
    from seg_core.evaluate import evaluate
    from seg_core.runners import TorchRunner

    mod = _logit_adjust()
    model = load_model(weights_dir / "unet.safetensors")
    images, labels = load_split(pairs_dir)
    log_w = torch.zeros(19)
    log_w[0] = -50.0  # class 0 "frequent": taking the tilt back (tau = 1) makes every pixel class 0
    out = mod.scores(model, images, labels, log_w, [0.0, 1.0], batch_size=4)
    assert out[0.0]["miou"] == pytest.approx(evaluate(TorchRunner(model), images, labels)[0]["miou"])
    road = (labels == 0).sum().item() / (labels != 255).sum().item()
    assert out[1.0]["pixel_acc"] == pytest.approx(road)

    assert mod.main(["--weights", str(weights_dir / "unet.safetensors"), "--train", str(pairs_dir),
                     "--data", str(pairs_dir), "--power", "0.5", "--taus", "0,0.5"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["scores"]) == {"0", "0.5"} and result["val_images"] == len(images)
    assert result["scores"]["0"]["miou"] == pytest.approx(out[0.0]["miou"], abs=1e-4)


def test_logit_adjust_errors_are_one_line(weights_dir, pairs_dir, tmp_path, capsys):
    mod = _logit_adjust()
    assert mod.main(["--weights", str(weights_dir / "unet.safetensors"), "--train", str(tmp_path / "none"),
                     "--data", str(pairs_dir), "--power", "0.5"]) == 2
    assert mod.main(["--weights", str(weights_dir / "unet.safetensors"), "--train", str(pairs_dir),
                     "--data", str(pairs_dir)]) == 2  # a checkpoint that records no class-weight power
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


@pytest.mark.slow
def test_malloc_benchmark_runs():
    proc = subprocess.run([sys.executable, "benchmarks/bench_malloc.py", "--size", "64", "--batch-size", "2",
                           "--steps", "1", "--rounds", "1"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["default"]["s_per_step"] > 0 and result["keep"]["s_per_step"] > 0
    assert 0 <= result["keep"]["kernel_share"] <= 1 and result["speedup"] > 0


@pytest.mark.slow
def test_busy_core_benchmark_times_both_blendings_alone_and_beside_a_busy_core(weights_dir):
    """It also checks that NumPy's blending (today's) and torch's (before) give the same ids."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_busy_core", "--repeats", "1",
                           "--weights", str(weights_dir)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == ["alone"] * 3 + ["one"] * 3 and all(float(r[-2]) > 0 for r in rows), proc.stdout


@pytest.mark.slow
def test_video_benchmark_runs(weights_dir):
    proc = subprocess.run([sys.executable, "benchmarks/bench_video.py", "--weights", str(weights_dir), "--size", "64x96",
                           "--frames", "6", "--cores", "1", "--stages"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["frames"] == 6 and result["frames_per_s"] > 0 and result["size"] == "64x96" and result["cores"] == 1
    assert list(result["backends"]) == ["unet", "fcn_vgg16", "fcn_resnet50"]
    assert "frames/s end to end" in proc.stdout
    assert set(result["stages_ms"]) == {"decode", "models", "grid", "flicker", "csv_row", "encode"}


@pytest.mark.slow
def test_per_image_rule_script_measures_every_rule(weights_dir, pairs_dir, tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/per_image_rule.py", "--data", str(pairs_dir),
                           "--weights", str(weights_dir), "--cache", str(tmp_path / "masks.npz"), "--example", "2.jpg"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and not line.startswith("| rule")]
    assert [r.split(" | ")[0][2:] for r in rows] == ["none", "band1", "band2", "cc20", "cc50", "count50", "core1", "core2"]
    assert rows[0].split(" | ")[1].endswith("(100%)") and (tmp_path / "masks.npz").is_file()


def test_page_benchmark_draws_a_street_scene():
    from benchmarks.scenes import synthetic_street

    a, b = synthetic_street(256, 128, seed=1), synthetic_street(256, 128, seed=2)
    assert a.shape == (128, 256, 3) and a.dtype == np.uint8 and not np.array_equal(a, b)
    assert a[:10].mean(axis=(0, 1))[2] > a[-10:].mean(axis=(0, 1))[2] - 40  # sky above, road below


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("chromium") is None, reason="chromium is not installed")
def test_page_benchmark_runs(weights_dir, pairs_dir, tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/bench_page.py", "--repeats", "1", "--size", "512x256", "--latency", "100",
                           "--weights", str(weights_dir), "--data", str(pairs_dir)],
                          capture_output=True, text=True, timeout=400, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    row = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))
    assert 0 < row["upload_sent"] < row["masks"] <= row["ensemble"] <= row["idle"] and row["frames_sent"] == 0
    assert row["upload_sent"] >= 0.1  # the upload's own request waited for the emulated network
    assert row["code_fetched"] == 0  # Streamlit's code for a first upload was fetched before it
    assert "| 512x256 upload, 100 ms a request, 1 runs | median | worst |" in proc.stdout
    assert row["opacity_ms"] > 0 and row["opacity_frames_sent"] == 0  # the Overlays view's slider runs in the browser
    assert "| three masks shown (s) |" in proc.stdout and "| ensemble's mask shown (s) |" in proc.stdout
    assert re.search(r"^Load average \(1, 5, 15 min\): before the server started [\d.]+ [\d.]+ [\d.]+; after the runs ", proc.stdout, re.M)


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("chromium") is None, reason="chromium is not installed")
def test_gradio_page_benchmark_runs(weights_dir, pairs_dir):
    """bench_page's first-paint measure on the Gradio page: one counted upload, its row and table."""
    proc = subprocess.run([sys.executable, "benchmarks/bench_gradio_page.py", "--repeats", "1", "--size", "512x256",
                           "--weights", str(weights_dir), "--data", str(pairs_dir)],
                          capture_output=True, text=True, timeout=400, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    row = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))
    assert row["from"] in ("input", "change")  # timed from the file input's own event
    assert 0 < row["masks"] <= row["ensemble"] <= row["idle"]
    assert "| Gradio, 512x256 upload, 1 runs | median | worst |" in proc.stdout and "| page idle (s) |" in proc.stdout
    assert re.search(r"^Load average \(1, 5, 15 min\): before the server started [\d.]+ [\d.]+ [\d.]+; ", proc.stdout, re.M)


@pytest.mark.slow
def test_analyse_val_script_runs(weights_dir, pairs_dir, tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/analyse_val.py", "--weights", str(weights_dir), "--data",
                           str(pairs_dir), "--step", "0.5", "--batch-size", "3", "--json", str(tmp_path / "a.json")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "a.json").read_text())
    assert result["images"] == 6 and set(result["models"]) == {"unet", "fcn_vgg16", "fcn_resnet50"}
    for model in result["models"].values():
        assert set(model["auroc"]) == {"top1", "entropy", "margin"} and 0 <= model["ece_top1"] <= 1
    ensemble = result["ensemble"]
    assert set(ensemble) >= {"chosen", "plain_mean", "log_mean", "confidence_weighted", "best_single_on_a"}
    assert ensemble["chosen"]["interval_b"][0] <= ensemble["chosen"]["gain_b"] <= ensemble["chosen"]["interval_b"][1]
    assert set(result["pairs"]) == {"unet - fcn_vgg16", "unet - fcn_resnet50", "fcn_vgg16 - fcn_resnet50"}


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("chromium") is None, reason="chromium is not installed")
def test_streamlit_sessions_benchmark_runs(weights_dir, pairs_dir):
    proc = subprocess.run([sys.executable, "benchmarks/streamlit_sessions.py", "--sessions", "2", "--size", "128x256",
                           "--session-ttl", "2", "--timeout", "400", "--weights", str(weights_dir), "--data",
                           str(pairs_dir)],
                          capture_output=True, text=True, timeout=500, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    steps = [r["step"] for r in result["rows"]]
    assert steps == ["server up, no session", "after session 1", "after session 2", "tabs closed",
                     "7 s later, after one more visit"]
    assert all(r["rss_mib"] > 0 for r in result["rows"])
    held = [r["streamlit_mib"].get("uploads", 0) for r in result["rows"]]
    assert 0 < held[1] < held[2] and held[-1] == 0  # each session's upload, let go once its session expired
    assert result["max_rss_mib"] >= max(r["rss_mib"] for r in result["rows"][:3])
    assert "| max (sampled every 0.2 s) |" in proc.stdout


def test_streamlit_sessions_benchmark_is_bounded():
    proc = subprocess.run([sys.executable, "benchmarks/streamlit_sessions.py", "--sessions", "50"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and proc.stderr.strip() == "--sessions must be 1 to 20."
    from benchmarks.streamlit_sessions import tree_rss_mib

    assert tree_rss_mib(os.getpid()) > 10  # this test process, in MiB


@pytest.mark.slow  # about a minute on the busy 2-core machine (imports and model loading)
def test_ray_benchmark_splits_a_worker_into_stages(weights_dir, pairs_dir):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_ray", "--weights", str(weights_dir), "--val",
                           str(pairs_dir), "--stages", "2", "--cpus", "1"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["photos"] == 2 and set(result["stage_ms"]) == {"decode", "models", "write", "kb_read",
                                                                 "kb_written", "worker_rss_mb"}
    assert all(v > 0 for v in result["stage_ms"].values())


@pytest.mark.slow  # starts a local Ray in the benchmark's process (shut down when it ends)
def test_ray_benchmark_runs_both_engines_and_compares_their_outputs(weights_dir, pairs_dir):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_ray", "--weights", str(weights_dir), "--val",
                           str(pairs_dir), "--limit", "3", "--models", "unet", "--cpus", "1"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["photos"] == 3 and result["local"]["images_per_s"] > 0
    [run] = result["ray"]
    assert run["actors"] == 1 and run["threads_per_actor"] == 1 and run["files_differing"] == 0


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("chromium") is None, reason="chromium is not installed")
def test_browser_harness_picks_a_file_into_an_input_the_page_draws_late(tmp_path):
    """CI stop 37: a Streamlit rerun had not drawn the uploader yet when the benchmark picked a file."""
    from benchmarks.browser import Browser, wait_for

    photo = tmp_path / "late.jpg"
    photo.write_bytes(b"not looked at")
    page = "<body><script>setTimeout(() => document.body.innerHTML = '<input type=file>', 800)</script></body>"
    browser = Browser(width=400, height=300)
    try:
        browser.call("Page.navigate", url="data:text/html," + page)
        browser.set_files("input[type=file]", photo)
        assert wait_for(lambda: browser.evaluate("document.querySelector('input')?.files[0]?.name"), 5,
                        "the picked file") == "late.jpg"
    finally:
        browser.close()
