"""seg_core.runners, seg_core.export and ``train_cli.py export``: every backend behind one Runner
interface, ONNX / OpenVINO exports agree with PyTorch, int8 files are calibrated and picked by the
Predictor, stale or broken exports fall back to PyTorch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seg_core.checkpoint import load_model, save_model
from seg_core.evaluate import compare_runners, evaluate
from seg_core.export import DEFAULT_KEEP_FLOAT, calibration_batches, export_onnx, quantize_onnx, to_openvino
from seg_core.inference import predict_many
from seg_core.models import build_model
from seg_core.predictor import Predictor
from seg_core.registry import ARCH_NAMES
from seg_core.files import file_sha256
from seg_core.runners import (OnnxRunner, OpenVinoRunner, Runner, RunnerError, classes, find_exported,
                              forward_latency, load_runner)
from tests.conftest import ARCHS, ROOT, synthetic_pair
from train_cli import main


def photos(n: int = 4, h: int = 64) -> torch.Tensor:
    return torch.stack([torch.from_numpy(synthetic_pair(h, seed=100 + i)[0]).permute(2, 0, 1) for i in range(n)])


def labels_like(images: torch.Tensor) -> torch.Tensor:
    return torch.zeros(len(images), *images.shape[-2:], dtype=torch.uint8)


@pytest.fixture(scope="module")
def exported(weights_dir, tmp_path_factory):
    """fp32 ONNX and OpenVINO exports of the three tiny random-weight models."""
    out = tmp_path_factory.mktemp("exported")
    files = {}
    for arch in ARCHS:
        source = weights_dir / f"{arch}.safetensors"
        onnx_path = export_onnx(load_model(source), out / f"{arch}.onnx", source=source)
        files[arch] = (onnx_path, to_openvino(onnx_path, out / f"{arch}.xml"))
    return files


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_fp32_exports_agree_with_pytorch(weights_dir, exported, arch, fmt):
    model = load_runner(weights_dir / f"{arch}.safetensors")
    fast = load_runner(exported[arch][0 if fmt == "onnx" else 1])
    assert isinstance(fast, OnnxRunner if fmt == "onnx" else OpenVinoRunner) and fast.precision == "fp32"
    assert fast.config == model.config
    images = photos()
    report = compare_runners(model, fast, images, labels_like(images), batch_size=3)
    assert report["agreement"] >= 0.999
    # no inference mode left behind by a batch generator that was not run to its end
    assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
    np.testing.assert_allclose(fast.logits(x), model.logits(x), atol=2e-3, rtol=1e-3)
    np.testing.assert_allclose(fast.probabilities(x), model.probabilities(x), atol=1e-3)
    np.testing.assert_allclose(fast.probabilities(x, "flip"), model.probabilities(x, "flip"), atol=1e-3)


def test_export_records_config_parameters_and_source(weights_dir, exported):
    fast = load_runner(exported["fcn_resnet50"][1])
    assert fast.meta["source_sha256"] == file_sha256(weights_dir / "fcn_resnet50.safetensors")
    assert fast.num_parameters == sum(p.numel() for p in load_model(weights_dir / "fcn_resnet50.safetensors").parameters())
    assert fast.label == "OpenVINO fp32" and load_runner(exported["unet"][0]).label == "ONNX Runtime fp32"
    # an OpenVINO model's size counts its .xml and .bin
    xml = exported["fcn_resnet50"][1]
    assert fast.file_bytes == xml.stat().st_size + xml.with_suffix(".bin").stat().st_size


@pytest.mark.parametrize("kind", ["pytorch", "onnx", "openvino"])
def test_every_backend_is_a_runner_with_numpy_in_and_out(weights_dir, exported, kind):
    """One interface: config, label, size, parameters, and masks / probabilities / logits as numpy."""
    path = {"pytorch": weights_dir / "unet.safetensors", "onnx": exported["unet"][0], "openvino": exported["unet"][1]}[kind]
    runner = load_runner(path)
    assert isinstance(runner, Runner) and runner.path == path
    assert runner.file_bytes > 0 and runner.num_parameters > 1_000_000 and runner.config.arch == "unet"
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 64), dtype=np.float32)
    masks, probs = runner.masks(x, (32, 80)), runner.probabilities(x)
    assert isinstance(masks, np.ndarray) and masks.shape == (2, 32, 80) and masks.dtype == np.uint8
    assert isinstance(probs, np.ndarray) and probs.shape == (2, 19, 64, 64) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-4)
    both = runner.masks_and_probabilities(x, (32, 80))
    assert (both[0] == masks).mean() >= 0.99 and np.allclose(both[1], probs, atol=2e-3)
    flip_masks, flip_probs = runner.masks_and_probabilities(x, (32, 80), "flip")
    assert (flip_masks == runner.masks(x, (32, 80), "flip")).mean() >= 0.99
    assert np.allclose(flip_probs, runner.probabilities(x, "flip"), atol=2e-3)
    assert runner.logits(x).shape == (2, 19, 64, 64)
    assert forward_latency(runner, repeats=2) > 0


def test_openvino_in_graph_masks_match_upsampled_logits(exported):
    """The upsampling + argmax added to the OpenVINO graph equals doing them in PyTorch."""
    fast = load_runner(exported["unet"][1])
    x = torch.randn(2, 3, 64, 64).numpy()
    for out_hw in [(64, 64), (64, 128), (150, 97)]:
        logits = F.interpolate(torch.from_numpy(fast.logits(x)), size=out_hw, mode="bilinear", align_corners=False)
        masks = fast.masks(x, out_hw)
        assert masks.shape == (2, *out_hw) and masks.dtype == np.uint8
        assert (masks == classes(logits).numpy()).mean() >= 0.999


def test_openvino_runs_parallel_calls_in_streams_of_their_own(exported, weights_dir):
    """A server running two inferences at once gets two streams of one thread each (one stream
    runs one inference at a time: the second caller would queue), with the same masks."""
    import threading

    one = load_runner(exported["unet"][1], threads=1)
    two = Predictor.from_dir(exported["unet"][1].parent, names=("unet",), threads=1, parallel=2).models["unet"]
    assert isinstance(two, OpenVinoRunner)
    x = torch.randn(1, 3, 64, 64).numpy()
    expected = one.masks(x, (64, 64))
    compiled = two._compiled["masks/none"]
    assert int(compiled.get_property("NUM_STREAMS")) == 2 and int(compiled.get_property("INFERENCE_NUM_THREADS")) == 2
    assert int(one._compiled["masks/none"].get_property("NUM_STREAMS")) == 1
    results = []
    threads = [threading.Thread(target=lambda: results.append(two.masks(x, (64, 64)))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 4 and all(np.array_equal(r, expected) for r in results)


def test_openvino_in_graph_flip_tta_matches_pytorch_scores(exported):
    """The mirror-image averaging built into the OpenVINO mask graph equals averaging the softmax
    of the file's own logits over photo and mirror image, then upsampling and argmax in PyTorch."""
    fast = load_runner(exported["fcn_resnet50"][1])
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        probs = (torch.from_numpy(fast.logits(x.numpy())).softmax(1)
                 + torch.from_numpy(fast.logits(x.flip(-1).numpy())).softmax(1).flip(-1)) / 2
    np.testing.assert_allclose(fast.probabilities(x.numpy(), "flip"), probs.numpy(), atol=1e-4)
    for out_hw in [(64, 64), (100, 180)]:
        up = F.interpolate(probs, size=out_hw, mode="bilinear", align_corners=False)
        masks = fast.masks(x.numpy(), out_hw, "flip")
        assert masks.shape == (3, *out_hw) and masks.dtype == np.uint8
        assert (masks == classes(up).numpy()).mean() >= 0.999
        assert (masks != fast.masks(x.numpy(), out_hw)).any()  # the flip did something
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        fast.masks(x.numpy(), (64, 64), "rotate")


def test_openvino_runs_fp32_files_in_f32_and_int8_float_layers_in_bf16_where_the_cpu_has_it(weights_dir, exported, tmp_path):
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert load_runner(exported["unet"][1]).meta["float_precision"] == "f32"
    model = load_model(weights_dir / "unet.safetensors")
    int8 = quantize_onnx(exported["unet"][0], tmp_path / "unet.int8.onnx", calibration_batches(photos(4), model.config, count=4))
    fast = load_runner(to_openvino(int8, tmp_path / "unet.int8.xml"))
    assert fast.meta["float_precision"] == ("bf16" if "BF16" in caps else "f32")
    x = np.zeros((1, 3, 64, 64), np.float32)
    assert fast.masks(x, (64, 64)).shape == (1, 64, 64) and fast.logits(x).shape == (1, 19, 64, 64)  # compiled lazily


def test_int8_quantisation_shrinks_and_keeps_float_where_asked(weights_dir, exported, tmp_path):
    model = load_model(weights_dir / "unet.safetensors")
    batches = calibration_batches(photos(8), model.config, count=8)
    assert len(batches) == 8 and batches[0].shape == (1, 3, 64, 64)
    int8 = quantize_onnx(exported["unet"][0], tmp_path / "unet.int8.onnx", batches)
    assert int8.stat().st_size < exported["unet"][0].stat().st_size / 3
    fast = load_runner(int8)
    assert fast.precision == "int8" and fast.meta["source_sha256"] == file_sha256(weights_dir / "unet.safetensors")
    kept = quantize_onnx(exported["unet"][0], tmp_path / "kept.int8.onnx", batches, keep_float=("segmentation_head",))
    import onnx

    def float_convs(path):
        graph = onnx.load(str(path)).graph
        quantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
        return {n.name for n in graph.node if n.op_type == "Conv" and n.input[1] not in quantized}  # float weights

    assert not any("segmentation_head" in n for n in float_convs(int8))
    assert any("segmentation_head" in n for n in float_convs(kept))


def test_quantisation_calibrates_in_chunks_and_refuses_bad_settings(exported, tmp_path):
    images = calibration_batches(photos(20), load_runner(exported["unet"][0]).config, count=20)
    for method in ("minmax", "percentile"):  # 20 images: two chunks of 10, ranges merged
        fast = load_runner(quantize_onnx(exported["unet"][0], tmp_path / f"{method}.onnx", images, method=method))
        assert json.loads(fast.meta["calibration"]) == {"images": 20, "method": method, "keep_float": []}
    many = [np.zeros((1, 3, 64, 64), np.float32)] * 3
    with pytest.raises(RunnerError, match="unknown calibration method"):
        quantize_onnx(exported["unet"][0], tmp_path / "x.onnx", many, method="kl")
    with pytest.raises(RunnerError, match="needs calibration images"):
        quantize_onnx(exported["unet"][0], tmp_path / "x.onnx", [])
    assert not (tmp_path / "x.onnx").exists()


def test_export_cli_writes_int8_openvino_files_the_predictor_prefers(weights_dir, pairs_dir, tmp_path, capsys):
    folder = tmp_path / "weights"
    shutil.copytree(weights_dir, folder)
    assert main(["export", "--weights", str(folder), "--int8", "--calib", str(pairs_dir), "--calib-count", "4",
                 "--check", str(pairs_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("masks agree on") == 3
    for arch in ARCHS:
        assert (folder / f"{arch}.int8.xml").is_file() and (folder / f"{arch}.int8.bin").is_file()
    assert not list(folder.glob(".export-*"))  # the temp folder is gone
    calibration = json.loads(load_runner(folder / "fcn_resnet50.int8.xml").meta["calibration"])
    assert calibration == {"images": 4, "method": "minmax", "keep_float": list(DEFAULT_KEEP_FLOAT)}
    pred = Predictor.from_dir(folder)
    assert pred.backends() == {n: "OpenVINO int8" for n in ARCH_NAMES}
    assert Predictor.from_dir(folder, backend="pytorch").backends() == {n: "PyTorch fp32" for n in ARCH_NAMES}
    photo = synthetic_pair(64, seed=3)[0]
    big = np.concatenate([photo, photo], axis=1)
    for name, p in pred.predict(big).items():
        assert p.mask.shape == (64, 128) and p.mask.dtype == np.uint8 and p.mask.max() < 19, name


def test_predictor_skips_stale_and_broken_exports(weights_dir, exported, tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    for arch in ARCHS:
        shutil.copy(weights_dir / f"{arch}.safetensors", folder)
    shutil.copy(exported["unet"][0], folder / "unet.onnx")
    for ext in (".xml", ".bin"):
        shutil.copy(exported["fcn_vgg16"][1].with_suffix(ext), folder / f"fcn_vgg16{ext}")
    (folder / "fcn_resnet50.int8.xml").write_text("<net>not a model</net>")
    (folder / "fcn_resnet50.int8.bin").write_bytes(b"\0" * 10)
    # the U-Net is retrained: its ONNX file no longer matches the checkpoint
    torch.manual_seed(1)
    save_model(build_model(arch="unet", input_size=(64, 64)), folder / "unet.safetensors", half=True)
    pred = Predictor.from_dir(folder)
    assert pred.backends() == {"unet": "PyTorch fp32", "fcn_vgg16": "OpenVINO fp32", "fcn_resnet50": "PyTorch fp32"}
    assert "exported from another checkpoint" in pred.notes["unet"]
    assert "fcn_resnet50" in pred.notes and not pred.missing
    monkeypatch.setenv("SEG_BACKEND", "pytorch")
    assert set(Predictor.from_dir(folder).backends().values()) == {"PyTorch fp32"}
    assert find_exported(folder, "unet", folder / "unet.safetensors")[0] is None


def test_load_runner_refuses_bad_files(tmp_path, weights_dir, exported):
    (tmp_path / "x.onnx").write_bytes(b"garbage")
    with pytest.raises(RunnerError, match="not a valid ONNX model"):
        load_runner(tmp_path / "x.onnx")
    (tmp_path / "z.xml").write_text("<net/>")
    with pytest.raises(RunnerError, match=r"z\.bin is missing"):
        load_runner(tmp_path / "z.xml")
    with pytest.raises(RunnerError, match="does not exist"):
        load_runner(tmp_path / "none.onnx")
    with pytest.raises(RunnerError, match="holds a unet model, not fcn_vgg16"):
        load_runner(exported["unet"][1], arch="fcn_vgg16")


def test_export_cli_errors_are_one_line(weights_dir, tmp_path, capsys):
    assert main(["export", "--weights", str(tmp_path / "nope")]) == 2
    assert main(["export", "--weights", str(tmp_path)]) == 2  # a folder without checkpoints
    assert main(["export", "--weights", str(weights_dir / "unet.safetensors"), "--keep-float", "head",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)


def test_eval_cli_on_a_weights_folder_uses_each_models_fast_file(weights_dir, exported, pairs_dir, tmp_path, capsys):
    folder = tmp_path / "weights"
    shutil.copytree(weights_dir, folder)
    for ext in (".xml", ".bin"):
        shutil.copy(exported["unet"][1].with_suffix(ext), folder / f"unet{ext}")
    assert main(["eval", "--weights", str(folder), "--data", str(pairs_dir), "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "unet (resnet18, OpenVINO fp32)" in out and "fcn_vgg16 (vgg16_bn, PyTorch fp32)" in out
    import json

    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) == set(ARCHS) and metrics["unet"]["backend"] == "OpenVINO fp32"
    assert main(["eval", "--weights", str(exported["unet"][1]), "--data", str(pairs_dir)]) == 0


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_shipped_int8_files_agree_with_their_fp32_checkpoints(real_data, name):
    """On real val photos the shipped int8 model and its fp32 checkpoint agree on >= 98% of pixels."""
    weights = ROOT / "weights"
    fast_path, why = find_exported(weights, name, weights / f"{name}.safetensors")
    if fast_path is None or not fast_path.name.endswith(".int8.xml"):
        pytest.skip(f"no current int8 export of {name} in weights/ ({why or 'not exported'})")
    from seg_core.data import load_split

    images, labels = load_split(real_data / "val", limit=16)
    report = compare_runners(load_runner(weights / f"{name}.safetensors"), load_runner(fast_path), images, labels)
    assert report["agreement"] >= 0.98
    assert report["miou_delta"] > -0.02  # 16 images are noisy; the whole-val figure is in the model card


@pytest.mark.parametrize("fmt", [0, 1], ids=["onnx", "openvino"])
def test_flip_tta_on_fast_files_agrees_with_pytorch(weights_dir, exported, fmt):
    """With TTA an exported model averages photo and mirror image: in its OpenVINO graph, or
    through its logits with ONNX Runtime."""
    model, fast = load_runner(weights_dir / "unet.safetensors"), load_runner(exported["unet"][fmt])
    images = photos()
    ours, theirs = (evaluate(m, images, labels_like(images), batch_size=3, tta="flip")[1] for m in (model, fast))
    assert np.abs(ours - theirs).sum() / ours.sum() <= 2 * 0.001  # confusion matrices: >= 99.9% of pixels alike
    image = synthetic_pair(64, seed=9)[0]
    a = predict_many({"unet": model}, image, tta="flip")["unet"].mask
    b = predict_many({"unet": fast}, image, tta="flip")["unet"].mask
    assert (a == b).mean() >= 0.999


def test_predict_many_mixes_backends(weights_dir, exported):
    models = {"unet": load_runner(exported["unet"][1]), "fcn_vgg16": load_runner(weights_dir / "fcn_vgg16.safetensors")}
    out = predict_many(models, synthetic_pair(64, seed=5)[0])
    assert set(out) == {"unet", "fcn_vgg16"} and all(p.mask.shape == (64, 64) and p.seconds > 0 for p in out.values())


def test_openvino_resized_matches_pytorch_at_another_input_size(exported, weights_dir):
    """The scale probe feeds 96x96 to a 64x64 export: reshaped, its masks are PyTorch's at 96x96
    (without the reshape OpenVINO took the input and computed garbage)."""
    fast = load_runner(exported["fcn_vgg16"][1])
    torch_runner = load_runner(weights_dir / "fcn_vgg16.safetensors")
    x = torch.randn(2, 3, 96, 96).numpy()
    big = fast.resized((96, 96))
    assert big.config.input_size == (96, 96) and fast.config.input_size == (64, 64)
    assert (big.masks(x, (96, 96)) == torch_runner.masks(x, (96, 96))).mean() >= 0.999
    assert fast.masks(x[:, :, :64, :64], (64, 64)).shape == (2, 64, 64)  # the original keeps its shape
