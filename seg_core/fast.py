"""The fast CPU path: ONNX export, int8 quantisation, and ONNX Runtime / OpenVINO models.

Three models per upload make latency the product's feel, and fp32 is already near the arithmetic
limit of 2 cores; int8 (VNNI) is what makes the comparison interactive. The pipeline is

    export_onnx(model, "unet.onnx")                       # fp32, batch axis dynamic
    quantize_onnx("unet.onnx", "unet.int8.onnx", images)  # static, per-channel QDQ, calibrated
    to_openvino("unet.int8.onnx", "unet.int8.xml")        # OpenVINO IR (.xml + .bin)
    load_fast("weights/unet.int8.xml")                    # a FastModel, used like a SegmentationModel

Every exported file carries the ``ModelConfig`` JSON (ONNX metadata / OpenVINO rt_info), the
SHA-256 of the safetensors checkpoint it came from (so a retrained checkpoint never runs with a
stale int8 copy) and its precision. ``onnxruntime`` and ``openvino`` are imported lazily: without
them seg_core runs on PyTorch alone.
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import ModelConfig
from .inference import _check_tta, model_input, scores, upsampled_classes
from .models import SegmentationModel, count_parameters

INPUT_NAME, OUTPUT_NAME = "image", "logits"
OPSET = 17
#: Suffixes of the fast files, most preferred first (``weights/<name><suffix>``).
FAST_SUFFIXES = (".int8.xml", ".xml", ".int8.onnx", ".onnx")
#: ONNX node-name parts kept in float by default: the layers that make the class scores (the
#: FCN-8s score, upsampling and skip-sum layers, U-Net's segmentation head). In int8 they flip the
#: argmax where two classes are close; in float the masks agree with PyTorch on more pixels at about
#: the same speed (measured on the first 100 val pairs: shipped U-Net 99.13 % against 98.53 %,
#: +1.5 ms; an FCN-ResNet50 checkpoint of epoch 4, 99.08 % against 98.39 %, -1.6 ms: its int8
#: transposed convolutions are no faster than float ones).
DEFAULT_KEEP_FLOAT = ("/net/head/score", "/net/head/up", "/net/head/Add", "/net/segmentation_head/")
#: Calibration images run per chunk (bounds the memory of int8 calibration; see ``quantize_onnx``).
CALIB_CHUNK = 16
META_KEYS = ("config", "source_sha256", "precision", "parameters", "calibration")


class FastModelError(ValueError):
    """An exported file is missing, malformed, or its runtime is not installed."""


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_file_bytes(path: str | Path) -> int:
    """Size on disk of a model file; an OpenVINO ``.xml`` counts with its ``.bin``."""
    path = Path(path)
    parts = (path, path.with_suffix(".bin")) if path.suffix == ".xml" else (path,)
    return sum(p.stat().st_size for p in parts if p.is_file())


# --- export ---------------------------------------------------------------------------------------

def export_onnx(model: SegmentationModel, path: str | Path, source: str | Path | None = None) -> Path:
    """fp32 ONNX with a dynamic batch axis and the model's fixed ``input_size``."""
    import onnx

    cfg = model.config
    if cfg.input_size is None:
        raise FastModelError("export needs a model with a fixed input_size (its config has none)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().float().cpu()
    x = torch.zeros(1, 3, *cfg.input_size)
    with warnings.catch_warnings():  # the TorchScript exporter announces its deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    proto = onnx.load(str(path))
    _set_onnx_meta(proto, {"config": cfg.to_json(), "precision": "fp32", "parameters": str(count_parameters(model)),
                           "source_sha256": file_sha256(source) if source else ""})
    onnx.save(proto, str(path))
    return path


def calibration_batches(images: torch.Tensor, cfg: ModelConfig, count: int = 128, seed: int = 0) -> list[np.ndarray]:
    """``count`` random uint8 train images, normalised and resized exactly as at inference."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(images), generator=g)[:count]
    x = model_input(images[idx], cfg)
    return [x[i : i + 1].numpy() for i in range(len(x))]


def quantize_onnx(src: str | Path, dst: str | Path, calibration: list[np.ndarray],
                  keep_float: tuple[str, ...] = (), method: str = "minmax") -> Path:
    """Static int8 quantisation (ONNX Runtime): QDQ format, per-channel symmetric int8 weights,
    uint8 activations calibrated on ``calibration``. Nodes whose name contains one of the
    ``keep_float`` substrings stay in float (for layers where int8 costs accuracy)."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src), Path(dst)
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise FastModelError(f"unknown calibration method {method!r}; choose one of {sorted(methods)}")
    if not calibration:
        raise FastModelError("int8 quantisation needs calibration images")
    # Calibrate in chunks (ONNX Runtime's "strided" calibration): every activation of every image
    # in a chunk is held in memory, 146 MB per 256x256 image for FCN-ResNet50, so 128 images at
    # once would need 19 GB; ranges and histograms are merged from chunk to chunk.
    stride = max(d for d in range(1, min(CALIB_CHUNK, len(calibration)) + 1) if len(calibration) % d == 0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.next, self.end = 0, len(calibration)

        def __len__(self) -> int:
            return len(calibration)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.next, self.end = start_index, end_index

        def get_next(self):
            if self.next >= self.end:
                return None
            self.next += 1
            return {INPUT_NAME: calibration[self.next - 1]}

    proto = onnx.load(str(src))
    meta = _onnx_meta(proto)
    excluded = [n.name for n in proto.graph.node if any(k in n.name for k in keep_float)] if keep_float else []
    pre = dst.with_name(f".{dst.name}.pre.onnx")
    try:
        quant_pre_process(str(src), str(pre))
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=methods[method], nodes_to_exclude=excluded,
                        extra_options={"CalibStridedMinMax": stride})
    finally:
        pre.unlink(missing_ok=True)
    out = onnx.load(str(dst))
    _set_onnx_meta(out, {**meta, "precision": "int8", "calibration": json.dumps(
        {"images": len(calibration), "method": method, "keep_float": list(keep_float)})})
    onnx.save(out, str(dst))
    return dst


def to_openvino(onnx_path: str | Path, xml_path: str | Path) -> Path:
    """Convert an (fp32 or QDQ int8) ONNX file to OpenVINO IR, metadata included."""
    import onnx
    import openvino as ov

    xml_path = Path(xml_path)
    meta = _onnx_meta(onnx.load(str(onnx_path), load_external_data=False))
    ov_model = ov.convert_model(str(onnx_path))
    for key, value in meta.items():
        ov_model.set_rt_info(value, ["seg_core", key])
    ov.save_model(ov_model, str(xml_path), compress_to_fp16=False)  # fp32 stays fp32; int8 stays int8
    return xml_path


def _set_onnx_meta(proto, meta: dict[str, str]) -> None:
    kept = [p for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _onnx_meta(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props if p.key in META_KEYS}


# --- runtime --------------------------------------------------------------------------------------

@dataclass
class FastModel:
    """An ONNX Runtime or OpenVINO model with the inference interface of a ``SegmentationModel``:
    ``config``, ``device``, ``eval()`` and ``model(x) -> logits`` on NCHW float tensors, plus
    ``masks(x, out_hw)``, which returns class ids at ``out_hw`` directly.

    With OpenVINO, ``masks`` runs the bilinear upsampling of the logits and the argmax inside the
    runtime's graph: handing 19-channel logits to PyTorch for them costs more than the int8
    network itself (measured on 2 cores: U-Net 256x256 -> 256x512, 10.6 ms in-graph against
    22.4 ms with PyTorch post-processing, identical masks), because the two thread pools fight.
    """

    path: Path
    config: ModelConfig
    backend: str  # "onnxruntime" or "openvino"
    precision: str  # "fp32" or "int8"
    meta: dict = field(default_factory=dict)
    _run: object = None  # x -> logits (numpy)
    _masks: object = None  # (x, out_hw) -> uint8 class ids (numpy), when the runtime can do it in-graph

    device = torch.device("cpu")

    def eval(self) -> "FastModel":
        return self

    @property
    def label(self) -> str:
        """For people: e.g. 'OpenVINO int8'."""
        return f"{'OpenVINO' if self.backend == 'openvino' else 'ONNX Runtime'} {self.precision}"

    @property
    def num_parameters(self) -> int:
        return int(self.meta.get("parameters") or 0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._run(_as_input(x)))

    def masks(self, x: torch.Tensor, out_hw: tuple[int, int], tta: str = "none") -> torch.Tensor:
        """``N x H x W`` uint8 class ids at ``out_hw`` (logits upsampled bilinearly, then argmax;
        ``tta`` as in ``seg_core.inference.scores``)."""
        if self._masks is not None:
            return torch.from_numpy(self._masks(_as_input(x), out_hw, tta))
        return upsampled_classes(scores(self, x, tta), out_hw).to(torch.uint8)


def _as_input(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())


def load_fast(path: str | Path, threads: int | None = None) -> FastModel:
    """Load an exported ``.onnx`` (ONNX Runtime) or ``.xml`` (OpenVINO) file."""
    path = Path(path)
    if not path.is_file():
        raise FastModelError(f"{path} does not exist")
    threads = threads or torch.get_num_threads()
    if path.suffix == ".onnx":
        meta, run, masks = *_load_onnxruntime(path, threads), None
        backend = "onnxruntime"
    elif path.suffix == ".xml":
        meta, run, masks = _load_openvino(path, threads)
        backend = "openvino"
    else:
        raise FastModelError(f"{path.name}: expected an exported .onnx or OpenVINO .xml file")
    if "config" not in meta:
        raise FastModelError(f"{path} carries no model config; export it with `train_cli.py export`")
    try:
        cfg = ModelConfig.from_json(meta["config"])
    except (ValueError, TypeError) as err:
        raise FastModelError(f"{path} has an invalid model config: {err}") from None
    return FastModel(path, cfg, backend, meta.get("precision", "fp32"), meta, run, masks)


def _load_onnxruntime(path: Path, threads: int):
    try:
        import onnxruntime as ort
    except ImportError:
        raise FastModelError("onnxruntime is not installed (pip install -r requirements.txt)") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - ORT raises its own exception types for bad files
        raise FastModelError(f"{path} is not a valid ONNX model: {type(err).__name__}: {str(err)[:200]}") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)

    def run(x: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]  # InferenceSession.run is thread-safe

    return meta, run


_OV_CORE = None


def _ov_core():
    """One OpenVINO ``Core`` for the process (it owns the plugins and their thread pools)."""
    global _OV_CORE
    if _OV_CORE is None:
        import openvino as ov

        _OV_CORE = ov.Core()
    return _OV_CORE


def _ov_meta(model) -> dict[str, str]:
    """The seg_core metadata ``to_openvino`` wrote into a model's rt_info."""
    return {k: model.get_rt_info(["seg_core", k]).astype(str) for k in META_KEYS if model.has_rt_info(["seg_core", k])}


def _load_openvino(path: Path, threads: int):
    try:
        import openvino  # noqa: F401 - only to say clearly when it is missing
    except ImportError:
        raise FastModelError("openvino is not installed (pip install -r requirements.txt)") from None
    if not path.with_suffix(".bin").is_file():
        raise FastModelError(f"{path.with_suffix('.bin')} is missing: an OpenVINO model is an .xml and a .bin file")
    try:
        model = _ov_core().read_model(str(path))
        meta = _ov_meta(model)
        meta["float_precision"] = _float_precision(meta.get("precision", "fp32"))
        # Latency mode on all the threads we are given.
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads),
                  "INFERENCE_PRECISION_HINT": meta["float_precision"]}
        compiled = {"masks/none": _ov_core().compile_model(_mask_model(model), "CPU", config)}
    except Exception as err:  # noqa: BLE001 - OpenVINO raises RuntimeError with long C++ traces
        raise FastModelError(f"{path} is not a valid OpenVINO model: {str(err).splitlines()[0][:200]}") from None
    lock = threading.Lock()
    local = threading.local()  # one infer request per thread: Streamlit and Gradio call from several

    def request(kind: str):
        if not hasattr(local, kind):
            with lock:
                if kind not in compiled:  # compiled on first use: the apps and eval ask for masks without TTA
                    graph = model if kind == "logits" else _mask_model(model, kind.split("/")[1])
                    compiled[kind] = _ov_core().compile_model(graph, "CPU", config)
            setattr(local, kind, compiled[kind].create_infer_request())
        return getattr(local, kind)

    def run(x: np.ndarray) -> np.ndarray:
        r = request("logits")
        r.infer({0: x})
        return r.get_output_tensor(0).data.copy()

    def masks(x: np.ndarray, out_hw, tta: str = "none") -> np.ndarray:
        r = request(f"masks/{tta}")
        r.infer({0: x, 1: np.asarray(out_hw, dtype=np.int64)})
        return r.get_output_tensor(0).data.copy()

    return meta, run, masks


def _float_precision(precision: str) -> str:
    """OpenVINO's precision for the layers an export keeps in float. An fp32 file runs in f32, so
    that it matches PyTorch. An int8 file runs its float layers (class scores, upsampling, argmax)
    in bf16 where the CPU has bf16 instructions: measured on a 2-core AMD EPYC (AVX512-BF16), the
    U-Net's int8 request took 18.3 ms against 26.1 ms in f32, and its masks stay within the int8
    accuracy checks (``train_cli.py export --check``)."""
    if precision == "int8" and "BF16" in _ov_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return "bf16"
    return "f32"


def _mask_model(model, tta: str = "none"):
    """A copy of ``model`` with a second input, the output size, and one output: the uint8 class
    ids at that size (bilinear upsampling like ``F.interpolate(align_corners=False)``, then the
    argmax as a top-1). The logits are not an output of it: as one, the runtime lays all 19
    channels out for the caller on every request (2.7 ms of an FCN's 53 ms, measured on 2 cores).

    With ``tta="flip"`` the graph also does ``seg_core.inference.scores``' mirror-image averaging:
    the network runs on the batch and its mirror image, and the mean of the two softmax maps (the
    second mirrored back) is upsampled instead of the logits."""
    import openvino as ov
    import openvino.opset13 as ops

    _check_tta(tta)
    model = model.clone()
    result = model.get_results()[0]
    logits = result.input_value(0)
    if tta == "flip":
        def mirror(node):  # reverse the width axis
            return ops.slice(node, np.array([-1], np.int64), np.array([np.iinfo(np.int64).min], np.int64),
                             np.array([-1], np.int64), np.array([3], np.int64))

        old = model.get_parameters()[0]
        x = ops.parameter(old.get_partial_shape(), old.get_element_type(), name=old.get_friendly_name())
        both = ops.concat([x, mirror(x)], axis=0)
        for target in list(old.output(0).get_target_inputs()):
            target.replace_source_output(both.output(0))
        model.replace_parameter(0, x)
        halves = ops.split(ops.softmax(logits, axis=1), ops.constant(np.int64(0)), 2)
        logits = ops.multiply(ops.add(halves.output(0), mirror(halves.output(1))), ops.constant(np.float32(0.5)))
    size = ops.parameter([2], ov.Type.i64, name="out_size")
    up = ops.interpolate(logits, size, mode="linear", shape_calculation_mode="sizes",
                         coordinate_transformation_mode="half_pixel", axes=ops.constant(np.array([2, 3], np.int64)))
    top = ops.topk(up, ops.constant(np.int64(1)), axis=1, mode="max", sort="none", index_element_type=ov.Type.i32)
    ids = ops.convert(ops.squeeze(top.output(1), ops.constant(np.array([1], np.int64))), ov.Type.u8)
    model.add_parameters([size])
    model.add_results([ops.result(ids)])
    model.remove_result(result)
    return model


def find_fast(weights_dir: str | Path, name: str, source: Path | None = None) -> tuple[Path | None, str | None]:
    """The preferred fast file of model ``name`` in ``weights_dir``, or ``(None, why not)``.

    A file exported from another checkpoint than ``source`` (when given) is skipped as stale.
    """
    weights_dir = Path(weights_dir)
    source_hash = file_sha256(source) if source is not None and source.is_file() else None
    why = None
    for suffix in FAST_SUFFIXES:
        path = weights_dir / f"{name}{suffix}"
        if not path.is_file():
            continue
        if source_hash is not None:
            recorded = _recorded_source(path)
            if recorded != source_hash:
                why = f"{path.name} was exported from another checkpoint than {source.name}; re-export it"
                continue
        return path, None
    return None, why


def _recorded_source(path: Path) -> str | None:
    """The source hash an exported file records, read without compiling it."""
    try:
        if path.suffix == ".onnx":
            import onnx

            return _onnx_meta(onnx.load(str(path), load_external_data=False)).get("source_sha256")
        return _ov_meta(_ov_core().read_model(str(path))).get("source_sha256")
    except Exception:  # noqa: BLE001 - unreadable or runtime missing: treated as not matching
        return None
