"""Secure aggregation by homomorphic addition: CKKS ciphertexts through TenSEAL.

The alternative to masking (:mod:`accord.secagg.server`) for a federation that has a
**key holder** other than the coordinator. The key holder creates the keys
(:meth:`~accord.secagg.ckks_keys.KeyHolder.create`) and gives the secret context to
every participant and the public context (parameters only, no key) to the
coordinator. Each round:

1. each participant encrypts ``w * x`` and its weight ``w`` (one extra slot), cut
   into ciphertexts of ``N / 2`` slots (:meth:`CkksParticipant.encrypt`);
2. the coordinator checks each upload and adds it into a running encrypted sum
   (:meth:`CkksAggregator.add`), then serialises the sum
   (:meth:`CkksAggregator.result`);
3. the key holder, or any participant, decrypts ``sum(w * x)`` and ``sum(w)``
   (:func:`decrypt_sum`); their quotient is the weighted mean.

Nothing here does I/O; moving the bytes is the caller's job. The wire format is
TenSEAL's protobuf serialisation of each ciphertext, framed by hand (magic, version,
key id, chunk count, length-prefixed chunks) because it is five fields; nothing is
pickled.

**Threat model.** Semantic security of CKKS (RLWE) hides each upload from anyone
without the secret key, so:

* the coordinator alone, honest-but-curious, learns nothing of any upload, nor of
  the sum until the key holder releases it (its context holds no key and cannot
  decrypt: tested); who uploaded, sizes and timing are visible;
* a participant, or the key holder, alone sees only what is released: uploads
  travel to the coordinator (over mutual TLS), never to them. Any of them that
  obtained another's upload could read it;
* a coalition of the coordinator with **any one** participant, or with the key
  holder, learns **every individual update**: they all hold the secret key. This is
  much weaker than masking, where a coalition needs ``t`` shares;
* an active coordinator can have any ciphertext decrypted as if it were the sum (a
  single upload, or a difference of two sums), and nothing in a CKKS ciphertext
  proves how many uploads it adds up; whoever decrypts must trust the coordinator
  or decrypt only what it can check otherwise. Decryptions also carry CKKS noise:
  a party that obtains exact decryptions of ciphertexts whose plaintext it knows
  can recover the secret key (Li and Micciancio 2021, IND-CPA-D), so a site
  releases only a noise-flooded, rounded decryption
  (:mod:`accord.secagg.ckks_release`); that holds against an honest-but-curious
  coordinator, not an active one, which can craft a ciphertext whose decryption
  is a large multiple of the key. **CKKS protects only against an
  honest-but-curious coordinator**;
* nobody can check an upload's content: a participant may encrypt any values or
  weight (as with masking), and CKKS ciphertexts are malleable, so the coordinator
  can alter the sum undetected. Uploads are not bound to a run or a round; the
  transport's authentication and the round loop must refuse replays.

There is no dropout problem: ciphertexts add independently, so the sum of whoever
uploaded is ready the moment the coordinator stops waiting, with no recovery stage.

**Accuracy.** CKKS is approximate. With the default parameters (``N = 8192``,
primes 60/40/40/60, scale ``2**40``) each upload decrypts with an absolute error
of RMS ``1.9e-10`` per value (largest seen ``8.7e-10`` in 82k values), whatever the
values' magnitude; a sum of ``n`` uploads adds ``n`` such errors. Measured
(``bench/w5_ckks.py``, weights 50 to 500): largest error of the sum ``3.7e-9`` for
20 x 100k and ``9.6e-9`` for 100 x 1M values, of the weighted mean ``7e-13`` and
``3e-13``. The tests assert ``2e-9 * sqrt(n)`` on the sum
(``tests/unit/secagg/test_ckks.py``).

**Cost** (``bench/w5_ckks.py``, one core each): an upload is 20.7 times the plain
float32 update (331 KB per 4096 values: 81 MB for 1M parameters); encrypting and
serialising 1M values takes 0.70 s; the coordinator deserialises, checks and adds
them in 0.10 s per participant (10 s for 100 x 1M) and serialises the sum in
0.25 s; decryption takes 0.35 s. The public context has 124 bytes, the secret one
232 KB; key generation takes 50 ms. The chain (60, 40, 60) cuts uploads to 14.4
times float32 and encryption to 0.44 s per 1M values, with the same error.

**Process hygiene.** Importing ``grpc_tools`` (protoc) in a process that uses
TenSEAL has been reported to abort it, two C++ protobuf runtimes meeting in one
address space; it was not reproduced with tenseal 0.3.18, grpcio-tools 1.85.1 and
protobuf 7.36 in either order, but ``python -m accord.transport.proto.generate``
runs protoc in a child process regardless, and tests that use TenSEAL never run
protoc in-process.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.errors import RefusalKind, SecAggAborted, SubmissionRefused
from accord.secagg.ckks_keys import (
    KEY_ID_BYTES,
    CkksParams,
    LoadedContext,
    load_context,
    tenseal_module,
)

__all__ = ["CkksAggregator", "CkksParticipant", "decrypt_sum", "max_upload_bytes"]

_MAGIC = b"ACKV"
_VERSION = 1
_HEADER = struct.Struct(f">4sB{KEY_ID_BYTES}sI")
_LENGTH = struct.Struct(">I")

# Builds the error for a refused blob from a refusal kind and a readable reason.
_Refuse = Callable[[RefusalKind, str], Exception]


class CkksParticipant:
    """Encrypts one participant's weighted update under the secret context."""

    def __init__(self, secret_context: bytes) -> None:
        self._ctx = load_context(secret_context, secret=True)

    @property
    def params(self) -> CkksParams:
        """The parameters of the context."""
        return self._ctx.params

    def encrypt(self, values: npt.NDArray[np.floating[Any]], weight: float) -> bytes:
        """Encrypt ``weight * values`` followed by ``weight``; the upload's bytes."""
        flat = _weighted(values, weight, self._ctx.params)
        ts = tenseal_module()
        ctx = self._ctx.context
        chunks: list[bytes] = []
        start = 0
        for size in self._ctx.params.chunk_sizes(flat.size - 1):
            vector = ts.ckks_vector(ctx, flat[start : start + size])
            chunks.append(bytes(vector.serialize()))
            start += size
        return _pack(self._ctx.key_id, chunks)


class CkksAggregator:
    """The coordinator's running encrypted sum of one round's uploads.

    Each :meth:`add` checks the whole upload before touching the sum, so a refused
    one (:class:`~accord.errors.SubmissionRefused`) leaves it unchanged and the
    participant may send again. ``roster``, when given, limits who may upload.
    """

    def __init__(
        self,
        public_context: bytes,
        vector_size: int,
        *,
        roster: Collection[str] | None = None,
    ) -> None:
        if vector_size < 1:
            raise ValueError(f"vector_size must be at least 1, not {vector_size}")
        self._ctx = load_context(public_context, secret=False)
        self._sizes = self._ctx.params.chunk_sizes(vector_size)
        self._roster = None if roster is None else frozenset(roster)
        self._added: set[str] = set()
        self._total: list[Any] = []

    @property
    def participants(self) -> frozenset[str]:
        """Who has been added into the sum."""
        return frozenset(self._added)

    def add(self, participant_id: str, blob: bytes) -> None:
        """Check ``blob`` and add it into the sum, or refuse it and change nothing."""

        def refuse(kind: RefusalKind, reason: str) -> Exception:
            return SubmissionRefused(kind, reason, participant=participant_id)

        if self._roster is not None and participant_id not in self._roster:
            raise refuse("forbidden", "the sender is not on the round's roster")
        if participant_id in self._added:
            raise refuse("duplicate", "a second upload in this round")
        vectors = _open(self._ctx, blob, self._sizes, refuse)
        if self._total:
            for total, vector in zip(self._total, vectors, strict=True):
                total.add_(vector)
        else:
            self._total = vectors
        self._added.add(participant_id)

    def result(self) -> bytes:
        """The encrypted sum so far, for the key holder to decrypt."""
        if not self._total:
            raise SecAggAborted("no upload was added; there is no sum", stage="sum")
        return _pack(self._ctx.key_id, [bytes(v.serialize()) for v in self._total])


def decrypt_sum(
    secret_context: bytes, blob: bytes, vector_size: int
) -> tuple[npt.NDArray[np.float64], float]:
    """Decrypt a sum from :meth:`CkksAggregator.result`: ``(sum(w * x), sum(w))``.

    Exact: never release what it returns; a site releases
    :func:`~accord.secagg.ckks_session.ckks_decrypt`'s flooded, rounded values.

    Raises :class:`~accord.errors.SecAggAborted` (stage ``decrypt``) if the blob is
    not a sum of ``vector_size`` values under this key.
    """
    if vector_size < 1:
        raise ValueError(f"vector_size must be at least 1, not {vector_size}")
    ctx = load_context(secret_context, secret=True)

    def refuse(kind: RefusalKind, reason: str) -> Exception:
        return SecAggAborted(
            f"the encrypted sum is unusable ({kind}): {reason}", stage="decrypt"
        )

    vectors = _open(ctx, blob, ctx.params.chunk_sizes(vector_size), refuse)
    values = np.concatenate(
        [np.asarray(v.decrypt(), dtype=np.float64) for v in vectors]
    )
    return values[:-1], float(values[-1])


def max_upload_bytes(params: CkksParams, vector_size: int) -> int:
    """The most bytes an upload (or a sum) of ``vector_size`` values may take.

    What :meth:`CkksAggregator.add` accepts at most; a transport bounds a message by
    it before it reads the message.
    """
    count = len(params.chunk_sizes(vector_size))
    return _HEADER.size + count * (_LENGTH.size + params.max_chunk_bytes)


def _weighted(
    values: npt.NDArray[np.floating[Any]], weight: float, params: CkksParams
) -> npt.NDArray[np.float64]:
    """``weight * values`` with ``weight`` appended, as float64; ValueError if unfit."""
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "fiu":
        raise ValueError("an update is a non-empty 1-D array of real numbers")
    if not (np.isfinite(weight) and weight >= 0):
        raise ValueError(f"the weight must be finite and not negative, not {weight}")
    flat = np.empty(array.size + 1, dtype=np.float64)
    np.multiply(array, weight, out=flat[:-1], dtype=np.float64)  # not in float32
    flat[-1] = weight
    if not np.isfinite(flat).all():
        raise ValueError("the update holds NaN or infinity; it cannot be encrypted")
    if np.abs(flat).max() > params.max_abs_sum:
        raise ValueError(
            f"a weighted value exceeds {params.max_abs_sum:.3g}, beyond what the "
            "data modulus can hold; add primes to coeff_mod_bit_sizes"
        )
    return flat


def _pack(key_id: bytes, chunks: list[bytes]) -> bytes:
    parts = [_HEADER.pack(_MAGIC, _VERSION, key_id, len(chunks))]
    for chunk in chunks:
        parts += [_LENGTH.pack(len(chunk)), chunk]
    return b"".join(parts)


def _open(
    ctx: LoadedContext, blob: bytes, sizes: list[int], refuse: _Refuse
) -> list[Any]:
    """The ciphertexts of ``blob``, each checked against ``ctx`` and ``sizes``.

    The header is read first (a few bytes, so a blob under another key or of another
    shape gets the precise reason), then the total size, before anything is parsed.
    """
    if len(blob) < _HEADER.size:
        raise refuse("malformed", "too short for a CKKS upload header")
    magic, version, key_id, count = _HEADER.unpack_from(blob)
    if magic != _MAGIC or version != _VERSION:
        raise refuse("malformed", f"not a version-{_VERSION} CKKS upload")
    if key_id != ctx.key_id:
        raise refuse(
            "mismatch",
            "encrypted under another key than this round's; fetch the current "
            "context from the key holder",
        )
    if count != len(sizes):
        raise refuse(
            "mismatch", f"{count} ciphertext(s) where {len(sizes)} are expected"
        )
    bound = max_upload_bytes(ctx.params, sum(sizes) - 1)
    if len(blob) > bound:
        raise refuse(
            "too_large",
            f"{len(blob)} bytes, more than the {bound} that {count} ciphertext(s) "
            "can take",
        )
    chunks = _split(blob, _HEADER.size, count, ctx.params.max_chunk_bytes, refuse)
    return [
        _load_vector(ctx, chunk, size, i, refuse)
        for i, (chunk, size) in enumerate(zip(chunks, sizes, strict=True))
    ]


def _split(
    blob: bytes, offset: int, count: int, bound: int, refuse: _Refuse
) -> list[bytes]:
    view = memoryview(blob)
    chunks: list[bytes] = []
    for i in range(count):
        if offset + _LENGTH.size > len(blob):
            raise refuse("malformed", f"truncated before ciphertext {i}")
        (length,) = _LENGTH.unpack_from(blob, offset)
        offset += _LENGTH.size
        if length > bound:
            raise refuse("too_large", f"ciphertext {i} has {length} > {bound} bytes")
        if offset + length > len(blob):
            raise refuse("malformed", f"truncated inside ciphertext {i}")
        chunks.append(bytes(view[offset : offset + length]))
        offset += length
    if offset != len(blob):
        raise refuse("malformed", f"{len(blob) - offset} stray byte(s) at the end")
    return chunks


def _load_vector(
    ctx: LoadedContext, chunk: bytes, size: int, i: int, refuse: _Refuse
) -> Any:
    """Deserialise one ciphertext and check it is a fresh one of ``size`` slots."""
    ts = tenseal_module()
    try:
        vector = ts.ckks_vector_from(ctx.context, chunk)
        ciphertexts = vector.ciphertext()
    except (ValueError, RuntimeError) as exc:
        raise refuse(
            "malformed", f"ciphertext {i} does not deserialise: {exc}"
        ) from exc
    if vector.size() != size or len(ciphertexts) != 1:
        raise refuse(
            "mismatch", f"ciphertext {i} holds {vector.size()} values, not {size}"
        )
    (ct,) = ciphertexts
    fresh = (
        ct.size() == 2
        and ct.is_ntt_form()
        and list(ct.parms_id()) == ctx.parms_id
        and float(ct.scale) == ctx.params.global_scale
    )
    if not fresh:
        raise refuse(
            "mismatch",
            f"ciphertext {i} is not a fresh encryption under this round's "
            "parameters (level, scale or size differ)",
        )
    return vector
