"""``accord simulate`` interrupted by Ctrl-C, then ``--resume auto``, in process.

Ctrl-C is a KeyboardInterrupt raised as round 2 is recorded (the observer the
CLI passes to the engine raises it), so that the point is exact; the real signal,
to real processes with worker processes, is tests/e2e/test_fresh_user.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import accord.cli.simulate as simulate_cli
from accord.cli.main import app
from accord.data.digest import EVENT_KIND
from accord.store import SqlStore

runner = CliRunner()

FED = """
[federation]
name = "interrupted"
rounds = 4
seed = 3
[data]
dataset = "csv:table.csv"
options = { target = "y", site_column = "site", categorical = "colour" }
partition = "natural"
sites = 3
min_site_size = 5
[task]
factory = "accord.task.numpy_task:softmax_regression"
[evaluation]
baselines = false
[simulation]
workers = 0
"""


def write_federation(folder: Path) -> Path:
    rng = np.random.default_rng(4)
    lines = ["x,colour,y,site"]
    for i in range(120):
        x = rng.normal()
        colour = ("red", "blue", "")[i % 3]
        lines.append(f"{x:.4f},{colour},{'yes' if x > 0 else 'no'},s{i % 3}")
    (folder / "table.csv").write_text("\n".join(lines) + "\n")
    config = folder / "fed.toml"
    config.write_text(FED)
    return config


@pytest.fixture
def ctrl_c(monkeypatch):
    """``ctrl_c(at)``: each later simulate is interrupted as round ``at`` ends;
    ``ctrl_c(None)``: no longer."""
    engine = simulate_cli.simulate

    def arm(at: int | None) -> None:
        def interrupted(config, *, observer, **kw):
            inner = observer.round_finished

            def round_finished(summary):
                inner(summary)
                if summary.number == at:
                    raise KeyboardInterrupt

            observer.round_finished = round_finished
            return engine(config, observer=observer, **kw)

        monkeypatch.setattr(simulate_cli, "simulate", interrupted)

    return arm


def run(folder: Path, *extra: str):
    url = f"sqlite:///{folder}/runs.db"
    return runner.invoke(
        app, ["simulate", str(folder / "fed.toml"), "--store", url, *extra]
    )


def flat(text: str) -> str:
    return " ".join(text.split())


def test_ctrl_c_keeps_the_rounds_says_how_to_resume_and_resume_auto_ends_it(
    tmp_path, ctrl_c
):
    config = write_federation(tmp_path)
    url = f"sqlite:///{tmp_path}/runs.db"
    reference = run(tmp_path, "--json", "--store", f"sqlite:///{tmp_path}/ref.db")
    assert reference.exit_code == 0, reference.output
    expected = json.loads(reference.stdout)

    ctrl_c(2)
    interrupted = run(tmp_path)
    ctrl_c(None)

    assert interrupted.exit_code == 130, interrupted.output
    with SqlStore(url) as store:
        (info,) = store.list_runs()
        assert info.status == "aborted"
        assert [r.number for r in store.rounds(info.run_id)] == [1, 2]
    said = flat(interrupted.output)
    assert (
        f"interrupted: run {info.run_id} stopped (2 of 4 rounds recorded, marked "
        "aborted). Resume it with:"
    ) in said
    assert f"accord simulate {config} --store {url} --resume {info.run_id}" in said

    resumed = run(tmp_path, "--resume", "auto", "--json")

    assert resumed.exit_code == 0, resumed.output
    out = json.loads(resumed.stdout)
    assert out["run_id"] == info.run_id
    assert [r["number"] for r in out["rounds"]] == [1, 2, 3, 4]
    assert out["final_digest"] == expected["final_digest"]  # as if never stopped
    assert f"resuming run {info.run_id} after round 2" in flat(resumed.output)
    with SqlStore(url) as store:
        assert [r.run_id for r in store.list_runs()] == [info.run_id]
        assert store.get_run(info.run_id).status == "completed"
        events = store.events(info.run_id)
        contract = ("data_contract", "profile_flag")
        kinds = [e.kind for e in events if e.kind not in contract]
        assert kinds == [EVENT_KIND]  # recorded once, at the start
        # and the data contract once too (the resumed sites make the same one)
        assert len({e.detail[:64] for e in events if e.kind == "data_contract"}) == 1
    shown = runner.invoke(app, ["runs", "show", "latest", "--store", url])
    assert shown.exit_code == 0, shown.output
    assert f"{EVENT_KIND}: " in shown.stdout and "sha256" in shown.stdout
    assert "refused messages" not in shown.stdout  # a record, not a refusal


def test_resume_refuses_a_csv_changed_since_the_run_started(tmp_path, ctrl_c):
    write_federation(tmp_path)
    ctrl_c(1)
    assert run(tmp_path).exit_code == 130
    ctrl_c(None)
    table = tmp_path / "table.csv"
    table.write_text(table.read_text().replace("red", "green", 1))

    refused = run(tmp_path, "--resume", "auto")

    assert refused.exit_code == 2, refused.output
    said = flat(refused.output)
    assert "changed since it started" in said and str(table) in said
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        (info,) = store.list_runs()
        assert info.status == "aborted"  # untouched
        assert [r.number for r in store.rounds(info.run_id)] == [1]


def test_resume_auto_starts_a_new_run_when_none_was_interrupted(tmp_path):
    write_federation(tmp_path)

    first = run(tmp_path, "--resume", "auto", "--json")

    assert first.exit_code == 0, first.output
    assert "no interrupted run of 'interrupted' to resume" in flat(first.output)
    second = run(tmp_path, "--resume", "auto", "--json")  # the first completed
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["run_id"] != json.loads(first.stdout)["run_id"]


def test_resume_auto_refuses_to_guess_between_interrupted_runs(tmp_path):
    write_federation(tmp_path)
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        ids = [
            store.create_run(name="interrupted", config={}, seed=3, rounds_planned=4)
            for _ in range(2)
        ]

    refused = run(tmp_path, "--resume", "auto")

    assert refused.exit_code == 2, refused.output
    said = flat(refused.output)
    assert "2 runs of 'interrupted' are marked running" in said
    assert all(run_id in said for run_id in ids)


def test_ctrl_c_before_the_run_exists_says_nothing_was_recorded(tmp_path, monkeypatch):
    write_federation(tmp_path)

    def interrupted_at_start(config, **kw):
        raise KeyboardInterrupt  # loading the data, say: no run created yet

    monkeypatch.setattr(simulate_cli, "simulate", interrupted_at_start)
    result = run(tmp_path)

    assert result.exit_code == 130
    assert "interrupted before the run started; nothing was recorded" in flat(
        result.output
    )
    assert "--resume" not in result.output
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        assert store.list_runs() == []
