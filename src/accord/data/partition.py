"""Split rows into sites, as a federation of organizations would hold them.

Pure numpy, seeded: the same arguments give the same :class:`Partition`. Every
partitioner returns disjoint, sorted row indices that cover every row, except
:func:`natural` with ``other="drop"``, which leaves out the groups not chosen as sites.

- :func:`iid`: a uniform random split (the unrealistic baseline).
- :func:`dirichlet`: label skew; each class is spread over sites with proportions
  drawn from Dirichlet(alpha) (Hsu et al., 2019). Small alpha: each site sees few
  classes; large alpha: close to iid.
- :func:`quantity_skew`: sites of very different sizes, same label mix in expectation.
- :func:`natural`: one site per value of a column (a clinic, a state), the real thing.

:func:`stratified_split` splits one set of rows in two (test or holdout) keeping the
class mix; it stays valid for tiny sites and for sites that lack a class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.errors import DatasetError

__all__ = [
    "Partition",
    "dirichlet",
    "iid",
    "natural",
    "quantity_skew",
    "site_names",
    "stratified_split",
]

Index = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Partition:
    """Row indices per site, with the sites' names (``site-00``... or group values)."""

    names: tuple[str, ...]
    indices: tuple[Index, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.indices):
            raise ValueError(f"{len(self.names)} names for {len(self.indices)} sites")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"site names are not unique: {self.names}")
        for index in self.indices:
            index.flags.writeable = False

    def __len__(self) -> int:
        return len(self.names)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Rows per site."""
        return tuple(len(i) for i in self.indices)


def site_names(n_sites: int) -> tuple[str, ...]:
    """``site-00``, ``site-01``, ... (wider numbers past 100 sites, so they sort)."""
    width = max(2, len(str(n_sites - 1)))
    return tuple(f"site-{i:0{width}d}" for i in range(n_sites))


def _from_assignment(assignment: npt.NDArray[np.intp], n_sites: int) -> Partition:
    """Build a partition from each row's site number (rows stay in ascending order)."""
    order = np.argsort(assignment, kind="stable").astype(np.int64)
    bounds = np.cumsum(np.bincount(assignment, minlength=n_sites))[:-1]
    return Partition(site_names(n_sites), tuple(np.split(order, bounds)))


def _check_count(n_rows: int, n_sites: int, min_size: int) -> None:
    if n_sites < 1:
        raise DatasetError(f"need at least one site, got {n_sites}")
    if n_rows < n_sites * min_size:
        raise DatasetError(
            f"{n_rows} rows cannot give {n_sites} sites {min_size} rows each; "
            "use fewer sites or a smaller minimum site size"
        )


def iid(n_rows: int, n_sites: int, seed: int, *, min_size: int = 1) -> Partition:
    """Shuffle ``n_rows`` rows and deal them into sites whose sizes differ by <= 1."""
    _check_count(n_rows, n_sites, min_size)
    rng = np.random.default_rng(seed)
    site = np.arange(n_rows) % n_sites
    return _from_assignment(rng.permutation(site), n_sites)


def quantity_skew(
    n_rows: int, n_sites: int, seed: int, *, alpha: float = 0.5, min_size: int = 10
) -> Partition:
    """Random rows into sites of Dirichlet(alpha)-distributed sizes, each >= min_size.

    Each site first gets ``min_size`` rows; the rest are spread by a multinomial
    draw over Dirichlet proportions, so no resampling is needed.
    """
    _check_count(n_rows, n_sites, min_size)
    if alpha <= 0:
        raise DatasetError(f"alpha must be positive, got {alpha}")
    rng = np.random.default_rng(seed)
    share = rng.dirichlet(np.full(n_sites, alpha))
    sizes = min_size + rng.multinomial(n_rows - n_sites * min_size, share)
    site = np.repeat(np.arange(n_sites), sizes)
    return _from_assignment(rng.permutation(site), n_sites)


def dirichlet(
    labels: npt.ArrayLike,
    n_sites: int,
    alpha: float,
    seed: int,
    *,
    min_size: int = 10,
    max_tries: int = 1000,
) -> Partition:
    """Label skew: each class's rows go to sites in Dirichlet(alpha) proportions.

    Draws are repeated until every site has at least ``min_size`` rows; after
    ``max_tries`` draws a :class:`DatasetError` says what to relax.
    """
    y = np.asarray(labels)
    _check_count(len(y), n_sites, min_size)
    if alpha <= 0:
        raise DatasetError(f"alpha must be positive, got {alpha}")
    rng = np.random.default_rng(seed)
    _, inverse = np.unique(y, return_inverse=True)
    by_class = [
        np.flatnonzero(inverse == c) for c in range(int(inverse.max(initial=-1)) + 1)
    ]
    for _ in range(max_tries):
        site = np.empty(len(y), dtype=np.intp)
        for rows in by_class:
            share = rng.dirichlet(np.full(n_sites, alpha))
            cuts = (np.cumsum(share)[:-1] * len(rows)).astype(np.intp)
            counts = np.diff(np.concatenate(([0], cuts, [len(rows)])))
            site[rng.permutation(rows)] = np.repeat(np.arange(n_sites), counts)
        if np.bincount(site, minlength=n_sites).min() >= min_size:
            return _from_assignment(site, n_sites)
    raise DatasetError(
        f"no Dirichlet(alpha={alpha}) draw in {max_tries} gave each of {n_sites} sites "
        f"at least {min_size} rows; raise alpha, use fewer sites or lower min_size"
    )


def natural(
    site_values: Sequence[Any] | npt.ArrayLike,
    n_sites: int | None = None,
    *,
    other: str = "drop",
    min_size: int = 1,
) -> Partition:
    """One site per value of a column: the ``n_sites`` largest groups, named by value.

    Groups are ranked by size (largest first, ties by name). With ``n_sites=None``
    every group of at least ``min_size`` rows is a site. The remaining groups are
    dropped (``other="drop"``) or pooled into one extra site named ``"other"``
    (``"pool"``; so ``n_sites + 1`` sites). Raises :class:`DatasetError` if fewer than
    ``n_sites`` groups have ``min_size`` rows, or the pooled site is smaller than that.
    """
    if other not in ("drop", "pool"):
        raise DatasetError(f"other must be 'drop' or 'pool', got {other!r}")
    values = np.asarray(site_values).astype(str)
    groups, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ranked = sorted(range(len(groups)), key=lambda g: (-counts[g], groups[g]))
    eligible = [g for g in ranked if counts[g] >= min_size]
    if n_sites is not None and n_sites > len(eligible):
        raise DatasetError(
            f"only {len(eligible)} groups have at least {min_size} rows, so at most "
            f"{len(eligible)} natural sites (asked for {n_sites}); ask for fewer "
            "sites, lower the minimum site size, or use another partition"
        )
    chosen = eligible if n_sites is None else eligible[:n_sites]
    if not chosen:
        raise DatasetError(f"no group has at least {min_size} rows")
    order = np.argsort(inverse, kind="stable").astype(np.int64)
    rows = np.split(order, np.cumsum(counts)[:-1])
    names = [str(groups[g]) for g in chosen]
    indices = [rows[g] for g in chosen]
    rest = sorted(set(range(len(groups))) - set(chosen))
    if other == "pool" and rest:
        pooled = np.sort(np.concatenate([rows[g] for g in rest]))
        if len(pooled) < min_size:
            raise DatasetError(
                f"the pooled 'other' site has {len(pooled)} rows, fewer than "
                f"{min_size}; use other='drop'"
            )
        names.append("other" if "other" not in names else "other (pooled)")
        indices.append(pooled)
    return Partition(tuple(names), tuple(indices))


def stratified_split(
    labels: npt.ArrayLike, fraction: float, seed: int
) -> tuple[Index, Index]:
    """Split rows into ``(kept, held)``, ``held`` being ``fraction`` of them.

    Each class contributes its share of the held rows, rounded by largest remainder
    (ties broken at random) so that the total is exactly ``round(fraction * n)``.
    A class too small for a share simply stays on the kept side, so tiny sites and
    sites without positives still split. With ``fraction > 0`` and at least two rows,
    both sides get at least one row.
    """
    if not 0 <= fraction < 1:
        raise DatasetError(f"a split fraction must be in [0, 1), got {fraction}")
    _, inverse, counts = np.unique(
        np.asarray(labels), return_inverse=True, return_counts=True
    )
    n = len(inverse)
    n_held = round(fraction * n)
    if fraction > 0 and n >= 2:
        n_held = min(max(n_held, 1), n - 1)
    rng = np.random.default_rng(seed)
    exact = counts * (n_held / n) if n else counts * 0.0
    quota = np.floor(exact).astype(np.intp)
    by_remainder = np.lexsort((rng.random(len(counts)), -(exact - quota)))
    quota[by_remainder[: n_held - int(quota.sum())]] += 1
    held = np.zeros(n, dtype=bool)
    for c, k in enumerate(quota):
        held[rng.permutation(np.flatnonzero(inverse == c))[:k]] = True
    return np.flatnonzero(~held).astype(np.int64), np.flatnonzero(held).astype(np.int64)
