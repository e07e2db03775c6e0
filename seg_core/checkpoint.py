"""Checkpoints as safetensors with the model config in the file's metadata; no pickle anywhere.

``save_model`` writes ``{weights, metadata["config"] = ModelConfig JSON}``; ``load_model`` reads it
back and rebuilds the model from the config alone. ``load_model`` also accepts a folder holding
``model.safetensors`` (a Hub repo layout) and ``hf://org/name`` to pull such a folder from the
Hugging Face Hub; ``push_to_hub`` uploads one. Every malformed input raises ``CheckpointError``
with one sentence that says what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import ModelConfig
from .files import atomic_path
from .models import SegmentationNetwork, build_model

CONFIG_KEY = "config"
HUB_WEIGHTS = "model.safetensors"
HUB_PREFIX = "hf://"


class CheckpointError(ValueError):
    """A checkpoint file is missing, malformed, or does not match what was asked for."""


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> Path:
    """Write safetensors atomically (``seg_core.files.atomic_path``)."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    return Path(path)


def read_tensors(path: str | Path, tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (none with ``tensors=False``: the metadata alone) and metadata of a file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            found = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a valid safetensors checkpoint (corrupt or truncated?): {err}") from None
    return found, metadata


def save_model(model: SegmentationNetwork, path: str | Path, half: bool = False) -> Path:
    """Save weights (fp16 if ``half``) with the model's config in the metadata."""
    state = model.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return save_tensors(state, path, {CONFIG_KEY: model.config.to_json(), "format": "pt"})


def record_metrics(path: str | Path, metrics: dict) -> ModelConfig:
    """Rewrite a checkpoint file with ``metrics`` as its config's metrics (tensors unchanged): for
    weights that no training run measured, such as a weight-space interpolation."""
    tensors, metadata = read_tensors(path)
    cfg = _config_from(metadata, path)
    cfg.metrics = dict(metrics)
    save_tensors(tensors, path, {**metadata, CONFIG_KEY: cfg.to_json()})
    return cfg


def read_config(path: str | Path) -> ModelConfig:
    """The config stored in a checkpoint, without loading its weights."""
    _, metadata = read_tensors(_resolve(path), tensors=False)
    return _config_from(metadata, path)


def _config_from(metadata: dict[str, str], path) -> ModelConfig:
    if CONFIG_KEY not in metadata:
        raise CheckpointError(f"{path} has no model config in its metadata; it was not written by seg_core")
    try:
        return ModelConfig.from_json(metadata[CONFIG_KEY])
    except (ValueError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{path} has an invalid model config: {err}") from None


def _resolve(source: str | Path) -> Path:
    """A local checkpoint path for a file, a Hub-layout folder, or ``hf://org/name[@revision]``."""
    text = str(source)
    if text.startswith(HUB_PREFIX):
        from huggingface_hub import snapshot_download

        repo, _, revision = text[len(HUB_PREFIX):].partition("@")
        try:
            folder = snapshot_download(repo, revision=revision or None, allow_patterns=[HUB_WEIGHTS, "*.md", "*.json"])
        except Exception as err:  # network, auth, missing repo: one sentence for the user
            raise CheckpointError(f"could not download {text} from the Hugging Face Hub: {type(err).__name__}: {err}") from None
        return Path(folder) / HUB_WEIGHTS
    path = Path(source)
    return path / HUB_WEIGHTS if path.is_dir() else path


def load_model(source: str | Path, arch: str | None = None, device: str | torch.device = "cpu") -> SegmentationNetwork:
    """Rebuild a model from a checkpoint alone (file, folder or ``hf://``), in eval mode, fp32.

    ``arch`` (optional) guards against loading another architecture's checkpoint.
    """
    path = _resolve(source)
    cfg = read_config(path)  # checked (ModelConfig's bounds) before a tensor is read or a layer built
    if arch is not None and cfg.arch != arch:
        raise CheckpointError(f"{path} holds a {cfg.arch} model, not {arch}")
    tensors, _ = read_tensors(path)
    cfg.encoder_weights = None  # the weights come from the file, never from the network
    try:
        model = build_model(cfg)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(f"{path} does not match a {cfg.arch}/{cfg.encoder} model: {first}") from None
    return model.to(device).eval()


def write_hub_folder(model: SegmentationNetwork, folder: str | Path, card: str | None = None) -> Path:
    """Lay a model out as a Hub repo folder: ``model.safetensors``, ``config.json``, ``README.md``."""
    folder = Path(folder)
    save_model(model, folder / HUB_WEIGHTS, half=True)
    (folder / "config.json").write_text(json.dumps(json.loads(model.config.to_json()), indent=2))
    (folder / "README.md").write_text(card or f"# {model.config.arch}\n\nCityscapes segmentation model (seg_core).\n")
    return folder


def push_to_hub(model: SegmentationNetwork, repo_id: str, card: str | None = None, private: bool = False,
                token: str | None = None) -> str:
    """Upload a model to a Hub repo (created if missing); returns the repo URL."""
    import tempfile

    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        api.upload_folder(repo_id=repo_id, folder_path=str(write_hub_folder(model, tmp, card)))
    return str(url)
