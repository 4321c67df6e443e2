"""A compressed update at the coordinator: check its header, gather it, decode it.

With ``[compression]`` a deployed site sends the payload of
:func:`~accord.transforms.compression.encode` instead of the packed update: the
header's ``spec`` is still the model's (what the payload decodes to), its
``total_bytes`` is the payload's length and its ``digest`` that of the decoded
update. The coordinator gathers the chunks in memory (at most
:func:`~accord.transforms.compression.max_payload` bytes, refused before any is
read if the header announces more), decodes them with the checks of
:func:`~accord.transforms.compression.decode` (wrong length, bad deflate data, a
NaN or infinite scale, an index out of range or repeated, padding bits: each a
``malformed`` refusal with the reason) and packs the decoded values into the
model's layout, which then goes through the same spool, digest and finiteness
checks as a dense update. Raw bytes, a known dtype and shape: nothing is
unpickled.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from accord.errors import SubmissionRefused, UpdateRejected
from accord.transforms.compression import Method, decode, max_payload
from accord.transport.jobs import Job
from accord.transport.messages import Chunk, PackedHeader, UpdateHeader

__all__ = ["check_compressed_header", "gather", "packed_update"]


def check_compressed_header(
    header: UpdateHeader,
    model: PackedHeader,
    job: Job,
    *,
    method: Method,
    fraction: float,
) -> None:
    """Refuse a compressed update not trained from the job's model, or too large."""
    if header.base_digest != job.order.model_digest:
        raise SubmissionRefused(
            "stale",
            f"trained from model {header.base_digest[:16]}…, but round "
            f"{header.round} started from {job.order.model_digest[:16]}…",
        )
    if header.params.spec != model.spec:
        raise SubmissionRefused(
            "mismatch",
            "the compressed update's structure is not the model's: each tensor "
            "must have the model's name, dtype and shape",
        )
    most = max_payload(_sizes(model), method, fraction)
    if header.params.total_bytes > most:
        raise SubmissionRefused(
            "too_large",
            f"the compressed update announces {header.params.total_bytes} bytes; "
            f"{method} of this model takes at most {most}",
        )
    if header.num_examples <= 0:
        raise SubmissionRefused("mismatch", "num_examples must be positive")


def gather(parts: Iterator[UpdateHeader | Chunk], total: int) -> bytes:
    """The payload's ``total`` bytes from its chunks, in order, without gaps."""
    body = bytearray()
    for part in parts:
        if not isinstance(part, Chunk):
            raise SubmissionRefused("malformed", "a second header")
        if part.offset != len(body):
            raise SubmissionRefused(
                "malformed",
                f"chunk at offset {part.offset}, expected {len(body)}: chunks must "
                "come in order without gaps",
            )
        if len(body) + len(part.data) > total:
            raise SubmissionRefused(
                "too_large",
                f"the compressed update runs past the {total} bytes it announced",
            )
        body += part.data
    if len(body) != total:
        raise SubmissionRefused(
            "malformed", f"the stream ended after {len(body)} of {total} bytes"
        )
    return bytes(body)


def packed_update(
    payload: bytes, model: PackedHeader, *, method: Method, fraction: float
) -> bytearray:
    """Decode ``payload`` into the model's packed layout; ``malformed`` if bad."""
    spec = model.spec
    try:
        flat = decode(payload, _sizes(model), method=method, fraction=fraction)
    except UpdateRejected as exc:
        raise SubmissionRefused("malformed", exc.reason) from None
    buffer = bytearray(spec.packed_nbytes)
    out = spec.view(buffer, writable=True)
    start = 0
    for array in out.values():
        n = array.size
        with np.errstate(over="ignore"):  # overflow to inf is refused by the spool
            array.reshape(-1)[:] = flat[start : start + n]
        start += n
    del out
    return buffer


def _sizes(model: PackedHeader) -> Sequence[int]:
    return [int(np.prod(t.shape, dtype=np.int64)) for t in model.spec.tensors]
