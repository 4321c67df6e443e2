"""How ``accord runs show`` presents personalization: global and own model per site.

With ``[personalization]`` on, each site's evaluation report carries the global
model's metrics and its personalized model's (``personalized_accuracy``, ...,
:mod:`accord.task.personalization`). This module picks the newest round that has
them and lays them side by side, site by site, with the gain; the same figures go
into ``accord runs show --json`` under ``personalization``.
"""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from accord.cli.text import shown
from accord.report.personal import PREFIX, personal_sites
from accord.store import RoundRecord

__all__ = ["personal_json", "personal_sites", "personal_table"]

_SHOWN = ("accuracy", "loss")
_SHORT = {"accuracy": "acc", "loss": "loss"}


def personal_json(rounds: list[RoundRecord]) -> dict[str, Any] | None:
    """``{"round", "sites": {site: {"global": {...}, "personalized": {...}}}}``."""
    found = personal_sites(rounds)
    if found is None:
        return None
    number, sites = found
    return {
        "round": number,
        "sites": {
            site: {
                "n": values.get("n"),
                "global": {
                    k: _plain(values[k]) for k in sorted(values) if _paired(k, values)
                },
                "personalized": {
                    k.removeprefix(PREFIX): _plain(v)
                    for k, v in sorted(values.items())
                    if k.startswith(PREFIX)
                },
            }
            for site, values in sites.items()
        },
    }


def _paired(name: str, values: dict[str, float]) -> bool:
    return PREFIX + name in values


def _plain(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _num(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def personal_table(rounds: list[RoundRecord]) -> Table | None:
    """Each site's global and personalized accuracy and loss; None if none."""
    found = personal_sites(rounds)
    if found is None:
        return None
    number, sites = found
    table = Table(
        title=f"personalization (round {number}): the global model and the "
        "site's own (personalized) model, on the site's holdout"
    )
    table.add_column("site")
    table.add_column("n", justify="right")
    for name in _SHOWN:
        for col in (f"global {_SHORT[name]}", f"own {_SHORT[name]}"):
            table.add_column(col, justify="right")
    table.add_column("acc gain", justify="right")
    for site, values in sites.items():
        glob, own = values.get("accuracy"), values.get(PREFIX + "accuracy")
        gain = (
            None
            if glob is None or own is None or not math.isfinite(own - glob)
            else own - glob
        )
        cells = [_num(values.get(k)) for n in _SHOWN for k in (n, PREFIX + n)]
        table.add_row(
            shown(site),
            f"{values.get('n', math.nan):.0f}",
            *cells,
            "n/a" if gain is None else f"{gain:+.4f}",
        )
    return table
