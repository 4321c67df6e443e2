"""The privacy spent per round is stored with the round, in every store."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pytest

from accord.errors import StoreError
from accord.store import PrivacySpent, RoundRecord, RunStore

MakeRound = Callable[..., RoundRecord]
NewRun = Callable[..., str]


def spent(epsilon: float, **changes: object) -> PrivacySpent:
    base = PrivacySpent(
        level="participant",
        participant=None,
        epsilon=epsilon,
        delta=1e-5,
        accountant="pld",
        noise_multiplier=1.1,
        sampling_rate=0.5,
        clip=0.75,
        details={"next_clip": 0.8, "update_noise_multiplier": 1.2},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_privacy_round_trips_with_its_round(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    # Arrange: the federation's account and a site's, as record level will add
    run_id = new_run()
    site = spent(0.5, level="record", participant="clinic-a", clip=None, details={})
    records = [
        dataclasses.replace(make_round(run_id, n), privacy=(spent(0.3 * n), site))
        for n in (1, 2)
    ]

    # Act
    for record in records:
        store.record_round(record)
    got = store.rounds(run_id)

    # Assert
    assert got == records
    assert [r.privacy[0].epsilon for r in got] == [0.3, 0.6]
    assert got[0].privacy[1].participant == "clinic-a"
    assert got[0].privacy[1].clip is None
    assert store.last_completed_round(run_id) == records[1]


def test_a_round_without_dp_has_no_privacy(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    run_id = new_run()
    store.record_round(make_round(run_id, 1))
    assert store.rounds(run_id)[0].privacy == ()


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"epsilon": math.nan}, "epsilon"),
        ({"epsilon": -1e-9}, "epsilon"),
        ({"epsilon": math.inf}, "epsilon"),
        ({"delta": 1.0}, "delta"),
        ({"delta": 0.0}, "delta"),
        ({"level": "site"}, "level"),
        ({"clip": math.nan}, "clip"),
        ({"details": {"next_clip": math.inf}}, "details.next_clip"),
    ],
    ids=["nan", "negative", "inf", "delta-1", "delta-0", "level", "clip", "details"],
)
def test_invalid_privacy_is_refused_and_nothing_of_the_round_is_kept(
    store: RunStore,
    new_run: NewRun,
    make_round: MakeRound,
    changes: dict[str, object],
    match: str,
) -> None:
    run_id = new_run()
    bad_spent = dataclasses.replace(spent(1.0), **changes)  # type: ignore[arg-type]
    bad = dataclasses.replace(make_round(run_id, 1), privacy=(bad_spent,))

    with pytest.raises(StoreError, match=match):
        store.record_round(bad)

    assert store.rounds(run_id) == []
