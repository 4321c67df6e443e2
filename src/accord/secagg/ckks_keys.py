"""CKKS parameters and key material for :mod:`accord.secagg.ckks`.

The key holder calls :meth:`KeyHolder.create` once per key period: it gets two byte
strings, the *secret context* (parameters and secret key, for the participants, who
encrypt and may decrypt) and the *public context* (parameters only, for the
coordinator, who adds ciphertexts). Both are TenSEAL's own protobuf serialisation
behind a 22-byte accord header: a magic, a version, the kind (secret or public) and
a random 16-byte key id. Every ciphertext carries the key id of the context that made
it, so the coordinator refuses an upload made under another key (a participant with
a stale or foreign context) instead of adding garbage into the sum; without it the
mistake would go unseen until decryption, because a SEAL ciphertext only records the
parameters, which two keys share.

Encryption is SEAL's *symmetric* (secret-key) CKKS encryption: every encryptor holds
the secret key anyway, so a public key would give nobody a capability they lack,
while it would cost the coordinator's context 465 KB (instead of 124 bytes)
and make the fresh noise about ten times larger. The public context therefore holds
no key at all; addition needs none. SEAL generates keys from the operating system's
randomness; TenSEAL offers no way to seed it, so key generation is not reproducible
(and should not be).

TenSEAL is imported lazily (:func:`tenseal_module`), so this module and
:mod:`accord.secagg.ckks` import without the ``ckks`` extra; using them without it
raises :class:`~accord.errors.MissingExtraError` naming the install command.
"""

from __future__ import annotations

import math
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

from accord.errors import ConfigError, MissingExtraError

__all__ = [
    "KEY_ID_BYTES",
    "CkksParams",
    "KeyHolder",
    "LoadedContext",
    "load_context",
    "tenseal_module",
]

#: Bytes of the random id that ties a ciphertext to the context that made it.
KEY_ID_BYTES = 16
_MAGIC = b"ACKC"
_VERSION = 1
_KINDS = {"secret": b"S", "public": b"P"}
_HEADER = struct.Struct(f">4sBc{KEY_ID_BYTES}s")


def tenseal_module() -> Any:
    """The ``tenseal`` package (untyped, hence Any), or MissingExtraError."""
    try:
        import tenseal
        import tenseal.sealapi  # registers SEAL's types (Modulus) with pybind11
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise MissingExtraError(
            extra="ckks", package="tenseal", feature="CKKS secure aggregation"
        ) from exc
    return tenseal


@dataclass(frozen=True, slots=True)
class CkksParams:
    """CKKS parameters; the defaults give 128-bit security (SEAL's HE-standard table).

    * ``poly_modulus_degree`` ``N`` (8192): a ciphertext packs ``N / 2`` values (its
      *slots*) and has ``2 N`` coefficients per prime of the data modulus.
    * ``coeff_mod_bit_sizes`` ((60, 40, 40, 60)): the primes of the modulus chain; all
      but the last (the special prime, used for key switching) form the data
      modulus of a fresh ciphertext (140 bits here). The chain's total must stay
      under SEAL's bound for ``N`` (218 bits at 8192), or creation fails. Addition
      never rescales, so the two 40-bit primes only add headroom: (60, 40, 60) is
      also correct for aggregation and uploads a third less.
    * ``scale_bits`` (40): values are encoded at scale ``2 ** scale_bits``; the
      absolute error of a decrypted value is about ``noise / scale``.
    """

    poly_modulus_degree: int = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = (60, 40, 40, 60)
    scale_bits: int = 40

    def __post_init__(self) -> None:
        n = self.poly_modulus_degree
        if n < 1024 or n > 32768 or n & (n - 1):
            raise ConfigError(
                f"must be a power of two from 1024 to 32768, not {n}",
                key="poly_modulus_degree",
            )
        sizes = self.coeff_mod_bit_sizes
        if len(sizes) < 2 or any(not 17 <= b <= 60 for b in sizes):
            raise ConfigError(
                f"needs at least two primes of 17 to 60 bits, not {list(sizes)}",
                key="coeff_mod_bit_sizes",
            )
        if not 10 <= self.scale_bits <= self.data_bits - 10:
            raise ConfigError(
                f"must lie in [10, {self.data_bits - 10}] (the data modulus has "
                f"{self.data_bits} bits), not {self.scale_bits}",
                key="scale_bits",
            )

    @property
    def slots(self) -> int:
        """Values per ciphertext."""
        return self.poly_modulus_degree // 2

    @property
    def global_scale(self) -> float:
        """The encoding scale, ``2 ** scale_bits``."""
        return float(2**self.scale_bits)

    @property
    def data_bits(self) -> int:
        """Bits of the data modulus of a fresh ciphertext (all primes but the last)."""
        return sum(self.coeff_mod_bit_sizes[:-1])

    @property
    def max_abs_sum(self) -> float:
        """Largest magnitude any slot of a *sum* may reach before it wraps around.

        Decryption is correct while ``|value| * scale`` stays well under half the
        data modulus; two bits of margin cover the encoding's rounding.
        """
        return float(2 ** (self.data_bits - self.scale_bits - 3))

    @property
    def max_chunk_bytes(self) -> int:
        """Upper bound on one serialised ciphertext (uncompressed, plus framing)."""
        raw = 2 * self.poly_modulus_degree * (len(self.coeff_mod_bit_sizes) - 1) * 8
        return raw + raw // 64 + 4096

    def chunk_sizes(self, vector_size: int) -> list[int]:
        """Slots used by each ciphertext of a ``vector_size`` update plus its weight."""
        total = vector_size + 1
        full, rest = divmod(total, self.slots)
        return [self.slots] * full + ([rest] if rest else [])


@dataclass(frozen=True, slots=True)
class LoadedContext:
    """A deserialised context: TenSEAL's object, its key id and its parameters."""

    context: Any = field(repr=False)
    key_id: bytes
    params: CkksParams
    secret: bool

    @property
    def parms_id(self) -> list[int]:
        """SEAL's id of the data level every fresh ciphertext must be at."""
        return list(self.context.data.seal_context().first_parms_id())


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """The party that creates the CKKS keys; its secret context can also decrypt.

    ``secret_context`` goes to the participants (over an authenticated, encrypted
    channel: it decrypts everything), ``public_context`` to the coordinator. Neither
    appears in ``repr``.
    """

    secret_context: bytes = field(repr=False)
    public_context: bytes = field(repr=False)
    key_id: bytes
    params: CkksParams

    @classmethod
    def create(cls, params: CkksParams | None = None) -> KeyHolder:
        """Generate a fresh key under ``params`` (default :class:`CkksParams`)."""
        params = params or CkksParams()
        ts = tenseal_module()
        try:
            ctx = ts.context(
                ts.SCHEME_TYPE.CKKS,
                params.poly_modulus_degree,
                coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
                encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC,
                n_threads=1,
            )
        except ValueError as exc:
            raise ConfigError(
                f"SEAL refused {params}: {exc}; lower coeff_mod_bit_sizes or raise "
                "poly_modulus_degree"
            ) from exc
        ctx.global_scale = params.global_scale
        key_id = secrets.token_bytes(KEY_ID_BYTES)
        secret = ctx.serialize(save_secret_key=True, save_relin_keys=False)
        public = ctx.serialize(save_secret_key=False, save_relin_keys=False)
        return cls(
            secret_context=_frame("secret", key_id, bytes(secret)),
            public_context=_frame("public", key_id, bytes(public)),
            key_id=key_id,
            params=params,
        )


def _frame(kind: Literal["secret", "public"], key_id: bytes, body: bytes) -> bytes:
    return _HEADER.pack(_MAGIC, _VERSION, _KINDS[kind], key_id) + body


def load_context(blob: bytes, *, secret: bool) -> LoadedContext:
    """Open a context made by :meth:`KeyHolder.create`; raise ConfigError if unusable.

    ``secret`` says which kind the caller needs: a participant refuses the public
    context (it could not encrypt), and the coordinator refuses the secret one (it
    must never hold the key), whatever the header claims.
    """
    want = "secret" if secret else "public"
    if len(blob) <= _HEADER.size:
        raise ConfigError(f"a {want} CKKS context has more than {_HEADER.size} bytes")
    magic, version, kind, key_id = _HEADER.unpack_from(blob)
    if magic != _MAGIC or version != _VERSION:
        raise ConfigError(
            f"not a version-{_VERSION} CKKS context from accord's KeyHolder; ask the "
            "key holder for the current one"
        )
    ts = tenseal_module()
    try:
        ctx = ts.context_from(bytes(blob[_HEADER.size :]), n_threads=1)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"the {want} CKKS context does not load: {exc}") from exc
    has_key = bool(ctx.has_secret_key())
    if kind != _KINDS[want] or has_key != secret:
        if secret:
            raise ConfigError(
                "this is the public CKKS context: participants need the secret "
                "context from the key holder"
            )
        raise ConfigError(
            "this CKKS context carries the secret key: the coordinator must hold "
            "only the public context (KeyHolder.public_context)"
        )
    return LoadedContext(
        context=ctx, key_id=bytes(key_id), params=_params_of(ctx), secret=secret
    )


def _params_of(ctx: Any) -> CkksParams:
    """The parameters a loaded context really uses, read back from SEAL."""
    seal = ctx.data.seal_context()
    parms = seal.key_context_data().parms()
    scale_bits = math.log2(float(ctx.global_scale))
    if not scale_bits.is_integer():
        raise ConfigError(f"the context's scale {ctx.global_scale} is not 2**k")
    return CkksParams(
        poly_modulus_degree=int(parms.poly_modulus_degree()),
        coeff_mod_bit_sizes=tuple(int(m.bit_count()) for m in parms.coeff_modulus()),
        scale_bits=int(scale_bits),
    )
