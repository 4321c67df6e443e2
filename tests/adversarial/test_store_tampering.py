"""Someone with write access to the coordinator's disk, but not its signing key.

A resume refuses a store whose rounds and ledger disagree (a ledger cut short, a
round row deleted) and a checkpoint that is not the model the round's signed entry
names; a checkpoint swapped for another round's is not released as the final model; a
run interrupted and resumed with another ``slowdown`` is refused (it changes
which sites a round closes without); a checkpoint a killed writer left half
written is removed before the run writes again; one SQLite file reached by two
names has one lease per run.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.errors import RunBusy
from accord.store import SqlStore

from ..unit.cli.test_simulate_interrupt import (  # noqa: F401
    ctrl_c,
    write_federation,
)

pytestmark = [pytest.mark.timeout(300)]

runner = CliRunner()

FED3 = """
[federation]
name = "tampering"
rounds = 3
seed = 3
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[evaluation]
baselines = false
[simulation]
workers = 0
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Checkpoints go to ./accord-runs: keep them in the test's folder."""
    monkeypatch.chdir(tmp_path)


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


def _simulate(tmp_path: Path, *extra: str):
    args = ["simulate", str(tmp_path / "fed.toml"), "--store", _url(tmp_path), *extra]
    return runner.invoke(app, args)


def _run_id(tmp_path: Path) -> str:
    with SqlStore(_url(tmp_path)) as store:
        (info,) = store.list_runs()
        return info.run_id


def _checkpoints(tmp_path: Path, run_id: str) -> Path:
    return tmp_path / "accord-runs" / "checkpoints" / run_id


def _release(tmp_path: Path, out: Path):
    return runner.invoke(
        app, ["release", "latest", "-o", str(out), "--store", _url(tmp_path)]
    )


def test_release_refuses_a_final_checkpoint_that_is_not_the_recorded_model(
    tmp_path,
):
    (tmp_path / "fed.toml").write_text(FED3)
    assert _simulate(tmp_path, "--json").exit_code == 0
    run_id = _run_id(tmp_path)
    folder = _checkpoints(tmp_path, run_id)
    out = tmp_path / "model.safetensors"

    honest = _release(tmp_path, out)
    assert honest.exit_code == 0, honest.output
    out.unlink()
    shutil.copyfile(
        folder / "round-00002.safetensors", folder / "round-00003.safetensors"
    )
    swapped = _release(tmp_path, out)

    assert swapped.exit_code != 0
    assert not out.exists()
    assert "round 3's record names" in swapped.output


SLOW = """
[federation]
name = "slow"
rounds = 4
seed = 3
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[round]
close_fraction = 0.6
[evaluation]
baselines = false
[simulation]
workers = 0
slowdown = {{ {slow} = 50.0 }}
"""


def test_a_resume_with_another_slowdown_is_refused(tmp_path, ctrl_c):  # noqa: F811
    (tmp_path / "fed.toml").write_text(SLOW.format(slow='"site-00"'))
    ctrl_c(2)
    assert _simulate(tmp_path).exit_code != 0
    ctrl_c(None)
    (tmp_path / "fed.toml").write_text(SLOW.format(slow='"site-02"'))

    resumed = _simulate(tmp_path, "--resume", "auto")

    assert resumed.exit_code != 0
    assert "simulation.slowdown" in resumed.output
    with SqlStore(_url(tmp_path)) as store:
        assert [r.number for r in store.rounds(_run_id(tmp_path))] == [1, 2]


def test_a_half_written_checkpoint_is_removed_when_the_run_resumes(
    tmp_path,
    ctrl_c,  # noqa: F811
):
    (tmp_path / "fed.toml").write_text(FED3)
    ctrl_c(2)
    assert _simulate(tmp_path).exit_code != 0
    ctrl_c(None)
    run_id = _run_id(tmp_path)
    folder = _checkpoints(tmp_path, run_id)
    # What a process killed between writing and renaming round 3 leaves.
    partial = folder / ".round-00003.safetensors.k1ll3d.tmp"
    partial.write_bytes(b"\0" * 4096)
    unrelated = folder / "notes.tmp"
    unrelated.write_text("not accord's")

    resumed = _simulate(tmp_path, "--resume", "auto")

    assert resumed.exit_code == 0, resumed.output
    assert not partial.exists()
    assert unrelated.exists()
    assert sorted(p.name for p in folder.glob("round-*.safetensors")) == [
        "round-00001.safetensors",
        "round-00002.safetensors",
        "round-00003.safetensors",
    ]


@pytest.mark.parametrize("alias", ["relative", "symlink", "uri"])
def test_one_database_under_two_names_has_one_lease(tmp_path, alias):
    real = tmp_path / "data" / "runs.db"
    real.parent.mkdir()
    with SqlStore(f"sqlite:///{real}") as first:
        run_id = first.create_run(name="x", config={}, seed=1, rounds_planned=1)
    if alias == "symlink":
        (tmp_path / "alias.db").symlink_to(real)
        other_url = f"sqlite:///{tmp_path / 'alias.db'}"
    elif alias == "relative":  # the test runs in tmp_path
        other_url = "sqlite:///data/runs.db"
    else:
        other_url = f"sqlite:///file:{real}?uri=true"
    first, second = SqlStore(f"sqlite:///{real}"), SqlStore(other_url)
    try:
        assert [r.run_id for r in second.list_runs()] == [run_id]  # same database
        with (
            first.lease_run(run_id),
            pytest.raises(RunBusy),
            second.lease_run(run_id),
        ):
            pass
    finally:
        first.close()
        second.close()


def _interrupted_at_2(tmp_path: Path, ctrl_c) -> str:  # noqa: F811
    write_federation(tmp_path)
    ctrl_c(2)
    assert _simulate(tmp_path).exit_code == 130
    ctrl_c(None)
    return _run_id(tmp_path)


def _sql(tmp_path: Path, statement: str, *args: object) -> None:
    con = sqlite3.connect(tmp_path / "runs.db")
    try:
        con.execute("PRAGMA foreign_keys=ON")
        con.execute(statement, args)
        con.commit()
    finally:
        con.close()


def test_a_resume_refuses_a_ledger_cut_short(tmp_path, ctrl_c):  # noqa: F811
    run_id = _interrupted_at_2(tmp_path, ctrl_c)
    with SqlStore(_url(tmp_path)) as store:
        tail = [e.sequence for e in store.ledger(run_id)][-2:]  # round 2, closed
    _sql(
        tmp_path,
        "DELETE FROM accord_ledger WHERE run_id=? AND sequence IN (?, ?)",
        run_id,
        *tail,
    )

    resumed = _simulate(tmp_path, "--resume", "auto")

    assert resumed.exit_code != 0
    assert "the store has rounds 1-2, the ledger's round entries 1-1" in (
        resumed.output
    )
    assert "the ledger's last entry is not its closing" in resumed.output
    with SqlStore(_url(tmp_path)) as store:
        assert [r.number for r in store.rounds(run_id)] == [1, 2]


def test_a_resume_refuses_a_store_that_lost_a_round_its_ledger_has(
    tmp_path,
    ctrl_c,  # noqa: F811
):
    run_id = _interrupted_at_2(tmp_path, ctrl_c)
    _sql(tmp_path, "DELETE FROM accord_rounds WHERE run_id=? AND number=2", run_id)

    resumed = _simulate(tmp_path, "--resume", "auto")

    assert resumed.exit_code != 0
    assert "the store has rounds 1-1, the ledger's round entries 1-2" in (
        resumed.output
    )


def test_a_resume_checks_the_checkpoint_against_the_signed_entry(
    tmp_path,
    ctrl_c,  # noqa: F811
):
    from accord.store import CheckpointStore

    run_id = _interrupted_at_2(tmp_path, ctrl_c)
    cps = CheckpointStore(tmp_path / "accord-runs" / "checkpoints")
    one = cps.load_checkpoint(cps.path(run_id, 1))
    # Round 2's checkpoint holds round 1's model, and its row says so too.
    cps.save(run_id, 2, one.params, extra=one.extra)
    _sql(
        tmp_path,
        "UPDATE accord_rounds SET global_digest=? WHERE run_id=? AND number=2",
        one.params.digest(),
        run_id,
    )

    resumed = _simulate(tmp_path, "--resume", "auto")

    assert resumed.exit_code != 0
    assert "is not the model of round 2" in resumed.output


def test_an_untouched_interrupted_run_still_resumes(tmp_path, ctrl_c):  # noqa: F811
    run_id = _interrupted_at_2(tmp_path, ctrl_c)

    resumed = _simulate(tmp_path, "--resume", "auto")

    assert resumed.exit_code == 0, resumed.output
    with SqlStore(_url(tmp_path)) as store:
        assert [r.number for r in store.rounds(run_id)] == [1, 2, 3, 4]


def test_release_gates_are_judged_on_the_signed_figures(tmp_path):
    (tmp_path / "fed.toml").write_text(FED3)
    assert _simulate(tmp_path, "--json").exit_code == 0
    run_id = _run_id(tmp_path)
    with SqlStore(_url(tmp_path)) as store:
        last = store.rounds(run_id)[-1]
    (federated,) = [
        m
        for m in last.metrics
        if m.scope == "federated" and m.participant is None and m.name == "accuracy"
    ]
    assert federated.value < 0.99
    text = FED3.replace("[evaluation]\n", '[evaluation]\nmetric = "accuracy"\n')
    (tmp_path / "gated.toml").write_text(text + "[gates]\nfederated_metric = 0.99\n")
    out = tmp_path / "model.safetensors"
    args = ["release", "latest", "-o", str(out), "-c", str(tmp_path / "gated.toml")]
    honest = runner.invoke(app, [*args, "--store", _url(tmp_path)])
    assert honest.exit_code != 0 and "federated_metric" in honest.output
    # The final federated accuracy row, edited past the gate.
    _sql(
        tmp_path,
        "UPDATE accord_metrics SET value=? WHERE scope='federated' AND "
        "participant IS NULL AND name='accuracy' AND round_id=(SELECT id FROM "
        "accord_rounds WHERE run_id=? AND number=3)",
        0.995,
        run_id,
    )

    released = runner.invoke(app, [*args, "--store", _url(tmp_path)])

    assert released.exit_code != 0
    assert not out.exists()
    assert "round 3 metric federated.accuracy is 0.995 in the store" in released.output


def test_release_gates_judge_each_sites_signed_score(tmp_path):
    """A worst-site gate reads per-site rows: those are in the signed entry too."""
    (tmp_path / "fed.toml").write_text(FED3)
    assert _simulate(tmp_path, "--json").exit_code == 0
    run_id = _run_id(tmp_path)
    with SqlStore(_url(tmp_path)) as store:
        last = store.rounds(run_id)[-1]
    sites = {
        m.participant: m.value
        for m in last.metrics
        if m.scope == "site" and m.participant is not None and m.name == "accuracy"
    }
    worst = min(sites, key=lambda s: sites[s])
    gate = (sites[worst] + 1.0) / 2  # above the worst site's score
    text = FED3.replace("[evaluation]\n", '[evaluation]\nmetric = "accuracy"\n')
    gates = f"[gates]\nworst_site_metric = {gate}\n"
    (tmp_path / "gated.toml").write_text(text + gates)
    out = tmp_path / "model.safetensors"
    args = ["release", "latest", "-o", str(out), "-c", str(tmp_path / "gated.toml")]
    honest = runner.invoke(app, [*args, "--store", _url(tmp_path)])
    assert honest.exit_code != 0 and "worst_site_metric" in honest.output
    # The worst site's final accuracy row, edited past the gate.
    _sql(
        tmp_path,
        "UPDATE accord_metrics SET value=? WHERE scope='site' AND participant=? "
        "AND name='accuracy' AND round_id=(SELECT id FROM accord_rounds WHERE "
        "run_id=? AND number=3)",
        1.0,
        worst,
        run_id,
    )

    released = runner.invoke(app, [*args, "--store", _url(tmp_path)])

    assert released.exit_code != 0
    assert not out.exists()
    assert f"round 3 metric site.accuracy of site {worst} is 1.0 in the store" in (
        released.output
    )


def _export(tmp_path: Path):
    out = tmp_path / "ledger.jsonl"
    args = ["audit", "export", "latest", "--store", _url(tmp_path), "-o", str(out)]
    return runner.invoke(app, args), out


def test_export_refuses_a_ledger_cut_after_an_earlier_closing(
    tmp_path,
    ctrl_c,  # noqa: F811
):
    """Cut at the aborted closing, the ledger verifies alone; the store knows the
    run completed four rounds, so the export refuses."""
    run_id = _interrupted_at_2(tmp_path, ctrl_c)
    assert _simulate(tmp_path, "--resume", "auto").exit_code == 0
    honest, out = _export(tmp_path)
    assert honest.exit_code == 0, honest.output
    out.unlink()
    with SqlStore(_url(tmp_path)) as store:
        first_close = min(
            e.sequence for e in store.ledger(run_id) if e.kind == "run-closed"
        )
    _sql(
        tmp_path,
        "DELETE FROM accord_ledger WHERE run_id=? AND sequence>?",
        run_id,
        first_close,
    )

    cut, out = _export(tmp_path)

    assert cut.exit_code != 0
    assert not out.exists()
    assert "the store has rounds 1-4, the ledger's round entries 1-2" in cut.output
    assert "the store says the run completed" in cut.output


def test_export_refuses_a_ledger_whose_release_entry_was_deleted(tmp_path):
    (tmp_path / "fed.toml").write_text(FED3)
    assert _simulate(tmp_path, "--json").exit_code == 0
    run_id = _run_id(tmp_path)
    model = tmp_path / "model.safetensors"
    assert _release(tmp_path, model).exit_code == 0
    _sql(
        tmp_path, "DELETE FROM accord_ledger WHERE run_id=? AND kind='release'", run_id
    )

    cut, out = _export(tmp_path)

    assert cut.exit_code != 0
    assert not out.exists()
    assert "the store recorded 1 release(s), the ledger holds 0" in cut.output
