"""An OpenVINO IR (``.xml`` + ``.bin``): ``OpenVinoRunner``, with upsampling, argmax and
mirror-image averaging compiled into derived graphs (``_head_graph``); one OpenVINO ``Core`` per
process (``ov_core``) and the seg_core metadata in a model's rt_info (``ov_meta``)."""

from __future__ import annotations

import copy
import dataclasses
import threading
from pathlib import Path

import numpy as np
import torch

from .base import META_KEYS, Exported, RunnerError, TorchOps, as_input, check_tta


_OV_CORE = None


def ov_core():
    """One OpenVINO ``Core`` for the process (it owns the plugins and their thread pools)."""
    global _OV_CORE
    if _OV_CORE is None:
        import openvino as ov

        _OV_CORE = ov.Core()
    return _OV_CORE


def ov_meta(model) -> dict[str, str]:
    """The seg_core metadata ``seg_core.export.to_openvino`` wrote into a model's rt_info."""
    return {k: model.get_rt_info(["seg_core", k]).astype(str) for k in META_KEYS if model.has_rt_info(["seg_core", k])}


class OpenVinoRunner(Exported, TorchOps):
    """An OpenVINO IR (``.xml`` + ``.bin``). Masks and probabilities come from graphs derived from
    the network, compiled on first use: the apps and ``eval`` ask only for masks without TTA.

    Upsampling and argmax run in the graph: handing 19-channel logits to PyTorch for them costs
    more than the int8 network itself, because the two thread pools fight."""

    def __init__(self, path: str | Path, threads: int | None = None, parallel: int = 1):
        try:
            import openvino  # noqa: F401 - only to say clearly when it is missing
        except ImportError:
            raise RunnerError("openvino is not installed (pip install -r requirements.txt)") from None
        path = Path(path)
        if not path.with_suffix(".bin").is_file():
            raise RunnerError(f"{path.with_suffix('.bin')} is missing: an OpenVINO model is an .xml and a .bin file")
        try:
            self._model = ov_core().read_model(str(path))
            meta = ov_meta(self._model)
            super().__init__(path, meta, "OpenVINO")
            meta["float_precision"] = _float_precision(self.precision)
            threads = threads or torch.get_num_threads()
            # One stream runs one inference at a time: calls from more threads would queue behind
            # it. A server running ``parallel`` inferences at once gets as many streams, each with
            # ``threads`` threads.
            self._compile_config = {"PERFORMANCE_HINT": "LATENCY" if parallel == 1 else "THROUGHPUT",
                                    "NUM_STREAMS": str(parallel), "INFERENCE_NUM_THREADS": str(threads * parallel),
                                    "INFERENCE_PRECISION_HINT": meta["float_precision"]}
            self._compiled = {"masks/none": self._compile("masks/none")}
        except RunnerError:
            raise
        except Exception as err:  # noqa: BLE001 - OpenVINO raises RuntimeError with long C++ traces
            raise RunnerError(f"{path} is not a valid OpenVINO model: {str(err).splitlines()[0][:200]}") from None
        self._lock = threading.Lock()
        self._local = threading.local()  # one infer request per thread: Streamlit and Gradio call from several

    def resized(self, input_hw: tuple[int, int]) -> "OpenVinoRunner":
        """This model with its input reshaped to ``input_hw`` (the scale probe feeds 384x384 to a
        256x256 export). Without the reshape OpenVINO takes a bigger input but computes garbage:
        an export's shapes are fixed."""
        other = copy.copy(self)
        other._model = self._model.clone()
        other._model.reshape({other._model.inputs[0]: [-1, 3, *input_hw]})
        other.config = dataclasses.replace(self.config, input_size=tuple(input_hw))
        other._compiled, other._lock, other._local = {}, threading.Lock(), threading.local()
        return other

    def _compile(self, kind: str):
        what, _, tta = kind.partition("/")
        graph = self._model if what == "logits" else _head_graph(self._model, what, tta)
        return ov_core().compile_model(graph, "CPU", self._compile_config)

    def _request(self, kind: str):
        if not hasattr(self._local, kind):
            with self._lock:
                if kind not in self._compiled:
                    self._compiled[kind] = self._compile(kind)
            setattr(self._local, kind, self._compiled[kind].create_infer_request())
        return getattr(self._local, kind)

    def _logits(self, x) -> torch.Tensor:
        r = self._request("logits")
        r.infer({0: as_input(x)})
        return torch.from_numpy(r.get_output_tensor(0).data.copy())

    def masks(self, x, out_hw, tta="none", valid_hw=None) -> np.ndarray:
        check_tta(tta)
        if valid_hw is not None and tuple(valid_hw) != tuple(np.shape(x)[-2:]):
            return super().masks(x, out_hw, tta, valid_hw)  # a padded image: crop before upsampling
        r = self._request(f"masks/{tta}")
        r.infer({0: as_input(x), 1: np.asarray(out_hw, dtype=np.int64)})
        return r.get_output_tensor(0).data.copy()

    def probabilities(self, x, tta: str = "none") -> np.ndarray:
        check_tta(tta)
        r = self._request(f"probabilities/{tta}")
        r.infer({0: as_input(x)})
        return r.get_output_tensor(0).data.astype(np.float32, copy=True)

    def masks_and_probabilities(self, x, out_hw, tta="none", valid_hw=None) -> tuple[np.ndarray, np.ndarray]:
        check_tta(tta)
        if valid_hw is not None and tuple(valid_hw) != tuple(np.shape(x)[-2:]):
            return super().masks_and_probabilities(x, out_hw, tta, valid_hw)
        r = self._request(f"both/{tta}")
        r.infer({0: as_input(x), 1: np.asarray(out_hw, dtype=np.int64)})
        return r.get_output_tensor(0).data.copy(), r.get_output_tensor(1).data.astype(np.float32, copy=True)


def _float_precision(precision: str) -> str:
    """OpenVINO's precision for the layers an export keeps in float: f32 for an fp32 file, so that
    it matches PyTorch; bf16 for an int8 file where the CPU has bf16 instructions (faster, and its
    masks stay within ``train_cli.py export --check``'s accuracy checks; the model card has the
    figures)."""
    if precision == "int8" and "BF16" in ov_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return "bf16"
    return "f32"


def _head_graph(model, what: str, tta: str = "none"):
    """A copy of ``model`` whose output is, for ``what="masks"``, the uint8 class ids at a size
    given as a second input (bilinear upsampling like ``F.interpolate(align_corners=False)``,
    then a top-1); for ``what="probabilities"`` the softmax at the model's resolution; for
    ``what="both"`` the two, in that order. The logits are not an output of the masks graph: as
    one, the runtime would lay all 19 channels out for the caller on every request.

    With ``tta="flip"`` the network runs on the batch and its mirror image, and the mean of the two
    softmax maps (the second mirrored back) replaces the logits, as in ``TorchRunner``."""
    import openvino as ov
    import openvino.opset13 as ops

    check_tta(tta)
    model = model.clone()
    result = model.get_results()[0]
    scores = result.input_value(0)
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
        halves = ops.split(ops.softmax(scores, axis=1), ops.constant(np.int64(0)), 2)
        scores = ops.multiply(ops.add(halves.output(0), mirror(halves.output(1))), ops.constant(np.float32(0.5)))
    outputs = []
    if what in ("masks", "both"):
        size = ops.parameter([2], ov.Type.i64, name="out_size")
        up = ops.interpolate(scores, size, mode="linear", shape_calculation_mode="sizes",
                             coordinate_transformation_mode="half_pixel", axes=ops.constant(np.array([2, 3], np.int64)))
        top = ops.topk(up, ops.constant(np.int64(1)), axis=1, mode="max", sort="none", index_element_type=ov.Type.i32)
        outputs.append(ops.convert(ops.squeeze(top.output(1), ops.constant(np.array([1], np.int64))), ov.Type.u8))
        model.add_parameters([size])
    if what in ("probabilities", "both"):
        outputs.append(scores if tta == "flip" else ops.softmax(scores, axis=1))
    model.add_results([ops.result(out) for out in outputs])
    model.remove_result(result)
    return model
