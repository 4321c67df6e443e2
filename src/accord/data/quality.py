"""The quality of a table, checked before anything trains on it.

A table that would train into NaN metrics, an overflowing scaler or fifteen thousand
one-hot columns is refused here, with every problem in one message that names each
column, what is wrong with it and an example of an offending value with its row.
Problems that lose nothing are notes instead (logged): rows without a site in the
site column are left out, as they belong to no site.

What is refused, and why:

- a feature column with text that is not a number (a missing-value marker such as
  ``.``, or a categorical column not declared ``categorical``): it cannot be scaled;
- a feature value that is infinite, or larger in magnitude than :data:`MAX_ABS`:
  its square overflows the federated sums of squares that scaling needs, and an
  infinite input makes every prediction NaN;
- a categorical column with more than ``max_levels`` distinct values: each level
  becomes a model input, so such a column is almost always a number or an
  identifier read as text.

The per-column profile (:class:`ColumnProfile`: kind, missing, non-finite and
distinct values) is what ``accord datasets check`` prints.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from accord.errors import DatasetError, excerpt

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_MAX_LEVELS",
    "MAX_ABS",
    "ColumnProfile",
    "QualityReport",
    "profile_table",
]

logger = logging.getLogger(__name__)

#: Largest magnitude a feature value may have. Its square (1e200) still sums over
#: billions of rows in float64 (max ~1.8e308); no measured quantity comes near it.
MAX_ABS = 1e100
#: Most distinct values a categorical column may have unless ``max_levels`` says.
DEFAULT_MAX_LEVELS = 1000
#: Problems shown per message; the rest are counted.
_SHOWN = 20
# A character budget too, so the one line stays readable (and under terminals'
# and log collectors' line limits) however long each problem's excerpt is.
_SHOWN_CHARS = 1000

Role = Literal["numeric", "categorical", "target", "site"]


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    """One column as the data-quality check saw it."""

    name: str
    role: Role
    kind: str
    """``number``, ``text`` or ``mixed`` (numbers and text)."""
    missing: int
    non_finite: int
    distinct: int
    largest: float | None
    """Largest magnitude among numeric values (None without any)."""


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The profile of every column used, the problems found, and notes."""

    source: str
    rows: int
    columns: tuple[ColumnProfile, ...]
    problems: tuple[str, ...]
    notes: tuple[str, ...]

    def raise_for_problems(self) -> None:
        """:class:`DatasetError` listing every problem; log the notes."""
        for note in self.notes:
            logger.warning("%s: %s", self.source, note)
        if not self.problems:
            return
        shown: list[str] = []
        length = 0
        for i, problem in enumerate(self.problems[:_SHOWN], 1):
            item = f"({i}) {problem}"
            if shown and length + len(item) > _SHOWN_CHARS:
                break
            shown.append(item)
            length += len(item) + 1
        more = len(self.problems) - len(shown)
        if more > 0:
            shown.append(f"and {more} more (`accord datasets check` lists them all)")
        # One line: a terminal, a log and the CLI's "one readable line" rule.
        raise DatasetError(
            f"{self.source} cannot be used as it is ({len(self.problems)} "
            f"problem(s)): {' '.join(shown)}"
        )


def profile_table(
    raw: pd.DataFrame,
    *,
    source: str,
    target: str,
    numeric: Sequence[str],
    categorical: Sequence[str] = (),
    site_column: str | None = None,
    unbounded: Sequence[str] = (),
    max_levels: int = DEFAULT_MAX_LEVELS,
    first_line: int = 2,
) -> QualityReport:
    """Profile the columns of ``raw`` that a model will use; find what is wrong.

    ``unbounded`` numeric columns go through a log transform first, so their
    magnitude is not checked. ``first_line`` is the file line of the first row (2
    for a CSV with a header), so that examples point at the line to fix.
    """
    problems: list[str] = []
    columns: list[ColumnProfile] = []
    for name in numeric:
        profile, found = _numeric(
            raw[name], name, bounded=name not in unbounded, first_line=first_line
        )
        columns.append(profile)
        problems += found
    for name in categorical:
        profile = _text(raw[name], name, "categorical")
        columns.append(profile)
        if profile.distinct > max_levels:
            problems.append(_too_many_levels(raw[name], profile, max_levels))
    columns.append(_text(raw[target], target, "target"))
    notes: list[str] = []
    if site_column is not None:
        site = _text(raw[site_column], site_column, "site")
        columns.append(site)
        if site.missing:
            notes.append(
                f"{site.missing} row(s) have no value in the site column "
                f"{site_column!r}; they belong to no site and are left out"
            )
    return QualityReport(
        source, len(raw), tuple(columns), tuple(problems), tuple(notes)
    )


def _numeric(
    values: pd.Series[Any], name: str, *, bounded: bool, first_line: int
) -> tuple[ColumnProfile, list[str]]:
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce")
    if pd.api.types.is_bool_dtype(values):
        numbers = values.astype("float64")
    present = values.notna().to_numpy()
    parsed = numbers.notna().to_numpy()
    text = present & ~parsed
    finite_mask = np.isfinite(numbers.to_numpy(dtype="float64", na_value=np.nan))
    infinite = parsed & ~finite_mask
    finite = numbers.to_numpy(dtype="float64", na_value=np.nan)[finite_mask]
    largest = float(np.abs(finite).max()) if finite.size else None
    kind = (
        "mixed" if text.any() and parsed.any() else "text" if text.any() else "number"
    )
    profile = ColumnProfile(
        name=name,
        role="numeric",
        kind=kind,
        missing=int((~present).sum()),
        non_finite=int(infinite.sum()),
        distinct=int(values.nunique(dropna=True)),
        largest=largest,
    )
    problems: list[str] = []
    if text.any():
        row = int(np.argmax(text))
        problems.append(
            f"column {excerpt(name)} is not numeric: {int(text.sum())} value(s) "
            f"such as {_shown(values.iloc[row])} (line {row + first_line}); list it in "
            "categorical=, drop= it, or name its missing-value marker in missing="
        )
    if infinite.any():
        row = int(np.argmax(infinite))
        problems.append(
            f"column {excerpt(name)} has {int(infinite.sum())} infinite value(s) "
            f"such as {_shown(values.iloc[row])} (line {row + first_line}); "
            "replace them or drop= the column"
        )
    if bounded and largest is not None and largest > MAX_ABS:
        row = int(np.argmax(np.abs(np.where(finite_mask, numbers, 0.0))))
        problems.append(
            f"column {excerpt(name)} has values as large as {largest:.3g} (line "
            f"{row + first_line}), beyond the {MAX_ABS:.0e} that scaling can hold; "
            "rescale it (e.g. to other units) or drop= it"
        )
    return profile, problems


def _text(values: pd.Series[Any], name: str, role: Role) -> ColumnProfile:
    present = values.dropna()
    return ColumnProfile(
        name=name,
        role=role,
        kind="text",
        missing=int(values.isna().sum()),
        non_finite=0,
        distinct=int(present.astype(str).str.strip().nunique()),
        largest=None,
    )


def _too_many_levels(
    values: pd.Series[Any], profile: ColumnProfile, max_levels: int
) -> str:
    import pandas as pd

    present = values.dropna()
    numbers = pd.to_numeric(present, errors="coerce")
    hint = "each level becomes a model input"
    if len(present) and numbers.notna().mean() > 0.5:
        markers = sorted({str(v) for v in present[numbers.isna()]})[:3]
        hint = "most of its values are numbers: leave it numeric (not categorical=)" + (
            f" and name {', '.join(_shown(m) for m in markers)} in missing="
            if markers
            else ""
        )
    return (
        f"column {excerpt(profile.name)} is categorical with "
        f"{profile.distinct:,} distinct values, more than "
        f"max_levels={max_levels}; {hint}"
    )


def _shown(value: object) -> str:
    """A value from the user's file, quoted and cut to a readable length."""
    return excerpt(value if isinstance(value, str) else str(value))
