"""Defences for servers whose clients may be hostile: a request body read under a size cap and a
deadline, and the process's freed memory handed back to the system (``map_large_blocks``,
``release_memory``).

``read_body`` counts bytes as they arrive (a chunked body has no Content-Length to check first)
and stops at ``limit``, so a 200 MB body costs at most the cap; its deadline means a client that
sends headers and then nothing holds a connection, never a place in the inference queue (the
caller admits a request only once its body is complete).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import AsyncIterator

class BodyError(ValueError):
    """A request body we will not read; ``status`` is the HTTP status, the message a sentence."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_body(chunks: AsyncIterator[bytes], limit: int, deadline_s: float) -> bytes:
    """The whole body from ``chunks`` (e.g. starlette's ``request.stream()``), or ``BodyError``:
    413 as soon as more than ``limit`` bytes arrived, 408 if it is not complete after ``deadline_s``."""
    parts, size = [], 0

    async def collect() -> None:
        nonlocal size
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise BodyError(413, f"The image is over {limit / 2**20:g} MB.")
            parts.append(chunk)

    try:
        await asyncio.wait_for(collect(), deadline_s)
    except asyncio.TimeoutError:
        raise BodyError(408, f"The request body did not arrive within {deadline_s:g} s.") from None
    return b"".join(parts)


def _libc():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


_LIBC = _libc()


M_MMAP_THRESHOLD = -3  # mallopt parameter numbers of glibc's malloc.h
MMAP_THRESHOLD = 4 * 2**20


def map_large_blocks(threshold: int = MMAP_THRESHOLD) -> bool:
    """Have glibc give every allocation of ``threshold`` bytes or more its own mapping, returned to
    the system when freed. By default the threshold grows to 32 MB as large blocks are freed, so a
    large image's 16 MB decoding blocks land in per-thread heaps that keep them: after a burst of
    40-megapixel images a server held gigabytes it no longer used. Returns False without glibc."""
    mallopt = getattr(_LIBC, "mallopt", None)
    return bool(mallopt is not None and mallopt(M_MMAP_THRESHOLD, threshold))


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc ``malloc_trim``): after a burst of large
    images, the freed blocks stay in malloc's arenas and the process's RSS stays high otherwise.
    A no-op where there is no glibc."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)
