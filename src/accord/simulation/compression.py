"""``[compression]`` in a simulation: each site compresses, the coordinator decodes.

The site's side (:class:`SiteCompressors`) runs where the site trains (a worker
process, or in-process) and keeps top-k's error-feedback residual and
momentum-correction velocity per site, in memory: a worker that restarts, or a
resumed run, starts them from zero again (what was owed is dropped, nothing sent
is lost). Top-k's density in a warm-up round (:func:`round_fraction`) is derived
from the configuration and the round number on both sides, so the coordinator
decodes each round's payload at the length its site used. Sites stay with one
worker for a whole run, so their residual does too. The coordinator's side
(:func:`decode_into`) decodes the bytes the site sent into the update buffer the
round then validates as any other update (shape, finite values, norms), after
:func:`~accord.transforms.compression.decode` refused a malformed payload with
its reason.

Stochastic rounding draws from a generator seeded by the run's seed, the round and
the site's name, so a seeded run is repeatable.
"""

from __future__ import annotations

import logging
import zlib

import numpy as np

from accord.config import CompressionConfig
from accord.params import Params
from accord.transforms.compression import Compressor, decode, topk_fraction

__all__ = ["SiteCompressors", "decode_into", "round_fraction"]

logger = logging.getLogger(__name__)


def round_fraction(config: CompressionConfig, round_number: int) -> float:
    """Top-k's density in ``round_number``: ``fraction`` after the warm-up."""
    if config.method != "topk":
        return config.fraction
    return topk_fraction(config.fraction, config.warmup_rounds, round_number)


class SiteCompressors:
    """The compression every simulated site applies to its update before sending."""

    def __init__(self, config: CompressionConfig, seed: int) -> None:
        self._config = config
        self._seed = seed
        self._sites: dict[str, Compressor] = {}

    @property
    def enabled(self) -> bool:
        """Whether updates are compressed at all (``method`` is not ``none``)."""
        return self._config.method != "none"

    def compress(self, site: str, round_number: int, update: Params) -> bytes:
        """The bytes ``site`` sends for ``update`` (its residual moves on)."""
        compressor = self._sites.get(site)
        if compressor is None:
            compressor = Compressor(
                self._config.method,
                self._config.fraction,
                momentum=self._config.momentum,
                masking=self._config.momentum_masking,
            )
            self._sites[site] = compressor
        rng = np.random.default_rng(
            [self._seed, round_number, zlib.crc32(site.encode())]
        )
        sizes = [a.size for a in update.values()]
        flat = update.flatten().astype(np.float64, copy=False)
        payload, _ = compressor.compress(
            flat, sizes, rng, fraction=round_fraction(self._config, round_number)
        )
        return payload


def decode_into(
    config: CompressionConfig, round_number: int, payload: bytes, out: Params
) -> None:
    """Decode a site's ``payload`` for ``round_number`` into ``out``.

    UpdateRejected with the reason when the payload is malformed (top-k's length
    is that of the round's density, so the round is needed).
    """
    flat = decode(
        payload,
        [a.size for a in out.values()],
        method=config.method,
        fraction=round_fraction(config, round_number),
    )
    start = 0
    for array in out.values():
        n = array.size
        array.reshape(-1)[:] = flat[start : start + n]
        start += n
