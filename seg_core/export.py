"""Build-time export of checkpoints for the runners: ONNX, int8 quantisation, OpenVINO IR.

    export_onnx(model, "unet.onnx")                       # fp32, batch axis dynamic
    quantize_onnx("unet.onnx", "unet.int8.onnx", images)  # static, per-channel QDQ, calibrated
    to_openvino("unet.int8.onnx", "unet.int8.xml")        # OpenVINO IR (.xml + .bin)
    export_checkpoint("weights/unet.safetensors", ...)    # all of it, swapped in atomically

Every exported file carries the ``ModelConfig`` JSON (ONNX metadata / OpenVINO rt_info), the
SHA-256 of the safetensors checkpoint it came from (so a retrained checkpoint never runs with a
stale int8 copy) and its precision; ``seg_core.runners`` reads them back.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .config import ModelConfig
from .inference import model_input
from .models import SegmentationNetwork, count_parameters
from .files import file_sha256
from .runners import INPUT_NAME, OUTPUT_NAME, RunnerError, onnx_meta

OPSET = 17
#: ONNX node-name parts kept in float by default: the layers that make the class scores (the
#: FCN-8s score, upsampling and skip-sum layers, U-Net's segmentation head). In int8 they flip the
#: argmax where two classes are close; in float the masks agree with PyTorch on more pixels at
#: about the same speed (the model card has the measurement).
DEFAULT_KEEP_FLOAT = ("/net/head/score", "/net/head/up", "/net/head/Add", "/net/segmentation_head/")
#: Calibration images run per chunk (bounds the memory of int8 calibration; see ``quantize_onnx``).
CALIB_CHUNK = 16
FORMATS = {"onnx": ".onnx", "openvino": ".xml"}


def export_onnx(model: SegmentationNetwork, path: str | Path, source: str | Path | None = None) -> Path:
    """fp32 ONNX with a dynamic batch axis and the model's fixed ``input_size``."""
    import onnx

    cfg = model.config
    if cfg.input_size is None:
        raise RunnerError("export needs a model with a fixed input_size (its config has none)")
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
        raise RunnerError(f"unknown calibration method {method!r}; choose one of {sorted(methods)}")
    if not calibration:
        raise RunnerError("int8 quantisation needs calibration images")
    # Calibrate in chunks (ONNX Runtime's "strided" calibration): every activation of every image
    # in a chunk is held in memory (about 150 MB per 256x256 image for FCN-ResNet50); ranges and
    # histograms are merged from chunk to chunk.
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
    meta = onnx_meta(proto)
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
    meta = onnx_meta(onnx.load(str(onnx_path), load_external_data=False))
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


def export_checkpoint(source: str | Path, out_dir: str | Path, fmt: str = "openvino", int8: bool = False,
                      calib_images: torch.Tensor | None = None, calib_count: int = 128, calib_method: str = "minmax",
                      keep_float: tuple[str, ...] = DEFAULT_KEEP_FLOAT) -> Path:
    """Export one checkpoint to ``out_dir/<arch>[.int8].{xml,onnx}``. Everything is built in a temp
    folder beside the target and swapped in at the end, so a failed export leaves the old file;
    an OpenVINO ``.xml`` + ``.bin`` pair is replaced only once both are written."""
    from .checkpoint import load_model

    if fmt not in FORMATS:
        raise RunnerError(f"unknown export format {fmt!r}; choose one of {sorted(FORMATS)}")
    if int8 and calib_images is None:
        raise RunnerError("int8 quantisation needs calibration images")
    model = load_model(source)
    cfg = model.config
    out_dir = Path(out_dir)
    target = out_dir / f"{cfg.arch}{'.int8' if int8 else ''}{FORMATS[fmt]}"
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "fp32.onnx", source=source)
        if int8:
            batches = calibration_batches(calib_images, cfg, count=calib_count)
            onnx_path = quantize_onnx(onnx_path, Path(tmp) / "int8.onnx", batches, keep_float=keep_float,
                                      method=calib_method)
        if fmt == "openvino":
            to_openvino(onnx_path, Path(tmp) / "model.xml")
            for ext in (".xml", ".bin"):
                (Path(tmp) / f"model{ext}").replace(target.with_suffix(ext))
        else:
            onnx_path.replace(target)
    return target
