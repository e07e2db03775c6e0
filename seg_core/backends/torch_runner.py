"""A checkpoint in PyTorch: ``TorchRunner`` (also what training evaluates with)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..models import SegmentationNetwork, count_parameters
from .base import TorchOps, model_file_bytes


class TorchRunner(TorchOps):
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
