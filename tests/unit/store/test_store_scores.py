"""Anomaly scores and quarantined outcomes (issue 10) round-trip through every store."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest

from accord.errors import StoreError
from accord.records import UpdateScore
from accord.store import ParticipantOutcome, RoundRecord, RunStore


def _scores() -> tuple[UpdateScore, ...]:
    return (
        UpdateScore("clinic-a", 1.5, 0.9, 2.0, 1.0, 1.1, 0.1, -0.2),
        UpdateScore(
            "clinic-b",
            90.0,
            -0.4,
            80.0,
            88.0,
            0.0,
            math.inf,
            12.5,
            flags=("norm_z inf > 3",),
            excluded=True,
        ),
        UpdateScore("clinic-c", 1.0, math.nan, 1.5, 0.5, 1.0, 0.0, 0.0),
    )


def test_scores_and_quarantined_outcomes_come_back_as_recorded(
    store: RunStore,
    new_run: Callable[..., str],
    make_round: Callable[..., RoundRecord],
) -> None:
    run_id = new_run()
    base = make_round(run_id, 1)
    quarantined = replace(
        base.outcomes[1], status="quarantined", reason="quarantined from round 1"
    )
    record = replace(
        base,
        outcomes=(base.outcomes[0], quarantined, base.outcomes[2]),
        scores=_scores(),
    )

    store.record_round(record)
    back = store.rounds(run_id)[0]

    assert back.outcomes[1].status == "quarantined"
    assert back.outcomes[1].reason == "quarantined from round 1"
    assert [s.participant for s in back.scores] == ["clinic-a", "clinic-b", "clinic-c"]
    assert back.scores[0] == _scores()[0]
    assert back.scores[1].flags == ("norm_z inf > 3",)
    assert back.scores[1].excluded and back.scores[1].flagged
    assert math.isinf(back.scores[1].norm_z)
    assert math.isnan(back.scores[2].cosine)
    assert store.last_completed_round(run_id) is not None
    assert store.last_completed_round(run_id).scores == back.scores  # type: ignore[union-attr]


def test_a_round_without_scores_stores_none(
    store: RunStore,
    new_run: Callable[..., str],
    make_round: Callable[..., RoundRecord],
) -> None:
    run_id = new_run()
    store.record_round(make_round(run_id, 1))

    assert store.rounds(run_id)[0].scores == ()


def test_scores_naming_a_participant_twice_are_refused_before_writing(
    store: RunStore,
    new_run: Callable[..., str],
    make_round: Callable[..., RoundRecord],
) -> None:
    run_id = new_run()
    twice = (_scores()[0], _scores()[0])

    with pytest.raises(StoreError, match="one distinct"):
        store.record_round(replace(make_round(run_id, 1), scores=twice))

    assert store.rounds(run_id) == []


def test_an_unknown_outcome_status_is_still_refused(
    store: RunStore,
    new_run: Callable[..., str],
    make_round: Callable[..., RoundRecord],
) -> None:
    run_id = new_run()
    base = make_round(run_id, 1)
    bad: ParticipantOutcome = replace(base.outcomes[0], status="excluded")  # type: ignore[arg-type]

    with pytest.raises(StoreError, match="status"):
        store.record_round(replace(base, outcomes=(bad, *base.outcomes[1:])))
