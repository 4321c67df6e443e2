"""Attacks on the deployment's preprocessing fit (issue 8, "Correctness of deployed
preprocessing"; issue 15, first point).

Three csv: sites over real gRPC and mutual TLS (the integration suite's CA and
coordinator); the coordinator runs ``accord coordinator``'s preparation
(:func:`accord.cli.deploy._prepare`). A site whose table does not fit the
federation's, that refuses to reveal its sums, or that forges them, stops the run
before round 1: the error names the site (and the column), the run's store holds
a ``preprocessing_refused`` event saying so, and no site is ever asked to train,
so no model is built from the bad fit.
"""

import threading
from pathlib import Path

import pytest

from accord.cli.deploy import _prepare
from accord.coordinator.preparation import REFUSED_KIND
from accord.errors import PreparationFailed, SchemaMismatch, SubmissionRefused
from accord.participant.policy import SitePolicy
from accord.participant.sitelog import SiteLog
from accord.transport.jobs import PREPARE_MAX_BYTES
from accord.transport.messages import SecAggHeader, TaskOrder, task_digest

from ..integration.test_preprocess_deploy import SITES, start_csv_sites, write_tables


def _refusals(running) -> list[tuple[str | None, str]]:
    return [
        (e.participant, e.detail)
        for e in running.store.events(running.run_id)
        if e.kind == REFUSED_KIND
    ]


def _never_trained(logs: Path, sites) -> bool:
    return not any(
        e["event"] == "received_task" and e["kind"] in ("train", "eval")
        for name in sites
        for e in SiteLog.read(logs / f"{name}.jsonl")
    )


def _edit_csv(path: Path, *, drop: str | None = None) -> None:
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, c in enumerate(header) if c != drop]
    path.write_text(
        "\n".join(",".join(row.split(",")[i] for i in keep) for row in lines) + "\n"
    )


def _prepare_fails(running, config, error):
    with pytest.raises(error) as caught:
        _prepare(config, running.executor, list(SITES), running.store, running.run_id)
    running.executor.close()
    return caught.value


def test_a_site_without_a_column_is_refused_before_round_1_naming_both(
    start_coordinator, tmp_path, background
):
    config, tables = write_tables(tmp_path)
    _edit_csv(tables["site-01"], drop="x2")
    running = start_coordinator(SITES)
    start_csv_sites(running, tables, tmp_path, background)

    exc = _prepare_fails(running, config, SchemaMismatch)

    assert (exc.site, exc.column) == ("site-01", "x2")
    assert "site 'site-01' has no column 'x2'" in str(exc)
    assert _refusals(running) == [("site-01", str(exc))]
    assert _never_trained(tmp_path, SITES)


def test_a_column_of_another_kind_at_one_site_is_refused_naming_both(
    start_coordinator, tmp_path, background
):
    config, tables = write_tables(tmp_path)
    running = start_coordinator(SITES)
    # site-02's operator lists x1 as categorical: its one-hot columns would not
    # be anyone else's.
    wrong = {"site-02": {"categorical": "colour,x1"}}
    start_csv_sites(running, tables, tmp_path, background, options=wrong)

    exc = _prepare_fails(running, config, SchemaMismatch)

    assert (exc.site, exc.column) == ("site-02", "x1")
    assert "categorical at site 'site-02' but numeric" in str(exc)
    assert _refusals(running) == [("site-02", str(exc))]
    assert _never_trained(tmp_path, SITES)


def test_a_level_outside_the_declared_ones_is_refused_naming_column_and_site(
    start_coordinator, tmp_path, background
):
    declared = ', levels = { colour = ["red", "green", "blue"] }'
    config, tables = write_tables(tmp_path, levels=declared)
    # The coordinator's own table holds only declared levels (site-02 is not in it).
    every = (tmp_path / "all.csv").read_text().splitlines()
    (tmp_path / "all.csv").write_text(
        "\n".join(r for r in every if not r.endswith(",site-02")) + "\n"
    )
    running = start_coordinator(SITES)
    start_csv_sites(running, tables, tmp_path, background)

    exc = _prepare_fails(running, config, SchemaMismatch)

    assert (exc.site, exc.column) == ("site-02", "colour")
    assert "'yellow'" in str(exc) and "declared in fed.toml" in str(exc)
    assert _refusals(running) == [("site-02", str(exc))]
    assert _never_trained(tmp_path, SITES)


def test_a_site_that_requires_secure_aggregation_keeps_its_sums(
    start_coordinator, tmp_path, background
):
    config, tables = write_tables(tmp_path)
    running = start_coordinator(SITES)
    policy = SitePolicy(require_secure_aggregation=True)
    start_csv_sites(running, tables, tmp_path, background, policies={"site-01": policy})

    exc = _prepare_fails(running, config, PreparationFailed)

    assert exc.site == "site-01"
    assert "--require-secure-aggregation" in str(exc)
    assert _refusals(running) == [("site-01", str(exc))]
    refused = [
        e
        for e in SiteLog.read(tmp_path / "site-01.jsonl")
        if e["event"] == "refused_task"
    ]
    assert [e["kind"] for e in refused] == ["secagg"]
    assert not any(
        e["event"] == "sent_secagg" for e in SiteLog.read(tmp_path / "site-01.jsonl")
    )
    assert _never_trained(tmp_path, SITES)


def _attacker(running, listen, stop):
    """site-02's task stream (a real certificate), connected."""
    received = listen(running, "site-02", stop)
    assert running.executor.wait_for(["site-02"], 20) == {"site-02"}
    return received


def _attacker_profile(running, received, payload: bytes, *, announce=None):
    """As site-02: wait for the profile task, answer it with ``payload``."""
    while True:
        message = received.get(timeout=20)
        if isinstance(message, TaskOrder) and message.stage == "profile":
            break
    header = SecAggHeader(
        message.run_id,
        0,
        "profile",
        announce or len(payload),
        duration_s=0.0,
        answers=task_digest(message),
    )
    return running.client("site-02").submit_secagg(header, payload)


def _prepare_in_background(running, config, background) -> dict:
    outcome: dict = {}

    def run():
        try:
            _prepare(
                config, running.executor, list(SITES), running.store, running.run_id
            )
        except Exception as exc:
            outcome["error"] = exc

    outcome["thread"] = background(run)
    return outcome


@pytest.mark.parametrize(
    ("numeric", "why"),
    [
        # A variance below zero: sum**2 > count * sum of squares.
        ('{"x1": [10, 100.0, 1.0], "x2": [10, 0.0, 1.0]}', "impossible"),
        # More values than training rows, to outweigh the honest sites.
        ('{"x1": [1e15, 1e15, 1e15], "x2": [10, 0.0, 1.0]}', "impossible"),
        ('{"x1": [10, NaN, 1.0], "x2": [10, 0.0, 1.0]}', "not valid JSON"),
    ],
)
def test_a_forged_profile_is_refused_before_round_1(
    start_coordinator, tmp_path, background, listen, numeric, why
):
    config, tables = write_tables(tmp_path)
    running = start_coordinator(SITES)
    honest = {k: v for k, v in tables.items() if k != "site-02"}
    start_csv_sites(running, honest, tmp_path, background)
    stop = threading.Event()
    received = _attacker(running, listen, stop)
    outcome = _prepare_in_background(running, config, background)
    forged = (
        '{"categorical": {"colour": ["blue"]}, "classes": ["no", "yes"], '
        f'"numeric": {numeric}, "train_rows": 30}}'
    ).encode()

    receipt = _attacker_profile(running, received, forged)
    outcome["thread"].join(30)
    stop.set()
    running.executor.close()

    assert receipt.participant == "site-02"  # accepted on the wire, then checked
    exc = outcome["error"]
    assert isinstance(exc, PreparationFailed) and exc.site == "site-02"
    assert why in str(exc)
    assert _refusals(running) == [("site-02", str(exc))]
    assert _never_trained(tmp_path, honest)


def test_an_oversized_profile_is_refused_on_arrival_and_recorded(
    start_coordinator, tmp_path, background, listen
):
    config, tables = write_tables(tmp_path)
    running = start_coordinator(SITES)
    honest = {k: v for k, v in tables.items() if k != "site-02"}
    start_csv_sites(running, honest, tmp_path, background)
    stop = threading.Event()
    received = _attacker(running, listen, stop)
    outcome = _prepare_in_background(running, config, background)

    with pytest.raises(SubmissionRefused) as refused:
        _attacker_profile(running, received, b"{}", announce=PREPARE_MAX_BYTES + 1)
    stop.set()
    running.executor.stop("test over")
    outcome["thread"].join(30)
    running.executor.close()

    assert refused.value.kind == "too_large"
    assert ("site-02", None, "too_large") in running.events()
    assert isinstance(outcome["error"], Exception)  # no fit without site-02
