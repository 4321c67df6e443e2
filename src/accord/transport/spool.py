"""Receiving one update: chunks into a spool file, checked as they come, then a view.

The coordinator may receive updates from every participant at once; writing each to
its own file in a spool directory keeps its memory at O(model size) however many
arrive together, and the file's memory map then serves the round as a read-only
:class:`~accord.params.Params` view without a copy. The structure and the size were
checked against the model before the first chunk (see
:class:`~accord.transport.executor.GrpcExecutor`); here each chunk must continue
where the previous one ended, no chunk may pass the announced size, and at the end
the values must be finite and their digest the announced one. Any refusal deletes
the file.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from pathlib import Path

from accord.coordinator.round import validate_update
from accord.errors import SubmissionRefused, UpdateRejected
from accord.params import Params, ParamSpec
from accord.transport.messages import CHUNK_BYTES

__all__ = ["SpooledUpdate"]


class SpooledUpdate:
    """One update being written to, then mapped from, a file in ``directory``."""

    def __init__(
        self,
        directory: Path,
        spec: ParamSpec,
        *,
        digest: str,
        num_examples: int,
        label: str = "update",
    ) -> None:
        self.spec = spec
        self.total = spec.packed_nbytes
        self.received = 0
        self._digest = digest
        self._num_examples = num_examples
        fd, name = tempfile.mkstemp(dir=directory, prefix=f"{label}-", suffix=".bin")
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._map: mmap.mmap | None = None

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """Append one chunk; refuse gaps, reordering, overlong chunks and excess."""
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
        self._file.write(data)
        self.received += len(data)

    def finish(self) -> Params:
        """Check size, values and digest; return a read-only view on the file."""
        if self.received != self.total:
            raise SubmissionRefused(
                "malformed",
                f"the stream ended after {self.received} of {self.total} bytes",
            )
        self._file.close()
        if self.total == 0:
            view = self.spec.view(b"")
        else:
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), self.total, access=mmap.ACCESS_READ)
            view = self.spec.view(self._map)
        try:
            validate_update(self.spec, view, self._num_examples)
        except UpdateRejected as exc:
            raise SubmissionRefused("mismatch", exc.reason) from None
        actual = view.digest()
        if actual != self._digest:
            raise SubmissionRefused(
                "corrupt",
                f"the received values have digest {actual[:16]}…, the header "
                f"announced {self._digest[:16]}…; the update was damaged or altered",
            )
        return view

    def discard(self) -> None:
        """Delete the file; views already handed out stay readable until dropped.

        The map is not closed here: numpy arrays may still point into it (closing
        would raise), and the memory goes when the last of them is dropped.
        """
        if not self._file.closed:
            self._file.close()
        self._map = None
        self.path.unlink(missing_ok=True)
