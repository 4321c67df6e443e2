"""Comparator networks, compiled into straight-line numpy programs over whole chunks.

A comparator network is a fixed sequence of compare-exchanges ``(i, j)``: wire ``i``
receives ``min(x_i, x_j)`` and wire ``j`` receives the max. Because the sequence does
not depend on the data, it can run on *vectors*: with one numpy array per wire (one
chunk of coordinates from each update), every compare-exchange becomes one
``np.minimum`` and one ``np.maximum`` over the whole chunk, in SIMD, with no Python
work per coordinate. That is how the coordinate-wise median and trimmed mean beat
``np.median`` / ``np.sort`` on the stacked ``(n, d)`` array by an order of magnitude
for the small ``n`` of cross-silo federations: those sort or select each column
separately, one short row at a time.

Why hand-written: numpy has no vectorised selection across arrays, and a compiled
kernel (numba, C) would be a heavy dependency for a pure package. The programs here
are ordinary Python lists of ufunc calls, built once per ``(n, rule)`` and cached.

This module builds networks (Batcher's odd-even merge sort; a streaming "set the k
smallest and k largest aside" network for trimmed means), prunes the comparators that
do not influence the wanted outputs, and compiles the rest into a :class:`Program`
whose steps read and write preallocated buffers (``out=``), so the hot loop allocates
nothing. NaN propagates through ``np.minimum``/``np.maximum``, so a NaN in any input
makes the output NaN, as ``np.median`` does.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from accord.params import Array

__all__ = ["Program", "compile_program", "extremes_network", "sorting_network"]

#: ``(i, j)``: wire ``i`` receives the minimum, wire ``j`` the maximum.
Comparator = tuple[int, int]
#: ``(ufunc, slot a, slot b, output slot)``.
Step = tuple[np.ufunc, int, int, int]


def _merge(lo: int, hi: int, r: int) -> Iterator[Comparator]:
    step = r * 2
    if step < hi - lo:
        yield from _merge(lo, hi, step)
        yield from _merge(lo + r, hi, step)
        yield from ((i, i + r) for i in range(lo + r, hi - r, step))
    else:
        yield (lo, lo + r)


def _sort_range(lo: int, hi: int) -> Iterator[Comparator]:
    if hi - lo >= 1:
        mid = lo + (hi - lo) // 2
        yield from _sort_range(lo, mid)
        yield from _sort_range(mid + 1, hi)
        yield from _merge(lo, hi, 1)


@functools.cache
def sorting_network(n: int) -> tuple[Comparator, ...]:
    """Batcher's odd-even merge sort for ``n`` wires; wire 0 ends with the minimum.

    Built for the next power of two; comparators touching wires ``>= n`` are dropped,
    which is exact because those wires may be taken to hold +inf and every comparator
    sends its minimum to the lower wire, so they would never move.
    """
    size = 1
    while size < n:
        size *= 2
    return tuple((i, j) for i, j in _sort_range(0, size - 1) if j < n)


@functools.cache
def extremes_network(n: int, k: int) -> tuple[tuple[Comparator, ...], tuple[int, ...]]:
    """Comparators that set aside the ``k`` smallest and ``k`` largest of ``n`` values.

    Returns the comparators and the ``n - 2k`` wires that afterwards hold the middle
    values (as a multiset, unsorted). The first ``2k`` wires are sorted; each further
    value is bubbled through the ``k`` smallest so far (ejecting their maximum), and
    that through the ``k`` largest (ejecting their minimum), which is a middle value.
    Costs ``4k`` operations per value, far fewer than a full sort when ``k`` is small.
    """
    if not 0 <= 2 * k < n:
        raise ValueError(f"cannot trim {k} from each end of {n} values")
    comparators = list(sorting_network(2 * k))
    low, high = list(range(k)), list(range(k, 2 * k))
    for wire in range(2 * k, n):
        comparators.extend((w, wire) for w in low)
        comparators.extend((wire, w) for w in reversed(high))
    return tuple(comparators), tuple(range(2 * k, n))


def _prune(
    comparators: Sequence[Comparator], outputs: Sequence[int]
) -> list[tuple[int, int, bool, bool]]:
    """Keep the comparators an output depends on, and which of their results count."""
    needed = set(outputs)
    kept: list[tuple[int, int, bool, bool]] = []
    for lo, hi in reversed(comparators):
        need_lo, need_hi = lo in needed, hi in needed
        if need_lo or need_hi:
            kept.append((lo, hi, need_lo, need_hi))
            needed |= {lo, hi}
    kept.reverse()
    return kept


@dataclass(frozen=True, slots=True)
class Program:
    """Straight-line ufunc calls computing one output array from ``n_inputs`` arrays.

    Slots are numbered: inputs ``0..n_inputs-1``, then ``n_work`` scratch buffers,
    then the output, then constants. Inputs are only read.
    """

    n_inputs: int
    n_work: int
    steps: tuple[Step, ...]
    constants: tuple[float, ...]

    def run(self, inputs: Sequence[Array], work: Sequence[Array], out: Array) -> None:
        """Evaluate; ``work`` holds ``n_work`` arrays shaped like ``out``."""
        slots: list[Any] = [*inputs, *work, out, *self.constants]
        # Sums near the dtype's maximum overflow to inf, and inf + -inf is NaN, exactly
        # as in numpy's own median and mean: that is the answer, not a fault to warn.
        with np.errstate(over="ignore", invalid="ignore"):
            for ufunc, a, b, dst in self.steps:
                ufunc(slots[a], slots[b], out=slots[dst])


_OUT = 1 << 30  # placeholder for the output slot until the scratch count is known


class _Compiler:
    """Maps wires to buffers (reusing freed ones) while emitting the steps."""

    def __init__(self, n: int, outputs: Sequence[int]) -> None:
        self.n = n
        self.slot_of = list(range(n))  # -1 once a wire's value is no longer needed
        self.free: list[int] = []
        self.n_work = 0
        self.steps: list[Step] = []
        self.single = outputs[0] if len(outputs) == 1 else None
        self.pending: int | None = None
        self.summed = 0

    def owned(self, slot: int) -> bool:
        return self.n <= slot < _OUT

    def alloc(self) -> int:
        if self.free:
            return self.free.pop()
        self.n_work += 1
        return self.n + self.n_work - 1

    def release(self, *slots: int) -> None:
        self.free.extend(s for s in slots if self.owned(s))

    def dest(self, wire: int, final: bool, reuse: int) -> int:
        if final and wire == self.single:
            return _OUT
        return reuse if self.owned(reuse) else self.alloc()

    def compare(
        self, lo: int, hi: int, need: tuple[bool, bool], final: set[int]
    ) -> None:
        a, b = self.slot_of[lo], self.slot_of[hi]
        if need[0] and need[1]:
            t = self.dest(lo, lo in final, -1)
            self.steps.append((np.minimum, a, b, t))
            h = self.dest(hi, hi in final, b)
            self.steps.append((np.maximum, a, b, h))
            self.release(*(s for s in (a, b) if s != h))
            self.slot_of[lo], self.slot_of[hi] = t, h
            return
        wire, dead, ufunc = (lo, hi, np.minimum) if need[0] else (hi, lo, np.maximum)
        d = self.dest(wire, wire in final, a if self.owned(a) else b)
        self.steps.append((ufunc, a, b, d))
        self.release(*(s for s in (a, b) if s != d))
        self.slot_of[wire], self.slot_of[dead] = d, -1

    def accumulate(self, wire: int) -> None:
        """Add a finished output wire into the output buffer."""
        if self.single is not None:
            return
        slot = self.slot_of[wire]
        if self.pending is None and self.summed == 0:
            self.pending = slot
            return
        if self.pending is not None:
            self.steps.append((np.add, self.pending, slot, _OUT))
            self.release(self.pending)
            self.pending = None
        else:
            self.steps.append((np.add, _OUT, slot, _OUT))
        self.summed += 1
        self.release(slot)


def compile_program(
    n: int, comparators: tuple[Comparator, ...], outputs: tuple[int, ...]
) -> Program:
    """Compile a network into a program computing the mean of the ``outputs`` wires.

    With one output wire the program writes that wire's final value; with several,
    their sum (added in a fixed order as each becomes final) divided by their count.
    """
    if not outputs:
        raise ValueError("a program needs at least one output wire")
    kept = _prune(comparators, outputs)
    last: dict[int, int] = dict.fromkeys(outputs, -1)
    for index, (lo, hi, _, _) in enumerate(kept):
        for w in (lo, hi):
            if w in last:
                last[w] = index
    finishing: dict[int, list[int]] = {}
    for w in outputs:
        finishing.setdefault(last[w], []).append(w)
    comp = _Compiler(n, outputs)
    if comp.single is not None and last[comp.single] == -1:
        raise ValueError("a single output must be computed, not an input wire")
    for w in finishing.get(-1, []):
        comp.accumulate(w)
    for index, (lo, hi, need_lo, need_hi) in enumerate(kept):
        done = set(finishing.get(index, []))
        comp.compare(lo, hi, (need_lo, need_hi), done)
        for w in finishing.get(index, []):
            comp.accumulate(w)
    out_slot = n + comp.n_work
    constants: tuple[float, ...] = ()

    def fix(slot: int) -> int:
        return out_slot if slot == _OUT else slot

    steps = [(f, fix(a), fix(b), fix(d)) for f, a, b, d in comp.steps]
    if len(outputs) > 1:
        constants = (float(len(outputs)),)
        steps.append((np.divide, out_slot, out_slot + 1, out_slot))
    return Program(n, comp.n_work, tuple(steps), constants)
