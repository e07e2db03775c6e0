"""The weights a running app serves: a pinned Hub model repo, or the local folder.

``weights_dir()`` is where both apps get their weights: ``SEG_WEIGHTS_REPO`` (+ the commit in
``SEG_WEIGHTS_REVISION``) downloaded with ``snapshot_download``, or the local folder
(``SEG_WEIGHTS_DIR``, default ``weights/``) when unset or offline. A missing repo, revision or
checkpoint raises ``WeightsError`` with one sentence. ``train_cli.py deploy-space`` sets the two
variables (``seg_core.space``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from . import settings
from .registry import ARCH_NAMES

CHECKPOINTS = tuple(f"{name}.safetensors" for name in ARCH_NAMES)
#: What an app downloads at start-up: the checkpoints, the files exported from them, the ensemble,
#: the corruption benchmark's results (the Stress test draws them).
STARTUP_ALLOW = ["*.safetensors", "*.xml", "*.bin", "*.onnx", "ensemble.json", "corruption_bench.json", "README.md"]


class WeightsError(Exception):
    """The configured weights cannot be had; the message says which and why, in one sentence."""


@dataclass(frozen=True)
class WeightsSource:
    folder: Path
    label: str  # what a page may show: ``hf://org/name@rev`` or the local folder
    note: str | None = None  # e.g. why the Hub repo was not used


def weights_source() -> WeightsSource:
    """Where the apps' weights come from now (see the module docstring); raises ``WeightsError``."""
    try:
        repo, revision = settings.weights_repo(), settings.weights_revision()
    except settings.SettingsError as err:
        raise WeightsError(str(err)) from None
    local = settings.local_weights_dir()
    if repo is None:
        return WeightsSource(local, str(local))
    label = f"hf://{repo}" + (f"@{revision}" if revision else "")
    try:
        folder = _download(repo, revision)
    except _Offline as err:
        return WeightsSource(local, str(local), f"{label} is not reachable and not in the cache ({err}); "
                                                f"serving the local weights instead")
    if not any((folder / name).is_file() for name in CHECKPOINTS):
        raise WeightsError(f"the weights repo {label} (SEG_WEIGHTS_REPO) holds none of {', '.join(CHECKPOINTS)}; "
                           "push a weights folder with: python train_cli.py deploy-space ORG/SPACE --weights-repo "
                           f"{repo}")
    return WeightsSource(folder, label)


def weights_dir() -> Path:
    """The weights folder both apps load (``Predictor.from_dir``); raises ``WeightsError``."""
    return weights_source().folder


class _Offline(Exception):
    pass


@functools.lru_cache(maxsize=8)  # once per process and pin: apps ask at every rerun
def _download(repo: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, HFValidationError,
                                        LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError)

    where = f"the weights repo {repo} (SEG_WEIGHTS_REPO)"
    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=STARTUP_ALLOW))
    except HFValidationError:
        raise WeightsError(f"SEG_WEIGHTS_REPO={repo!r} is not a Hub repo id like org/name") from None
    except RepositoryNotFoundError:  # also a gated repo, or a private one without a token
        raise WeightsError(f"{where} does not exist on the Hugging Face Hub, or is private and no token "
                           "with access to it is set (HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise WeightsError(f"{where} has no revision {revision!r} (SEG_WEIGHTS_REVISION)") from None
    except LocalEntryNotFoundError as err:  # offline, or the Hub unreachable, and nothing cached
        raise _Offline(str(err).splitlines()[0]) from None
    except EntryNotFoundError as err:
        raise WeightsError(f"a file of {where} at {revision or 'main'} is missing: {first_line(err)}") from None
    except HfHubHTTPError as err:
        raise WeightsError(f"the Hugging Face Hub refused to send {where}: {first_line(err)}") from None


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
