"""Runners: one interface over the backends that run a trained model (PyTorch, ONNX Runtime, OpenVINO).

A ``Runner`` takes a prepared batch (``seg_core.inference.model_input`` or ``single_input``: a
normalised float32 ``N x 3 x h x w`` array at the model's input size) and returns numpy:

    runner.masks(x, out_hw, tta)      # N x H x W uint8 class ids at out_hw
    runner.probabilities(x, tta)      # N x C x h x w float32 softmax at the model's resolution
    runner.masks_and_probabilities(x, out_hw, tta)   # both from one pass of the network
    runner.logits(x)                  # N x C x h x w float32

and carries ``config``, ``path``, ``label`` ("OpenVINO int8"), ``num_parameters`` and
``file_bytes``. ``load_runner(path)`` picks the backend from the file: ``.safetensors`` (or a
Hub folder, ``hf://``) runs in PyTorch, ``.onnx`` in ONNX Runtime, ``.xml`` in OpenVINO. The
OpenVINO runner, the apps' default, does the upsampling and the argmax (and mirror-image
averaging) inside its graph. Every exported file carries the ``ModelConfig`` JSON, the SHA-256 of
the checkpoint it came from and its precision (``seg_core.export`` writes them).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_model
from .config import TTA_MODES, ModelConfig
from .files import file_sha256
from .models import SegmentationNetwork, count_parameters

INPUT_NAME, OUTPUT_NAME = "image", "logits"
#: Suffixes of exported files, most preferred first (``weights/<name><suffix>``).
EXPORT_SUFFIXES = (".int8.xml", ".xml", ".int8.onnx", ".onnx")
META_KEYS = ("config", "source_sha256", "precision", "parameters", "calibration")


class RunnerError(ValueError):
    """An exported model file is missing, malformed, or its runtime is not installed."""


@runtime_checkable
class Runner(Protocol):
    """What every backend provides; see the module docstring."""

    config: ModelConfig
    path: Path | None
    label: str
    num_parameters: int
    file_bytes: int

    def logits(self, x) -> np.ndarray: ...

    def probabilities(self, x, tta: str = "none") -> np.ndarray: ...

    def masks(self, x, out_hw: tuple[int, int], tta: str = "none",
              valid_hw: tuple[int, int] | None = None) -> np.ndarray: ...

    def masks_and_probabilities(self, x, out_hw: tuple[int, int], tta: str = "none",
                                valid_hw: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]: ...


def check_tta(tta: str) -> None:
    if tta not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation {tta!r}; choose one of {TTA_MODES}")


def classes(scores: torch.Tensor) -> torch.Tensor:
    """``N x H x W`` argmax over the classes of ``N x C x H x W`` scores, taken channels-last:
    on the CPU, argmax over dim 1 of a contiguous NCHW tensor is about 10x slower."""
    return scores.contiguous(memory_format=torch.channels_last).argmax(1)


def upsampled_classes(scores: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """``N x H x W`` class ids at ``out_hw``: the scores upsampled bilinearly (unless already that
    size), then the argmax."""
    if tuple(scores.shape[-2:]) != tuple(out_hw):
        scores = F.interpolate(scores.float(), size=tuple(out_hw), mode="bilinear", align_corners=False)
    return classes(scores)


def model_file_bytes(path: str | Path | None) -> int:
    """Size on disk of a model file; an OpenVINO ``.xml`` counts with its ``.bin``."""
    if path is None:
        return 0
    path = Path(path)
    parts = (path, path.with_suffix(".bin")) if path.suffix == ".xml" else (path,)
    return sum(p.stat().st_size for p in parts if p.is_file())


class _TorchOps:
    """Masks and probabilities computed in torch from a backend's ``_logits`` (PyTorch, ONNX
    Runtime, and OpenVINO when the image was padded)."""

    config: ModelConfig

    def _logits(self, x) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, x) -> np.ndarray:
        return self._logits(x).float().cpu().numpy()

    def _scores(self, x, tta: str) -> torch.Tensor:
        """The logits, or with ``tta="flip"`` the mean of the softmax of ``x`` and of its mirror
        image, mirrored back (one pass on a batch of 2N; mmsegmentation's flip ``aug_test``)."""
        check_tta(tta)
        if tta == "none":
            return self._logits(x)
        x = torch.as_tensor(x)
        n = len(x)
        probs = self._logits(torch.cat([x, x.flip(-1)])).float().softmax(1)
        return (probs[:n] + probs[n:].flip(-1)) / 2

    def probabilities(self, x, tta: str = "none") -> np.ndarray:
        scores = self._scores(x, tta).float()
        return (scores.softmax(1) if tta == "none" else scores).cpu().numpy()

    def masks(self, x, out_hw, tta="none", valid_hw=None) -> np.ndarray:
        scores = self._scores(x, tta)
        if valid_hw is not None:
            scores = scores[..., : valid_hw[0], : valid_hw[1]]
        return upsampled_classes(scores, out_hw).to(torch.uint8).cpu().numpy()

    def masks_and_probabilities(self, x, out_hw, tta="none", valid_hw=None) -> tuple[np.ndarray, np.ndarray]:
        """The masks of ``masks`` and the probabilities of ``probabilities`` (cropped to
        ``valid_hw``), from one pass of the network."""
        scores = self._scores(x, tta).float()
        if valid_hw is not None:
            scores = scores[..., : valid_hw[0], : valid_hw[1]]
        probs = scores.softmax(1) if tta == "none" else scores
        return upsampled_classes(scores, out_hw).to(torch.uint8).cpu().numpy(), probs.cpu().numpy()


class TorchRunner(_TorchOps):
    """A ``SegmentationNetwork`` in PyTorch, on its device (bf16 autocast on a GPU). It also takes
    a tensor already on that device, so that evaluation during GPU training keeps its batches there."""

    def __init__(self, model: SegmentationNetwork, path: Path | None = None):
        self.model = model.eval()
        self.config = model.config
        self.path = Path(path) if path else None
        self.device = next(model.parameters()).device
        self.label = "PyTorch fp32"
        self.num_parameters = count_parameters(model)
        self.file_bytes = model_file_bytes(self.path)

    @torch.inference_mode()
    def _logits(self, x) -> torch.Tensor:
        x = torch.as_tensor(x).to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            return self.model(x)

    @torch.inference_mode()
    def masks(self, x, out_hw, tta="none", valid_hw=None) -> np.ndarray:
        return super().masks(x, out_hw, tta, valid_hw)

    @torch.inference_mode()
    def probabilities(self, x, tta: str = "none") -> np.ndarray:
        return super().probabilities(x, tta)

    @torch.inference_mode()
    def masks_and_probabilities(self, x, out_hw, tta="none", valid_hw=None) -> tuple[np.ndarray, np.ndarray]:
        return super().masks_and_probabilities(x, out_hw, tta, valid_hw)


def _as_input(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):  # an evaluation batch prepared in torch
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


class _Exported:
    """The metadata every exported file carries."""

    def __init__(self, path: Path, meta: dict[str, str], backend: str):
        if "config" not in meta:
            raise RunnerError(f"{path} carries no model config; export it with `train_cli.py export`")
        try:
            self.config = ModelConfig.from_json(meta["config"])
        except (ValueError, TypeError) as err:
            raise RunnerError(f"{path} has an invalid model config: {err}") from None
        self.path, self.meta, self.backend = path, meta, backend
        self.precision = meta.get("precision", "fp32")
        self.label = f"{backend} {self.precision}"
        self.num_parameters = int(meta.get("parameters") or 0)
        self.file_bytes = model_file_bytes(path)


class OnnxRunner(_Exported, _TorchOps):
    """An exported ``.onnx`` file in ONNX Runtime; upsampling and argmax in torch. One session
    already runs calls from several threads at once, so ``parallel`` needs nothing here."""

    def __init__(self, path: str | Path, threads: int | None = None, parallel: int = 1):
        try:
            import onnxruntime as ort
        except ImportError:
            raise RunnerError("onnxruntime is not installed (pip install -r requirements.txt)") from None
        path = Path(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - ORT raises its own exception types for bad files
            raise RunnerError(f"{path} is not a valid ONNX model: {type(err).__name__}: {str(err)[:200]}") from None
        super().__init__(path, dict(self.session.get_modelmeta().custom_metadata_map), "ONNX Runtime")

    def _logits(self, x) -> torch.Tensor:
        # InferenceSession.run is thread-safe.
        return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: _as_input(x)})[0])


_OV_CORE = None


def _ov_core():
    """One OpenVINO ``Core`` for the process (it owns the plugins and their thread pools)."""
    global _OV_CORE
    if _OV_CORE is None:
        import openvino as ov

        _OV_CORE = ov.Core()
    return _OV_CORE


def ov_meta(model) -> dict[str, str]:
    """The seg_core metadata ``seg_core.export.to_openvino`` wrote into a model's rt_info."""
    return {k: model.get_rt_info(["seg_core", k]).astype(str) for k in META_KEYS if model.has_rt_info(["seg_core", k])}


def onnx_meta(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props if p.key in META_KEYS}


class OpenVinoRunner(_Exported, _TorchOps):
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
            self._model = _ov_core().read_model(str(path))
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
        return _ov_core().compile_model(graph, "CPU", self._compile_config)

    def _request(self, kind: str):
        if not hasattr(self._local, kind):
            with self._lock:
                if kind not in self._compiled:
                    self._compiled[kind] = self._compile(kind)
            setattr(self._local, kind, self._compiled[kind].create_infer_request())
        return getattr(self._local, kind)

    def _logits(self, x) -> torch.Tensor:
        r = self._request("logits")
        r.infer({0: _as_input(x)})
        return torch.from_numpy(r.get_output_tensor(0).data.copy())

    def masks(self, x, out_hw, tta="none", valid_hw=None) -> np.ndarray:
        check_tta(tta)
        if valid_hw is not None and tuple(valid_hw) != tuple(np.shape(x)[-2:]):
            return super().masks(x, out_hw, tta, valid_hw)  # a padded image: crop before upsampling
        r = self._request(f"masks/{tta}")
        r.infer({0: _as_input(x), 1: np.asarray(out_hw, dtype=np.int64)})
        return r.get_output_tensor(0).data.copy()

    def probabilities(self, x, tta: str = "none") -> np.ndarray:
        check_tta(tta)
        r = self._request(f"probabilities/{tta}")
        r.infer({0: _as_input(x)})
        return r.get_output_tensor(0).data.astype(np.float32, copy=True)

    def masks_and_probabilities(self, x, out_hw, tta="none", valid_hw=None) -> tuple[np.ndarray, np.ndarray]:
        check_tta(tta)
        if valid_hw is not None and tuple(valid_hw) != tuple(np.shape(x)[-2:]):
            return super().masks_and_probabilities(x, out_hw, tta, valid_hw)
        r = self._request(f"both/{tta}")
        r.infer({0: _as_input(x), 1: np.asarray(out_hw, dtype=np.int64)})
        return r.get_output_tensor(0).data.copy(), r.get_output_tensor(1).data.astype(np.float32, copy=True)


def _float_precision(precision: str) -> str:
    """OpenVINO's precision for the layers an export keeps in float: f32 for an fp32 file, so that
    it matches PyTorch; bf16 for an int8 file where the CPU has bf16 instructions (faster, and its
    masks stay within ``train_cli.py export --check``'s accuracy checks; the model card has the
    figures)."""
    if precision == "int8" and "BF16" in _ov_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
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


def forward_latency(runner: Runner, repeats: int = 10) -> float:
    """Median seconds of one forward pass (``logits``) on one random image at the model's input
    size, after one warm-up pass: the per-model figure of ``benchmarks/bench_inference.py``."""
    h, w = runner.config.input_size or (256, 256)
    x = np.random.default_rng(0).standard_normal((1, 3, h, w), dtype=np.float32)
    runner.logits(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        runner.logits(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


#: How each kind of file is run; anything else is a PyTorch checkpoint (file, Hub folder, hf://).
LOADERS = {".onnx": OnnxRunner, ".xml": OpenVinoRunner}


def load_runner(source: str | Path, threads: int | None = None, device: str | torch.device = "cpu",
                arch: str | None = None, parallel: int = 1) -> Runner:
    """The runner of a model file, chosen by its suffix; ``arch`` guards against another
    architecture's file (``CheckpointError`` / ``RunnerError``). ``parallel``: inferences a server
    runs at once on the model, each on ``threads`` threads (exported files)."""
    loader = LOADERS.get(Path(str(source)).suffix)
    if loader is None:
        return TorchRunner(load_model(source, arch=arch, device=device),
                           None if str(source).startswith("hf://") else Path(source))
    if not Path(source).is_file():
        raise RunnerError(f"{source} does not exist")
    runner = loader(source, threads, parallel)
    if arch is not None and runner.config.arch != arch:
        raise RunnerError(f"{source} holds a {runner.config.arch} model, not {arch}")
    return runner


def find_exported(weights_dir: str | Path, name: str, source: Path | None = None) -> tuple[Path | None, str | None]:
    """The preferred exported file of model ``name`` in ``weights_dir``, or ``(None, why not)``.

    A file exported from another checkpoint than ``source`` (when given) is skipped as stale.
    """
    weights_dir = Path(weights_dir)
    source_hash = file_sha256(source) if source is not None and source.is_file() else None
    why = None
    for suffix in EXPORT_SUFFIXES:
        path = weights_dir / f"{name}{suffix}"
        if not path.is_file():
            continue
        if source_hash is not None and _recorded_source(path) != source_hash:
            why = f"{path.name} was exported from another checkpoint than {source.name}; re-export it"
            continue
        return path, None
    return None, why


def _recorded_source(path: Path) -> str | None:
    """The source hash an exported file records, read without compiling it."""
    try:
        if path.suffix == ".onnx":
            import onnx

            return onnx_meta(onnx.load(str(path), load_external_data=False)).get("source_sha256")
        return ov_meta(_ov_core().read_model(str(path))).get("source_sha256")
    except Exception:  # noqa: BLE001 - unreadable or runtime missing: treated as not matching
        return None
