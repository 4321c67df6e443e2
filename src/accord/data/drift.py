"""Flag a site whose data differs sharply from the rest of the federation.

Each site's :class:`~accord.data.summary.SiteSummary` is compared with a
*robust reference* made of the *other* sites: per histogram cell the median of
their shares (renormalized), at the median of their sizes; per numeric column the
median of their means, in units of the federation's pooled within-site standard
deviation. A reference of medians, not a pool, is what keeps one drifted site from
dragging the reference towards itself and getting the honest sites flagged with
it (with two sites each is the other's reference, and both are flagged). Then,
measure by measure:

==================  ===============================================  ==============
measure             what                                             threshold key
==================  ===============================================  ==============
``label_rate``      largest difference of one class's share          max_label_diff
``smd``             standardized mean difference of a numeric        max_smd
                    column: ``|m_site - median(m_others)| /
                    s_within``
``ks``              Kolmogorov-Smirnov distance between the column's max_ks
                    binned distribution and the reference's (at the
                    sketch's edges)
``tvd``             total variation distance of a categorical        max_tvd
                    column's level shares
``missing_rate``    difference of a column's missing share           max_missing_diff
==================  ===============================================  ==============

A measure flags only when it exceeds its threshold *and* the difference is
unlikely to be chance at level ``significance`` (two-proportion and Welch z tests,
the asymptotic KS critical value, a chi-square test with the Wilson-Hilferty
quantile), so that small sites of an IID split are not flagged for their sampling
noise. Suppressed cells enter as :func:`~accord.data.histogram.estimate` fills
them. A flag is a warning with its site, column, measure, value and threshold;
whether it stops the run is the caller's setting (``[profile] refuse``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from accord.data.histogram import Cells, cdf, estimate
from accord.data.summary import NumericSummary, SiteSummary

__all__ = ["DriftThresholds", "Flag", "drift_flags"]

_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class DriftThresholds:
    """The thresholds of the measures (``[profile]`` in fed.toml; defaults there)."""

    max_smd: float = 0.5
    max_ks: float = 0.25
    max_tvd: float = 0.25
    max_label_diff: float = 0.2
    max_missing_diff: float = 0.2
    significance: float = 0.001


@dataclass(frozen=True, slots=True)
class Flag:
    """One site's column that differs: by which measure, how much, past what."""

    site: str
    column: str
    measure: str
    value: float
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        """As recorded (store events, the data contract)."""
        return {
            "site": self.site,
            "column": self.column,
            "measure": self.measure,
            "value": self.value,
            "threshold": self.threshold,
        }

    def __str__(self) -> str:
        """``site 'b': column 'age' smd 1.52 > 0.5``."""
        return (
            f"site {self.site!r}: {self.column!r} {self.measure} {self.value:.3g} "
            f"> {self.threshold:.3g}"
        )


def drift_flags(
    summaries: Sequence[tuple[str, SiteSummary]], thresholds: DriftThresholds
) -> list[Flag]:
    """Every flag, site by site in the given order (none with fewer than 2 sites)."""
    if len(summaries) < 2:
        return []
    z = _NORMAL.inv_cdf(1 - thresholds.significance / 2)
    sites = [s for _, s in summaries]
    filled = _filled(sites)
    flags: list[Flag] = []
    for i, (site, mine) in enumerate(summaries):
        flags += _site_flags(site, i, mine, sites, filled, thresholds, z)
    return flags


Floats = np.ndarray[Any, np.dtype[np.float64]]
_Key = tuple[str, str]
_Slots = list[Floats | None]


def _filled(sites: Sequence[SiteSummary]) -> dict[_Key, _Slots]:
    """Every histogram of every site, suppressed cells filled in.

    A site's suppressed cells share what its shown cells leave in proportion to
    the cells' counts where the sites show them (plus a half, so that a cell
    no site shows still gets a little): the federation's shape, as far as it
    is revealed (:func:`~accord.data.histogram.estimate`).
    """
    raw: dict[_Key, list[tuple[Cells, float | None, int] | None]] = {}

    def add(key: _Key, index: int, cells: Cells, rows: int | None, k: int) -> None:
        slots = raw.setdefault(key, [None] * len(sites))
        slots[index] = (cells, None if rows is None else float(rows), k)

    for i, s in enumerate(sites):
        k = s.guard.min_count
        add(("label", ""), i, tuple(s.labels.values()), s.rows, k)
        for name, column in s.numeric.items():
            add(("numeric", name), i, (column.missing, *column.bins), s.rows, k)
        for name, levels in s.categorical.items():
            add(("categorical", name), i, tuple(levels.values()), s.rows, k)
    out: dict[_Key, _Slots] = {}
    for key, slots in raw.items():
        known = [c for c in slots if c is not None]
        if len({len(c[0]) for c in known}) != 1:
            continue  # not one layout at every site: nothing to compare
        shown = [[0.0 if v is None else float(v) for v in c[0]] for c in known]
        prior = np.sum(np.array(shown), axis=0) + 0.5
        out[key] = [None if c is None else estimate(*c, prior) for c in slots]
    return out


def _pair(
    filled: Mapping[_Key, _Slots], key: _Key, index: int
) -> tuple[Floats, Floats] | None:
    """One histogram's counts at site ``index``, and the other sites' reference."""
    slots = filled.get(key)
    if slots is None:
        return None
    mine = slots[index]
    if mine is None:
        return None
    rest = [c for j, c in enumerate(slots) if j != index and c is not None]
    reference = _reference(rest)
    return None if reference is None else (mine, reference)


def _reference(rest: Sequence[Floats]) -> Floats | None:
    """Per cell the median share of ``rest``, renormalized, at their median size."""
    sized = [c for c in rest if c.sum() > 0]
    if not sized:
        return None
    shares = np.stack([c / c.sum() for c in sized])
    median = np.median(shares, axis=0)
    if median.sum() <= 0:  # the sites agree on no cell: their mean shape
        median = shares.mean(axis=0)
    size = float(np.median([c.sum() for c in sized]))
    return np.asarray(median / median.sum() * size, dtype=np.float64)


def _site_flags(
    site: str,
    index: int,
    mine: SiteSummary,
    sites: Sequence[SiteSummary],
    filled: Mapping[_Key, _Slots],
    t: DriftThresholds,
    z: float,
) -> Iterator[Flag]:
    pair = _pair(filled, ("label", ""), index)
    label = None if pair is None else _shares_flag(*pair, z)
    if label is not None and label > t.max_label_diff:
        yield Flag(site, "label", "label_rate", round(label, 4), t.max_label_diff)
    for name, column in mine.numeric.items():
        pair = _pair(filled, ("numeric", name), index)
        if pair is None:
            continue
        slots = filled[("numeric", name)]
        known = [
            (j, s.numeric[name], float(c[1:].sum()))
            for j, (s, c) in enumerate(zip(sites, slots, strict=True))
            if c is not None
        ]
        yield from _numeric_flags(site, name, column, pair, (index, known), t, z)
    for name in mine.categorical:
        pair = _pair(filled, ("categorical", name), index)
        tvd = None if pair is None else _tvd(*pair, t.significance)
        if tvd is not None and tvd > t.max_tvd:
            yield Flag(site, name, "tvd", round(tvd, 4), t.max_tvd)


def _numeric_flags(
    site: str,
    name: str,
    column: NumericSummary,
    pair: tuple[Floats, Floats],
    sites: tuple[int, Sequence[tuple[int, NumericSummary, float]]],
    t: DriftThresholds,
    z: float,
) -> Iterator[Flag]:
    a, b = pair  # [missing, bin...] at this site, and at the others together
    n, m = float(a[1:].sum()), float(b[1:].sum())
    missing = _shares_flag(np.array([a[0], n]), np.array([b[0], m]), z)
    if missing is not None and missing > t.max_missing_diff:
        yield Flag(site, name, "missing_rate", round(missing, 4), t.max_missing_diff)
    smd = _smd(column, n, _center(*sites), m, z)
    if smd is not None and smd > t.max_smd:
        yield Flag(site, name, "smd", round(smd, 4), t.max_smd)
    if n > 0 and m > 0:
        ks = float(np.abs(cdf(a[1:]) - cdf(b[1:])).max())
        critical = math.sqrt(-math.log(t.significance / 2) / 2)
        critical *= math.sqrt((n + m) / (n * m))
        if ks > t.max_ks and ks > critical:
            yield Flag(site, name, "ks", round(ks, 4), t.max_ks)


def _shares_flag(
    a: Floats,
    b: Floats,
    z: float,
) -> float | None:
    """The largest share difference that a two-proportion z test finds real."""
    n, m = float(a.sum()), float(b.sum())
    if n <= 0 or m <= 0:
        return None
    best: float | None = None
    for x, y in zip(a, b, strict=True):
        p, q = x / n, y / m
        pooled = (x + y) / (n + m)
        se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / n + 1 / m))
        diff = abs(p - q)
        if diff / se > z and (best is None or diff > best):
            best = diff
    return best


def _center(
    index: int, sites: Sequence[tuple[int, NumericSummary, float]]
) -> tuple[float, float] | None:
    """The other sites' median mean, and the within-site std of every site."""
    known = [
        (j, c.mean, c.std, n)
        for j, c, n in sites
        if c.mean is not None and c.std is not None and n > 0
    ]
    means = [mu for j, mu, _, _ in known if j != index]
    total = sum(n for _, _, _, n in known)
    if not means or total <= 0:
        return None
    within = math.sqrt(sum(sd * sd * n for _, _, sd, n in known) / total)
    return float(np.median(means)), within


def _smd(
    column: NumericSummary,
    n: float,
    center: tuple[float, float] | None,
    m: float,
    z: float,
) -> float | None:
    """``|mean - reference| / within``, when a z test finds the difference real."""
    if center is None or column.mean is None or n <= 1 or m <= 1:
        return None
    reference, within = center
    if within <= 0:
        return None
    diff = abs(column.mean - reference)
    if diff / (within * math.sqrt(1 / n + 1 / m)) <= z:
        return None
    return diff / within


def _tvd(
    a: Floats,
    b: Floats,
    significance: float,
) -> float | None:
    """Total variation distance, when a chi-square test of homogeneity finds it."""
    n, m = float(a.sum()), float(b.sum())
    if n <= 0 or m <= 0:
        return None
    used = (a + b) > 0
    a, b = a[used], b[used]
    if len(a) < 2:
        return None
    total = a + b
    chi2 = 0.0
    for observed, size in ((a, n), (b, m)):
        expected = total * size / (n + m)
        chi2 += float(((observed - expected) ** 2 / expected).sum())
    df = len(a) - 1
    # Wilson-Hilferty: the chi-square quantile from the normal one.
    zq = _NORMAL.inv_cdf(1 - significance)
    critical = df * (1 - 2 / (9 * df) + zq * math.sqrt(2 / (9 * df))) ** 3
    if chi2 <= critical:
        return None
    return float(np.abs(a / n - b / m).sum() / 2)
