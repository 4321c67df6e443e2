"""Threads: native pools (BLAS, OpenMP) limited for a block; work on the side.

``threadpoolctl.threadpool_limits`` finds the native libraries anew on every call
by walking every shared object the process has loaded: about 1.3 ms, paid by every
simulated job and every Gram matrix. A :class:`threadpoolctl.ThreadpoolController`
finds them once and limits them in about 30 us. The one here is made again only when
an import may have loaded a new library (the number of imported modules changed),
so a task that imports torch between jobs still has its pools limited.

:func:`in_background` runs one call on a thread of its own, for work that
releases the GIL (hashing, numpy) and can overlap the caller's.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Literal, TypeVar, cast

from threadpoolctl import ThreadpoolController

T = TypeVar("T")

_lock = threading.Lock()
_controller: ThreadpoolController | None = None
_modules = -1


def _current() -> ThreadpoolController:
    global _controller, _modules
    with _lock:
        if _controller is None or len(sys.modules) != _modules:
            _modules = len(sys.modules)
            _controller = ThreadpoolController()
        return _controller


def limited(
    threads: int, api: Literal["blas", "openmp"] | None = None
) -> AbstractContextManager[object]:
    """At most ``threads`` threads in each native pool (of ``api``; all by default)."""
    limiter = _current().limit(limits=threads, user_api=api)
    return cast(AbstractContextManager[object], limiter)


def in_background(fn: Callable[[], T]) -> Callable[[], T]:
    """Start ``fn()`` on a thread; the function returned waits for its result.

    It returns what ``fn`` returned, or raises what ``fn`` raised.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accord-background")
    future = pool.submit(fn)
    pool.shutdown(wait=False)  # the one thread ends with ``fn``
    return future.result
