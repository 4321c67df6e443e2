"""Compression of an update before it leaves a site, and its checked decoding.

Three methods (``[compression] method``), all over the update flattened in the
model's tensor order:

- ``q8`` / ``q4``: stochastic (unbiased) quantization of each tensor to 256 or 16
  levels between its minimum and maximum; a value is rounded up with probability
  equal to its distance from the level below, so the decoded update's expectation
  is the update itself (QSGD-style, Alistarh et al. 2017). Each tensor carries its
  own offset and step (two float32); 4-bit codes are packed two per byte.
- ``topk``: the ``fraction`` largest values by magnitude, as sorted indices and
  float32 values, with error feedback (Seide et al. 2014; Stich et al. 2018): what
  a site did not send is kept as its residual and added to its next update, so
  nothing is lost, only delayed. Optionally with Deep Gradient Compression's
  density warm-up (Lin et al. 2018, section 3.3): over the first rounds the
  density starts at 25 % and falls 4x per round until it reaches ``fraction``
  (:func:`topk_fraction`), so the early, large and fast-changing updates are not
  held back in the residual while the model is far from any optimum.

The body is then deflated with :mod:`zlib` (the codes of a quantized update are
concentrated near the middle levels and the sorted indices are close together).
The decoder knows the size of every body from the model's structure and the
configured method alone, inflates at most that many bytes (no decompression bomb)
and refuses, with the reason, anything that does not fit: wrong lengths, an index
out of range or repeated, a NaN or infinite offset, step or value, padding bits set.

Hand-written rather than taken from a library because the maintained ones
(PyTorch's DDP hooks, TensorFlow Model Optimization) are bound to a training
framework, and the decoder must check bytes sent by another party without it.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from accord.errors import UpdateRejected
from accord.jsontext import parse_json

__all__ = [
    "OPTION_KEY",
    "Declared",
    "Method",
    "Compressor",
    "max_payload",
    "compressed_size",
    "decode",
    "encode",
    "topk_count",
    "topk_fraction",
]

logger = logging.getLogger(__name__)

Method = Literal["none", "q8", "q4", "topk"]
FloatArray = npt.NDArray[np.float64]

_LEVELS = {"q8": 255, "q4": 15}
_HEADER = np.dtype("<f4")  # offset and step, per tensor
_INDEX = np.dtype("<u4")
_VALUE = np.dtype("<f4")
_MAX_INDEXED = 2**32  # indices are uint32

#: The train-task option under which a deployed coordinator declares the
#: compression a site applies to its update (JSON of :class:`Declared`).
OPTION_KEY = "accord.compression"


@dataclass(frozen=True, slots=True)
class Declared:
    """The compression a coordinator asks of a deployed site, with the run's seed.

    The seed (the run's ``[federation] seed``) makes the site's stochastic rounding
    the simulation's: it draws from ``(seed, round, crc32(site))``. Top-k's
    warm-up, momentum correction and factor masking travel too, so a deployed site
    compresses exactly as a simulated one.
    """

    method: Method
    fraction: float
    seed: int
    warmup_rounds: int = 0
    momentum: float = 0.0
    masking: bool = False

    def to_json(self) -> str:
        """The option's value (plain JSON, parsed by :meth:`of`)."""
        return json.dumps(
            {
                "method": self.method,
                "fraction": self.fraction,
                "seed": self.seed,
                "warmup_rounds": self.warmup_rounds,
                "momentum": self.momentum,
                "masking": self.masking,
            },
            sort_keys=True,
        )

    def round_fraction(self, round_number: int) -> float:
        """Top-k's density in ``round_number`` (:func:`topk_fraction`)."""
        if self.method != "topk":
            return self.fraction
        return topk_fraction(self.fraction, self.warmup_rounds, round_number)

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> Declared | None:
        """What ``options`` declare (None: send the update dense); ValueError if bad."""
        raw = options.get(OPTION_KEY)
        if raw is None:
            return None
        try:
            doc = parse_json(raw) if isinstance(raw, str) else None
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or set(doc) != set(_DECLARED_KEYS):
            raise ValueError(f"option {OPTION_KEY} is not a compression declaration")
        method, fraction, seed = doc["method"], doc["fraction"], doc["seed"]
        warmup, momentum, masking = (
            doc["warmup_rounds"],
            doc["momentum"],
            doc["masking"],
        )
        if (
            method not in _METHODS
            or not isinstance(seed, int)
            or isinstance(seed, bool)
        ):
            raise ValueError(f"option {OPTION_KEY} declares method {method!r}")
        if not isinstance(fraction, int | float) or not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"option {OPTION_KEY} declares fraction {fraction!r}")
        if (
            not isinstance(warmup, int)
            or isinstance(warmup, bool)
            or not 0 <= warmup <= 1000
        ):
            raise ValueError(f"option {OPTION_KEY} declares warmup_rounds {warmup!r}")
        if (
            not isinstance(momentum, int | float)
            or isinstance(momentum, bool)
            or not 0.0 <= float(momentum) < 1.0
        ):
            raise ValueError(f"option {OPTION_KEY} declares momentum {momentum!r}")
        if not isinstance(masking, bool):
            raise ValueError(f"option {OPTION_KEY} declares masking {masking!r}")
        return cls(method, float(fraction), seed, warmup, float(momentum), masking)


_DECLARED_KEYS = ("method", "fraction", "seed", "warmup_rounds", "momentum", "masking")
_METHODS = ("q8", "q4", "topk")


def max_payload(sizes: Sequence[int], method: Method, fraction: float) -> int:
    """The most bytes a well-formed payload for tensors of ``sizes`` can take.

    zlib's worst case for incompressible data (``compressBound``): the body plus
    5 bytes per 16 KiB stored block and its 11-byte wrapper, rounded up.
    """
    body = compressed_size(sizes, method, fraction)
    return body + 5 * (body // 16384 + 1) + 16


def topk_count(size: int, fraction: float) -> int:
    """How many values top-k sends of ``size``: at least one, at most all."""
    return max(1, min(size, math.ceil(fraction * size)))


def topk_fraction(fraction: float, warmup_rounds: int, round_number: int) -> float:
    """Top-k's density in ``round_number`` (1-based) with a warm-up.

    In the first ``warmup_rounds`` rounds the density is ``4 ** -round_number``
    (25 %, 6.25 %, 1.5625 %, ...: DGC's exponential schedule), never below
    ``fraction`` and never above 1; afterwards it is ``fraction``. Site and
    coordinator both derive it from the configuration and the round, so nothing
    about it travels.
    """
    if round_number < 1:
        raise ValueError(f"rounds are numbered from 1, got {round_number}")
    if round_number > warmup_rounds:
        return fraction
    return min(1.0, max(fraction, 0.25**round_number))


def compressed_size(sizes: Sequence[int], method: Method, fraction: float) -> int:
    """The exact length of the (inflated) body for tensors of ``sizes``."""
    if method in _LEVELS:
        codes = sum(sizes) if method == "q8" else sum((n + 1) // 2 for n in sizes)
        return 2 * _HEADER.itemsize * len(sizes) + codes
    if method == "topk":
        return topk_count(sum(sizes), fraction) * (_INDEX.itemsize + _VALUE.itemsize)
    raise ValueError(f"no compressed form for method {method!r}")


def _quantize(x: FloatArray, levels: int, rng: np.random.Generator) -> bytes:
    lo, hi = float(x.min(initial=0.0)), float(x.max(initial=0.0))
    lo32, step32 = np.float32(lo), np.float32((hi - lo) / levels)
    step = float(step32)
    if step > 0.0 and math.isfinite(step):
        scaled = np.clip((x - float(lo32)) / step, 0.0, levels)
        codes = np.floor(scaled)
        codes += rng.random(x.size) < (scaled - codes)  # unbiased rounding
        codes = np.minimum(codes, levels).astype(np.uint8)
    else:  # a constant tensor: every value is the offset
        codes = np.zeros(x.size, dtype=np.uint8)
        step32 = np.float32(0.0)
    if levels == 15:
        if codes.size % 2:
            codes = np.append(codes, np.uint8(0))
        codes = (codes[0::2] | (codes[1::2] << 4)).astype(np.uint8)
    return np.array([lo32, step32], dtype=_HEADER).tobytes() + codes.tobytes()


def encode(
    update: FloatArray,
    sizes: Sequence[int],
    *,
    method: Method,
    fraction: float,
    rng: np.random.Generator,
) -> tuple[bytes, FloatArray]:
    """The compressed payload of the flat ``update``, and what it decodes to.

    ``sizes`` are the tensors' element counts in order (they sum to the update's
    size). The second result is the update as the coordinator will see it, so that
    a caller can keep ``update - decoded`` as top-k's residual.
    """
    if sum(sizes) != update.size:
        raise ValueError(f"sizes sum to {sum(sizes)}, the update has {update.size}")
    if method in _LEVELS:
        parts, start = [], 0
        for n in sizes:
            parts.append(_quantize(update[start : start + n], _LEVELS[method], rng))
            start += n
        body = b"".join(parts)
    elif method == "topk":
        k = topk_count(update.size, fraction)
        if update.size > _MAX_INDEXED:
            raise ValueError("top-k indexes at most 2**32 values")
        top = np.argpartition(np.abs(update), update.size - k)[update.size - k :]
        top.sort()
        body = top.astype(_INDEX).tobytes() + update[top].astype(_VALUE).tobytes()
    else:
        raise ValueError(f"no compressed form for method {method!r}")
    payload = zlib.compress(body, 6)
    return payload, decode(payload, sizes, method=method, fraction=fraction)


def _inflate(payload: bytes, expected: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(payload, expected)
    except zlib.error as exc:
        raise UpdateRejected(
            f"compressed update is not valid deflate data: {exc}"
        ) from exc
    if len(body) != expected or inflater.unconsumed_tail or not inflater.eof:
        raise UpdateRejected(
            f"compressed update has the wrong length: expected {expected} bytes "
            f"once inflated, got {len(body)}{'+' if inflater.unconsumed_tail else ''}"
        )
    if inflater.unused_data:
        raise UpdateRejected(
            f"compressed update has {len(inflater.unused_data)} bytes after its end"
        )
    return body


def _dequantize(body: bytes, sizes: Sequence[int], levels: int) -> FloatArray:
    out = np.empty(sum(sizes), dtype=np.float64)
    pos = start = 0
    for t, n in enumerate(sizes):
        lo, step = (
            float(v) for v in np.frombuffer(body, dtype=_HEADER, count=2, offset=pos)
        )
        pos += 2 * _HEADER.itemsize
        if not (math.isfinite(lo) and math.isfinite(step)) or step < 0:
            raise UpdateRejected(
                f"compressed tensor {t} has an invalid scale (offset {lo}, step "
                f"{step}): both must be finite and the step not negative"
            )
        nbytes = n if levels == 255 else (n + 1) // 2
        raw = np.frombuffer(body, dtype=np.uint8, count=nbytes, offset=pos)
        pos += nbytes
        if levels == 15:
            codes = np.empty(2 * nbytes, dtype=np.uint8)
            codes[0::2], codes[1::2] = raw & 0x0F, raw >> 4
            if n % 2 and codes[-1]:
                raise UpdateRejected(f"compressed tensor {t} has padding bits set")
            codes = codes[:n]
        else:
            codes = raw
        out[start : start + n] = lo + codes * step
        start += n
    if not np.isfinite(out).all():
        raise UpdateRejected("compressed update decodes to values that overflow")
    return out


def _desparsify(body: bytes, size: int, k: int) -> FloatArray:
    index = np.frombuffer(body, dtype=_INDEX, count=k).astype(np.int64)
    values = np.frombuffer(body, dtype=_VALUE, count=k, offset=k * _INDEX.itemsize)
    if index.size and int(index.max()) >= size:
        raise UpdateRejected(
            f"compressed update has index {int(index.max())} out of range: the model "
            f"has {size} values"
        )
    gaps = np.diff(index)
    if (gaps == 0).any():
        dup = int(index[1:][gaps == 0][0])
        raise UpdateRejected(f"compressed update repeats index {dup}")
    if (gaps < 0).any():
        raise UpdateRejected("compressed update's indices are not in increasing order")
    if not np.isfinite(values).all():
        raise UpdateRejected("compressed update has a NaN or infinite value")
    out = np.zeros(size, dtype=np.float64)
    out[index] = values
    return out


def decode(
    payload: bytes, sizes: Sequence[int], *, method: Method, fraction: float
) -> FloatArray:
    """The flat update a payload of :func:`encode` carries; UpdateRejected if bad."""
    body = _inflate(payload, compressed_size(sizes, method, fraction))
    if method in _LEVELS:
        return _dequantize(body, sizes, _LEVELS[method])
    size = sum(sizes)
    return _desparsify(body, size, topk_count(size, fraction))


@dataclass(slots=True)
class Compressor:
    """One site's compression, with top-k's error-feedback residual.

    The residual and the momentum-correction velocity (``momentum`` > 0; masked
    where a value was sent when ``masking``) live in this object (a simulated
    site's worker keeps one per site): they are not checkpointed, so a restarted
    worker or a resumed run starts them again from zero, which delays what was
    still owed but loses nothing sent. A deployed site saves both in its state
    folder after each round (:mod:`accord.participant.compression`).
    """

    method: Method
    fraction: float
    momentum: float = 0.0
    masking: bool = False
    residual: FloatArray | None = None
    velocity: FloatArray | None = None

    def compress(
        self,
        update: FloatArray,
        sizes: Sequence[int],
        rng: np.random.Generator,
        *,
        fraction: float | None = None,
    ) -> tuple[bytes, FloatArray]:
        """The payload for ``update`` and its decoded form; updates the residual.

        ``fraction`` overrides top-k's density for this update (a warm-up round's,
        :func:`topk_fraction`); the decoder must be given the same.
        """
        density = self.fraction if fraction is None else fraction
        if self.method != "topk":
            return encode(update, sizes, method=self.method, fraction=density, rng=rng)
        if self.momentum > 0.0:
            if self.velocity is not None and self.velocity.size == update.size:
                update = self.momentum * self.velocity + update
            self.velocity = update
        if self.residual is not None and self.residual.size == update.size:
            update = update + self.residual
        payload, sent = encode(
            update, sizes, method=self.method, fraction=density, rng=rng
        )
        if self.velocity is not None and self.masking:
            self.velocity = np.where(sent != 0.0, 0.0, self.velocity)
        self.residual = update - sent
        return payload, sent
