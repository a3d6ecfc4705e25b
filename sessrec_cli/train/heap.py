"""Which malloc serves the process, and returning the memory glibc keeps for freed tensors.

A CPU training step allocates and frees tensors whose sizes follow the batch's token count.
glibc serves those below 32 MiB from its heap and keeps their pages when they are freed, without
bound: with its defaults a long Diginetica run's resident memory climbs by gigabytes while what
it holds stays near 0.5 GiB. The trainer calls `release_freed_memory` at each sync (every
`log_every` steps), for a few percent of CPU time (`benchmarks/memory_core.py`).
Where glibc's malloc is not the one in use (macOS, musl, Windows, or jemalloc through LD_PRELOAD,
which the README recommends for long CPU runs) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p), ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _malloc_library() -> str:
    """The file name of the shared library whose `malloc` the process calls, or "unknown"."""
    try:
        process = ctypes.CDLL(None)
        info = _DlInfo()
        found = process.dladdr(ctypes.cast(process.malloc, ctypes.c_void_p), ctypes.byref(info))
    except (OSError, TypeError, AttributeError):  # Windows has no lookup in the process's own symbols; glibc before 2.34 keeps dladdr in libdl
        return "unknown"
    return Path(os.fsdecode(info.dli_fname)).name if found and info.dli_fname else "unknown"


def _glibc_malloc() -> ctypes.CDLL | None:
    """glibc, when its malloc is the one in use: the only malloc whose heap malloc_trim releases
    (a preloaded jemalloc leaves glibc's malloc_trim callable, with nothing to do)."""
    try:
        process = ctypes.CDLL(None)
    except (OSError, TypeError):
        return None
    if not hasattr(process, "malloc_trim"):  # glibc's alone among the C libraries
        return None
    # Where dladdr could not say whose malloc it is, glibc's is by far the likeliest.
    return process if MALLOC_LIBRARY == "unknown" or MALLOC_LIBRARY.startswith("libc.so") else None


MALLOC_LIBRARY = _malloc_library()
_LIBC = _glibc_malloc()


def allocator() -> dict[str, str]:
    """What run.json records about the allocator: timings and memory depend on it, metrics do not."""
    found = {"malloc": MALLOC_LIBRARY}
    if "MALLOC_CONF" in os.environ:  # jemalloc's settings
        found["MALLOC_CONF"] = os.environ["MALLOC_CONF"]
    return found


def release_freed_memory() -> bool:
    """Return glibc's heap's free pages to the OS; False where glibc's malloc is not in use."""
    if _LIBC is None:
        return False
    _LIBC.malloc_trim(0)
    return True
