"""Column types that make every SQL backend keep values the same way.

* :class:`UtcDateTime` stores instants in UTC and always returns them timezone-aware
  (SQLite keeps no zone and returns naive values; PostgreSQL's ``timestamptz`` does).
  Keeping one zone also makes SQLite's text timestamps sort chronologically.
* :class:`NanFloat` stores NaN as NULL because SQLite cannot store NaN (it silently
  turns it into NULL, which a NOT NULL column then refuses); reading NULL back gives
  NaN on every backend. Infinities are stored as they are.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from sqlalchemy import DateTime, Double
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = ["NanFloat", "UtcDateTime"]


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp kept in UTC and returned timezone-aware, whatever the backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        """Convert to UTC; refuse naive values, whose zone nobody knows."""
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("naive datetime; pass a timezone-aware one")
        return value.astimezone(UTC)

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        """Attach UTC to what SQLite returns naive; convert others to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class NanFloat(TypeDecorator[float]):
    """A double that stores NaN as NULL (SQLite cannot hold NaN) and reads it back."""

    impl = Double
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect: Dialect) -> float | None:
        """NaN becomes NULL."""
        if value is None or math.isnan(value):
            return None
        return float(value)

    def process_result_value(
        self, value: float | None, dialect: Dialect
    ) -> float | None:
        """NULL becomes NaN."""
        return math.nan if value is None else float(value)
