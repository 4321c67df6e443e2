"""Text another party wrote, on the operator's terminal and in the dashboard.

A site's failure reason (free text) or a run name holding rich markup (``[/]``,
``[link=...]``) or terminal escape sequences is printed literally: it no longer
stops a run from its progress display, crashes ``accord runs``, or draws hidden
links; and the loopback dashboard answers only to loopback host names (DNS
rebinding).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from rich.console import Console
from typer.testing import CliRunner

from accord.cli.main import app
from accord.records import ParticipantOutcome, RoundRecord

runner = CliRunner()
AT = datetime(2026, 1, 1, tzinfo=UTC)
# what a deployed site may put in FailureReport.reason (free text, <= 4096 chars)
CLOSER = "bad data [/] here"
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\ \x1b[2J\x1b[31mred"
LINK = "[link=https://evil.example/]see the docs[/link]"


def _store_with_reason(tmp_path, reason: str, *, name: str = "run") -> str:
    from accord.store import SqlStore

    with SqlStore(f"sqlite:///{tmp_path}/runs/accord.db") as store:
        run_id = store.create_run(name=name, config={}, seed=1, rounds_planned=1)
        store.record_round(
            RoundRecord(
                run_id=run_id,
                number=0,
                started_at=AT,
                finished_at=AT,
                status="completed",
                global_digest="0" * 64,
                selected=("site-1",),
                outcomes=(
                    ParticipantOutcome(
                        participant="site-1",
                        status="failed",
                        reason="refused by the site: " + reason,
                        num_examples=0,
                        update_digest=None,
                        duration_s=0.0,
                    ),
                ),
                metrics=(),
                checkpoint=None,
            )
        )
    return run_id


def _show(tmp_path, run_id):
    return runner.invoke(app, ["runs", "show", run_id, "--dir", str(tmp_path / "runs")])


def test_runs_show_survives_a_participant_reason_with_a_closing_tag(tmp_path):
    (tmp_path / "runs").mkdir()
    run_id = _store_with_reason(tmp_path, CLOSER)
    shown = _show(tmp_path, run_id)
    assert shown.exit_code == 0, repr(shown.exception)
    assert "[/]" in shown.stdout


def test_runs_show_does_not_turn_a_participant_reason_into_a_link(tmp_path):
    (tmp_path / "runs").mkdir()
    run_id = _store_with_reason(tmp_path, LINK)
    shown = _show(tmp_path, run_id)
    assert shown.exit_code == 0, repr(shown.exception)
    assert "[link=" in shown.stdout, shown.stdout  # shown as text, not eaten as markup


def test_runs_show_does_not_pass_terminal_escapes_from_a_participant(tmp_path):
    (tmp_path / "runs").mkdir()
    run_id = _store_with_reason(tmp_path, OSC8)
    shown = _show(tmp_path, run_id)
    assert shown.exit_code == 0, repr(shown.exception)
    assert "\x1b" not in shown.stdout, repr(shown.stdout[:600])


def test_runs_list_and_show_survive_a_run_name_with_markup(tmp_path):
    (tmp_path / "runs").mkdir()
    run_id = _store_with_reason(tmp_path, "x", name="exp [/] 1")
    listed = runner.invoke(app, ["runs", "--dir", str(tmp_path / "runs")])
    assert listed.exit_code == 0, repr(listed.exception)
    shown = _show(tmp_path, run_id)
    assert shown.exit_code == 0, repr(shown.exception)


def _observer_console():
    return Console(file=io.StringIO(), force_terminal=True, width=200)


def _outcome(reason: str, participant: str = "site-1") -> ParticipantOutcome:
    return ParticipantOutcome(participant, "failed", reason, 0, None, 0.0)


def test_live_progress_survives_a_participant_reason_with_a_closing_tag():
    from accord.cli.progress import ProgressObserver

    console = _observer_console()
    with ProgressObserver(console, rounds=1, metric="accuracy") as observer:
        observer.round_started(1, ("site-1",))
        observer.participant_finished(1, _outcome("refused by the site: " + CLOSER))
    assert "[/]" in console.file.getvalue()


def test_live_progress_does_not_pass_terminal_escapes_from_a_participant():
    from accord.cli.progress import ProgressObserver

    console = _observer_console()
    with ProgressObserver(console, rounds=1, metric="accuracy") as observer:
        observer.round_started(1, ("site-1",))
        observer.participant_finished(1, _outcome("refused by the site: " + OSC8))
    out = console.file.getvalue()
    assert "evil.example" not in out or "\x1b]8;;https://evil" not in out, repr(out)


def test_one_site_failure_report_with_markup_aborts_the_whole_run():
    """What `accord coordinator` does: a ProgressObserver over the Coordinator.

    The site's executor reports a failure whose free-text reason (what a deployed
    site's FailureReport.reason carries) holds a stray closing tag.
    """
    pytest.importorskip("sklearn")
    from accord.cli.progress import ProgressObserver
    from accord.config import config_from_mapping
    from accord.coordinator.executor import JobFailed
    from accord.coordinator.runner import Coordinator
    from accord.simulation.context import build_context
    from accord.simulation.inprocess import InProcessExecutor
    from accord.store import MemoryStore

    config = config_from_mapping(
        {
            "federation": {"rounds": 2, "seed": 5},
            "data": {"dataset": "digits", "partition": "iid", "sites": 3},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            "evaluation": {"federated": False},
            "simulation": {"workers": 0},
        }
    )

    class Hostile(InProcessExecutor):
        def next_event(self, timeout):  # type: ignore[no-untyped-def]
            event = super().next_event(timeout)
            if (
                event is not None
                and getattr(event, "participant", None) == self.participants[0]
            ):
                return JobFailed(
                    event.participant,
                    event.round,
                    "train",
                    "rejected",
                    "refused by the site: " + CLOSER,
                    0.0,
                )
            return event

    ctx = build_context(config)
    executor = Hostile(ctx)
    console = _observer_console()
    with MemoryStore() as store:
        try:
            with ProgressObserver(console, rounds=2, metric="accuracy") as observer:
                coordinator = Coordinator(
                    config, executor=executor, store=store, observer=observer
                )
                try:
                    coordinator.run(ctx.task.init_params(config.federation.seed))
                except Exception as exc:  # noqa: BLE001
                    raised = exc
                else:
                    raised = None
        finally:
            executor.close()
        (run,) = store.list_runs()
        assert raised is None and run.status == "completed", (
            run.status,
            (run.summary or {}).get("reason"),
            repr(raised),
        )


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("rebind.attacker.example:8765", 421),
        ("127.0.0.1.attacker.example", 421),
        ("127.0.0.1:8765", 200),
        ("localhost:8765", 200),
        ("[::1]:8765", 200),
        ("LOCALHOST", 200),
    ],
)
def test_a_loopback_dashboard_answers_only_to_loopback_names(tmp_path, host, status):
    """DNS rebinding: a page at http://rebind.attacker.example:8765/ whose name
    re-resolves to 127.0.0.1 is same-origin with itself and could read the
    runs; its requests name the attacker's host, and are refused."""
    pytest.importorskip("fastapi")
    pytest.importorskip("plotly")
    from fastapi.testclient import TestClient

    from accord.dashboard.app import create_app
    from accord.dashboard.server import loopback_only
    from accord.store import SqlStore

    (tmp_path / "runs").mkdir()
    _store_with_reason(tmp_path, "x", name="secret-study")
    with SqlStore(f"sqlite:///{tmp_path}/runs/accord.db") as store:
        client = TestClient(loopback_only(create_app(store)))
        answer = client.get("/api/runs", headers={"Host": host})
    assert answer.status_code == status, answer.text[:200]
    assert ("secret-study" in answer.text) == (status == 200)
