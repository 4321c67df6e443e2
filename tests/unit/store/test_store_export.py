"""``accord runs export``: CSV and JSON that parse back to what the store holds."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Callable

import pytest

from accord.errors import RunNotFound, StoreError
from accord.store import MetricValue, RoundRecord, RunStore, export_metrics

NewRun = Callable[..., str]
MakeRound = Callable[..., RoundRecord]


@pytest.fixture
def run_id(store: RunStore, new_run: NewRun, make_round: MakeRound) -> str:
    run_id = new_run()
    store.record_round(make_round(run_id, 2, seed=2, status="failed"))
    first = make_round(run_id, 1, seed=1)
    extra = (MetricValue("central", None, "diverged", math.nan),)
    store.record_round(dataclasses.replace(first, metrics=first.metrics + extra))
    store.finish_run(run_id, status="completed", summary={"final": {"acc": 0.75}})
    return run_id


def test_csv_parses_back_to_the_stored_metrics(store: RunStore, run_id: str) -> None:
    text = export_metrics(store, run_id, "csv")

    rows = list(csv.DictReader(io.StringIO(text)))

    assert text.splitlines()[0] == "round,scope,participant,name,value"
    parsed = [
        (
            int(r["round"]),
            MetricValue(
                r["scope"], r["participant"] or None, r["name"], float(r["value"])
            ),
        )
        for r in rows
    ]
    stored = store.metrics(run_id)
    assert len(parsed) == len(stored)
    for (n_got, got), (n_exp, exp) in zip(parsed, stored, strict=True):
        assert n_got == n_exp
        assert (got.scope, got.participant, got.name) == (
            exp.scope,
            exp.participant,
            exp.name,
        )
        assert got.value == exp.value or (
            math.isnan(got.value) and math.isnan(exp.value)
        )
    assert [n for n, _ in parsed] == sorted(n for n, _ in parsed)


def test_json_parses_back_to_run_rounds_outcomes_and_metrics(
    store: RunStore, run_id: str
) -> None:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    document = json.loads(export_metrics(store, run_id, "json"), parse_constant=refuse)

    info, rounds = store.get_run(run_id), store.rounds(run_id)
    assert document["format"] == "accord-run-export/1"
    assert document["run"]["run_id"] == run_id
    assert document["run"]["status"] == "completed"
    assert document["run"]["config"] == info.config
    assert document["run"]["summary"] == {"final": {"acc": 0.75}}
    assert document["run"]["rounds_completed"] == 1
    assert [r["number"] for r in document["rounds"]] == [1, 2]
    first = document["rounds"][0]
    assert first["started_at"] == rounds[0].started_at.isoformat()
    assert first["selected"] == list(rounds[0].selected)
    assert [o["participant"] for o in first["outcomes"]] == [
        o.participant for o in rounds[0].outcomes
    ]
    assert first["outcomes"][0]["metrics"] == dict(rounds[0].outcomes[0].metrics)
    assert first["metrics"][0]["value"] == rounds[0].metrics[0].value
    assert first["metrics"][-1] == {
        "scope": "central",
        "participant": None,
        "name": "diverged",
        "value": None,
    }


def test_unknown_run_raises_run_not_found(store: RunStore) -> None:
    for fmt in ("csv", "json"):
        with pytest.raises(RunNotFound):
            export_metrics(store, "nope", fmt)  # type: ignore[arg-type]


def test_unknown_format_is_refused(store: RunStore, run_id: str) -> None:
    with pytest.raises(StoreError, match="csv or json"):
        export_metrics(store, run_id, "xlsx")  # type: ignore[arg-type]


def test_run_without_rounds_exports_a_header_only(
    store: RunStore, new_run: NewRun
) -> None:
    run_id = new_run()

    assert (
        export_metrics(store, run_id, "csv") == "round,scope,participant,name,value\n"
    )
    assert json.loads(export_metrics(store, run_id, "json"))["rounds"] == []
