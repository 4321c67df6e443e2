"""The interpreter's heap before the rounds start: collected once, then frozen.

A simulation process imports numpy, pandas, SQLAlchemy, pydantic and the task, and
builds the federation's data, before round 1: hundreds of thousands of objects
that live as long as the process. CPython's cyclic garbage collector walks all of
them at each full (generation 2) collection, which the allocations of a round set
off every few rounds: 20-80 ms each on the machines the benchmarks run on, paid
inside whichever round triggered it (a secure round allocates more small objects
than a plain one, so it triggered them more often: ``bench/w5_cpu.py``).

:func:`settle_heap` collects once, so that no garbage is kept, then moves what
survives to the permanent generation (:func:`gc.freeze`), which later collections
skip. Objects created afterwards (each round's) are collected as before; only the
start-up objects are no longer rescanned. Freed start-up objects are still freed
by reference counting; only a start-up object that later becomes part of an
unreachable cycle is kept, which the collection before freezing makes rare.
:func:`release_heap` unfreezes when the run ends, for a process (a test session,
a notebook) that goes on to do other things; a worker process just exits.
"""

from __future__ import annotations

import gc

__all__ = ["release_heap", "settle_heap"]


def settle_heap() -> None:
    """Collect the start-up garbage, then exempt the survivors from collections."""
    gc.collect()
    gc.freeze()


def release_heap() -> None:
    """Undo :func:`settle_heap` (the frozen objects are collectable again)."""
    gc.unfreeze()
