"""The configs: ``ModelConfig``, saved inside every checkpoint, and ``TrainConfig``, a training run.

A checkpoint holds one ``ModelConfig`` as JSON, so a checkpoint alone rebuilds its model and knows
how to feed it (input size, mean/std, classes). Training settings and measured metrics ride along
as plain dicts for the model card. Each ``TrainConfig`` field made with ``option`` is also a flag of
``train_cli.py train``, with its default and help from here (no torch is imported for ``--help``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .palette import CLASS_NAMES
from .registry import ENCODERS, architecture

#: ImageNet statistics, hard-coded: smp's ``get_preprocessing_fn`` would reach for the hub.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Test-time augmentation: ``"none"`` (one pass) or ``"flip"`` (the photo and its mirror image).
TTA_MODES = ("none", "flip")
#: Bounds of what a config may ask for: a checkpoint is a stranger's file, and its config decides
#: how much memory the model takes before a single weight is read.
MAX_INPUT_SIDE = 2048
MAX_HEAD_CHANNELS = 4096
MAX_CLASSES = 256


@dataclass
class ModelConfig:
    arch: str = "unet"
    encoder: str | None = None  # None → the architecture's default (seg_core.registry)
    num_classes: int = len(CLASS_NAMES)
    class_names: tuple[str, ...] = CLASS_NAMES
    input_size: tuple[int, int] | None = (256, 256)  # (H, W) fed to the model; None = native size
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    encoder_weights: str | None = None  # what the encoder started from: None or "imagenet"
    head_channels: int = 512  # width of the FCN-8s conv "fc6/fc7" layers
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Every field checked before anything is built from it; each refusal is one sentence."""
        if self.encoder is None:
            self.encoder = architecture(self.arch).encoder
        architecture(self.arch)
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r} for {self.arch}; choose one of {', '.join(ENCODERS)}")
        _whole(self.num_classes, "num_classes", 1, MAX_CLASSES)
        _whole(self.head_channels, "head_channels", 1, MAX_HEAD_CHANNELS)
        self.class_names = tuple(self.class_names)
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if not all(isinstance(n, str) and len(n) <= 64 for n in self.class_names):
            raise ValueError("class names must be texts of at most 64 characters")
        if self.input_size is not None:
            if not (isinstance(self.input_size, (list, tuple)) and len(self.input_size) == 2):
                raise ValueError(f"input_size must be [height, width] or null, not {self.input_size!r}")
            for side in self.input_size:
                _whole(side, "input_size", 32, MAX_INPUT_SIDE)
            self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
            if any(s % 32 for s in self.input_size):
                raise ValueError(f"input_size {self.input_size} must be positive multiples of 32")
        for name, low in (("mean", -1.0), ("std", 0.0)):
            value = getattr(self, name)
            if not (isinstance(value, (list, tuple)) and len(value) == 3
                    and all(isinstance(v, (int, float)) and low < v <= 1.0 for v in value)):
                raise ValueError(f"{name} must be three numbers in ({low:g}, 1], one per colour channel, not {value!r}")
        self.mean, self.std = tuple(self.mean), tuple(self.std)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("the config is not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}")
        return cls(**data)


def _whole(value, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, not {value!r}")


def option(default, help: str, **cli):
    """A ``TrainConfig`` field that ``train_cli.py train`` offers as a flag. ``cli`` may hold
    ``type`` (a parser name of train_cli: positive, duration, fraction, int, float, str), ``choices``,
    ``group`` (flags of one group exclude each other) and ``flag`` (another flag name)."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class TrainConfig:
    arch: str = option("unet", "architecture", choices="archs")
    encoder: str | None = option(None, "smp encoder; none: the architecture's own", type="str", choices=ENCODERS)
    encoder_weights: str | None = option(None, "start the encoder from ImageNet weights (needs the network)",
                                         type="str", choices=("imagenet",))
    # Exactly one of epochs / time_budget (seconds).
    epochs: int | None = option(None, "train for this many epochs", type="positive", group="length")
    time_budget: float | None = option(
        None, "wall-clock budget (e.g. 120m): the LR and resolution schedule follow time, and the run ends "
              "with evaluated checkpoints inside it", type="duration", group="length")
    batch_size: int = option(16, "images per step (per process)", type="positive")
    lr: float = option(2e-3, "peak learning rate (AdamW, one-cycle)")
    weight_decay: float = option(1e-2, "AdamW weight decay")
    warmup: float = option(0.03, "fraction of the schedule spent warming the LR up", type="fraction")
    crop: int = option(128, "crop side during the low-resolution phase", type="positive")
    crop_scale: tuple[float, float] = option((0.5, 1.5), "random zoom range of the low-resolution phase")
    final_size: int = option(256, "image side of the last phase and the model's input size", type="positive")
    final_frac: float = option(0.25, "fraction of the schedule at --final-size", type="fraction")
    final_scale: tuple[float, float] = option((0.75, 1.25), "random zoom range of the last phase")
    # Robustness augmentation (seg_core.transforms.Augment): photometric on the photo, camera
    # degradations on the crop. The defaults augment as the runs before these flags did.
    brightness: float = option(0.25, "brightness jitter: factor in [1 - b, 1 + b]")
    contrast: float = option(0.25, "contrast jitter: factor in [1 - c, 1 + c]")
    saturation: float = option(0.25, "saturation jitter: factor in [1 - s, 1 + s]")
    hue: float = option(0.0, "hue rotation of up to this fraction of a turn either way")
    gamma: float = option(0.0, "gamma drawn log-uniformly from [1 / (1 + g), 1 + g]")
    aspect: float = option(0.0, "x/y zoom ratio drawn log-uniformly from [1 / (1 + a), 1 + a] (both phases)")
    blur_p: float = option(0.0, "chance of a blur per image, half Gaussian, half motion", type="fraction")
    blur_sigma: float = option(2.0, "largest Gaussian blur sigma in output pixels")
    motion_length: float = option(9.0, "longest motion-blur streak in output pixels")
    noise_p: float = option(0.0, "chance of Gaussian noise per image", type="fraction")
    noise_std: float = option(0.08, "largest noise std on the 0..1 scale")
    jpeg_p: float = option(0.0, "chance of JPEG re-compression per image", type="fraction")
    jpeg_quality: tuple[float, float] = option((10.0, 90.0), "JPEG quality range of the re-compression")
    dice_weight: float = option(0.5, "weight of the Dice term added to cross-entropy")
    class_weight_power: float = option(0.5, "class weights (median freq / freq) ** power; 0 turns them off")
    ema_decay: float = option(0.999, "EMA decay of the evaluated weights")
    seed: int = option(0, "random seed")
    eval_every: int = option(1, "evaluate every N epochs", type="positive")
    init: str | None = option(None, "start from this checkpoint (fine-tuning)", type="str")
    freeze_encoder_epochs: int = option(0, "keep the encoder frozen this many epochs")
    compile: bool = option(False, "torch.compile the model (helps on a GPU)")
    # GPU mode: evaluate and save on a timer instead of every epoch, no resume state, and a deadline
    # that ends an epochs run early (evaluated and saved) when the next epoch would not fit.
    eval_interval_s: float | None = option(None, "evaluate and save every this long (e.g. 30s) instead of "
                                                 "every epoch", type="duration")
    save_state: bool = option(True, "write no resume state (--resume is then impossible)", flag="--no-resume-state")
    deadline_s: float | None = option(None, "with --epochs: stop early, evaluated and saved, when the next "
                                            "epoch would end after this long", type="duration")
    limit: int | None = option(None, "use only the first N train pairs", type="positive")
    val_limit: int | None = option(None, "use only the first N val pairs", type="positive")
    val_select: bool = option(False, "evaluate and pick the best checkpoint on the seeded select half of val "
                                     "only (seg_core.data.val_halves), leaving the judge half unseen")
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.crop_scale, self.final_scale = tuple(self.crop_scale), tuple(self.final_scale)  # from JSON lists
        self.jpeg_quality = tuple(self.jpeg_quality)
