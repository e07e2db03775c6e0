"""train_cli and seg_core.train on tiny synthetic data: learning, resume after kill -9, time budget,
DDP over gloo, and the one-line errors of the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train_cli
from seg_core.checkpoint import load_model, read_tensors
from seg_core.data import load_split
from seg_core.train import TrainConfig, Trainer, class_weights, schedule_lr
from tests.conftest import ROOT, write_pairs

TINY = ["--crop", "32", "--final-size", "64", "--batch-size", "4", "--threads", "1"]


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    write_pairs(tmp_path / "data" / "train", n=8)
    write_pairs(tmp_path / "data" / "val", n=4)
    return tmp_path / "data"


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(ROOT / "train_cli.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_loss_falls_on_a_few_images(tiny_data, tmp_path):
    train = load_split(tiny_data / "train")
    cfg = TrainConfig(epochs=12, batch_size=4, crop=64, final_size=64, final_frac=0, lr=3e-3, crop_scale=(1, 1))
    trainer = Trainer(cfg, train, train, tmp_path / "run", log=lambda *_: None)
    trainer.run()
    losses = [row["loss"] for row in trainer.history]
    assert losses[-1] < 0.6 * losses[0], losses
    assert trainer.history[-1]["val_miou"] > trainer.history[0]["val_miou"]


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tiny_data, tmp_path):
    args = ["train", "--data", str(tiny_data / "train"), "--epochs", "6", *TINY]
    full = run_cli(*args, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr

    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "train_cli.py"), *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        log = out / "log.json"
        if log.is_file() and len(json.loads(log.read_text() or "[]")) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = json.loads(read_tensors(out / "state.safetensors")[1]["trainer"])["epoch"]
    assert 2 <= finished < 6  # no finished epoch lost, the run really was cut short

    resumed = run_cli(*args[:1], "--out", str(out), "--resume", "--data", str(tiny_data / "train"))
    assert resumed.returncode == 0, resumed.stderr
    a, _ = read_tensors(tmp_path / "full" / "last.safetensors")
    b, _ = read_tensors(out / "last.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    log_full = json.loads((tmp_path / "full" / "log.json").read_text())
    log_resumed = json.loads((out / "log.json").read_text())
    assert [r["val_miou"] for r in log_full] == [r["val_miou"] for r in log_resumed]


@pytest.mark.parametrize("metadata, flags, message", [
    ({}, [], "has no readable run settings"),
    ({"trainer": "{not json"}, [], "has no readable run settings"),
    ({"trainer": json.dumps({"train_config": {"arch": "unet", "nope": 1}})}, [], "has no readable run settings"),
    (None, ["--arch", "fcn_vgg16"], "whose --arch is 'unet', not 'fcn_vgg16'"),
    (None, ["--epochs", "9"], "whose --epochs is 3, not 9"),
])
def test_resume_refuses_a_state_without_settings_and_changed_flags(tmp_path, capsys, metadata, flags, message):
    import dataclasses

    from seg_core.checkpoint import save_tensors

    if metadata is None:
        metadata = {"trainer": json.dumps({"train_config": dataclasses.asdict(TrainConfig(epochs=3))})}
    out = tmp_path / "run"
    save_tensors({"x": torch.zeros(1)}, out / "state.safetensors", metadata)
    code = train_cli.main(["train", "--data", str(tmp_path / "none"), "--out", str(out), "--resume", *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err


def test_time_budget_is_honoured(tiny_data, tmp_path):
    budget = 15.0
    train, val = load_split(tiny_data / "train"), load_split(tiny_data / "val")
    cfg = TrainConfig(time_budget=budget, batch_size=4, crop=32, final_size=64)
    t0 = time.monotonic()
    result = Trainer(cfg, train, val, tmp_path / "run", log=lambda *_: None).run()
    wall = time.monotonic() - t0
    assert wall <= budget + 5, wall  # building the model (outside the budget) is all the slack
    assert result["elapsed_s"] <= budget
    assert result["steps"] > 4  # it did train, not just stop at once
    best = load_model(tmp_path / "run" / "best.safetensors")
    assert best.config.metrics["miou"] == pytest.approx(result["best_miou"])
    assert best.config.input_size == (64, 64)


def test_schedule_and_class_weights():
    cfg = TrainConfig(lr=1.0, warmup=0.1)
    lrs = [schedule_lr(p / 100, cfg) for p in range(101)]
    assert lrs[0] < lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(0.01)
    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1 + [255] * 50, dtype=torch.uint8)
    w = class_weights(labels, power=1.0, num_classes=4)
    assert w[1] == pytest.approx(1.0) and w[0] < 1 < w[2]
    assert w[3] == 1.0  # absent class keeps weight 1


# Allocates and frees a 64 MiB tensor 24 times, as a training step does its activations; prints
# the page faults of the last 12. With trimming off, the heap still grows a few times before it
# holds enough free room (up to 7 growths seen in 300 runs, all within the first 15 iterations).
_REFAULT = """
import resource, sys, torch
from seg_core.runtime import keep_freed_memory
took = keep_freed_memory() if sys.argv[1] == "keep" else None
faults = []
for _ in range(24):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 * 2**20).sum()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(took, sum(faults[12:]))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_keep_freed_memory_stops_refaulting_large_buffers():
    # A subprocess each, so the malloc settings never reach this test process.
    faults = {}
    for mode in ("default", "keep"):
        out = subprocess.run([sys.executable, "-c", _REFAULT, mode], capture_output=True, text=True,
                             cwd=ROOT, timeout=120, check=True).stdout.split()
        faults[mode] = int(out[1])
        if mode == "keep":
            assert out[0] == "True"
    buffer_pages = 64 * 2**20 // 4096
    assert faults["default"] > 12 * buffer_pages * 0.9  # glibc mmaps 64 MiB afresh: every page faults again
    assert faults["keep"] <= 3 * buffer_pages  # the heap kept the pages: at most a late growth or three


@pytest.mark.slow
def test_ddp_gloo_two_processes(tiny_data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(ROOT / "train_cli.py"), "train", "--data", str(tiny_data / "train"), "--out", str(out),
         "--epochs", "2", *TINY],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world 2" in proc.stdout
    log = json.loads((out / "log.json").read_text())
    assert len(log) == 2 and log[-1]["step"] == 2  # 8 pairs / 2 processes / batch 4 = 1 step an epoch
    load_model(out / "best.safetensors", arch="unet")


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "/nonexistent/train", "--out", "{tmp}/o", "--epochs", "1"], "does not exist"),
        (["train", "--data", "{data}/train", "--out", "{tmp}/o"], "--epochs N or --time-budget"),
        (["train", "--data", "{data}/train", "--out", "{tmp}/o", "--resume"], "no run to resume"),
        (["train", "--data", "{data}/train", "--out", "/proc/forbidden", "--epochs", "1"], "not writable"),
        (["train", "--data", "{data}/train", "--out", "{tmp}/o", "--epochs", "1", "--jpeg-quality", "50", "10"],
         "1 <= LOW <= HIGH <= 100"),
        (["train", "--data", "{data}/train", "--out", "{tmp}/o", "--epochs", "1", "--hue", "0.7"], "--hue is a fraction"),
        (["eval", "--weights", "{tmp}/missing.safetensors", "--data", "{data}/val"], "does not exist"),
        (["eval", "--weights", "{weights}/unet.safetensors", "--data", "{data}/val", "--arch", "fcn_vgg16"],
         "holds a unet model, not fcn_vgg16"),
        (["eval", "--weights", "{data}/val/1.jpg", "--data", "{data}/val"], "not a valid safetensors"),
    ],
)
def test_cli_errors_are_one_line(args, message, tiny_data, tmp_path, weights_dir):
    fill = {"tmp": str(tmp_path), "data": str(tiny_data), "weights": str(weights_dir)}
    proc = run_cli(*[a.format(**fill) for a in args])
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["train", "--arch", "resnet"], ["train", "--out", "x", "--time-budget", "soon"],
                                  ["eval"], ["eval", "--weights", "w", "--tta", "mirror"], ["nonsense"]])
def test_cli_rejects_bad_flags(args, capsys):
    with pytest.raises(SystemExit) as exc:
        train_cli.main(args)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_parse_duration():
    assert train_cli.parse_duration("120m") == 7200
    assert train_cli.parse_duration("1h30m") == 5400
    assert train_cli.parse_duration("90s") == 90
    assert train_cli.parse_duration("45") == 45


def test_eval_prints_metrics_and_writes_confusion(tiny_data, tmp_path, weights_dir):
    proc = run_cli("eval", "--weights", str(weights_dir / "unet.safetensors"), "--data", str(tiny_data / "val"),
                   "--confusion", str(tmp_path / "cm.csv"), "--json", str(tmp_path / "m.json"))
    assert proc.returncode == 0, proc.stderr
    assert "mIoU" in proc.stdout and "traffic light" in proc.stdout
    rows = (tmp_path / "cm.csv").read_text().strip().splitlines()
    assert len(rows) == 20 and rows[0].startswith("target\\pred,road")
    total = sum(int(v) for row in rows[1:] for v in row.split(",")[1:])
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert total > 0 and 0 <= metrics["miou"] <= 1


def test_eval_with_flip_tta(tiny_data, tmp_path, weights_dir):
    proc = run_cli("eval", "--weights", str(weights_dir / "unet.safetensors"), "--data", str(tiny_data / "val"),
                   "--tta", "flip", "--json", str(tmp_path / "m.json"))
    assert proc.returncode == 0, proc.stderr
    assert "PyTorch fp32, tta flip)" in proc.stdout and "mIoU" in proc.stdout
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["tta"] == "flip" and 0 <= metrics["miou"] <= 1


def test_pack_then_train_from_pack(tiny_data, tmp_path):
    proc = run_cli("pack", "--data", str(tiny_data / "train"), "--out", str(tmp_path / "train.npz"))
    assert proc.returncode == 0, proc.stderr
    assert "packed 8 pairs" in proc.stdout
    proc = run_cli("train", "--data", str(tmp_path / "train.npz"), "--no-val", "--out", str(tmp_path / "run"),
                   "--epochs", "1", *TINY)
    assert proc.returncode == 0, proc.stderr
    load_model(tmp_path / "run" / "best.safetensors")


def test_init_fine_tunes_with_a_frozen_encoder(tiny_data, tmp_path, weights_dir):
    init = weights_dir / "unet.safetensors"
    start = load_model(init)
    train = load_split(tiny_data / "train")
    cfg = TrainConfig(epochs=1, batch_size=4, crop=64, final_size=64, final_frac=0, init=str(init),
                      freeze_encoder_epochs=1)
    trainer = Trainer(cfg, train, None, tmp_path / "run", log=lambda *_: None)
    trainer.run()
    before, after = start.state_dict(), trainer.model.state_dict()
    encoder = [k for k in before if k.startswith("net.encoder.")]
    decoder = [k for k in before if not k.startswith("net.encoder.") and before[k].is_floating_point()]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)
    assert any(not torch.equal(before[k], after[k]) for k in decoder)


def test_init_of_another_arch_is_refused(tiny_data, tmp_path, weights_dir):
    proc = run_cli("train", "--arch", "fcn_resnet50", "--init", str(weights_dir / "unet.safetensors"),
                   "--data", str(tiny_data / "train"), "--out", str(tmp_path / "o"), "--epochs", "1", *TINY)
    assert proc.returncode == 2
    assert "holds a unet model, not fcn_resnet50" in proc.stderr


def test_nearly_full_disk_is_refused_before_training(tiny_data, tmp_path, monkeypatch, capsys):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2**40, 2**40 - 2**20, 2**20))
    code = train_cli.main(["train", "--data", str(tiny_data / "train"), "--out", str(tmp_path / "o"), "--epochs", "1"])
    assert code == 2
    assert "only 1 MiB free" in capsys.readouterr().err
    assert not (tmp_path / "o" / "state.safetensors").exists()


def test_robustness_flags_and_the_select_half_reach_the_run(tiny_data, tmp_path, monkeypatch):
    import seg_core.train as train_mod
    from seg_core.data import val_halves

    seen = {}

    class Spy(Trainer):
        def __init__(self, cfg, train, val, out, resume=False, log=print):
            seen["val"] = val
            super().__init__(cfg, train, val, out, resume=resume, log=lambda *_: None)

    monkeypatch.setattr(train_mod, "Trainer", Spy)
    out = tmp_path / "run"
    rc = train_cli.main(["train", "--data", str(tiny_data / "train"), "--out", str(out), "--epochs", "1",
                         *TINY, "--val-select", "--hue", "0.05", "--gamma", "0.3", "--blur-p", "0.5",
                         "--noise-p", "0.5", "--jpeg-p", "0.5", "--jpeg-quality", "20", "80", "--aspect", "0.2"])
    assert rc == 0
    full = load_split(tiny_data / "val")
    select, judge = val_halves(len(full[0]))
    assert torch.equal(seen["val"][0], full[0][torch.from_numpy(select)])
    assert not any(torch.equal(seen["val"][0][0], full[0][j]) for j in judge)
    training = load_model(out / "best.safetensors").config.training
    assert training["val_select"] is True and training["jpeg_quality"] == [20.0, 80.0]
    assert training["hue"] == 0.05 and training["blur_p"] == 0.5 and training["aspect"] == 0.2
