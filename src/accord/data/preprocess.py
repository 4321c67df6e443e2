"""Turn a table into model inputs without leaking between sites or from test data.

Preprocessing is where centralized pipelines quietly leak: a scaler fitted on the
whole table has seen the test rows, and in a federation a scaler fitted on pooled
rows needs data no site may share. So the encoder is fitted in two parts:

- **Categorical levels** come from the table's data dictionary (every level present
  in the table, plus ``"missing"``). A list of possible values is schema, not a
  statistic of anyone's rows, and fixing it up front gives every site the same
  one-hot columns. A level unseen at fit time encodes as all zeros.
- **Numeric scaling** uses *federated sufficient statistics*: each site computes
  (count, sum, sum of squares) over its own **training rows only**; these are summed,
  which is exactly what a federation can compute (with secure aggregation, nobody
  sees a single site's sums), and give the mean and standard deviation. Missing
  numeric values are imputed with that federated mean (zero after scaling).

Holdout rows and the central test set are transformed with those statistics but
never contribute to them, so evaluation measures what a deployed model would see.
The statistics equal those of the pooled training rows (sums are associative), so
federated and centralized baselines are scaled identically.

Sum-of-squares variance loses precision when the mean is large relative to the
spread; it is computed in float64, and heavy-tailed columns are log-transformed
first (a fixed function declared in the schema, which cannot leak).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from accord.errors import DatasetError

if TYPE_CHECKING:
    from accord.data.datasets import Table

__all__ = ["Encoder", "FeatureMatrix", "SufficientStats", "extract_features"]

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FeatureMatrix:
    """A table's features as arrays, before any statistic is applied.

    ``numeric`` is float64 ``(n, k)`` with NaN for missing values (log columns
    already transformed); ``codes`` is ``(n, m)``, each entry an index into that
    column's ``levels`` (-1 for a value outside them).
    """

    numeric: Floats
    codes: npt.NDArray[np.int64]
    numeric_names: tuple[str, ...]
    levels: tuple[tuple[str, tuple[str, ...]], ...]

    def __len__(self) -> int:
        return len(self.numeric)

    def rows(self, index: npt.NDArray[np.integer[Any]]) -> FeatureMatrix:
        """The rows at ``index``, same columns."""
        return FeatureMatrix(
            self.numeric[index], self.codes[index], self.numeric_names, self.levels
        )


def extract_features(table: Table) -> FeatureMatrix:
    """Convert the table's feature columns to arrays (fixed transforms only)."""
    spec, frame = table.spec, table.frame
    numeric = np.empty((len(frame), len(spec.numeric)), dtype=np.float64)
    for j, col in enumerate(spec.numeric):
        numeric[:, j] = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
        if col in spec.log_columns:
            numeric[:, j] = np.sign(numeric[:, j]) * np.log1p(np.abs(numeric[:, j]))
    codes = np.empty((len(frame), len(spec.categorical)), dtype=np.int64)
    levels = tuple((col, table.levels[col]) for col in spec.categorical)
    for j, (col, names) in enumerate(levels):
        lookup = {name: k for k, name in enumerate(names)}
        codes[:, j] = [lookup.get(v, -1) for v in frame[col]]
    return FeatureMatrix(numeric, codes, spec.numeric, levels)


@dataclass(frozen=True, slots=True)
class SufficientStats:
    """Per-column count, sum and sum of squares of non-missing values.

    Adding two gives the statistics of the union of their rows, which is why a
    federation (or a secure aggregation of the three vectors) can compute them.
    """

    count: Floats
    total: Floats
    total_sq: Floats

    @classmethod
    def of(cls, values: Floats) -> SufficientStats:
        """Statistics of the rows of ``values`` ``(n, k)``, ignoring NaN."""
        present = ~np.isnan(values)
        filled = np.where(present, values, 0.0)
        return cls(
            present.sum(axis=0).astype(np.float64),
            filled.sum(axis=0),
            (filled * filled).sum(axis=0),
        )

    def __add__(self, other: SufficientStats) -> SufficientStats:
        return SufficientStats(
            self.count + other.count,
            self.total + other.total,
            self.total_sq + other.total_sq,
        )

    @staticmethod
    def combine(parts: Iterable[SufficientStats]) -> SufficientStats:
        """The sum of several sites' statistics (at least one), exactly rounded.

        Each column's values are added with :func:`math.fsum`, so the result does
        not depend on the order of the sites: a deployment that gathers them in
        its roster's order fits bit for bit what a simulation fits in its own.
        """
        items = list(parts)
        if not items:
            raise ValueError("need the statistics of at least one site")

        def exact(rows: list[Floats]) -> Floats:
            return np.array([math.fsum(col) for col in zip(*rows, strict=True)])

        return SufficientStats(
            exact([p.count for p in items]).reshape(items[0].count.shape),
            exact([p.total for p in items]).reshape(items[0].total.shape),
            exact([p.total_sq for p in items]).reshape(items[0].total_sq.shape),
        )

    @property
    def mean(self) -> Floats:
        """Mean per column (0 where a column has no value)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.total / self.count
        return np.where(self.count > 0, mean, 0.0)

    @property
    def std(self) -> Floats:
        """Population standard deviation per column (0 where undefined)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            var = self.total_sq / self.count - self.mean**2
        return np.sqrt(np.where(self.count > 0, np.maximum(var, 0.0), 0.0))


@dataclass(frozen=True, slots=True)
class Encoder:
    """Standardize numeric columns with federated statistics; one-hot categoricals."""

    numeric_names: tuple[str, ...]
    levels: tuple[tuple[str, tuple[str, ...]], ...]
    mean: Floats
    scale: Floats

    @classmethod
    def fit(cls, site_train: Iterable[FeatureMatrix]) -> Encoder:
        """Fit from each site's training rows, via summed sufficient statistics.

        Constant (or empty) columns get scale 1, so they encode as 0, not NaN.
        """
        sites = list(site_train)
        stats = SufficientStats.combine(SufficientStats.of(s.numeric) for s in sites)
        return cls.from_stats(sites[0].numeric_names, sites[0].levels, stats)

    @classmethod
    def from_stats(
        cls,
        numeric_names: tuple[str, ...],
        levels: tuple[tuple[str, tuple[str, ...]], ...],
        stats: SufficientStats,
    ) -> Encoder:
        """The encoder of summed statistics (a deployment's fit, :mod:`.profile`)."""
        std = stats.std
        scale = np.where(std > np.finfo(np.float32).eps, std, 1.0)
        return cls(numeric_names, levels, stats.mean, scale)

    def aligned(self, table: Table) -> Table:
        """``table`` with this encoder's column order and levels (for a re-encode).

        A value outside the levels encodes as all zeros; a column the encoder
        knows that ``table`` lacks raises :class:`DatasetError` naming it.
        """
        frame = table.frame
        wanted = (*self.numeric_names, *(col for col, _ in self.levels))
        absent = [c for c in wanted if c not in frame.columns]
        if absent:
            raise DatasetError(
                f"{table.spec.name}: no columns {absent[:5]}, which the federation's "
                "preprocessing encodes; every table needs the same columns"
            )
        spec = replace(
            table.spec,
            numeric=self.numeric_names,
            categorical=tuple(col for col, _ in self.levels),
        )
        return replace(table, spec=spec, levels=dict(self.levels))

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Output columns: numeric names, then ``column=level`` per one-hot column."""
        onehot = (f"{col}={level}" for col, names in self.levels for level in names)
        return (*self.numeric_names, *onehot)

    def transform(self, features: FeatureMatrix) -> npt.NDArray[np.float32]:
        """Encode rows as float32 ``(n, n_features)``; never updates the statistics."""
        z = (features.numeric - self.mean) / self.scale
        z[np.isnan(z)] = 0.0  # missing -> the federated mean
        blocks: list[npt.NDArray[np.float64]] = [z]
        for j, (_, names) in enumerate(self.levels):
            codes = features.codes[:, j]
            onehot = codes[:, None] == np.arange(len(names))[None, :]
            blocks.append(onehot.astype(np.float64))
        return np.ascontiguousarray(np.hstack(blocks), dtype=np.float32)
