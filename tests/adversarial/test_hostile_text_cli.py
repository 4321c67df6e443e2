"""Hostile text in every command's output, not only ``accord runs``.

A site name, metric or gate name, a reason, a note or a path that came from a
store, a ledger export, a roster, a fed.toml or a peer is printed literally by
each command: a stray ``[/]`` no longer raises rich's ``MarkupError``,
``[link=...]`` no longer turns into a hidden hyperlink (or vanishes), and
terminal escape sequences (``ESC[2J`` clears the screen) are replaced.
"""

from __future__ import annotations

import io
import json
import math
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner, Result

from accord.cli.main import app

runner = CliRunner()
AT = datetime(2026, 1, 1, tzinfo=UTC)
#: One string with all three: a closing tag, a screen clear, and a hidden link.
HOSTILE = "bad [/] here \x1b[2J [link=https://evil.example/]see the docs[/link]"
#: Wide enough that no table cell of these tests wraps.
WIDE = {"COLUMNS": "400"}
FACTORY = "accord.task.numpy_task:softmax_regression"


def assert_literal(text: str) -> None:
    """``text`` holds HOSTILE as it was written, less its escape character."""
    assert "\x1b" not in text, repr(text[:800])
    assert "bad [/] here" in text, text
    assert "[link=https://evil.example/]see the docs[/link]" in text, text


def _ran(result: Result, code: int = 0) -> str:
    assert result.exit_code == code, (result.exit_code, repr(result.exception))
    return result.output


def _console() -> Console:
    return Console(file=io.StringIO(), width=400)


def _printed(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def _store(tmp_path: Path) -> str:
    """A store in tmp_path/runs holding one run; the run's id."""
    from accord.store import SqlStore

    (tmp_path / "runs").mkdir(exist_ok=True)
    with SqlStore(f"sqlite:///{tmp_path}/runs/accord.db") as store:
        return store.create_run(name="run", config={}, seed=1, rounds_planned=1)


def _attacks() -> dict[str, Any]:
    from accord.privacy.audit import FPRS

    return {"loss": SimpleNamespace(auc=0.5, tpr=dict.fromkeys(FPRS, 0.01))}


def _site_audit(site: str) -> SimpleNamespace:
    return SimpleNamespace(
        site=site,
        members=10,
        nonmembers=10,
        epsilon=math.inf,
        delta=1e-5,
        attacks=_attacks(),
        shadows=0,
    )


# accord audit privacy ---


def test_audit_privacy_prints_a_site_name_and_skip_reason_literally(
    tmp_path, monkeypatch
):
    import accord.simulation.privacy_audit as module

    run_id = _store(tmp_path)

    def audit_run(db: Any, run: str, **kwargs: Any) -> SimpleNamespace:
        kwargs["on_site"](HOSTILE)
        return SimpleNamespace(
            run_id=run,
            round=0,
            level="off",
            shadows=0,
            seed=0,
            epsilon=math.inf,
            delta=1e-5,
            sites=[_site_audit(HOSTILE)],
            overall=_attacks(),
            skipped={HOSTILE: HOSTILE},
        )

    monkeypatch.setattr(module, "audit_run", audit_run)
    result = runner.invoke(
        app,
        ["audit", "privacy", run_id, "--dir", str(tmp_path / "runs"), "--shadows", "0"],
        env=WIDE,
    )
    out = _ran(result)
    assert_literal(result.stdout)
    assert_literal(result.stderr)  # "auditing SITE …"
    assert out.count("bad [/] here") >= 4  # progress, table, skipped name and why


# accord participant audit-privacy ---


def test_participant_audit_prints_its_site_name_and_ledger_path_literally(
    capsys, monkeypatch
):
    from accord.cli.participant_audit import _print

    monkeypatch.setenv("COLUMNS", "400")
    audit = _site_audit(HOSTILE)
    for epsilon in (math.inf, 1.0):
        audit.epsilon = epsilon
        _print(
            SimpleNamespace(  # type: ignore[arg-type]
                audit=audit, run_id="r1", round=3, passes=1, ledger=HOSTILE
            )
        )
        assert_literal(capsys.readouterr().out)


# accord contributions ---


def test_contributions_prints_site_names_and_notes_literally(tmp_path, monkeypatch):
    import accord.cli.contributions as module
    from accord.contribution import ContributionReport
    from accord.contribution.accounting import SiteScore

    report = ContributionReport(
        method="loo",
        sites=(SiteScore(HOSTILE, 2, loo=0.1),),
        rounds=2,
        evaluations=4,
        seconds=0.1,
        gain=0.1,
        permutations=20,
        notes=(HOSTILE,),
    )
    monkeypatch.setattr(module, "compute", lambda *a, **k: ("r1", report))
    result = runner.invoke(app, ["contributions", "r1"], env=WIDE)
    out = _ran(result)
    assert_literal(out)
    assert f"note: {HOSTILE}".replace("\x1b", "\ufffd") in out


# accord release ---


def test_release_gates_table_prints_gate_names_and_reasons_literally():
    from accord.cli.release import gates_table
    from accord.evaluation.gates import GateResult
    from accord.evaluation.release import ReleaseDecision

    decision = ReleaseDecision(
        run_id="r1",
        model="0" * 64,
        results=(GateResult(HOSTILE, False, 0.1, 0.2, HOSTILE),),
        fairness=None,
        output=None,
        output_sha256=None,
    )
    console = _console()
    console.print(gates_table(decision))
    out = _printed(console)
    assert_literal(out)
    assert out.count("bad [/] here") == 2  # the gate's name and its reason


def test_a_refused_release_names_its_gates_literally():
    from accord.cli.errors import reported
    from accord.errors import ReleaseRefused

    command = typer.Typer()

    @command.command()
    def release() -> None:
        with reported():
            raise ReleaseRefused("r1", (f"{HOSTILE}: {HOSTILE}",))

    result = CliRunner().invoke(command, [], env=WIDE)
    _ran(result, 7)
    assert_literal(result.stderr)


# accord evaluate ---


def test_evaluate_run_prints_site_names_literally(monkeypatch):
    import accord.cli.evaluate as module

    matrix = {
        "run": "r1",
        "metric": "accuracy",
        "models": [
            {
                "model": "global round 1",
                "round": 1,
                "digest": "0" * 64,
                "sites": {HOSTILE: {"accuracy": 0.5}},
            }
        ],
    }
    monkeypatch.setattr(module, "_model_matrix", lambda *a, **k: matrix)
    result = runner.invoke(app, ["evaluate", "run", "r1"], env=WIDE)
    assert_literal(_ran(result))


def test_evaluate_robustness_table_prints_names_literally():
    from accord.cli.evaluate import matrix_table
    from accord.simulation.robustness import Cell

    cell = Cell(HOSTILE, HOSTILE, "r1", 0.5, math.nan, 0, 0, score=0.5)
    console = _console()
    console.print(matrix_table([cell]))
    assert_literal(_printed(console))


# accord runs show: what the store kept besides the rounds ---


def test_runs_show_prints_events_and_the_summary_reason_literally(tmp_path):
    from accord.simulation.baselines import Comparison
    from accord.store import SqlStore

    run_id = _store(tmp_path)
    comparison = Comparison(
        metric="accuracy",
        federated={"accuracy": 0.5},
        pooled={"accuracy": 0.6},
        sites={HOSTILE: {"accuracy": 0.4}},
        failed={HOSTILE: HOSTILE},
    )
    with SqlStore(f"sqlite:///{tmp_path}/runs/accord.db") as store:
        store.record_event(
            run_id, round=1, participant=HOSTILE, kind="duplicate", detail=HOSTILE
        )
        store.finish_run(
            run_id,
            status="aborted",
            summary={
                "reason": HOSTILE,
                "privacy": {"level": "record", "epsilon": 1.0, "sites": {HOSTILE: 1}},
                "comparison": comparison.to_dict(),
            },
        )
    result = runner.invoke(
        app, ["runs", "show", run_id, "--dir", str(tmp_path / "runs")], env=WIDE
    )
    out = _ran(result)
    assert_literal(out)
    # the reason, the site's epsilon, the event's participant and detail, the
    # site alone in the comparison, its failed baseline's name and reason
    assert out.count("bad [/] here") >= 7, out


# accord audit verify ---


def test_audit_verify_prints_what_the_export_says_literally(capsys, monkeypatch):
    from accord.cli.audit import _print

    monkeypatch.setenv("COLUMNS", "400")
    verdict = SimpleNamespace(
        run=HOSTILE,
        entries=1,
        rounds=1,
        status=HOSTILE,
        signers=(HOSTILE,),
        identity=True,
        receipts=0,
        final_model=HOSTILE,
        problems=(HOSTILE,),
        ok=False,
    )
    _print(verdict, None)
    out = capsys.readouterr().out
    assert_literal(out)
    assert out.count("bad [/] here") == 5


# live progress: the baselines' names ---


def test_live_progress_prints_a_baseline_name_literally():
    from accord.cli.progress import ProgressObserver

    console = Console(file=io.StringIO(), force_terminal=True, width=400)
    with ProgressObserver(console, rounds=1, metric="accuracy") as observer:
        observer.round_started(1, ("site-1",))
        observer.finish_baselines(1)
        observer.baseline_done(HOSTILE)
    out = _printed(console)
    assert "bad [/] here" in out
    assert "\x1b[2J" not in out and "evil.example" in out


# accord profile, accord datasets check ---


def test_profile_prints_site_and_column_names_literally(capsys, monkeypatch):
    from accord.cli.profile import _print

    monkeypatch.setenv("COLUMNS", "400")
    site = {
        "rows": 10,
        "labels": {HOSTILE: 5},
        "numeric": {
            HOSTILE: {"missing": 0, "mean": 1.0, "std": 1.0, "quartiles": [0, 1, 2]}
        },
        "categorical": {HOSTILE: {HOSTILE: 3}},
    }
    document = {
        "sites": {HOSTILE: site},
        "flags": [
            {
                "site": HOSTILE,
                "column": HOSTILE,
                "measure": "psi",
                "value": 1.0,
                "threshold": 0.2,
            }
        ],
        "guard": None,
        "contract": "0" * 64,
        "preprocessing": "0" * 64,
    }
    _print(document, 1)
    assert_literal(capsys.readouterr().out)


def test_datasets_check_prints_a_csv_column_name_literally(tmp_path):
    header = HOSTILE.replace(",", ";")
    (tmp_path / "data.csv").write_text(
        f'x,"{header}",y\n' + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)),
        encoding="utf-8",
    )
    (tmp_path / "fed.toml").write_text(
        '[data]\ndataset = "csv:data.csv"\noptions = { target = "y" }\n'
        f"[task]\nfactory = {FACTORY!r}\n",
        encoding="utf-8",
    )
    result = runner.invoke(
        app, ["datasets", "check", str(tmp_path / "fed.toml")], env=WIDE
    )
    assert result.exit_code in (0, 2), repr(result.exception)
    assert_literal(result.output)


# accord simulate / coordinator --resume auto: the federation's name ---


def test_resume_auto_says_a_federation_name_literally(capsys, monkeypatch):
    from accord.cli.simulate import _auto
    from accord.config import config_from_mapping
    from accord.store import MemoryStore

    monkeypatch.setenv("COLUMNS", "400")
    config = config_from_mapping(
        {
            "federation": {"name": HOSTILE, "rounds": 1},
            "data": {"dataset": "digits", "sites": 2},
            "task": {"factory": FACTORY},
        }
    )
    with MemoryStore() as store, ExitStack() as lease:
        run_id = store.create_run(name=HOSTILE, config={}, seed=1, rounds_planned=1)
        store.finish_run(run_id, status="aborted", summary=None)
        assert _auto(store, config, lease) == run_id  # "run R of NAME was aborted"
    with MemoryStore() as store, ExitStack() as lease:
        assert _auto(store, config, lease) is None  # "no interrupted run of NAME"
    err = capsys.readouterr().err
    assert "\x1b" not in err, repr(err)
    assert err.count("bad [/] here") == 2, err


# accord pki list ---


def test_pki_list_prints_a_roster_literally(tmp_path):
    entry = {
        "name": HOSTILE,
        "role": "participant",
        "serial": "1f",
        "fingerprint": "ab" * 32,
        "issued_at": AT.isoformat(),
        "not_after": AT.replace(year=2099).isoformat(),
        "revoked_at": None,
    }
    roster = {"federation": HOSTILE, "federation_id": "f1", "certificates": [entry]}
    (tmp_path / "roster.json").write_text(json.dumps(roster), encoding="utf-8")
    result = runner.invoke(app, ["pki", "list", "--ca", str(tmp_path)], env=WIDE)
    out = _ran(result)
    assert_literal(out)
    assert out.count("bad [/] here") == 2, out


@pytest.fixture(autouse=True)
def _no_color(monkeypatch):
    """Plain output: the only escape character a test can see is a hostile one."""
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
