"""Our FCN-8s head (Long, Shelhamer & Darrell, 2015), and ``FCN8s``: that head on any smp encoder.

The classifier's fully connected layers become convolutions ("fc6" 3x3, "fc7" 1x1) and a 1x1 score
layer; the stride-32 scores are upsampled by a transposed convolution initialised to bilinear
interpolation, *summed* with 1x1 scores of the stride-16 features, upsampled again, summed with
scores of the stride-8 features, and upsampled x8 to the input resolution. All three transposed
convolutions stay learnable, as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Weights ``(C, C, k, k)`` that make ``ConvTranspose2d`` upsample each channel bilinearly."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    filt = filt1d[:, None] * filt1d[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt
    return weight


def upsample_layer(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A transposed convolution that scales H and W by exactly ``factor``, bilinear at init."""
    layer = nn.ConvTranspose2d(
        channels, channels, kernel_size=2 * factor, stride=factor, padding=factor // 2, bias=False
    )
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return layer


class FCN8sHead(nn.Module):
    """Scores from the stride-8, -16 and -32 encoder features, fused FCN-8s style."""

    def __init__(self, encoder_channels: tuple[int, ...], num_classes: int, head_channels: int = 512,
                 dropout: float = 0.1) -> None:
        super().__init__()
        c8, c16, c32 = encoder_channels[-3:]
        self.fc = nn.Sequential(  # fc6 / fc7 of the classifier, as convolutions
            nn.Conv2d(c32, head_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(head_channels),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(head_channels, head_channels, 1, bias=False),
            nn.BatchNorm2d(head_channels),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )
        self.score32 = nn.Conv2d(head_channels, num_classes, 1)
        self.score16 = nn.Conv2d(c16, num_classes, 1)
        self.score8 = nn.Conv2d(c8, num_classes, 1)
        # The skip scores start at zero so the net begins as FCN-32s and learns to use the skips.
        for layer in (self.score16, self.score8):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.up32 = upsample_layer(num_classes, 2)
        self.up16 = upsample_layer(num_classes, 2)
        self.up8 = upsample_layer(num_classes, 8)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        f8, f16, f32 = features[-3:]
        x = self.up32(self.score32(self.fc(f32))) + self.score16(f16)
        x = self.up16(x) + self.score8(f8)
        return self.up8(x)


class FCN8s(nn.Module):
    """An smp encoder (``vgg16_bn``, ``resnet50``, ...) with the FCN-8s head."""

    def __init__(self, encoder: str, num_classes: int, encoder_weights: str | None, head_channels: int):
        super().__init__()
        import segmentation_models_pytorch as smp

        self.encoder = smp.encoders.get_encoder(encoder, in_channels=3, depth=5, weights=encoder_weights)
        self.head = FCN8sHead(self.encoder.out_channels, num_classes, head_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))
