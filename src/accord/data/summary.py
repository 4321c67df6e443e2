"""A site's privacy-guarded data profile: what it reveals to be compared with the rest.

Before round 1, once the federation's preprocessing is fitted, each site
describes its **training rows** (:func:`summarize`, the same code in a
simulation and at a deployed site) in a :class:`SiteSummary`:

- its row count and the count of each class (label balance);
- per numeric column: the missing count, mean and standard deviation, and a
  14-bin histogram on the federation's standardized scale
  (:mod:`accord.data.histogram`: a mergeable quantile sketch);
- per categorical column: the count of each of the federation's levels
  (``missing`` included), so categorical columns are compared too.

The guard (:class:`Guard`) applies before anything leaves the site: a count from
1 to ``min_count - 1`` is reported as suppressed (None), with a second cell
suppressed where one alone could be recomputed from the total; a mean and
standard deviation over fewer than ``min_count`` values are suppressed. With
``noise`` set, every count and sum is released through
:class:`~accord.privacy.release.StatisticNoise` first (``epsilon`` for the whole
profile, split over its queries; one row changes the label histogram, each
column's histogram by one, and each numeric column's sum of ``z`` clipped to
:data:`CLIP_Z` and sum of squares): the mean and spread are then those of the
clipped, noised sums, and the row count the sum of the noised class counts. The
suppression runs on the noised counts (post-processing).

Summaries travel as JSON (:func:`summary_to_json`), parsed field by field and
bounded in size (:data:`MAX_SUMMARY_BYTES`) by :func:`summary_from_json`, never
unpickled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from accord.data.histogram import BINS, Cells, bin_counts, suppress
from accord.data.preprocess import Encoder, FeatureMatrix
from accord.errors import DatasetError
from accord.privacy.noise import NoiseSource
from accord.privacy.release import StatisticNoise

__all__ = [
    "CLIP_Z",
    "MAX_SUMMARY_BYTES",
    "Guard",
    "NumericSummary",
    "SiteSummary",
    "guard_from_dict",
    "summarize",
    "summary_from_json",
    "summary_to_json",
]

#: |z| at which values are clipped before their noised sums are released.
CLIP_Z = 4.0
#: Largest summary a site may send (JSON bytes).
MAX_SUMMARY_BYTES = 8 << 20
_MAX_COUNT = 2**53
_MAX_COLUMNS = 10_000
_MAX_LEVELS = 10_000
_MAX_NAME = 256
Noise = Literal["off", "laplace", "gaussian"]


@dataclass(frozen=True, slots=True)
class Guard:
    """How a profile is protected: minimum count, and optional DP noise."""

    min_count: int = 10
    noise: Noise = "off"
    epsilon: float | None = None
    delta: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_count <= 1_000_000:
            raise DatasetError(f"min_count must be 1 to 1000000, not {self.min_count}")
        if self.noise != "off" and not (
            self.epsilon is not None and 0 < self.epsilon <= 1000
        ):
            raise DatasetError(f"{self.noise} noise needs 0 < epsilon <= 1000")
        if self.noise == "gaussian" and not (
            self.delta is not None and 0 < self.delta < 1
        ):
            raise DatasetError("gaussian noise needs 0 < delta < 1")

    def to_dict(self) -> dict[str, Any]:
        """As recorded with the profile and in the data contract."""
        return {
            "minCount": self.min_count,
            "noise": self.noise,
            "epsilon": self.epsilon,
            "delta": self.delta if self.noise == "gaussian" else None,
        }


@dataclass(frozen=True, slots=True)
class NumericSummary:
    """One numeric column at one site (raw units; see the module docstring)."""

    missing: int | None
    mean: float | None
    std: float | None
    bins: Cells


@dataclass(frozen=True, slots=True)
class SiteSummary:
    """One site's guarded profile (None: a suppressed count or statistic)."""

    rows: int | None
    labels: Mapping[str, int | None]
    numeric: Mapping[str, NumericSummary]
    categorical: Mapping[str, Mapping[str, int | None]]
    guard: Guard


def summarize(
    features: FeatureMatrix,
    labels: npt.NDArray[np.int64],
    classes: Sequence[str],
    encoder: Encoder,
    guard: Guard,
    *,
    source: NoiseSource | None = None,
) -> SiteSummary:
    """The guarded profile of one site's training rows.

    ``features`` must have the encoder's columns and levels (a table aligned
    with :meth:`Encoder.aligned`); ``source`` draws the noise (secure by default).
    """
    if features.numeric_names != encoder.numeric_names:
        raise DatasetError("the features' numeric columns are not the encoder's")
    k = guard.min_count
    noise = _noise(guard, features, source)
    label_counts = _counts(np.bincount(labels, minlength=len(classes)), noise, 1, 0)
    rows = int(label_counts.sum())
    z = (features.numeric - encoder.mean) / encoder.scale
    numeric: dict[str, NumericSummary] = {}
    for j, name in enumerate(encoder.numeric_names):
        column = z[:, j]
        present = ~np.isnan(column)
        missing = int(len(column) - present.sum())
        cells = np.concatenate([[missing], bin_counts(column)])
        cells = _counts(cells, noise, 1, 1 + 3 * j)
        n = int(cells[1:].sum())
        mean, std = _moments(column[present], noise, 2 + 3 * j, n)
        shown = suppress([int(c) for c in cells], k)
        numeric[name] = NumericSummary(
            missing=shown[0],
            mean=None if n < k else float(encoder.mean[j] + mean * encoder.scale[j]),
            std=None if n < k else float(std * encoder.scale[j]),
            bins=shown[1:],
        )
    categorical: dict[str, dict[str, int | None]] = {}
    base = 1 + 3 * len(encoder.numeric_names)
    for j, (name, levels) in enumerate(encoder.levels):
        codes = features.codes[:, j]
        raw = np.bincount(codes[codes >= 0], minlength=len(levels))
        level_counts = suppress([int(c) for c in _counts(raw, noise, 1, base + j)], k)
        categorical[name] = dict(zip(levels, level_counts, strict=True))
    return SiteSummary(
        rows=None if 0 < rows < k else rows,
        labels=dict(
            zip(classes, suppress([int(c) for c in label_counts], k), strict=True)
        ),
        numeric=numeric,
        categorical=categorical,
        guard=guard,
    )


def _noise(
    guard: Guard, features: FeatureMatrix, source: NoiseSource | None
) -> StatisticNoise | None:
    if guard.noise == "off":
        return None
    assert guard.epsilon is not None  # Guard checks it
    queries = 1 + 3 * len(features.numeric_names) + len(features.levels)
    return StatisticNoise(
        guard.noise,
        guard.epsilon,
        guard.delta or 0.0,
        queries,
        source or NoiseSource(),
    )


def _counts(
    counts: npt.NDArray[np.integer[Any]],
    noise: StatisticNoise | None,
    sens: float,
    q: int,
) -> npt.NDArray[np.int64]:
    """Counts as released: noised, rounded, at least 0 (exact without noise)."""
    if noise is None:
        return counts.astype(np.int64)
    noised = noise.add(counts.astype(np.float64), sens, q)
    return np.maximum(np.rint(noised), 0).astype(np.int64)


def _moments(
    z: npt.NDArray[np.float64], noise: StatisticNoise | None, q: int, released: int
) -> tuple[float, float]:
    """Mean and standard deviation of ``z`` (clipped and noised under DP).

    Under DP the sums are divided by ``released``, the noised count, never by
    the exact one.
    """
    if noise is None:
        if len(z) == 0:
            return 0.0, 0.0
        return float(z.mean()), float(z.std())
    clipped = np.clip(z, -CLIP_Z, CLIP_Z)
    n = max(float(released), 1.0)
    total = float(noise.add(np.array([clipped.sum()]), CLIP_Z, q)[0])
    squares = float(noise.add(np.array([(clipped**2).sum()]), CLIP_Z**2, q + 1)[0])
    mean = min(max(total / n, -CLIP_Z), CLIP_Z)
    var = min(max(squares / n - mean * mean, 0.0), CLIP_Z**2)
    return mean, math.sqrt(var)


# JSON: every field checked.


def summary_to_json(summary: SiteSummary) -> bytes:
    """The summary as it travels and is recorded: canonical JSON."""
    doc = {
        "rows": summary.rows,
        "labels": dict(summary.labels),
        "numeric": {
            name: {
                "missing": c.missing,
                "mean": c.mean,
                "std": c.std,
                "bins": list(c.bins),
            }
            for name, c in summary.numeric.items()
        },
        "categorical": {k: dict(v) for k, v in summary.categorical.items()},
        "guard": summary.guard.to_dict(),
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def summary_from_json(data: bytes) -> SiteSummary:
    """Parse and check a site's summary; :class:`DatasetError` says what is wrong."""
    if len(data) > MAX_SUMMARY_BYTES:
        raise DatasetError(
            f"the data profile is {len(data)} bytes, more than {MAX_SUMMARY_BYTES}"
        )
    doc = _object(
        _parse(data),
        "data profile",
        {"rows", "labels", "numeric", "categorical", "guard"},
    )
    numeric_doc = _object(doc["numeric"], "numeric columns", None)
    categorical_doc = _object(doc["categorical"], "categorical columns", None)
    if len(numeric_doc) + len(categorical_doc) > _MAX_COLUMNS:
        raise DatasetError(
            f"a data profile may describe at most {_MAX_COLUMNS} columns"
        )
    numeric = {
        _name(name): _numeric(value, name) for name, value in numeric_doc.items()
    }
    categorical = {
        _name(name): _cells(value, f"levels of {name[:40]!r}", _MAX_LEVELS)
        for name, value in categorical_doc.items()
    }
    return SiteSummary(
        rows=_count(doc["rows"], "rows"),
        labels=_cells(doc["labels"], "label counts", _MAX_LEVELS),
        numeric=numeric,
        categorical=categorical,
        guard=guard_from_dict(doc["guard"]),
    )


def _parse(data: bytes) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not a number accord accepts")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=refuse)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DatasetError(f"the data profile is not valid JSON: {exc}"[:300]) from None


def _object(value: Any, what: str, keys: set[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict) or (keys is not None and set(value) != keys):
        wanted = "" if keys is None else f" with exactly {sorted(keys)}"
        raise DatasetError(f"the data profile's {what} must be an object{wanted}")
    return value


def _name(value: str) -> str:
    if not 0 < len(value) <= _MAX_NAME:
        raise DatasetError(
            f"the data profile names {value[:40]!r}: 1 to 256 characters"
        )
    return value


def _count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value < _MAX_COUNT
    ):
        raise DatasetError(
            f"the data profile's {what} is {str(value)[:40]!r}, not a count"
        )
    return value


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetError(f"the data profile's {what} is not a number")
    number = float(value)
    if not math.isfinite(number) or abs(number) > 1e150:
        raise DatasetError(f"the data profile's {what} is out of range")
    return number


def _cells(value: Any, what: str, limit: int) -> dict[str, int | None]:
    doc = _object(value, what, None)
    if len(doc) > limit:
        raise DatasetError(f"the data profile's {what} hold more than {limit} cells")
    return {_name(k): _count(v, f"{what} {k[:40]!r}") for k, v in doc.items()}


def _numeric(value: Any, name: str) -> NumericSummary:
    what = f"column {name[:40]!r}"
    doc = _object(value, what, {"missing", "mean", "std", "bins"})
    bins = doc["bins"]
    if not isinstance(bins, list) or len(bins) != BINS:
        raise DatasetError(f"the data profile's {what} needs {BINS} bins")
    std = _number(doc["std"], f"{what} std")
    if std is not None and std < 0:
        raise DatasetError(f"the data profile's {what} has a negative std")
    return NumericSummary(
        missing=_count(doc["missing"], f"{what} missing"),
        mean=_number(doc["mean"], f"{what} mean"),
        std=std,
        bins=tuple(_count(b, f"{what} bin") for b in bins),
    )


def guard_from_dict(value: Any) -> Guard:
    """A guard as :meth:`Guard.to_dict` writes it, checked; DatasetError if not."""
    doc = _object(value, "guard", {"minCount", "noise", "epsilon", "delta"})
    k = _count(doc["minCount"], "minCount")
    noise = doc["noise"]
    if k is None or noise not in ("off", "laplace", "gaussian"):
        raise DatasetError("the data profile's guard is not one accord writes")
    return Guard(
        min_count=k,
        noise=noise,
        epsilon=_number(doc["epsilon"], "epsilon"),
        delta=_number(doc["delta"], "delta"),
    )
