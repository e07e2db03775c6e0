"""An exported ``.onnx`` file in ONNX Runtime: ``OnnxRunner``, and ``onnx_meta`` (the seg_core
metadata an ONNX file carries)."""

from __future__ import annotations

from pathlib import Path

import torch

from .base import INPUT_NAME, META_KEYS, OUTPUT_NAME, Exported, RunnerError, TorchOps, as_input


class OnnxRunner(Exported, TorchOps):
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
        return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: as_input(x)})[0])


def onnx_meta(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props if p.key in META_KEYS}
