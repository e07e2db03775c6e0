"""Process set-up for training: distributed launch (torchrun), the DDP helpers of the trainer (agreeing
on a stop, wrapping the model), the CUDA host-sync counter, and the malloc setting of the trainer."""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist


def dist_info() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside DDP."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> tuple[int, int, torch.device]:
    """Start DDP when launched by torchrun; returns (rank, world size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank, world = dist_info()
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is true in any process (itself outside DDP): every process then takes
    the same branch, e.g. stops after the same step or epoch."""
    if dist_info()[1] == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def wrap_ddp(model: torch.nn.Module, find_unused: bool) -> torch.nn.Module:
    """``model`` under DDP when there is more than one process, else itself. ``find_unused``: some
    parameters get no gradient for a while (a frozen encoder), which DDP must be told."""
    if dist_info()[1] == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=find_unused)


class SyncCounter:
    """Counts CUDA host syncs inside a ``with`` block (``torch.cuda.set_sync_debug_mode``); a no-op
    when not ``enabled``."""

    def __init__(self, enabled: bool):
        self.enabled, self.count = enabled, 0

    def __enter__(self):
        if self.enabled:
            import warnings

            self._catch = warnings.catch_warnings(record=True)
            self._caught = self._catch.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc):
        if self.enabled:
            torch.cuda.set_sync_debug_mode("default")
            self.count = sum("synchroniz" in str(w.message) for w in self._caught)
            self._catch.__exit__(*exc)
        return False


# glibc mallopt(3) parameters.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Make glibc malloc keep freed memory in the process instead of handing it back to the OS.

    A training step's activation buffers are far above glibc's largest mmap threshold (32 MiB),
    so by default each is mmap'd and munmap'd every step, and every page is faulted in and zeroed
    again. Serving large requests from the heap and never trimming it (what PyTorch's CPU tuning
    guide gets from jemalloc or tcmalloc) keeps those pages; the price, a resident size that stays
    at its peak, suits a training process. ``benchmarks/bench_malloc.py`` measures it (docs/benchmarks.md).
    Returns whether the setting took (glibc only).
    """
    import ctypes
    import ctypes.util

    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # -1 disables trimming (mallopt(3)); 0 mmaps turns off mmap for large requests.
    return bool(mallopt(_M_TRIM_THRESHOLD, -1)) and bool(mallopt(_M_MMAP_MAX, 0))
