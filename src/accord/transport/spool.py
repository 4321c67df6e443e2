"""Receiving one update: chunks into a spool file, checked as they come, then a view.

The coordinator may receive updates from every participant at once. Each goes to
its own file in a spool directory and is checked chunk by chunk as it is written:
each chunk must continue where the previous one ended and no chunk may pass the
announced size (the structure and the size were checked against the model before
the first chunk, see :class:`~accord.transport.executor.GrpcExecutor`); every value
must be finite; the digest is computed as the bytes go by and must be the announced
one at the end. Any refusal deletes the file.

Memory stays O(model size) however many participants send at once: a chunk is
checked while it is in memory and then only the file holds it. The accepted update
is a read-only memory map of the file that has not been read; its pages come in
when the round folds it (one update at a time, in selection order) and leave when
it is released, so the process never holds more than a few updates' worth.

Below a byte budget (:class:`MemorySpool`, ``[deployment] spool_memory_mib``)
updates go to buffers in memory instead, reused round after round. Writing
a file costs the kernel more than the copy: page-cache allocation, ext4's block
bookkeeping, writeback and deletion (a third of a W4 coordinator's CPU, measured
with perf on 2026-12-07), where a reused buffer costs one ``memcpy`` and no page
faults after the first round. The budget bounds what memory holds whatever the
number of participants: past it, updates go to files as before.
"""

from __future__ import annotations

import math
import mmap
import os
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from accord.aggregation.integrity import SQUARE_CHUNK, finite_sum, square_sum
from accord.coordinator.round import not_finite
from accord.errors import SubmissionRefused
from accord.params import Params, ParamSpec, params_hasher
from accord.transport.messages import CHUNK_BYTES

__all__ = ["MemorySpool", "SpooledUpdate"]


class _ValueCheck:
    """Digest, finiteness and norm of a packed stream, fed in contiguous pieces.

    The digest is :meth:`Params.digest`'s: BLAKE3 over the structure, then each
    tensor's bytes without the layout's padding. A piece may end inside a value; the
    few bytes of that value wait for the next piece. Finiteness and the L2 norm
    come from one float64 sum of squares per piece
    (:func:`~accord.aggregation.integrity.square_sum`), so the round needs to read
    no value of the update before it folds it.
    """

    def __init__(self, spec: ParamSpec) -> None:
        self._hash = params_hasher(spec)
        self._regions = [
            (t.name, np.dtype(t.dtype), off, off + t.nbytes)
            for t, off in zip(spec.tensors, spec.offsets(), strict=True)
            if t.nbytes
        ]
        self._carry = b""
        self._squares = 0.0
        self._scratch = np.empty(SQUARE_CHUNK)

    def feed(self, offset: int, data: bytes | memoryview) -> None:
        """Check ``data``, which starts at byte ``offset`` of the packed layout."""
        mem = memoryview(data).cast("B")
        end = offset + mem.nbytes
        for name, dtype, start, stop in self._regions:
            if stop <= offset or start >= end:
                continue
            piece = mem[max(start, offset) - offset : min(stop, end) - offset]
            self._hash.update(piece)
            self._values(name, dtype, piece)

    def _values(
        self, name: str, dtype: np.dtype[np.generic], piece: memoryview
    ) -> None:
        buf: bytes | memoryview = piece
        if self._carry:
            buf = self._carry + bytes(piece)
        whole = len(buf) - len(buf) % dtype.itemsize
        if whole:
            values = np.frombuffer(buf, dtype=dtype, count=whole // dtype.itemsize)
            squares = square_sum(values, self._scratch)
            if not finite_sum(values, squares):
                raise SubmissionRefused("mismatch", not_finite(name).reason)
            self._squares += squares
        self._carry = bytes(buf[whole:])

    def digest(self) -> str:
        """The digest of everything fed so far."""
        return self._hash.hexdigest()

    def norm(self) -> float:
        """The L2 norm of every value fed so far (inf past float64's range)."""
        return math.sqrt(self._squares)


class MemorySpool:
    """Buffers in memory for updates, reused, holding at most ``budget`` bytes.

    A buffer handed back goes on a list of returned ones; it is written again
    only once nothing else refers to it: the views a round was given (and
    anything made from them without a copy) keep a reference to it, and CPython's
    reference count tells when the last is gone. A buffer still referred to stays
    counted against the budget, as the memory it is.
    """

    def __init__(self, budget: int) -> None:
        if budget < 0:
            raise ValueError("the spool's memory budget cannot be negative")
        self.budget = budget
        self._lock = threading.Lock()
        self._returned: list[np.ndarray] = []
        self._held = 0  # bytes of every buffer taken and not yet dropped

    @property
    def held(self) -> int:
        """Bytes of the buffers this spool holds: in use, or returned."""
        return self._held

    def take(self, nbytes: int) -> np.ndarray | None:
        """A buffer of ``nbytes`` (uint8), or None if that would pass the budget."""
        with self._lock:
            returned = self._returned
            for i in range(len(returned)):
                if returned[i].nbytes == nbytes and self._free(i):
                    return returned.pop(i)
            for i in reversed(range(len(returned))):
                if self._held + nbytes <= self.budget:
                    break
                if self._free(i):  # free, but of another size: let it go
                    self._held -= returned.pop(i).nbytes
            if nbytes == 0 or self._held + nbytes > self.budget:
                return None
            self._held += nbytes
        return np.empty(nbytes, dtype=np.uint8)

    def _free(self, i: int) -> bool:
        """Whether nothing but this spool refers to returned buffer ``i``."""
        # The list's reference and getrefcount's own argument; any view of the
        # buffer (numpy arrays, memoryviews) holds one more.
        return sys.getrefcount(self._returned[i]) == 2

    def give_back(self, buf: np.ndarray) -> None:
        """``buf`` is no longer written: reuse it once nothing refers to it."""
        with self._lock:
            self._returned.append(buf)


class SpooledUpdate:
    """One update being written to, then viewed from, memory or a file.

    In a buffer of ``memory`` while its budget allows, else in a file in
    ``directory``.
    """

    def __init__(
        self,
        directory: Path,
        spec: ParamSpec,
        *,
        digest: str,
        label: str = "update",
        memory: MemorySpool | None = None,
    ) -> None:
        self.spec = spec
        self.total = spec.packed_nbytes
        self.received = 0
        #: The update's L2 norm, once :meth:`finish` accepted it.
        self.norm: float | None = None
        self._digest = digest
        self._check = _ValueCheck(spec)
        self._memory = memory
        self._buffer = memory.take(self.total) if memory is not None else None
        #: The spool file, or None while the update is held in memory.
        self.path: Path | None = None
        self._file = None
        if self._buffer is None:
            fd, name = tempfile.mkstemp(
                dir=directory, prefix=f"{label}-", suffix=".bin"
            )
            self.path = Path(name)
            self._file = os.fdopen(fd, "wb")
        self._map: mmap.mmap | None = None

    @property
    def in_memory(self) -> bool:
        """Whether the update is held in a memory buffer rather than a file."""
        return self._buffer is not None

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """Check and append one chunk; refuse gaps, reordering, excess, bad values."""
        if offset != self.received:
            raise SubmissionRefused(
                "malformed",
                f"chunk at offset {offset}, expected {self.received}: chunks must "
                "come in order without gaps",
            )
        if len(data) > CHUNK_BYTES:
            raise SubmissionRefused(
                "too_large", f"chunk of {len(data)} bytes; the limit is {CHUNK_BYTES}"
            )
        if self.received + len(data) > self.total:
            raise SubmissionRefused(
                "too_large",
                f"the update runs past the model's {self.total} bytes; an update "
                "must be exactly as large as the model",
            )
        self._check.feed(offset, data)
        if self._buffer is not None:
            end = offset + len(data)
            self._buffer[offset:end] = np.frombuffer(data, dtype=np.uint8)
        else:
            assert self._file is not None
            self._file.write(data)
        self.received += len(data)

    def finish(self) -> Params:
        """Check size and digest; return a read-only view, of a file not yet read.

        Every value was proven finite as it was written (the returned view may be
        handed to the round with ``values_checked``, and :attr:`norm` with it).
        """
        if self.received != self.total:
            raise SubmissionRefused(
                "malformed",
                f"the stream ended after {self.received} of {self.total} bytes",
            )
        actual = self._check.digest()
        if actual != self._digest:
            raise SubmissionRefused(
                "corrupt",
                f"the received values have digest {actual[:16]}…, the header "
                f"announced {self._digest[:16]}…; the update was damaged or altered",
            )
        self.norm = self._check.norm()
        if self._buffer is not None:
            return self.spec.view(self._buffer)  # read-only arrays
        assert self._file is not None and self.path is not None
        self._file.close()
        if self.total == 0:
            return self.spec.view(b"")
        with open(self.path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), self.total, access=mmap.ACCESS_READ)
        return self.spec.view(self._map)

    def discard(self) -> None:
        """Delete the file, or hand the buffer back; views stay valid until dropped.

        The map is not closed here: numpy arrays may still point into it (closing
        would raise), and the memory goes when the last of them is dropped. A
        buffer is written again only once no view of it is left.
        """
        if self._buffer is not None:
            assert self._memory is not None
            buffer, self._buffer = self._buffer, None
            self._memory.give_back(buffer)
            return
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._map = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
