"""Files: atomic writes (a temp file beside the target, renamed onto it only when complete) and digests."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside ``path`` to write to; it replaces ``path`` when the block ends
    without error and is removed otherwise, so a kill or a full disk never leaves a half file.
    ``suffix`` ends the temp name, for writers that insist on one (``np.savez`` adds ``.npz``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp{suffix}")  # _TEMP_NAME
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_TEMP_NAME = re.compile(r"\..+\.\d+\.\d+\.tmp(\.\w+)?")


def sweep_temp_files(folder: str | Path) -> int:
    """Remove the temp files that ``atomic_path`` writers killed with SIGKILL (no chance to clean
    up) left directly in ``folder``; call it only when no writer is at work there. Returns how many."""
    folder = Path(folder)
    stale = [p for p in folder.iterdir() if _TEMP_NAME.fullmatch(p.name) and p.is_file()] if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
