"""seg_core.analysis, the confidence and ensemble entries of Predictor.predict, evaluate_many, and the
per-image scores of a folder (cached) with the ``eval --ensemble`` and ``scores`` commands."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch

from seg_core.analysis import ConfidenceStats, confidence, ensemble_probabilities, miou_of, paired_bootstrap
from seg_core.data import load_split
from seg_core.evaluate import evaluate, evaluate_many
from seg_core.folder_scores import folder_scores, rows
from seg_core.inference import ENSEMBLE, predict_many
from seg_core.predictor import Predictor
from seg_core.runners import load_runner
from tests.conftest import ARCHS, synthetic_pair
from train_cli import main


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-3, keepdims=True))
    return e / e.sum(-3, keepdims=True)


def test_confidence_is_one_when_sure_and_zero_when_uniform():
    sure = np.zeros((4, 2, 3), np.float32)
    sure[1] = 1
    uniform = np.full((4, 2, 3), 0.25, np.float32)
    for kind in ("entropy", "top1", "margin"):
        assert np.allclose(confidence(sure, kind), 1)
    assert np.allclose(confidence(uniform, "entropy"), 0, atol=1e-6)
    assert np.allclose(confidence(uniform, "margin"), 0) and np.allclose(confidence(uniform, "top1"), 0.25)
    probs = softmax(np.random.default_rng(0).standard_normal((2, 19, 5, 6)).astype(np.float32) * 3)
    for kind in ("entropy", "top1", "margin"):
        c = confidence(probs, kind)
        assert c.shape == (2, 5, 6) and c.dtype == np.float32 and (c >= 0).all() and (c <= 1).all()
    with pytest.raises(ValueError, match="unknown confidence"):
        confidence(probs, "variance")


def test_auroc_and_ece():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, 10_000)
    right = rng.random(10_000) < 0.7
    pred = np.where(right, target, (target + 1) % 3)
    stats = ConfidenceStats()
    stats.update(np.where(right, 0.9, 0.2), pred, target)  # confidence separates right from wrong
    assert stats.auroc() == pytest.approx(1.0)
    reverse = ConfidenceStats()
    reverse.update(np.where(right, 0.2, 0.9), pred, target)
    assert reverse.auroc() == pytest.approx(0.0)
    # calibrated: a pixel with confidence p is right with probability p
    p = rng.random(200_000)
    ok = rng.random(200_000) < p
    calibrated = ConfidenceStats()
    calibrated.update(p, np.where(ok, 1, 0), np.ones(200_000, int))
    assert calibrated.ece() < 0.01
    overconfident = ConfidenceStats()
    overconfident.update(np.full(200_000, 0.99), np.where(ok, 1, 0), np.ones(200_000, int))
    assert overconfident.ece() == pytest.approx(0.99 - ok.mean(), abs=0.01)
    # ignored pixels do not count
    ignored = ConfidenceStats()
    ignored.update(np.array([0.9, 0.1]), np.array([1, 2]), np.array([255, 255]))
    assert ignored.right.sum() == ignored.wrong.sum() == 0


def test_ensemble_probabilities_and_bootstrap():
    a, b = np.zeros((3, 1, 1)), np.zeros((3, 1, 1))
    a[0], b[2] = 1, 1
    assert np.allclose(ensemble_probabilities([a, b])[:, 0, 0], [0.5, 0, 0.5])
    assert np.allclose(ensemble_probabilities([a, b], [3, 1])[:, 0, 0], [0.75, 0, 0.25])
    with pytest.raises(ValueError):
        ensemble_probabilities([a, b], [1])
    rng = np.random.default_rng(0)
    mats = rng.integers(0, 50, (40, 4, 4))
    same = paired_bootstrap(mats, mats)
    assert same["delta"] == same["lo"] == same["hi"] == 0
    better = mats.copy()
    better[:, np.arange(4), np.arange(4)] += 100  # every image: more right pixels
    boot = paired_bootstrap(better, mats)
    assert 0 < boot["lo"] <= boot["delta"] <= boot["hi"] and boot["share_not_above_0"] == 0
    assert boot["delta"] == pytest.approx(miou_of(better.sum(0)) - miou_of(mats.sum(0)))
    assert len(boot["per_class"]) == 4 and all(c["lo"] > 0 for c in boot["per_class"])


def test_bootstrap_over_conditions():
    """N x K x C x C: the statistic is the mean over the K conditions of each one's mIoU."""
    rng = np.random.default_rng(1)
    mats = rng.integers(0, 50, (30, 2, 4, 4))
    one = paired_bootstrap(mats[:, :1], mats[:, :1] // 2, seed=3)
    flat = paired_bootstrap(mats[:, 0], mats[:, 0] // 2, seed=3)
    assert (one["delta"], one["lo"], one["hi"]) == pytest.approx((flat["delta"], flat["lo"], flat["hi"]))
    better = mats.copy()
    better[:, 1, np.arange(4), np.arange(4)] += 100  # only the second condition improves
    boot = paired_bootstrap(better, mats)
    want = (miou_of(better[:, 1].sum(0)) - miou_of(mats[:, 1].sum(0))) / 2
    assert boot["delta"] == pytest.approx(want) and 0 < boot["lo"] <= boot["delta"] <= boot["hi"]
    with pytest.raises(ValueError, match="must match"):
        paired_bootstrap(mats, mats[:, 0])


def test_predict_with_confidence_and_ensemble(weights_dir):
    pred = Predictor.from_dir(weights_dir)
    photo = synthetic_pair(64, seed=4)[0]
    out = pred.predict(photo, confidence=True, ensemble=True)
    assert list(out) == [*ARCHS, ENSEMBLE]
    for name, p in out.items():
        assert p.model_confidence.shape == (64, 64) and p.model_confidence.dtype == np.float16
        assert p.confidence.shape == (64, 64) and 0 <= p.confidence.min() <= p.confidence.max() <= 1, name
    # the ensemble is the argmax of the mean of the three models' probabilities
    x = torch.from_numpy(photo).permute(2, 0, 1)[None]
    from seg_core.inference import model_input

    probs = [pred.models[n].probabilities(model_input(x, pred.models[n].config).numpy())[0] for n in ARCHS]
    want = np.mean(probs, 0).argmax(0)
    assert (out[ENSEMBLE].mask == want).mean() >= 0.999
    # plain masks do not change when confidence is asked for (PyTorch: the same pass)
    plain = pred.predict(photo)
    assert all(np.array_equal(plain[n].mask, out[n].mask) for n in ARCHS) and plain[ARCHS[0]].model_confidence is None
    # asking for the ensemble alone runs its members but returns only it
    only = pred.predict(photo, names=(ENSEMBLE,))
    assert list(only) == [ENSEMBLE] and np.array_equal(only[ENSEMBLE].mask, out[ENSEMBLE].mask)
    # a big upload: confidence is kept at the model's resolution, upsampled only when read
    big = np.repeat(np.repeat(photo, 40, 0), 40, 1)
    p = pred.predict(big, names=("unet",), confidence=True)["unet"]
    assert p.model_confidence.shape == (64, 64) and p.confidence.shape == big.shape[:2]


def test_ensemble_alone_runs_no_member_masks(weights_dir):
    """The Compare page shows the three masks first and asks for the ensemble after: that second
    call runs each member's probabilities only (no upsampling, no argmax), and its time counts them."""
    pred = Predictor.from_dir(weights_dir)
    calls = []
    for name, runner in pred.models.items():
        for method in ("masks", "masks_and_probabilities", "probabilities"):
            def spy(*args, _f=getattr(runner, method), _k=f"{name}.{method}", **kw):
                calls.append(_k)
                return _f(*args, **kw)
            setattr(runner, method, spy)
    photo = synthetic_pair(64, seed=5)[0]
    both = pred.predict(photo, ensemble=True)
    calls.clear()
    only = pred.predict(photo, names=(ENSEMBLE,))
    assert sorted(calls) == sorted(f"{n}.probabilities" for n in ARCHS)
    assert np.array_equal(only[ENSEMBLE].mask, both[ENSEMBLE].mask)
    calls.clear()
    one = pred.predict(photo, names=("unet",), ensemble=True)  # one mask, and the others' probabilities
    assert list(one) == ["unet", ENSEMBLE] and np.array_equal(one[ENSEMBLE].mask, both[ENSEMBLE].mask)
    assert sorted(calls) == ["fcn_resnet50.probabilities", "fcn_vgg16.probabilities", "unet.masks_and_probabilities"]


def test_ensemble_needs_two_models(weights_dir, tmp_path):
    shutil.copy(weights_dir / "unet.safetensors", tmp_path)
    pred = Predictor.from_dir(tmp_path)
    assert pred.ensemble() == {} and ENSEMBLE not in pred.predict(np.zeros((32, 32, 3), np.uint8), ensemble=True)


def test_evaluate_many_matches_evaluate_and_scores_the_ensemble(weights_dir, pairs_dir):
    images, labels = load_split(pairs_dir)
    runners = {n: load_runner(weights_dir / f"{n}.safetensors") for n in ARCHS}
    out = evaluate_many(runners, images, labels, batch_size=4, ensemble={n: 1.0 for n in ARCHS})
    assert list(out) == [*ARCHS, ENSEMBLE]
    for n in ARCHS:
        metrics, mat = evaluate(runners[n], images, labels, batch_size=4)
        assert np.array_equal(out[n]["matrix"], mat) and out[n]["metrics"]["miou"] == pytest.approx(metrics["miou"])
        assert out[n]["image_matrices"].shape == (len(images), 19, 19)
        assert np.array_equal(out[n]["image_matrices"].sum(0), mat)
    assert ((out["unet"]["disagreement"] > 0) & (out["unet"]["disagreement"] <= 1)).all()
    # three copies of one model never disagree, and their ensemble is that model
    same = {n: runners["unet"] for n in ("a", "b", "c")}
    twins = evaluate_many(same, images, labels, batch_size=4, ensemble={"a": 1, "b": 1, "c": 1})
    assert (twins["a"]["disagreement"] == 0).all()
    assert np.array_equal(twins[ENSEMBLE]["matrix"], twins["a"]["matrix"])


def test_folder_scores_are_cached_and_keyed_by_the_weights(weights_dir, pairs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SEG_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "weights"
    shutil.copytree(weights_dir, folder)
    pred = Predictor.from_dir(folder)
    calls = []
    first = folder_scores(pred, pairs_dir, on_batch=lambda done, total: calls.append(done))
    assert not first["cached"] and calls and first["models"] == [*ARCHS, ENSEMBLE]
    again = folder_scores(pred, pairs_dir)
    assert again["cached"] and all(np.array_equal(again["matrices"][n], first["matrices"][n]) for n in first["models"])
    table = rows(again, pred.models["unet"].config.class_names)
    assert [r["image"] for r in table] == [f"{i}.jpg" for i in range(1, 7)]
    assert all(0 <= r["unet mIoU"] <= 1 and 0 <= r["disagreement"] <= 1 for r in table)
    # new weights: scored afresh
    torch.manual_seed(5)
    from seg_core.checkpoint import save_model
    from seg_core.models import build_model

    save_model(build_model(arch="unet", input_size=(64, 64)), folder / "unet.safetensors", half=True)
    assert not folder_scores(Predictor.from_dir(folder), pairs_dir)["cached"]


def test_eval_ensemble_and_scores_commands(weights_dir, pairs_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEG_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["eval", "--weights", str(weights_dir), "--data", str(pairs_dir), "--ensemble",
                 "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "ensemble (unet 1, fcn_vgg16 1, fcn_resnet50 1)" in out and out.count("mIoU") == 4
    assert main(["scores", "--weights", str(weights_dir), "--data", str(pairs_dir), "--out", str(tmp_path / "s.csv")]) == 0
    with open(tmp_path / "s.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and "ensemble mIoU" in table[0] and "disagreement" in table[0]
    assert main(["scores", "--weights", str(weights_dir), "--data", str(pairs_dir), "--out", str(tmp_path / "t.csv")]) == 0
    assert "from the cache" in capsys.readouterr().out
    assert main(["eval", "--weights", str(weights_dir / "unet.safetensors"), "--data", str(pairs_dir), "--ensemble"]) == 2


def test_ensemble_weights_come_from_the_weights_folder(weights_dir, tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(weights_dir, folder)
    assert Predictor.from_dir(folder).ensemble() == {n: 1.0 for n in ARCHS}
    (folder / "ensemble.json").write_text('{"weights": {"unet": 0.5, "fcn_vgg16": 0, "fcn_resnet50": 0.5}}')
    pred = Predictor.from_dir(folder)
    assert pred.ensemble() == {"unet": 0.5, "fcn_resnet50": 0.5}  # a zero weight leaves a model out
    photo = synthetic_pair(64, seed=6)[0]
    mixed = predict_many({n: pred.models[n] for n in ("unet", "fcn_resnet50")}, photo,
                         ensemble={"unet": 1, "fcn_resnet50": 1})[ENSEMBLE].mask
    assert np.array_equal(pred.predict(photo, ensemble=True)[ENSEMBLE].mask, mixed)
    (folder / "ensemble.json").write_text("not json")
    assert Predictor.from_dir(folder).ensemble() == {n: 1.0 for n in ARCHS}


def test_folder_scores_follow_the_per_image_rule(weights_dir, pairs_dir, tmp_path, monkeypatch):
    from seg_core.metrics import image_scores

    monkeypatch.setenv("SEG_CACHE_DIR", str(tmp_path / "cache"))
    pred = Predictor.from_dir(weights_dir)
    table = rows(folder_scores(pred, pairs_dir, ensemble=False), pred.models["unet"].config.class_names)
    images, labels = load_split(pairs_dir)
    masks = pred.predict(images[0].permute(1, 2, 0).numpy(), names=("unet",))
    want = image_scores(masks["unet"].mask, labels[0].numpy())
    assert table[0]["unet mIoU"] == pytest.approx(want["miou"], abs=0.02)  # same rule (masks via another resize path)

