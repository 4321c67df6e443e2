"""Keep the coordinator's heap from growing with the number of senders.

glibc's malloc gives each thread that allocates its own arena (up to eight per core)
and hands little of an arena's freed memory back to the system. A coordinator's gRPC
handler threads each parse 1 MiB chunks as participants upload at once, so with the
default it ends up holding one arena of freed chunks per concurrent upload: about
one model's worth of heap per participant, which breaks the promise that the
coordinator's memory is O(model size) rather than O(participants × model size).
One arena costs nothing measurable here (the handlers take the GIL to parse anyway)
and keeps freed chunks reusable by every thread.

No library exposes this knob, hence the few lines of ``ctypes``: ``mallopt`` is
glibc's documented tuning interface, the same one the ``MALLOC_ARENA_MAX``
environment variable sets. Elsewhere (macOS, musl) it is a no-op.
"""

from __future__ import annotations

import ctypes
import logging
import sys

__all__ = ["limit_malloc_arenas"]

logger = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # from glibc's <malloc.h>


def limit_malloc_arenas(count: int = 1) -> bool:
    """Cap glibc's malloc arenas at ``count``; True if the C library took it.

    Arenas already created stay, so call it before threads start allocating.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    taken = bool(mallopt(_M_ARENA_MAX, count))
    logger.debug("malloc arenas capped at %d: %s", count, taken)
    return taken
