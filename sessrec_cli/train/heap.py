"""Returning the memory glibc keeps for freed tensors to the OS, as CPU training goes.

A CPU training step allocates and frees tensors whose sizes follow the batch's token count.
glibc serves those below 32 MiB from its heap and keeps their pages when they are freed, without
bound: with its defaults a long Diginetica run's resident memory climbs by gigabytes while what
it holds stays near 0.5 GiB. The trainer calls `release_freed_memory` at each sync (every
`log_every` steps), for a few percent of CPU time (`benchmarks/memory_core.py`).
Without glibc (macOS, musl, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
    except (OSError, TypeError):  # Windows has no lookup in the process's own symbols
        return None
    return libc if hasattr(libc, "malloc_trim") else None  # glibc's alone among the C libraries


_LIBC = _glibc()


def release_freed_memory() -> bool:
    """Return the heap's free pages to the OS; False where there is no glibc."""
    if _LIBC is None:
        return False
    _LIBC.malloc_trim(0)
    return True
