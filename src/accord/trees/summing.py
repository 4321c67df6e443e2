"""How the coordinator adds the sites' sketches and histograms: plainly or masked.

Both summers take each site's contribution and return only the federation's
total, so the boosting loop (:mod:`accord.trees.boosting`) is the same either way.

- :class:`PlainSum` adds what the sites sent (the coordinator sees each part).
- :class:`MaskedSum` runs accord's SecAgg masking protocol
  (:func:`~accord.secagg.local.run_local_round`: the protocol's own messages
  between the sites' :class:`~accord.secagg.participant.SecAggParticipant` and a
  :class:`~accord.secagg.server.SecAggServer`, with the sites' Ed25519 identity
  keys), one protocol round per sum; each site encodes its part as fixed point in
  16-bit limbs (:mod:`accord.trees.fixed`), so the server unmasks only the total.
  Every site must take part in every sum: a tree split on a subset's histogram
  is not the federation's, so a dropout stops the run
  (:class:`~accord.errors.SecAggAborted`).

The import of the secagg package is deferred to :class:`MaskedSum`, so plain
boosting needs no ``secagg`` extra.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from typing import Protocol

import numpy as np
import numpy.typing as npt

from accord.errors import ConfigError, SecAggAborted
from accord.trees.fixed import decode_limbs, dequantise, encode_limbs, quantise

__all__ = ["MaskedSum", "PlainSum", "Summer"]

logger = logging.getLogger(__name__)

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


class Summer(Protocol):
    """Adds one contribution per site; the caller learns only the total."""

    def counts(self, parts: Mapping[str, Ints]) -> Ints:
        """The exact sum of the sites' integer arrays (all of one shape)."""
        ...

    def floats(self, parts: Mapping[str, Floats]) -> Floats:
        """The sum of the sites' float arrays (all of one shape)."""
        ...


class PlainSum:
    """Adds the sites' parts in site-name order (deterministic float sums)."""

    def counts(self, parts: Mapping[str, Ints]) -> Ints:
        """The exact sum."""
        names = sorted(parts)
        total = np.array(parts[names[0]], dtype=np.int64, copy=True)
        for p in names[1:]:
            total += parts[p]
        return total

    def floats(self, parts: Mapping[str, Floats]) -> Floats:
        """The float64 sum, added site by site."""
        names = sorted(parts)
        total = np.array(parts[names[0]], dtype=np.float64, copy=True)
        for p in names[1:]:
            total += parts[p]
        return total


class MaskedSum:
    """Sums under the SecAgg masking protocol; the server sees only totals.

    ``threshold`` and ``degree`` are ``[secure_aggregation]``'s (None: the safe
    defaults for the number of sites).
    """

    def __init__(
        self,
        sites: tuple[str, ...],
        *,
        threshold: int | None = None,
        degree: int | None = None,
    ) -> None:
        from accord.secagg.crypto import Ed25519PrivateKey, identity_public

        if len(sites) < 2:
            raise ConfigError(
                "secure aggregation needs at least two sites; with one, its sum is "
                "its histogram"
            )
        self._keys = {
            p: Ed25519PrivateKey.from_private_bytes(os.urandom(32)) for p in sites
        }
        self._public = {p: identity_public(k) for p, k in self._keys.items()}
        self._threshold, self._degree = threshold, degree
        self._run = f"trees-{uuid.uuid4().hex}"
        self.rounds = 0

    def counts(self, parts: Mapping[str, Ints]) -> Ints:
        """The exact sum, from the unmasked ring total."""
        shape = next(iter(parts.values())).shape
        total, contributors = self._sum({p: encode_limbs(v) for p, v in parts.items()})
        return decode_limbs(total, contributors).reshape(shape)

    def floats(self, parts: Mapping[str, Floats]) -> Floats:
        """The sum of the fixed-point parts (within ``sites * 2^-31`` per value)."""
        shape = next(iter(parts.values())).shape
        words = {
            p: encode_limbs(quantise(np.asarray(v, np.float64)))
            for p, v in parts.items()
        }
        total, contributors = self._sum(words)
        return dequantise(decode_limbs(total, contributors)).reshape(shape)

    def _sum(
        self, inputs: Mapping[str, npt.NDArray[np.uint32]]
    ) -> tuple[npt.NDArray[np.uint32], int]:
        from accord.secagg.config import SecAggConfig
        from accord.secagg.local import run_local_round

        if set(inputs) != set(self._keys):
            raise ConfigError("every site of the federation must send each sum")
        size = next(iter(inputs.values())).size
        try:
            config = SecAggConfig.create(
                run_id=self._run,
                round_number=self.rounds,
                identities=self._public,
                vector_size=size,
                threshold=self._threshold,
                degree=self._degree,
            )
        except ValueError as exc:
            raise ConfigError(
                f"the secure sum of the tree histograms cannot start: {exc}; check "
                "[secure_aggregation] threshold and degree against the sites"
            ) from None
        self.rounds += 1
        run = run_local_round(config, self._keys, inputs)
        if run.result.dropped:
            raise SecAggAborted(
                f"{', '.join(run.result.dropped)} dropped out of a secure histogram "
                "sum; a split on the others' histograms is not the federation's",
                stage="unmask",
            )
        return run.result.total, len(run.result.contributors)
