"""The GPU campaign on CPU: the device-side script rehearsed end to end on a tiny synthetic pack, the
bundle's size check, weights/ out of and back into the index, chunks and sha256, the paired
bootstrap, and the Trainer's GPU mode (timer evaluation, no resume state, deadline)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import train_cli
from seg_core import campaign
from seg_core.checkpoint import load_model, save_model
from seg_core.data import load_split, pack_split
from seg_core.analysis import miou_of, paired_bootstrap
from seg_core.evaluate import evaluate
from seg_core.runners import TorchRunner
from seg_core.train import TrainConfig, Trainer
from seg_core.metrics import summarize
from seg_core.models import build_model
from tests.conftest import ROOT, write_pairs

#: Not on the GPU machine (openvino) or not needed for training: the device script must not import them.
BANNED = ("onnx", "onnxruntime", "openvino", "streamlit", "gradio", "plotly")
#: The rehearsal's small settings, appended to the real commands (argparse keeps the last value).
TINY = ("--batch 2 --min-batch 2 --crop 32 --final-size 32 --smoke-steps 1 --smoke-warmup 0 --compile-trial-s 1 "
        "--eval-interval 1 --max-epochs 1 --reserve 1 --budget 60 --plan-seconds 60")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def bundle_dir(tmp_path) -> Path:
    write_pairs(tmp_path / "pairs" / "train", n=4)
    write_pairs(tmp_path / "pairs" / "val", n=2)
    for split in ("train", "val"):
        pack_split(tmp_path / "pairs" / split, tmp_path / "bundle" / f"{split}.npz")
    return tmp_path / "bundle"


def test_rehearsal_of_both_device_commands_on_cpu(bundle_dir, tmp_path):
    real = campaign.device_commands()
    assert [c.name for c in real] == ["A", "B"]
    assert all(len(c.command) <= campaign.MAX_COMMAND and c.timeout_s <= 600 for c in real)
    assert sum(c.timeout_s for c in real) + 120 + 30 <= 15 * 60  # two commands, a start and the gap
    shim = tmp_path / "shim"
    for name in BANNED:
        (shim / name).mkdir(parents=True)
        (shim / name / "__init__.py").write_text(f"raise RuntimeError('the device script imported {name}')\n")
    work = tmp_path / "work"
    logs = {}
    for c in campaign.device_commands(bundle=str(bundle_dir), python=sys.executable, install=False):
        out = tmp_path / f"out_{c.name}"
        path = os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "OUT": str(out), "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(["bash", "-c", f"{c.command} --work {work} {TINY}"], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        logs[c.name] = done.stdout
        assert campaign.check_return(out) == []
        manifest = campaign.read_manifest(out)
        assert sorted(manifest["models"]) == sorted(c.archs)
        assert manifest["augment"]["jpeg_p"] == campaign.AUGMENT["jpeg_p"] > 0  # the recipe's augmentation
        for arch, entry in manifest["models"].items():
            assert all(p["bytes"] <= campaign.CHUNK_BYTES for p in entry["parts"])
            assert entry["result"]["epochs"] == manifest["plan"]["epochs"]
        models = campaign.reassemble(out, tmp_path / "home")
        images, labels = load_split(bundle_dir / "val.npz")
        for arch, path in models.items():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["models"][arch]["sha256"]
            metrics, _ = evaluate(TorchRunner(load_model(path, arch=arch)), images, labels, batch_size=2)
            assert 0 <= metrics["miou"] <= 1
    # ResNet-50 alone fills command A: 4 chunks of its real size; B's two models come back in 5.
    assert len(campaign.read_manifest(tmp_path / "out_A")["models"]["fcn_resnet50"]["parts"]) == 4
    assert "plan of command A" in logs["B"]
    assert "eager" in logs["A"]  # the 1 s compile trial cannot finish: eager, said so


def test_a_corrupt_or_missing_chunk_is_refused(tmp_path):
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(2500))
    out = tmp_path / "out"
    out.mkdir()
    entry = campaign.write_chunks(src, out, "unet.safetensors", chunk_bytes=1000)
    assert [p["bytes"] for p in entry["parts"]] == [1000, 1000, 500]
    (out / campaign.MANIFEST).write_text(__import__("json").dumps({"models": {"unet": entry}}))
    assert campaign.reassemble(out, tmp_path / "home")["unet"].read_bytes() == src.read_bytes()
    blob = bytearray((out / "unet.safetensors.part1").read_bytes())
    blob[7] ^= 1
    (out / "unet.safetensors.part1").write_bytes(bytes(blob))
    with pytest.raises(campaign.CampaignError, match="part1 does not match its sha256"):
        campaign.reassemble(out, tmp_path / "home")
    (out / "unet.safetensors.part0").unlink()
    with pytest.raises(campaign.CampaignError, match="part0 is missing"):
        campaign.reassemble(out, tmp_path / "home")


def test_check_return_counts_files_and_bytes(tmp_path):
    for i in range(9):
        (tmp_path / f"f{i}").write_bytes(b"x")
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(campaign.CHUNK_BYTES + 1)  # sparse: no disk used
    problems = " ".join(campaign.check_return(tmp_path))
    assert "10 files" in problems and "big is" in problems


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "weights").mkdir(parents=True)
    (repo / "weights" / "unet.safetensors").write_bytes(b"w" * 1000)
    (repo / "code.py").write_text("print(1)\n")
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return repo


def test_bundle_prints_the_calls_and_refuses_a_tree_too_big(tmp_path, capsys):
    repo = _repo(tmp_path)
    write_pairs(tmp_path / "pairs" / "train", n=2)
    write_pairs(tmp_path / "pairs" / "val", n=2)
    wheels = repo / campaign.BUNDLE / "wheels"
    wheels.mkdir(parents=True)
    (wheels / "segmentation_models_pytorch-0.6.0-py3-none-any.whl").write_bytes(b"wheel")
    args = ["campaign", "bundle", "--repo", str(repo), "--data", str(tmp_path / "pairs")]
    assert train_cli.main(args) == 0
    printed = capsys.readouterr().out
    assert '"timeout_s": 210' in printed and '"timeout_s": 420' in printed and "campaign restore" in printed
    with open(repo / "video.bin", "wb") as f:  # untracked, not ignored: it would travel
        f.truncate(65 * campaign.MiB)
    assert train_cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "over the 64 MiB limit" in err, err


def test_detach_and_restore_weights(tmp_path):
    repo = _repo(tmp_path)
    (repo / campaign.BUNDLE).mkdir()
    sizes = campaign.detach_weights(repo)
    assert _git(repo, "ls-files", "weights") == ""
    assert sizes["tree"] == len("print(1)\n")  # weights/ neither tracked nor untracked-not-ignored
    campaign.detach_weights(repo)  # twice is harmless
    campaign.restore_weights(repo)
    assert _git(repo, "ls-files", "weights").strip() == "weights/unet.safetensors"
    assert _git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    assert campaign.EXCLUDE_MARK not in (repo / ".git" / "info" / "exclude").read_text()
    campaign.restore_weights(repo)


def _random_confusions(rng, n: int, c: int = 5, skill: float = 0.7) -> np.ndarray:
    mats = np.zeros((n, c, c), dtype=np.int64)
    for i in range(n):
        truth = rng.integers(0, c, 200)
        pred = np.where(rng.random(200) < skill, truth, rng.integers(0, c, 200))
        np.add.at(mats[i], (truth, pred), 1)
    return mats


def test_paired_bootstrap_matches_a_loop_and_decides_sensibly():
    rng = np.random.default_rng(1)
    old = _random_confusions(rng, 40, skill=0.6)
    assert miou_of(old.sum(0)) == pytest.approx(summarize(old.sum(0))["miou"])
    better = _random_confusions(rng, 40, skill=0.9)
    r = paired_bootstrap(better, old, n_boot=200, seed=3)
    # The same draws, one resample at a time.
    draws = np.random.default_rng(3).integers(0, 40, size=(200, 40))
    loop = [miou_of(better[d].sum(0)) - miou_of(old[d].sum(0)) for d in draws]
    assert (r["lo"], r["hi"]) == pytest.approx(tuple(np.percentile(loop, [2.5, 97.5])))
    assert r["lo"] > 0 and r["delta"] > 0
    same = paired_bootstrap(old, old, n_boot=200)
    assert same["lo"] == same["hi"] == same["delta"] == 0  # not above 0: keep the shipped model
    twin = _random_confusions(np.random.default_rng(2), 40, skill=0.6)
    noisy = paired_bootstrap(twin, old, n_boot=500)
    assert noisy["lo"] < 0 < noisy["hi"]  # two equally good models: the interval straddles 0


def test_home_keeps_a_model_that_is_not_better(pairs_dir, weights_dir, tmp_path, capsys):
    inc = tmp_path / "incoming"
    inc.mkdir()
    entry = campaign.write_chunks(weights_dir / "unet.safetensors", inc, "unet.safetensors", chunk_bytes=4 * campaign.MiB)
    (inc / campaign.MANIFEST).write_text(__import__("json").dumps({"name": "B", "models": {"unet": entry}}))
    shipped = tmp_path / "weights"
    shipped.mkdir()
    (shipped / "unet.safetensors").write_bytes((weights_dir / "unet.safetensors").read_bytes())
    before = (shipped / "unet.safetensors").stat().st_mtime_ns
    args = ["campaign", "home", "--incoming", str(inc), "--out", str(tmp_path / "home"), "--weights", str(shipped),
            "--val", str(pairs_dir), "--apply"]
    assert train_cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "difference +0.0000" in printed and "keep the shipped model" in printed
    assert (shipped / "unet.safetensors").stat().st_mtime_ns == before
    card = (tmp_path / "home" / "model_card.md").read_text()
    assert "| unet |" in card and "keep shipped" in card and "| road |" in card
    (tmp_path / "empty").mkdir()
    assert train_cli.main(["campaign", "home", "--incoming", str(tmp_path / "empty"), "--val", str(pairs_dir)]) == 2
    assert "holds no manifest.json" in capsys.readouterr().err


def test_trainer_gpu_mode_evaluates_on_the_timer_without_resume_state(tmp_path):
    write_pairs(tmp_path / "train", n=4, h=32)
    data = load_split(tmp_path / "train")
    cfg = TrainConfig(epochs=3, batch_size=2, crop=32, final_size=32, eval_interval_s=1e9, save_state=False)
    trainer = Trainer(cfg, data, data, tmp_path / "run", log=lambda *_: None)
    trainer.run()
    assert ["val_miou" in row for row in trainer.history] == [False, False, True]  # only at the end
    assert not (tmp_path / "run" / "state.safetensors").exists()
    assert (tmp_path / "run" / "best.safetensors").is_file() and (tmp_path / "run" / "last.safetensors").is_file()
    from scripts.campaign_steps import benchmark

    bench = benchmark(trainer, 32, steps=1, warmup=0)
    assert bench["step_s"] > 0 and bench["img_s"] > 0


def test_trainer_deadline_ends_an_epochs_run_early_with_files(tmp_path):
    write_pairs(tmp_path / "train", n=4, h=32)
    data = load_split(tmp_path / "train")
    cfg = TrainConfig(epochs=50, batch_size=2, crop=32, final_size=32, save_state=False, deadline_s=1e-3)
    trainer = Trainer(cfg, data, data, tmp_path / "run", log=lambda *_: None)
    result = trainer.run()
    assert result["epochs"] == 1 and trainer.history[-1]["cut_by_deadline"]
    assert "val_miou" in trainer.history[-1]
    save_model(build_model(arch="unet", input_size=(32, 32)), tmp_path / "x.safetensors")  # the checkpoint API stands
    assert torch.isfinite(torch.tensor(trainer.history[-1]["loss"]))


def test_the_campaign_recipe_trains_with_the_robustness_augmentation(tmp_path):
    import argparse

    from scripts import gpu_campaign
    from seg_core.train_schedule import AUGMENT_FIELDS, make_augment

    args = argparse.Namespace(lr16=2e-3, crop=128, final_size=256, final_frac=0.25, eval_interval=20,
                              plain_augment=False)
    cfg = gpu_campaign.train_config(args, "unet", 64, epochs=1)
    aug = make_augment(cfg, 256, cfg.final_scale)
    assert set(campaign.AUGMENT) <= set(AUGMENT_FIELDS)
    assert {k: getattr(aug, k) for k in campaign.AUGMENT} == campaign.AUGMENT
    assert cfg.final_scale == TrainConfig().final_scale  # the zoom range is not the campaign's to widen
    plain = gpu_campaign.train_config(argparse.Namespace(**{**vars(args), "plain_augment": True}), "unet", 64,
                                      epochs=1)
    assert plain.jpeg_p == 0 and plain.blur_p == 0 and plain.hue == 0
    report = {"val": "v", "pairs": 2, "models": {"unet": {
        "campaign": {"device": "gpu", "torch": "2", "augment": campaign.AUGMENT}, "training": {},
        "new": {"miou": 0.5, "iou": {"road": 0.9}}, "replace": True}}}
    assert "augmentation brightness 0.4" in campaign.model_card(report)
    assert "jpeg_quality 10-75" in campaign.model_card(report)
