"""The serving layer's one cache and its keys: what a result is stored under, and how much is kept.

``BoundedCache`` is a least-recently-used map bounded by bytes (the arrays it holds, counted
with ``nbytes``), shared by every session of the process and safe across threads: a key asked for
by two sessions at once is computed once, the second waits for it. The key builders are the only
ones in the code base: ``weights_key`` (a weights folder and its files' times), ``photo_key`` (a
picture by its source's key and its size, or by its pixels).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Hashable

import numpy as np

from ..registry import ARCH_NAMES
from ..runners import EXPORT_SUFFIXES


def nbytes(value) -> int:
    """The bytes of the arrays in ``value`` (a dict, list, dataclass or array, nested)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        return sum(nbytes(getattr(value, f)) for f in value.__dataclass_fields__)
    return 0


class BoundedCache:
    """LRU by bytes: after each insertion the oldest entries go until ``max_bytes`` hold (the newest
    entry stays even when it alone is larger)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def bytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._items.values())

    def get(self, key: Hashable, compute: Callable[[], object]):
        """The value stored under ``key``, computed by ``compute()`` (once) when absent."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            gate = self._computing.setdefault(key, threading.Lock())
        with gate:  # a second caller of the same key waits here, then finds the value
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key][0]
            try:
                value = compute()
                self.put(key, value)
            finally:
                with self._lock:
                    self._computing.pop(key, None)
        return value

    def put(self, key: Hashable, value) -> None:
        with self._lock:
            self._items[key] = (value, nbytes(value))
            self._items.move_to_end(key)
            total = sum(size for _, size in self._items.values())
            while total > self.max_bytes and len(self._items) > 1:
                _, (_, size) = self._items.popitem(last=False)
                total -= size

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def weights_key(folder: str | Path) -> str:
    """The weights folder and its checkpoints' modification times: a checkpoint copied in while
    the app runs is loaded at the next request, and cached masks of the old one are not reused."""
    folder = Path(folder)
    files = [folder / f"{n}{suffix}" for n in ARCH_NAMES for suffix in (".safetensors", *EXPORT_SUFFIXES)]
    stamps = [f"{p.name}:{p.stat().st_mtime_ns}" for p in files if p.is_file()]
    return f"{folder}|{','.join(stamps)}"


def photo_key(photo: np.ndarray, source_key: str | None = None) -> str:
    """What a picture's results are stored under: its source's key (a scene's content hash) and
    its size, or without one a hash of its pixels."""
    h, w = photo.shape[:2]
    if source_key is None:
        source_key = hashlib.sha1(np.ascontiguousarray(photo).tobytes()).hexdigest()[:16]
    return f"{source_key}@{w}x{h}"
