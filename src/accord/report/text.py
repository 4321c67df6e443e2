"""How the card writes numbers, counts and settings as text (every section alike)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["count", "number", "setting", "short"]


def number(value: float | None) -> str:
    """A figure to four decimals (``NaN`` as such, None as ``-``)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f"{value:.4g}"
    return f"{value:.4f}"


def count(n: int, noun: str) -> str:
    """``1 problem``, ``2 problems``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return number(value)
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def setting(section: Mapping[str, Any], head: str | None, *keys: str) -> str:
    """``head``'s value, then each of ``keys`` that is set: ``krum (attackers 1)``.

    Keys left unset (None, absent) are left out; with no ``head``, the keys alone.
    """
    parts = [f"{k} {_value(section[k])}" for k in keys if section.get(k) is not None]
    if head is None:
        return ", ".join(parts) or "defaults"
    first = _value(section.get(head, "not recorded"))
    return first + (f" ({', '.join(parts)})" if parts else "")
