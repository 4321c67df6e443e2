"""Hand-built card inputs: a small run whose every figure the tests know."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from accord.records import (
    MetricValue,
    ParticipantOutcome,
    PrivacySpent,
    RoundRecord,
    RunEvent,
    RunInfo,
    UpdateScore,
)
from accord.report.inputs import CardInputs, LedgerCheck, LedgerEntry

HOSTILE = "<script>alert(1)</script>"
AT = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)


def run_info(config: dict[str, Any], **summary: Any) -> RunInfo:
    return RunInfo(
        run_id="20261206-070000-abcdef",
        name="card",
        created_at=AT,
        finished_at=AT,
        status="completed",
        seed=1,
        rounds_planned=2,
        rounds_completed=2,
        config=config,
        summary=summary or None,
    )


def round_record(
    number: int, sites: tuple[str, ...], *, dp: bool, scored: bool
) -> RoundRecord:
    metrics = [
        MetricValue("central", None, "accuracy", 0.5 + number / 10),
        MetricValue("federated", None, "accuracy", 0.4 + number / 10),
    ] + [
        MetricValue("site", s, "accuracy", 0.3 + i / 10 + number / 100)
        for i, s in enumerate(sites)
    ]
    privacy = (
        (PrivacySpent("participant", None, 1.5 * number, 1e-5, "pld", 0.8, 1.0, 2.0),)
        if dp
        else ()
    )
    scores = (
        tuple(
            UpdateScore(
                s,
                1.0,
                0.5,
                0.1,
                0.1,
                1.0,
                norm_z=float(i + number),
                distance_z=-float(i),
                flags=("norm_z 9 > 3",) if i == 1 and number == 2 else (),
            )
            for i, s in enumerate(sites)
        )
        if scored
        else ()
    )
    return RoundRecord(
        run_id="20261206-070000-abcdef",
        number=number,
        started_at=AT,
        finished_at=AT,
        status="completed",
        global_digest=f"{number:064x}",
        selected=sites,
        outcomes=tuple(
            ParticipantOutcome(s, "ok", None, 100 + i, "ab" * 32, 0.1)
            for i, s in enumerate(sites)
        ),
        metrics=tuple(metrics),
        checkpoint=f"/runs/round-{number:05d}.safetensors",
        privacy=privacy,
        scores=scores,
    )


@pytest.fixture
def plain_inputs() -> CardInputs:
    """Two rounds, two sites (one named like a script), no DP, gates or ledger."""
    config = {
        "data": {"dataset": "wine", "partition": "iid", "sites": 2},
        "evaluation": {"metric": "accuracy"},
        "privacy": {"level": "off"},
        "gates": {"central_metric": None},
        "strategy": {"aggregation": "mean", "server_optimizer": "sgd"},
        "robustness": {"scores": False},
        "contribution": {"keep_updates": False},
    }
    sites = ("site-a", HOSTILE)
    return CardInputs(
        run=run_info(config),
        rounds=tuple(round_record(n, sites, dp=False, scored=False) for n in (1, 2)),
    )


@pytest.fixture
def full_inputs() -> CardInputs:
    """The same run with DP, scores, a release entry and a data-contract entry."""
    config = {
        "data": {"dataset": "wine", "partition": "iid", "sites": 2},
        "evaluation": {"metric": "accuracy"},
        "privacy": {"level": "participant", "budget_epsilon": 10.0},
        "gates": {"central_metric": 0.6, "max_epsilon": 2.0},
        "strategy": {"aggregation": "mean", "server_optimizer": "sgd"},
        "robustness": {"scores": True, "max_norm_z": 3.0},
        "contribution": {"keep_updates": True},
    }
    sites = ("site-a", HOSTILE)
    release = {
        "passed": False,
        "results": [
            {"gate": "completed", "passed": True, "reason": "the run completed"},
            {
                "gate": "max_epsilon",
                "passed": False,
                "reason": f"epsilon 3 > 2 {HOSTILE}",
            },
        ],
        "fairness": {
            "column": "sex",
            "threshold": 0.5,
            "demographicParityDifference": 0.25,
            "equalizedOddsDifference": None,
            "groups": {
                "f": {"tp": 1, "fp": 1, "tn": 2, "fn": 0, "selectionRate": 0.5},
                HOSTILE: {"tp": 0, "fp": 1, "tn": 3, "fn": 0, "selectionRate": 0.25},
            },
        },
        "modelFile": None,
    }
    ledger = (
        LedgerEntry(
            0, "run-opened", None, "0" * 64, {"accord": "9.9", "config": "c" * 64}
        ),
        LedgerEntry(
            1,
            "data-contract",
            None,
            "1" * 64,
            {
                "contract": {
                    "schema": {
                        "numeric": ["age", "dose"],
                        "categorical": {"sex": ["f", "m"]},
                        "classes": ["no", "yes"],
                    },
                    "preprocessing": "f" * 64,
                    "profiles": {HOSTILE: "d" * 64, "site-a": "a" * 64},
                    "guard": {"min_count": 10, "noise": None},
                    "flags": [
                        {
                            "site": HOSTILE,
                            "column": "age",
                            "measure": "smd",
                            "value": 1.5,
                            "threshold": 0.5,
                        }
                    ],
                }
            },
        ),
        LedgerEntry(2, "round", 1, "2" * 64, {}),
        LedgerEntry(3, "round", 2, "3" * 64, {}),
        LedgerEntry(4, "run-closed", None, "4" * 64, {"model": "e" * 64}),
        LedgerEntry(5, "release", None, "5" * 64, release),
    )
    events = (
        RunEvent(
            "20261206-070000-abcdef",
            AT,
            None,
            None,
            "data_digest",
            '{"dataset": "wine"}',
        ),
        RunEvent("20261206-070000-abcdef", AT, 1, HOSTILE, "duplicate", "sent twice"),
    )
    return CardInputs(
        run=run_info(
            config,
            privacy={
                "level": "participant",
                "epsilon": 3.0,
                "budget_epsilon": 10.0,
                "noise": "central",
            },
        ),
        rounds=tuple(round_record(n, sites, dp=True, scored=True) for n in (1, 2)),
        events=events,
        ledger=ledger,
        check=LedgerCheck(True, "integrity only", receipts=0),
    )
