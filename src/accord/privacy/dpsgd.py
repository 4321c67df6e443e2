"""Record-level DP-SGD: the mechanism a round declares, and one noisy step in numpy.

At record level each site trains with DP-SGD (Abadi et al. 2016): every step
samples each of the site's records independently with probability ``q`` (Poisson
sampling), clips each sampled record's gradient to L2 norm ``clip``, sums them,
adds Gaussian noise of standard deviation ``noise_multiplier * clip`` and divides by
the *expected* batch size ``q * rows`` (a fixed denominator: dividing by the drawn
batch's size would make the scale data-dependent). ``steps`` such steps are one
round; its DpEvent is :func:`~accord.privacy.events.dp_sgd_event`.

The coordinator decides the mechanism and *declares* it with every train task, as a
:class:`DpSgdPlan` in the task's options under :data:`OPTION_KEY`: the noise
multiplier, the clip, the sampling rate and the steps of this round, for this site
(``q = batch_size / rows`` and ``steps = epochs * ceil(rows / batch_size)``:
:func:`site_mechanism`). The site checks the declaration with its own accountant
(its policy, :mod:`accord.participant.privacy_guard`) and trains exactly as
declared, so that the coordinator's record, the site's ledger and the accountant
agree by construction. Poisson sampling at any declared ``q`` gives the accounted
guarantee whatever the site's real number of rows; the rows only set the expected
batch size.

Pure: numpy only (no torch); the Opacus path lives in :mod:`accord.task.torch`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.errors import ConfigError
from accord.privacy.clipping import clip_per_example
from accord.privacy.noise import add_gaussian

__all__ = [
    "OPTION_KEY",
    "DpSgdPlan",
    "noisy_dense_gradient",
    "noisy_gradient",
    "poisson_sample",
    "site_mechanism",
]

#: The key of a train task's options that carries the declared mechanism.
OPTION_KEY = "accord.dp_sgd"


@dataclass(frozen=True, slots=True)
class DpSgdPlan:
    """One round of record-level DP-SGD at one site, as the coordinator declares it.

    ``run`` names the run (the site's ledger accounts per run), ``noise_seed`` is
    the tests-only seed of ``[privacy] noise_seed`` (None: noise from the OS's
    CSPRNG).
    """

    run: str
    noise_multiplier: float
    clip: float
    sampling_rate: float
    steps: int
    delta: float
    accountant: str = "pld"
    noise_seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("noise_multiplier", "clip", "sampling_rate", "delta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, float | int):
                raise ConfigError(f"must be a number, got {value!r}", key=name)
            if not math.isfinite(value):
                raise ConfigError(f"must be a finite number, got {value!r}", key=name)
            if value <= 0:
                raise ConfigError(f"must be > 0, got {value!r}", key=name)
        if self.noise_seed is not None and (
            isinstance(self.noise_seed, bool)
            or not isinstance(self.noise_seed, int)
            or not 0 <= self.noise_seed < 2**63
        ):
            raise ConfigError(
                f"must be an integer in [0, 2**63), got {self.noise_seed!r}",
                key="noise_seed",
            )
        if not isinstance(self.run, str):
            raise ConfigError(f"must be text, got {self.run!r}", key="run")
        if not 0 < self.sampling_rate <= 1:
            raise ConfigError(
                f"must be in (0, 1], got {self.sampling_rate!r}", key="sampling_rate"
            )
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise ConfigError(f"must be an integer, got {self.steps!r}", key="steps")
        if self.steps < 0:
            raise ConfigError(f"must be >= 0, got {self.steps}", key="steps")
        if not 0 < self.delta < 1:
            raise ConfigError(f"must be in (0, 1), got {self.delta!r}", key="delta")
        if self.accountant not in ("pld", "rdp"):
            raise ConfigError(
                f"unknown accountant {self.accountant!r}; use 'pld' or 'rdp'",
                key="accountant",
            )

    def to_json(self) -> dict[str, Any]:
        """The declaration as JSON-ready values (what travels in the options)."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: object) -> DpSgdPlan:
        """Parse a declaration; :class:`ConfigError` naming what is wrong."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"the DP-SGD declaration is not an object: {raw!r}")
        fields = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - fields)
        missing = sorted(
            f
            for f in ("run", "noise_multiplier", "clip", "sampling_rate", "steps")
            if f not in raw
        )
        if unknown or missing:
            raise ConfigError(
                "the DP-SGD declaration has "
                + "; ".join(
                    part
                    for part in (
                        f"unknown keys {unknown}" if unknown else "",
                        f"no {missing}" if missing else "",
                    )
                    if part
                )
            )
        return cls(**{k: raw[k] for k in raw})

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> DpSgdPlan | None:
        """The plan declared in a train task's ``options`` (None: no DP-SGD)."""
        raw = options.get(OPTION_KEY)
        return None if raw is None else cls.from_json(raw)


def site_mechanism(rows: int, *, batch_size: int, epochs: int) -> tuple[float, int]:
    """A site's sampling rate and steps per round: ``(batch_size / rows, steps)``.

    ``steps = epochs * ceil(rows / batch_size)``: an epoch is as many steps as a
    pass over the rows in batches of the expected size (Opacus's convention).
    """
    if rows < 1:
        raise ValueError(f"a site needs at least one row for DP-SGD, got {rows}")
    if batch_size < 1 or epochs < 0:
        raise ValueError("batch_size must be >= 1 and epochs >= 0")
    rate = min(1.0, batch_size / rows)
    return rate, epochs * math.ceil(rows / batch_size)


def poisson_sample(
    rows: int, rate: float, rng: np.random.Generator
) -> npt.NDArray[np.intp]:
    """Indices of the rows drawn by one Poisson sampling step (each with ``rate``)."""
    return np.flatnonzero(rng.random(rows) < rate)


def noisy_gradient(
    per_example: Sequence[npt.NDArray[np.floating[Any]]],
    *,
    clip: float,
    noise_multiplier: float,
    expected_batch: float,
    rng: np.random.Generator,
) -> list[npt.NDArray[np.float64]]:
    """One DP-SGD gradient from per-example gradients of every parameter.

    ``per_example[j]`` has shape ``(batch, *shape_j)``; each example's gradient over
    all parameters together is clipped to L2 norm ``clip``, the clipped gradients
    are summed, Gaussian noise of standard deviation ``noise_multiplier * clip`` is
    added (snapped, :func:`~accord.privacy.noise.add_gaussian`) and the result is
    divided by ``expected_batch``. An empty batch gives noise alone.
    """
    if expected_batch <= 0:
        raise ValueError(f"the expected batch must be > 0, got {expected_batch}")
    batch = per_example[0].shape[0] if per_example else 0
    shapes = [g.shape[1:] for g in per_example]
    if batch:
        flat = np.concatenate(
            [np.asarray(g, np.float64).reshape(batch, -1) for g in per_example], axis=1
        )
        summed = clip_per_example(flat, clip).sum(axis=0)
    else:
        summed = np.zeros(sum(int(np.prod(s)) for s in shapes), np.float64)
    return _noised_mean(summed, shapes, clip, noise_multiplier, expected_batch, rng)


def noisy_dense_gradient(
    layers: Sequence[
        tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]
    ],
    *,
    clip: float,
    noise_multiplier: float,
    expected_batch: float,
    rng: np.random.Generator,
) -> list[npt.NDArray[np.float64]]:
    """:func:`noisy_gradient` for dense layers, without per-example gradients.

    ``layers[j] = (a, g)``: layer ``j``'s inputs ``a`` ``(batch, d)`` and the
    gradient of each example's loss with respect to its outputs ``g`` ``(batch,
    k)``. Example ``i``'s gradient is ``outer(a_i, g_i)`` for the weight ``(d, k)``
    and ``g_i`` for the bias, so its squared norm is ``|a_i|^2 |g_i|^2 + |g_i|^2``
    and the sum of the clipped gradients is ``a^T (c * g)`` and ``sum(c * g)``
    (Goodfellow 2015; the trick of "ghost clipping"): the same result as
    materialising them, at the cost of two matrix products. Returns, per layer, the
    weight's and the bias's noisy mean gradient, in that order.
    """
    if expected_batch <= 0:
        raise ValueError(f"the expected batch must be > 0, got {expected_batch}")
    limit = float(clip)
    if not (math.isfinite(limit) and limit > 0):
        raise ValueError(f"a clip must be a finite number > 0, got {clip!r}")
    batch = layers[0][0].shape[0] if layers else 0
    sq = np.zeros(batch, np.float64)
    pairs = [(np.asarray(a, np.float64), np.asarray(g, np.float64)) for a, g in layers]
    for a, g in pairs:
        g2 = np.einsum("ij,ij->i", g, g)
        sq += np.einsum("ij,ij->i", a, a) * g2 + g2
    norms = np.sqrt(sq)
    if not np.isfinite(norms).all():
        raise ValueError("a per-example gradient is not finite; refuse the batch")
    factors = np.minimum(1.0, limit / np.maximum(norms, np.finfo(np.float64).tiny))
    # As clip_per_example: round a scale-down toward zero, never above the clip.
    factors = np.nextafter(factors, 0.0, where=factors < 1.0, out=factors.copy())
    parts: list[npt.NDArray[np.float64]] = []
    shapes: list[tuple[int, ...]] = []
    for a, g in pairs:
        scaled = g * factors[:, None]
        parts += [(a.T @ scaled).ravel(), scaled.sum(axis=0)]
        shapes += [(a.shape[1], g.shape[1]), (g.shape[1],)]
    summed = np.concatenate(parts) if parts else np.zeros(0, np.float64)
    return _noised_mean(summed, shapes, clip, noise_multiplier, expected_batch, rng)


def _noised_mean(
    summed: npt.NDArray[np.float64],
    shapes: Sequence[tuple[int, ...]],
    clip: float,
    noise_multiplier: float,
    expected_batch: float,
    rng: np.random.Generator,
) -> list[npt.NDArray[np.float64]]:
    """Noise ``summed`` (every tensor flat, in order), divide, split into tensors."""
    noised = add_gaussian(summed, noise_multiplier * clip, rng) / expected_batch
    out: list[npt.NDArray[np.float64]] = []
    start = 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(noised[start : start + size].reshape(shape))
        start += size
    return out
