"""A user's own checkpoint beside the shipped three: where it may come from, and what it must be.

A user who fine-tuned a model (``train_cli.py train --init``) can add it to the comparison from a
local ``.safetensors`` file or a Hub repo, ``hf://org/name[@revision]`` (the repo layout of
``push_to_hub``). It must be a safetensors checkpoint of one of the three architectures, no larger
than ``MAX_BYTES``. In public mode (``seg_core.settings.public_mode``, a deployed Space) visitors
may only add the models the deployer listed in ``SEG_EXTRA_MODELS``: a public server never opens a
path or a repo a visitor typed. Every refusal is an ``ExtraModelError`` with one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import settings
from .checkpoint import HUB_PREFIX, HUB_WEIGHTS, CheckpointError
from .inference import Predictions, predict_many
from .registry import display_name
from .runners import TorchRunner, load_runner

MAX_BYTES = 256 * 2**20  # FCN-ResNet50 in fp32 is 128 MiB; twice that is no checkpoint of ours


class ExtraModelError(ValueError):
    """A model that cannot be added; the message says why."""


@dataclass
class ExtraModel:
    source: str  # what the user gave: a path or hf://org/name@rev
    runner: TorchRunner

    @property
    def label(self) -> str:
        """A short name for a page: the arch and where it came from (a file name, never a folder)."""
        return f"{display_name(self.runner.config.arch)} ({source_name(self.source)})"


def source_name(source: str) -> str:
    """What a page may show of a source: an ``hf://`` id as is, a path by its file name only."""
    return source if source.startswith(HUB_PREFIX) else Path(source).name


def check_suffix(file_name: str, shown: str | None = None) -> None:
    """Refuse a file that is not safetensors by its name (``shown``: what the sentence calls it),
    so that an upload is refused before it is stored."""
    if Path(file_name).suffix != ".safetensors":
        raise ExtraModelError(f"{shown or file_name} is not a .safetensors checkpoint (no pickle files are read)")


def check_size(name: str, size: int, max_bytes: int | None = None) -> None:
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    if size > max_bytes:
        raise ExtraModelError(f"{name} is {size / 2**20:.0f} MiB; the limit is {max_bytes / 2**20:.0f} MiB")


def load_extra_model(source: str, public: bool | None = None, max_bytes: int | None = None) -> ExtraModel:
    """Load a user's checkpoint for the comparison (see the module docstring); raises ``ExtraModelError``.

    In public mode ``source`` is one of ``SEG_EXTRA_MODELS``, or its ``source_name``."""
    source = str(source).strip()
    if settings.public_mode() if public is None else public:
        offered = {source_name(s): s for s in settings.extra_models()}
        if source not in offered.values():
            if source not in offered:
                raise ExtraModelError(f"{source_name(source)} is not offered here; this server adds only the models "
                                      f"it lists (offered: {', '.join(offered) or 'none'})")
            source = offered[source]
    name = source_name(source)
    path = _download(source) if source.startswith(HUB_PREFIX) else Path(source).expanduser()
    check_suffix(path.name, name)
    if not path.is_file():
        raise ExtraModelError(f"no checkpoint {name} (a file, or model.safetensors of the repo)")
    check_size(name, path.stat().st_size, max_bytes)
    try:  # the arch comes from the file's config, and build_model refuses any but the three
        return ExtraModel(source, load_runner(path))
    except CheckpointError as err:  # its message names the file by its path: show the name only
        why = str(err).replace(f"{path}: ", "").replace(str(path), "it")
        raise ExtraModelError(f"cannot use {name}: {why}") from None


def source_key(source: str) -> str:
    """What a loaded model is cached by: a local file by its path, size and modification time (a file
    written again is loaded again), an ``hf://`` id or a listed name as it is."""
    path = Path(source).expanduser()
    if source.startswith(HUB_PREFIX) or not path.is_file():
        return source
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def predict_extra(extras: list[ExtraModel], image, tta: str = "none", confidence: bool = False) -> Predictions:
    """The masks of a user's models for one image, each under its ``label``: apart from the shipped
    three, so adding one never recomputes them, and never part of their ensemble."""
    return predict_many({m.label: m.runner for m in extras}, image, tta, confidence)


def _download(source: str) -> Path:
    """The ``model.safetensors`` of ``hf://org/name[@revision]``, downloaded alone (nothing else)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    repo, _, revision = source[len(HUB_PREFIX):].partition("@")
    try:
        folder = snapshot_download(repo, revision=revision or None, allow_patterns=[HUB_WEIGHTS])
    except HFValidationError:
        raise ExtraModelError(f"{source} is not hf://org/name[@revision]") from None
    except (HfHubHTTPError, LocalEntryNotFoundError) as err:  # missing repo or revision, offline
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExtraModelError(f"could not download {source}: {type(err).__name__}: {first}") from None
    return Path(folder) / HUB_WEIGHTS
