"""What a round frees stays with the process for the next round.

Every round allocates and frees model-sized arrays: a task's new parameters, the
update it makes from them, the coordinator's packed model and its frames. glibc's
``malloc`` gives such blocks back to the kernel when they are freed (``munmap``
above the mmap threshold, a heap trim above the trim threshold), so the next
round's arrays of the same size come back as fresh pages, which the kernel must
fault in and zero: on the benchmark machine (``bench/README.md``) that zeroing was
the largest kernel cost of a W3 worker, about an eighth of its CPU, for memory the
process had held a moment before.

:func:`keep_freed_memory` makes glibc keep freed blocks for reuse: blocks below the
mmap threshold's ceiling (32 MiB on 64-bit) come from the heap, and the heap is
trimmed only past ``limit`` bytes of free space at its top. A process then holds,
between rounds, about what it held during the last round, up to ``limit`` more;
its peak is unchanged. Blocks of 32 MiB and more (one tensor of a model above
8M float32 values) are still mapped and unmapped each time.

Only processes that accord owns call it: the ``accord`` command and the
simulation's workers, never a library caller's interpreter (the settings are the
whole process's and cannot all be undone). Elsewhere than glibc (macOS, musl) it
does nothing and says so.

Written by hand because the one thing needed, two calls of glibc's ``mallopt``,
is a ``ctypes`` call; no maintained package wraps it.
"""

from __future__ import annotations

import ctypes
import logging
import platform

__all__ = ["KEEP_FREED_BYTES", "keep_freed_memory"]

logger = logging.getLogger(__name__)

#: Free heap space kept for reuse before glibc trims it (1 GiB).
KEEP_FREED_BYTES = 1 << 30
#: glibc's ``M_TRIM_THRESHOLD`` and ``M_MMAP_THRESHOLD`` (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: The largest mmap threshold glibc accepts on 64-bit (``HEAP_MAX_SIZE / 2``).
_MMAP_THRESHOLD_MAX = 32 << 20


def keep_freed_memory(limit: int = KEEP_FREED_BYTES) -> bool:
    """Make glibc keep up to ``limit`` freed bytes for reuse; False where it cannot."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0 bytes, got {limit}")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        logger.debug("not glibc: freed memory is returned as the allocator decides")
        return False
    mallopt = ctypes.CDLL(None).mallopt  # glibc is already in the process
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done: bool = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) == 1
    done = mallopt(_M_TRIM_THRESHOLD, min(limit, 2**31 - 1)) == 1 and done
    if not done:
        logger.warning("mallopt refused; freed memory is returned as glibc decides")
    return done
