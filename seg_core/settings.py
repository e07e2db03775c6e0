"""Every environment variable the apps and the CLI read, with its default, in one place.

One rule for all of them: a variable that is unset, empty or only spaces takes its default, so a
deployment can blank a setting (``SEG_WEIGHTS_DIR=``) without deleting it. Values are read at each
call, never cached here, so tests and long-running apps see a changed environment.

- ``SEG_DATA_DIR``: a folder of labelled pairs for the galleries and the val pages (default: the
  Cityscapes val split beside the repository when it is there, never inside it (licence), and never
  in public mode; else the KITTI scenes shipped in ``examples/``, as on a Space: ``data_dir``).
- ``SEG_WEIGHTS_DIR``: the local weights folder (default ``weights/`` of the repository).
- ``SEG_WEIGHTS_REPO`` / ``SEG_WEIGHTS_REVISION``: a Hub model repo (``org/name``) and a commit
  to take the weights from instead (``seg_core.served_weights.weights_dir``); the deploy command sets both.
- ``SEG_PUBLIC``: public mode (no server paths shown, no folder box); on by default where
  ``SPACE_ID`` is set, i.e. on a Hugging Face Space, so a deployed app is public even if the
  variable is lost. ``SEG_PUBLIC=0`` turns it off there.
- ``SEG_BACKEND``: ``auto`` (the fastest exported file of each model) or ``pytorch``.
- ``SEG_INFER_WORKERS`` / ``SEG_INFER_THREADS``: inferences the Gradio app runs at once, and CPU
  threads for each (default 1 at a time on all threads).
- ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``: where ``python gradio_app.py`` listens (default
  127.0.0.1:7860; a Space sets 0.0.0.0). Gradio's own names, so a Space's settings apply unchanged.
- ``SEG_BODY_DEADLINE_S``: seconds a client of ``/v1/segment`` has to send its body (default 20).
- ``SEG_EXTRA_MODELS``: comma-separated checkpoints (paths or ``hf://org/name@rev``) that visitors
  of a public server may add to the comparison (``seg_core.extra_models``); none by default.
- ``SEG_EXAMPLES_CACHE``: where the Gradio app crops its example photos (default: the temp folder).
- ``SEG_CACHE_DIR``: where per-image scores of a folder are cached (default ``~/.cache/seg-workbench``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The Cityscapes pairs beside the repository (never inside it: licence), with train/ and val/.
DATA_ROOT = ROOT.parent / "shared" / "data" / "cityscapes_pairs"
DEFAULT_DATA_DIR = DATA_ROOT / "val"
#: 16 labelled KITTI scenes that may be shown publicly (CC BY-NC-SA 3.0, ``examples/ATTRIBUTION.md``).
EXAMPLES_DIR = ROOT / "examples"
DEFAULT_WEIGHTS_DIR = ROOT / "weights"
BACKENDS = ("auto", "pytorch")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class SettingsError(ValueError):
    """An environment variable with a value we cannot use; the message names it."""


def env(name: str) -> str | None:
    """The variable's value, stripped; ``None`` when it is unset or blank (the one empty-value rule)."""
    value = os.environ.get(name, "").strip()
    return value or None


def flag(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise SettingsError(f"{name}={value!r} is not a yes/no value; use 1 or 0")


def data_dir() -> Path:
    """Where every page finds its labelled scenes: ``SEG_DATA_DIR``; else the Cityscapes val pairs
    beside the repository; where those are absent, or in public mode (they may not be published),
    the KITTI scenes of ``examples/``."""
    explicit = env("SEG_DATA_DIR")
    if explicit:
        return Path(explicit)
    if public_mode():  # only what we may publish, unless the deployer names a folder
        return EXAMPLES_DIR
    return DEFAULT_DATA_DIR if DEFAULT_DATA_DIR.is_dir() else EXAMPLES_DIR


def is_examples(folder: str | Path) -> bool:
    """True when ``folder`` is the shipped KITTI set: the pages then credit it and call it small."""
    return Path(folder).resolve() == EXAMPLES_DIR.resolve()


def local_weights_dir() -> Path:
    """The weights folder on this machine; ``seg_core.served_weights.weights_dir`` is what the apps load."""
    return Path(env("SEG_WEIGHTS_DIR") or DEFAULT_WEIGHTS_DIR)


def weights_repo() -> str | None:
    return env("SEG_WEIGHTS_REPO")


def weights_revision() -> str | None:
    revision = env("SEG_WEIGHTS_REVISION")
    if revision and not weights_repo():
        raise SettingsError("SEG_WEIGHTS_REVISION is set but SEG_WEIGHTS_REPO is not; set both, or neither")
    return revision


def public_mode() -> bool:
    """True on a deployed Space: the apps then show no server paths and take no folder names."""
    return flag("SEG_PUBLIC", default=env("SPACE_ID") is not None)


def backend() -> str:
    value = (env("SEG_BACKEND") or "auto").lower()
    if value not in BACKENDS:
        raise SettingsError(f"SEG_BACKEND={value!r} is not one of {', '.join(BACKENDS)}")
    return value


def cache_dir() -> Path:
    return Path(env("SEG_CACHE_DIR") or Path.home() / ".cache" / "seg-workbench")


def examples_cache() -> Path:
    return Path(env("SEG_EXAMPLES_CACHE") or Path(tempfile.gettempdir()) / "seg_gradio_examples")


def positive_int(name: str, default: int | None) -> int | None:
    value = env(name)
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise SettingsError(f"{name}={value!r} is not a whole number of at least 1")
    return int(value)


def infer_workers() -> int:
    return positive_int("SEG_INFER_WORKERS", 1)


def infer_threads() -> int | None:
    return positive_int("SEG_INFER_THREADS", None)


def server_name() -> str:
    return env("GRADIO_SERVER_NAME") or "127.0.0.1"


def server_port() -> int:
    return positive_int("GRADIO_SERVER_PORT", 7860)


def extra_models() -> list[str]:
    return [s.strip() for s in (env("SEG_EXTRA_MODELS") or "").split(",") if s.strip()]


def body_deadline_s() -> int:
    return positive_int("SEG_BODY_DEADLINE_S", 20)
