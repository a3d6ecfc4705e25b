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


# The settings the README recommends with jemalloc: it serves every size from its own size classes
# (oversize_threshold:0: no separate arena for allocations over 8 MiB, whose pages it would hand
# back at once) and keeps freed pages for reuse (no decay), so a training step neither faults
# pages in nor grows the heap (`benchmarks/memory_core.py --jemalloc`).
JEMALLOC_CONF = "oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1"


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p), ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _process_symbols() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)
    except (OSError, TypeError):  # Windows has no lookup in the process's own symbols
        return None


def _malloc_library(process: ctypes.CDLL | None) -> str:
    """The file name of the shared library whose `malloc` the process calls, or "unknown"."""
    if process is None or not hasattr(process, "dladdr"):  # glibc before 2.34 keeps dladdr in libdl
        return "unknown"
    info = _DlInfo()
    found = process.dladdr(ctypes.cast(process.malloc, ctypes.c_void_p), ctypes.byref(info))
    return Path(os.fsdecode(info.dli_fname)).name if found and info.dli_fname else "unknown"


_PROCESS = _process_symbols()
MALLOC_LIBRARY = _malloc_library(_PROCESS)
# glibc, when its malloc is the one in use: the only malloc whose heap malloc_trim releases (a
# preloaded jemalloc leaves glibc's malloc_trim callable, with nothing to do). Where dladdr could
# not say whose malloc it is, glibc's is by far the likeliest. malloc_trim is glibc's alone among
# the C libraries.
_LIBC = (
    _PROCESS
    if hasattr(_PROCESS, "malloc_trim") and (MALLOC_LIBRARY == "unknown" or MALLOC_LIBRARY.startswith("libc.so"))
    else None
)


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
