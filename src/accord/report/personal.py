"""Each site's global and personalized metrics, read from a run's rounds.

With ``[personalization]`` on (fine-tuning, FedPer or Ditto), each site's
evaluation report carries the global model's metrics and its own model's under
``personalized_`` names (:mod:`accord.task.personalization`). :func:`personal_sites`
finds the newest round that has them; ``accord runs show`` prints them
(:mod:`accord.cli.personal`) and the model card's metrics section tabulates them
(:func:`personal_blocks`).
"""

from __future__ import annotations

import math

from accord.records import RoundRecord
from accord.report.document import Block, Facts, Table
from accord.report.inputs import CardInputs
from accord.report.text import number

__all__ = ["PREFIX", "personal_blocks", "personal_sites"]

#: The prefix of a personalized model's metric names (as the sites report them).
PREFIX = "personalized_"


def personal_sites(
    rounds: list[RoundRecord] | tuple[RoundRecord, ...],
) -> tuple[int, dict[str, dict[str, float]]] | None:
    """The newest round with personalized metrics, and each site's metrics in it.

    None when no round has any (personalization off).
    """
    for r in reversed(rounds):
        sites: dict[str, dict[str, float]] = {}
        for m in r.metrics:
            if m.scope == "site" and m.participant is not None:
                sites.setdefault(m.participant, {})[m.name] = m.value
        if any(k.startswith(PREFIX) for v in sites.values() for k in v):
            return r.number, dict(sorted(sites.items()))
    return None


def _worst(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return min(finite) if finite else None


def personal_blocks(inputs: CardInputs) -> list[Block]:
    """The card's personalization table and worst-site figures; empty if off."""
    found = personal_sites(inputs.rounds)
    if found is None:
        return []
    number_, sites = found
    method = str(inputs.config("personalization").get("method", "finetune"))
    rows = []
    for site, v in sites.items():
        glob, own = v.get("accuracy"), v.get(PREFIX + "accuracy")
        gain = None if glob is None or own is None else own - glob
        rows.append(
            (
                site,
                number(v.get("n")),
                number(glob),
                number(own),
                number(v.get("loss")),
                number(v.get(PREFIX + "loss")),
                "-" if gain is None or not math.isfinite(gain) else f"{gain:+.4f}",
            )
        )
    glob_all = [v["accuracy"] for v in sites.values() if "accuracy" in v]
    own_all = [
        v[PREFIX + "accuracy"] for v in sites.values() if PREFIX + "accuracy" in v
    ]
    return [
        Facts(
            (
                ("personalization", method),
                ("worst site, global model accuracy", number(_worst(glob_all))),
                ("worst site, own model accuracy", number(_worst(own_all))),
            )
        ),
        Table(
            ("site", "n", "global acc", "own acc", "global loss", "own loss", "gain"),
            tuple(rows),
            f"personalization (round {number_}): the global model and each site's "
            "own model, on the site's holdout",
        ),
    ]
