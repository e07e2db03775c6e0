"""What every ``train_cli.py`` command shares: the user-error type, flag parsers (durations,
positive counts, fractions), the flags built from a config dataclass, and the checks and progress
bars the handlers run before and during their work."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import sys
from pathlib import Path

from seg_core import settings
from seg_core.registry import ARCH_NAMES

DEFAULT_DATA = settings.DATA_ROOT
#: The repository root (train_cli.py's folder): the default weights folder and campaign repo.
REPO = Path(__file__).resolve().parent.parent


class UsageError(Exception):
    """A user error: printed as one line, exit code 2."""


def parse_duration(text: str) -> float:
    """'90s', '45m', '2h', '1h30m' or plain seconds → seconds."""
    m = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or not m or not any(m.groups()):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use e.g. 90s, 45m, 2h or 1h30m")
    h, mnt, s = (float(g) if g else 0.0 for g in m.groups())
    total = h * 3600 + mnt * 60 + s
    if total <= 0:
        raise argparse.ArgumentTypeError("the duration must be positive")
    return total


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def default_val(data: Path) -> Path | None:
    """The val split next to a train folder or pack (``.../train`` → ``.../val``)."""
    if data.suffix == ".npz":
        candidate = data.with_name(data.name.replace("train", "val"))
    else:
        candidate = data.parent / "val"
    return candidate if candidate != data and candidate.exists() else None


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


PARSERS = {"positive": positive_int, "duration": parse_duration, "fraction": fraction, "int": int, "float": float,
           "str": str}
CHOICES = {"archs": ARCH_NAMES}


def add_config_flags(parser: argparse.ArgumentParser, cls) -> None:
    """One flag per field of the dataclass ``cls`` made with ``seg_core.config.option``: its name
    (``--final-size``), default, help, parser and choices all come from the field."""
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        if "help" not in meta:
            continue
        target = parser
        if "group" in meta:
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_mutually_exclusive_group()
            target = groups[meta["group"]]
        kw: dict = {"dest": f.name, "default": f.default, "help": meta["help"]}
        if isinstance(f.default, bool):
            kw["action"] = "store_false" if f.default else "store_true"
        elif isinstance(f.default, tuple):
            kw.update(nargs=len(f.default), type=float, metavar=("LOW", "HIGH"))
        else:
            kw["type"] = PARSERS[meta.get("type", type(f.default).__name__)]
        if "choices" in meta:
            kw["choices"] = CHOICES.get(meta["choices"], meta["choices"])
        target.add_argument(meta.get("flag", "--" + f.name.replace("_", "-")), **kw)


def add_engine_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="'ray': spread the files over a Ray cluster (pip install -e \".[ray]\"; docs/ray.md); "
                             "the same outputs, and a rerun skips what is done")
    parser.add_argument("--address", default=None,
                        help="with --engine ray: the cluster, 'auto' or ray://host:port (default: $RAY_ADDRESS, "
                             "else a local Ray started for the run)")


def check_writable(out: Path) -> None:
    """Fail before training when --out cannot take checkpoints (unwritable or a nearly full disk)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write_test.{os.getpid()}"  # per process: DDP ranks probe the same folder at once
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"--out {out} is not writable: {err.strerror or err}") from None
    free = shutil.disk_usage(out).free
    if free < 512 * 2**20:
        raise UsageError(f"--out {out} has only {free / 2**20:.0f} MiB free; checkpoints need at least 512 MiB")


def weights_folder(folder: Path, backend: str):
    """The ``Predictor`` of a weights folder (None when ``folder`` is a single Hub-layout checkpoint)."""
    from seg_core.checkpoint import HUB_WEIGHTS
    from seg_core.predictor import Predictor

    if not folder.is_dir() or (folder / HUB_WEIGHTS).is_file():
        return None
    pred = Predictor.from_dir(folder, backend=backend)
    for name, why in {**pred.notes, **pred.missing}.items():
        print(f"{name}: {why}", file=sys.stderr)
    if not pred.models:
        raise UsageError(f"{folder} holds no model checkpoint ({' / '.join(ARCH_NAMES)} .safetensors)")
    return pred


def progress_bar(desc: str):
    """An ``on_batch(done, total)`` callback that draws a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = None

    def on_batch(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return on_batch


def engine_flags(args) -> None:
    if args.address and args.engine != "ray":
        raise UsageError("--address needs --engine ray")
