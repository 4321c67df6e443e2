"""The model card as data: sections of facts, tables, notes and plots.

:func:`accord.report.card.build_card` turns a run's stored records into a
:class:`ModelCard`; renderers (:mod:`accord.report.markdown`,
:mod:`accord.report.html`) turn that into text, and the dashboard can reuse both.
Every string here is plain text exactly as recorded (a site's name, a refusal's
reason): escaping is each renderer's job, for its own format, so no renderer can
receive text already escaped for another.

A :class:`Note` with ``missing=True`` stands where a figure was not recorded; its
text says why and how to record it, so a card never drops a section silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from accord.records import RoundRecord

__all__ = [
    "Block",
    "Facts",
    "ModelCard",
    "Note",
    "Plot",
    "Section",
    "Series",
    "Table",
    "card_json",
    "not_recorded",
    "numbers",
    "series_per_round",
]


@dataclass(frozen=True, slots=True)
class Facts:
    """Labelled values, one a line (``label: value``)."""

    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Table:
    """A table of text cells; ``title`` may be empty."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    title: str = ""


@dataclass(frozen=True, slots=True)
class Note:
    """A sentence; ``missing``: it stands for something that was not recorded."""

    text: str
    missing: bool = False


@dataclass(frozen=True, slots=True)
class Series:
    """One line or set of bars of a plot; a None ``y`` is a gap (not measured).

    ``low`` and ``high`` (bar plots) are an interval around each ``y``.
    """

    name: str
    x: tuple[int | str, ...]
    y: tuple[float | None, ...]
    low: tuple[float | None, ...] | None = None
    high: tuple[float | None, ...] | None = None


@dataclass(frozen=True, slots=True)
class Plot:
    """A figure: lines over rounds, or grouped bars over categories."""

    key: str
    title: str
    x_label: str
    y_label: str
    kind: Literal["line", "bar"]
    series: tuple[Series, ...]


Block = Facts | Table | Note | Plot


@dataclass(frozen=True, slots=True)
class Section:
    """One part of the card (run, federation, privacy, ...)."""

    key: str
    title: str
    blocks: tuple[Block, ...] = field(default_factory=tuple)

    @property
    def plots(self) -> tuple[Plot, ...]:
        """The section's plots, in order."""
        return tuple(b for b in self.blocks if isinstance(b, Plot))


@dataclass(frozen=True, slots=True)
class ModelCard:
    """The whole card of one run."""

    run_id: str
    title: str
    sections: tuple[Section, ...]

    def section(self, key: str) -> Section:
        """The section named ``key``; KeyError if the card has none."""
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(key)

    @property
    def plots(self) -> tuple[Plot, ...]:
        """Every plot of the card, in order."""
        return tuple(p for s in self.sections for p in s.plots)


def not_recorded(why: str) -> Note:
    """The note that stands for a figure nobody recorded: why, and how to."""
    return Note(f"Not recorded: {why}", missing=True)


def numbers(values: Sequence[float | None]) -> tuple[float | None, ...]:
    """``values`` as plot values: NaN (not measured) as None, a gap."""
    return tuple(None if v is None or math.isnan(v) else float(v) for v in values)


def series_per_round(
    rounds: Sequence[RoundRecord],
    names: Sequence[str],
    get: Callable[[RoundRecord, str], float | None],
) -> tuple[Series, ...]:
    """One line per name: ``get(round, name)`` in each round (None: a gap)."""
    xs = tuple(r.number for r in rounds)
    return tuple(
        Series(name, xs, numbers([get(r, name) for r in rounds])) for name in names
    )


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _block_json(block: Block) -> dict[str, Any]:
    if isinstance(block, Facts):
        return {"type": "facts", "items": [list(i) for i in block.items]}
    if isinstance(block, Table):
        return {
            "type": "table",
            "title": block.title,
            "columns": list(block.columns),
            "rows": [list(r) for r in block.rows],
        }
    if isinstance(block, Note):
        return {"type": "note", "text": block.text, "missing": block.missing}

    def values(seq: tuple[float | None, ...] | None) -> list[float | None] | None:
        return None if seq is None else [_number(v) for v in seq]

    return {
        "type": "plot",
        "key": block.key,
        "title": block.title,
        "kind": block.kind,
        "x_label": block.x_label,
        "y_label": block.y_label,
        "series": [
            {
                "name": s.name,
                "x": list(s.x),
                "y": values(s.y),
                "low": values(s.low),
                "high": values(s.high),
            }
            for s in block.series
        ],
    }


def card_json(card: ModelCard) -> dict[str, Any]:
    """The card as plain JSON data (NaN as None), for ``accord report --json``."""
    return {
        "run_id": card.run_id,
        "title": card.title,
        "sections": [
            {
                "key": s.key,
                "title": s.title,
                "blocks": [_block_json(b) for b in s.blocks],
            }
            for s in card.sections
        ],
    }
