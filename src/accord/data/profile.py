"""Fit a deployment's preprocessing from what each site reveals about its table.

A simulation fits its :class:`~accord.data.preprocess.Encoder` on summed
sufficient statistics of the sites' training rows; a deployment must fit the same
encoder without any row leaving a site. So before round 1 each site sends a
:class:`SiteProfile`: its column names and kinds, per numeric column the count,
sum and sum of squares of its **training rows only**, and per categorical column
the set of levels its table holds (schema, not a statistic: the docs say what it
reveals). The coordinator checks every profile against its own table's schema
(:class:`Schema`), so that a missing column, a column of another kind or another
set of classes is refused *before* round 1 with the site and the column named,
and :func:`fit_encoder` combines them exactly as the simulation does: the summed
statistics (exactly rounded, so in any order) and, per categorical column, the
declared levels of ``fed.toml`` or else the sorted union of the sites' levels.

Profiles and encoders travel and are stored as JSON (:func:`profile_to_json`,
:func:`encoder_to_json`): parsed with :mod:`json`, every field checked for type,
finiteness and size, never unpickled. Floats are written with Python's shortest
round-trip ``repr``, so the encoder a site reads is bit for bit the one fitted.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from accord.data.preprocess import Encoder, SufficientStats
from accord.errors import DatasetError, SchemaMismatch

__all__ = [
    "MAX_COLUMNS",
    "MAX_LEVELS",
    "Schema",
    "SiteColumns",
    "SiteProfile",
    "check_columns",
    "columns_from_json",
    "columns_to_json",
    "encoder_digest",
    "encoder_from_json",
    "encoder_to_json",
    "fit_encoder",
    "profile_from_json",
    "profile_to_json",
]

#: Most columns a profile or an encoder may describe.
MAX_COLUMNS = 10_000
#: Most levels of one categorical column (a free-text column is not categorical).
MAX_LEVELS = 10_000
#: Longest column name, level or class accepted.
MAX_NAME = 256


@dataclass(frozen=True, slots=True)
class Schema:
    """The columns and classes every table of a federation must have.

    ``declared`` maps categorical columns to their declared levels (``[data]
    options.levels`` of ``fed.toml``, ``"missing"`` included), which replace the
    union of the sites' levels and bound them.
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    classes: tuple[str, ...]
    declared: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class SiteProfile:
    """What one site reveals before round 1 (see the module docstring).

    ``numeric`` maps each numeric column to (count, sum, sum of squares) over the
    site's training rows; ``categorical`` maps each categorical column to the
    levels its whole table holds; ``train_rows`` is its number of training rows.
    """

    classes: tuple[str, ...]
    numeric: Mapping[str, tuple[float, float, float]]
    categorical: Mapping[str, tuple[str, ...]]
    train_rows: int


@dataclass(frozen=True, slots=True)
class SiteColumns:
    """What one site reveals before round 1 when its sums are summed securely.

    Its classes, the names of its numeric columns (their statistics go through
    the secure sum, :mod:`accord.coordinator.statistics`) and, per categorical
    column, the levels its table holds, or none for a column whose levels
    ``fed.toml`` declares (the site checks its levels against them itself).
    """

    classes: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: Mapping[str, tuple[str, ...]]


_Described = SiteProfile | SiteColumns


def fit_encoder(profiles: Sequence[tuple[str, SiteProfile]], schema: Schema) -> Encoder:
    """The federation's encoder from the sites' profiles, checked against ``schema``.

    Raises :class:`SchemaMismatch` naming the first site and column that does not
    fit (a missing or extra column, one of another kind, other classes, a level
    outside the declared ones).
    """
    levels = check_columns(profiles, schema)
    parts = [_stats(p, schema.numeric) for _, p in profiles]
    return Encoder.from_stats(schema.numeric, levels, SufficientStats.combine(parts))


def check_columns(
    sites: Sequence[tuple[str, _Described]], schema: Schema
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Check every site's columns against ``schema``; the levels to encode.

    The levels are, per categorical column, the declared ones or the sorted union
    of the sites'. Raises :class:`SchemaMismatch` as :func:`fit_encoder` does.
    """
    if not sites:
        raise DatasetError("no site sent its profile; the preprocessing needs one")
    for site, described in sites:
        _check(site, described, schema)
    return tuple(
        (col, schema.declared.get(col) or _union(col, sites))
        for col in schema.categorical
    )


def _stats(profile: SiteProfile, columns: tuple[str, ...]) -> SufficientStats:
    """One site's statistics as arrays, in the schema's column order."""
    rows = np.array([profile.numeric[c] for c in columns], dtype=np.float64)
    rows = rows.reshape(len(columns), 3)
    return SufficientStats(rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy())


def _union(column: str, profiles: Sequence[tuple[str, _Described]]) -> tuple[str, ...]:
    found = sorted({level for _, p in profiles for level in p.categorical[column]})
    if len(found) > MAX_LEVELS:
        raise SchemaMismatch(
            f"the sites' tables hold {len(found)} levels of {column!r} together, more "
            f"than {MAX_LEVELS}; declare its levels in fed.toml or drop it",
            column=column,
        )
    return tuple(found)


def _check(site: str, profile: _Described, schema: Schema) -> None:
    if profile.classes != schema.classes:
        raise SchemaMismatch(
            f"site {site!r} has the classes {list(profile.classes)[:20]}, the "
            f"federation {list(schema.classes)[:20]}; name the same classes= at every "
            "site and in fed.toml",
            site=site,
            column="classes",
        )
    kinds = {**dict.fromkeys(profile.numeric, "numeric")}
    kinds.update(dict.fromkeys(profile.categorical, "categorical"))
    wanted = {**dict.fromkeys(schema.numeric, "numeric")}
    wanted.update(dict.fromkeys(schema.categorical, "categorical"))
    for column, kind in wanted.items():
        theirs = kinds.get(column)
        if theirs is None:
            raise SchemaMismatch(
                f"site {site!r} has no column {column!r} ({kind} in the federation's "
                "schema); every site needs the same columns (drop= it everywhere, or "
                "add it at that site)",
                site=site,
                column=column,
            )
        if theirs != kind:
            raise SchemaMismatch(
                f"column {column!r} is {theirs} at site {site!r} but {kind} in the "
                "federation's schema; list it in categorical= at every site or none",
                site=site,
                column=column,
            )
    for column in kinds:
        if column not in wanted:
            raise SchemaMismatch(
                f"site {site!r} has a column {column!r} that the federation's schema "
                "lacks; drop= it at that site, or add it to the coordinator's table",
                site=site,
                column=column,
            )
    for column, declared in schema.declared.items():
        extra = sorted(set(profile.categorical[column]) - set(declared))
        if extra:
            shown = ", ".join(repr(e) for e in extra[:3])
            raise SchemaMismatch(
                f"site {site!r} holds the level(s) {shown} of column {column!r}, not "
                f"among the levels declared in fed.toml; declare them or fix the "
                "site's data",
                site=site,
                column=column,
            )


# JSON codecs: every field checked, nothing trusted.


def profile_to_json(profile: SiteProfile) -> bytes:
    """The profile as it travels: canonical JSON."""
    doc = {
        "classes": list(profile.classes),
        "numeric": {k: list(v) for k, v in profile.numeric.items()},
        "categorical": {k: list(v) for k, v in profile.categorical.items()},
        "train_rows": profile.train_rows,
    }
    return _dump(doc)


def profile_from_json(data: bytes) -> SiteProfile:
    """Parse and check a site's profile; :class:`DatasetError` says what is wrong."""
    doc = _load(data, "profile", ("classes", "numeric", "categorical", "train_rows"))
    numeric = _mapping(doc["numeric"], "numeric")
    categorical = _mapping(doc["categorical"], "categorical")
    if len(numeric) + len(categorical) > MAX_COLUMNS:
        raise DatasetError(f"a profile may describe at most {MAX_COLUMNS} columns")
    train_rows = doc["train_rows"]
    if isinstance(train_rows, bool) or not isinstance(train_rows, int):
        raise DatasetError("the profile's train_rows is not an integer")
    if not 0 < train_rows < 2**53:
        raise DatasetError(f"the profile's train_rows {train_rows} is out of range")
    stats: dict[str, tuple[float, float, float]] = {}
    for name, value in numeric.items():
        triple = _floats(value, f"numeric column {name!r}", length=3)
        count, total, total_sq = triple
        # Sums of real values obey total**2 <= count * total_sq (Cauchy-Schwarz):
        # a profile that breaks it cannot come from any table.
        bound = count * total_sq * (1 + 1e-9) + 1e-300
        if (
            count != math.floor(count)
            or not 0 <= count <= train_rows
            or total_sq < 0
            or total * total > bound
        ):
            raise DatasetError(
                f"the statistics of numeric column {name!r} are impossible "
                f"(count {count} of {train_rows} rows, sum {total}, sum of squares "
                f"{total_sq})"
            )
        stats[name] = (count, total, total_sq)
    levels = {
        name: _names(value, f"levels of {name!r}", MAX_LEVELS)
        for name, value in categorical.items()
    }
    return SiteProfile(
        classes=_names(doc["classes"], "classes", MAX_LEVELS),
        numeric=stats,
        categorical=levels,
        train_rows=train_rows,
    )


def columns_to_json(columns: SiteColumns) -> bytes:
    """A site's columns as they travel: canonical JSON."""
    doc = {
        "classes": list(columns.classes),
        "numeric_columns": list(columns.numeric),
        "categorical": {k: list(v) for k, v in columns.categorical.items()},
    }
    return _dump(doc)


def columns_from_json(data: bytes) -> SiteColumns:
    """Parse and check a site's columns; :class:`DatasetError` says what is wrong."""
    doc = _load(data, "profile", ("classes", "numeric_columns", "categorical"))
    numeric = _names(doc["numeric_columns"], "numeric column names", MAX_COLUMNS)
    categorical = _mapping(doc["categorical"], "categorical")
    if len(numeric) + len(categorical) > MAX_COLUMNS:
        raise DatasetError(f"a profile may describe at most {MAX_COLUMNS} columns")
    return SiteColumns(
        classes=_names(doc["classes"], "classes", MAX_LEVELS),
        numeric=numeric,
        categorical={
            name: _names(value, f"levels of {name!r}", MAX_LEVELS)
            for name, value in categorical.items()
        },
    )


def encoder_to_json(encoder: Encoder) -> bytes:
    """The fitted encoder as it is recorded and shipped: canonical JSON."""
    doc = {
        "numeric": list(encoder.numeric_names),
        "levels": [[col, list(names)] for col, names in encoder.levels],
        "mean": [float(v) for v in encoder.mean],
        "scale": [float(v) for v in encoder.scale],
    }
    return _dump(doc)


def encoder_from_json(data: bytes) -> Encoder:
    """Parse and check a recorded or shipped encoder."""
    doc = _load(data, "encoder", ("numeric", "levels", "mean", "scale"))
    numeric = _names(doc["numeric"], "numeric columns", MAX_COLUMNS)
    raw_levels = doc["levels"]
    if not isinstance(raw_levels, list) or len(raw_levels) > MAX_COLUMNS:
        raise DatasetError("the encoder's levels are not a list of columns")
    levels: list[tuple[str, tuple[str, ...]]] = []
    for item in raw_levels:
        if not isinstance(item, list) or len(item) != 2:
            raise DatasetError("each of the encoder's levels is [column, [levels]]")
        column = _names([item[0]], "a categorical column", 1)[0]
        levels.append((column, _names(item[1], f"levels of {column!r}", MAX_LEVELS)))
    n = len(numeric)
    mean = _floats(doc["mean"], "mean", length=n)
    scale = _floats(doc["scale"], "scale", length=n)
    if any(s <= 0 for s in scale):
        raise DatasetError("the encoder's scales must be positive")
    columns = [*numeric, *(c for c, _ in levels)]
    if len(set(columns)) != len(columns):
        raise DatasetError("the encoder names a column twice")
    return Encoder(
        numeric,
        tuple(levels),
        np.array(mean, dtype=np.float64),
        np.array(scale, dtype=np.float64),
    )


def encoder_digest(encoder: Encoder) -> str:
    """SHA-256 of the encoder's canonical JSON: what the store and sites compare."""
    return hashlib.sha256(encoder_to_json(encoder)).hexdigest()


def _dump(doc: Mapping[str, Any]) -> bytes:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def _load(data: bytes, what: str, keys: tuple[str, ...]) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DatasetError(f"the {what} is not valid JSON: {exc}"[:300]) from None
    if not isinstance(doc, dict) or set(doc) != set(keys):
        raise DatasetError(f"the {what} must be an object with exactly {list(keys)}")
    return doc


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number accord accepts")


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DatasetError(f"the profile's {what} columns are not an object")
    _names(list(value), f"{what} column names", MAX_COLUMNS)
    return value


def _names(value: Any, what: str, limit: int) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > limit:
        raise DatasetError(f"the {what} are not a list of at most {limit} names")
    for item in value:
        if not isinstance(item, str) or not 0 < len(item) <= MAX_NAME:
            raise DatasetError(
                f"the {what} hold {str(item)[:40]!r}: names are text of 1 to "
                f"{MAX_NAME} characters"
            )
    if len(set(value)) != len(value):
        raise DatasetError(f"the {what} name something twice")
    return tuple(value)


def _floats(value: Any, what: str, *, length: int) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != length:
        raise DatasetError(f"the {what} must be a list of {length} numbers")
    out: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise DatasetError(f"the {what} hold {str(item)[:40]!r}, not a number")
        try:
            number = float(item)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise DatasetError(f"the {what} hold a value that is not finite")
        out.append(number)
    return tuple(out)
