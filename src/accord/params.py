"""Model parameters: an ordered mapping of names to float arrays, and their byte layout.

:class:`Params` is what every part of accord passes around: a task produces it, a
transform changes it, an aggregation rule combines several, the store checkpoints it.
:class:`ParamSpec` is its shape without the values (names, dtypes, shapes) and defines
the one byte layout accord uses on the wire and in shared memory: the tensors' raw
little-endian bytes one after the other, in order, each starting at a multiple of 64
bytes so that views onto a received buffer are aligned. Decoding is zero-copy
(``numpy.frombuffer``); nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import blake3
import numpy as np
import numpy.typing as npt

from accord.errors import UpdateRejected
from accord.jsontext import parse_json

__all__ = [
    "ALLOWED_DTYPES",
    "DIGEST_ALGORITHM",
    "MAX_PACKED_BYTES",
    "Array",
    "ParamSpec",
    "Params",
    "TensorSpec",
    "params_hasher",
]

Array = npt.NDArray[np.floating[Any]]

#: Float dtypes a parameter may have, by their little-endian numpy name.
ALLOWED_DTYPES: frozenset[str] = frozenset({"<f2", "<f4", "<f8"})
_ALIGN = 64
#: The hash of :meth:`Params.digest`, by the name in-toto digest sets give it.
#: BLAKE3 is collision-resistant like SHA-256 and twice its speed on one core of
#: the benchmark machine (3.4 against 1.5 GB/s): every round hashes every update
#: and model, up to 31 models' worth of bytes a round in a deployment of ten.
#: Earlier versions of accord recorded SHA-256 digests
#: (:meth:`Params.matches` still accepts them).
DIGEST_ALGORITHM = "blake3"


def _dtype_name(dtype: np.dtype[Any]) -> str:
    return dtype.newbyteorder("<").str if dtype.byteorder == ">" else dtype.str


#: The largest packed model accepted (1 TiB): a larger shape is a hostile or
#: corrupt header, refused before anything is allocated for it.
MAX_PACKED_BYTES = 1 << 40


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """Name, dtype (little-endian numpy string, ``'<f4'``) and shape of one array."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of elements (exact: a product past int64 does not wrap)."""
        return math.prod(int(d) for d in self.shape)

    @property
    def nbytes(self) -> int:
        """Size of the raw data in bytes."""
        return self.size * np.dtype(self.dtype).itemsize


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """The structure of a :class:`Params` and the byte layout derived from it."""

    tensors: tuple[TensorSpec, ...]

    def __post_init__(self) -> None:
        names = [t.name for t in self.tensors]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate parameter names in {names}")
        for t in self.tensors:
            if t.dtype not in ALLOWED_DTYPES:
                raise ValueError(
                    f"parameter {t.name!r} has dtype {t.dtype}; only float16/32/64 "
                    "are allowed"
                )
            if any(d < 0 for d in t.shape):
                raise ValueError(f"parameter {t.name!r} has a negative dimension")
        if self.packed_nbytes > MAX_PACKED_BYTES:
            raise ValueError(
                f"the parameters would take {self.packed_nbytes} bytes, more than "
                f"{MAX_PACKED_BYTES} (1 TiB): an impossible shape"
            )

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names in order."""
        return tuple(t.name for t in self.tensors)

    @property
    def size(self) -> int:
        """Total number of elements."""
        return sum(t.size for t in self.tensors)

    def offsets(self) -> tuple[int, ...]:
        """Byte offset of each tensor in the packed layout (64-byte aligned)."""
        out: list[int] = []
        pos = 0
        for t in self.tensors:
            out.append(pos)
            pos += -(-t.nbytes // _ALIGN) * _ALIGN
        return tuple(out)

    @property
    def packed_nbytes(self) -> int:
        """Bytes of the packed layout, padding included."""
        return sum(-(-t.nbytes // _ALIGN) * _ALIGN for t in self.tensors)

    def view(self, buffer: Any, *, writable: bool = False) -> Params:
        """Map a packed buffer (bytes, memoryview, shared memory) as Params, no copy.

        Raises :class:`UpdateRejected` if the buffer is too small for this layout.
        """
        mem = memoryview(buffer).cast("B")
        if mem.nbytes < self.packed_nbytes:
            raise UpdateRejected(
                f"payload has {mem.nbytes} bytes, the model needs {self.packed_nbytes}"
            )
        arrays: dict[str, Array] = {}
        for t, off in zip(self.tensors, self.offsets(), strict=True):
            arr = np.frombuffer(mem, dtype=t.dtype, count=t.size, offset=off)
            if not writable:
                arr.flags.writeable = False
            arrays[t.name] = arr.reshape(t.shape)
        return Params(arrays, _trusted=True)

    def pack_into(self, params: Params, buffer: Any) -> None:
        """Write ``params`` into a packed buffer; the structure must match exactly."""
        self.check(params)
        mem = memoryview(buffer).cast("B")
        if mem.nbytes < self.packed_nbytes:
            raise ValueError(
                f"buffer has {mem.nbytes} bytes, layout needs {self.packed_nbytes}"
            )
        for t, off in zip(self.tensors, self.offsets(), strict=True):
            dst = np.frombuffer(mem, dtype=t.dtype, count=t.size, offset=off)
            np.copyto(dst, params[t.name].reshape(-1), casting="no")

    def pack(self, params: Params) -> bytearray:
        """Return ``params`` as a new packed buffer."""
        out = bytearray(self.packed_nbytes)
        self.pack_into(params, out)
        return out

    def check(self, params: Mapping[str, Array]) -> None:
        """Raise :class:`UpdateRejected` unless ``params`` has this exact structure."""
        if tuple(params.keys()) != self.names:
            missing = sorted(set(self.names) - set(params))
            extra = sorted(set(params) - set(self.names))
            if missing or extra:
                raise UpdateRejected(
                    f"parameter names differ (missing {missing}, unexpected {extra})"
                )
            raise UpdateRejected("parameters are not in the model's order")
        for t in self.tensors:
            arr = params[t.name]
            if tuple(arr.shape) != t.shape:
                raise UpdateRejected(
                    f"{t.name!r} has shape {tuple(arr.shape)}, expected {t.shape}"
                )
            if _dtype_name(arr.dtype) != t.dtype:
                raise UpdateRejected(
                    f"{t.name!r} has dtype {arr.dtype}, expected {np.dtype(t.dtype)}"
                )

    def to_json(self) -> str:
        """Serialise the structure as JSON (the header that travels with the bytes)."""
        return json.dumps([[t.name, t.dtype, list(t.shape)] for t in self.tensors])

    @classmethod
    def from_json(cls, text: str | bytes) -> ParamSpec:
        """Parse :meth:`to_json` output, validating every field."""
        try:
            raw = parse_json(text)
            tensors = tuple(
                TensorSpec(str(name), str(dtype), tuple(int(d) for d in shape))
                for name, dtype, shape in raw
            )
        except (ValueError, TypeError) as exc:
            raise UpdateRejected(f"malformed parameter header: {exc}") from exc
        try:
            return cls(tensors)
        except ValueError as exc:
            raise UpdateRejected(str(exc)) from exc


class Params(Mapping[str, Array]):
    """An immutable-by-convention ordered mapping of parameter names to float arrays.

    Arrays are kept as given (no copy) when they already are contiguous little-endian
    floats; operations return new Params. Use :meth:`copy` before mutating in place.
    """

    __slots__ = ("_arrays", "_spec")

    def __init__(
        self,
        arrays: Mapping[str, npt.ArrayLike] | Iterable[tuple[str, npt.ArrayLike]],
        *,
        _trusted: bool = False,
    ) -> None:
        items = arrays.items() if isinstance(arrays, Mapping) else arrays
        out: dict[str, Array] = {}
        for name, value in items:
            if _trusted:
                out[name] = value  # type: ignore[assignment]  # built by ParamSpec.view
                continue
            arr = np.asarray(value)
            if arr.dtype.kind != "f":
                arr = arr.astype(np.float32)
            if arr.dtype.byteorder == ">":
                arr = arr.astype(arr.dtype.newbyteorder("<"))
            out[str(name)] = np.require(arr, requirements="C")  # keeps 0-d arrays
        self._arrays = out
        self._spec: ParamSpec | None = None

    # Mapping protocol
    def __getitem__(self, name: str) -> Array:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}: {a.dtype}{list(a.shape)}" for n, a in self.items())
        return f"Params({parts})"

    @property
    def spec(self) -> ParamSpec:
        """The structure of these parameters."""
        if self._spec is None:
            self._spec = ParamSpec(
                tuple(
                    TensorSpec(n, _dtype_name(a.dtype), tuple(a.shape))
                    for n, a in self._arrays.items()
                )
            )
        return self._spec

    @property
    def size(self) -> int:
        """Total number of elements."""
        return sum(a.size for a in self._arrays.values())

    @property
    def nbytes(self) -> int:
        """Total bytes of the raw data."""
        return sum(a.nbytes for a in self._arrays.values())

    def digest(self) -> str:
        """BLAKE3 over structure and raw bytes: equal iff the parameters are equal.

        64 hex digits: the structure's JSON, then each tensor's bytes in order
        (:func:`params_hasher`).
        """
        return self._hashed(params_hasher(self.spec))

    def matches(self, digest: str) -> bool:
        """Whether ``digest`` is these parameters' digest, or their SHA-256 one.

        For digests that earlier versions recorded (checkpoints, round records,
        ledgers), which were SHA-256 over the same bytes; both hashes are
        collision-resistant, so accepting either accepts nothing else.
        """
        return self.digest() == digest or self.legacy_digest() == digest

    def legacy_digest(self) -> str:
        """SHA-256 over the same bytes as :meth:`digest`: what earlier versions kept."""
        return self._hashed(hashlib.sha256(self.spec.to_json().encode()))

    def _hashed(self, h: blake3.blake3 | hashlib._Hash) -> str:
        for a in self._arrays.values():
            if a.size:
                h.update(np.require(a, requirements="C").data.cast("B"))
        return h.hexdigest()

    def copy(self) -> Params:
        """Deep copy (new, writable arrays)."""
        return Params({n: a.copy() for n, a in self._arrays.items()})

    def astype(self, dtype: npt.DTypeLike) -> Params:
        """Cast every array to ``dtype``."""
        return Params({n: a.astype(dtype) for n, a in self._arrays.items()})

    def flatten(self, dtype: npt.DTypeLike = np.float64) -> Array:
        """Concatenate every array into one 1-D array of ``dtype``."""
        if not self._arrays:
            return np.zeros(0, dtype=dtype)
        return np.concatenate([a.reshape(-1).astype(dtype) for a in self.values()])

    @classmethod
    def unflatten(cls, spec: ParamSpec, flat: npt.ArrayLike) -> Params:
        """Split a 1-D array back into arrays of ``spec``'s names, shapes and dtypes."""
        vec = np.asarray(flat).reshape(-1)
        if vec.size != spec.size:
            raise UpdateRejected(
                f"flat vector has {vec.size} elements, the model has {spec.size}"
            )
        out: dict[str, Array] = {}
        pos = 0
        for t in spec.tensors:
            out[t.name] = vec[pos : pos + t.size].astype(t.dtype).reshape(t.shape)
            pos += t.size
        return cls(out)

    def all_finite(self) -> bool:
        """True if no array holds NaN or infinity."""
        return all(bool(np.isfinite(a).all()) for a in self._arrays.values())

    def __add__(self, other: Params) -> Params:
        self.spec.check(other)
        return Params({n: a + other[n] for n, a in self.items()})

    def __sub__(self, other: Params) -> Params:
        self.spec.check(other)
        return Params({n: a - other[n] for n, a in self.items()})

    def scale(self, factor: float) -> Params:
        """Multiply every array by ``factor``, keeping dtypes."""
        return Params({n: (a * factor).astype(a.dtype) for n, a in self.items()})


def params_hasher(spec: ParamSpec) -> blake3.blake3:
    """The hash of :meth:`Params.digest`, fed ``spec``; then each tensor's bytes."""
    return blake3.blake3(spec.to_json().encode())
