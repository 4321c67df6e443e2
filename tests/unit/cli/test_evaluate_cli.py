"""``accord evaluate robustness`` and the scores in ``accord runs show``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.config import config_from_mapping
from accord.errors import ConfigError
from accord.simulation.robustness import DEFAULT_POLICY, cell_config

runner = CliRunner()

FED = """
[federation]
name = "matrix"
rounds = 2
seed = 1
[data]
dataset = "digits"
partition = "dirichlet"
sites = 10
min_site_size = 20
[task]
factory = "accord.task.numpy_task:softmax_regression"
[train]
learning_rate = 0.1
[evaluation]
federated = false
[simulation]
workers = 0
[store]
directory = "{dir}"
checkpoints = false
"""


def test_the_matrix_runs_every_cell_records_it_and_plots(tmp_path: Path) -> None:
    fed = tmp_path / "fed.toml"
    fed.write_text(FED.format(dir=tmp_path / "runs"))
    plot = tmp_path / "out" / "matrix.png"

    result = runner.invoke(
        app,
        [
            "evaluate",
            "robustness",
            str(fed),
            "--attacks",
            "scaling+backdoor",
            "--defences",
            "mean,median+quarantine",
            "--plot",
            str(plot),
            "--json",
        ],
    )

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    cells = {(c["attack"], c["defence"]): c for c in out["cells"]}
    assert set(cells) == {
        ("none", "mean"),
        ("none", "median+quarantine"),
        ("scaling+backdoor", "mean"),
        ("scaling+backdoor", "median+quarantine"),
    }
    assert cells[("none", "mean")]["backdoor_success"] is None
    attacked = cells[("scaling+backdoor", "mean")]
    assert 0.0 <= attacked["backdoor_success"] <= 1.0
    assert attacked["flagged_attackers"] == 2  # default rules score every cell
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    listed = runner.invoke(app, ["runs", "--dir", str(tmp_path / "runs"), "--json"])
    names = {r["name"] for r in json.loads(listed.stdout)}
    assert "matrix|scaling+backdoor|median+quarantine" in names

    shown = runner.invoke(
        app,
        ["runs", "show", attacked["run_id"], "--dir", str(tmp_path / "runs"), "--json"],
    )

    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    first = doc["rounds"][0]
    flagged = {s["participant"] for s in first["scores"] if s["flags"]}
    # Each scaled update is caught in round 1: flagged by the scores, or refused
    # outright by the default `max_norm_ratio` (then it is not scored at all).
    refused = {
        o["participant"]
        for o in first["outcomes"]
        if o["status"] == "rejected" and "max_norm_ratio" in (o["reason"] or "")
    }
    assert len(flagged | refused) == 2 and not flagged & refused
    table = runner.invoke(
        app,
        ["runs", "show", attacked["run_id"], "--dir", str(tmp_path / "runs")],
        env={"COLUMNS": "220"},
    )
    assert "update scores" in table.stdout and "norm_z" in table.stdout


def test_a_quarantined_site_shows_in_runs_show(tmp_path: Path) -> None:
    fed = tmp_path / "fed.toml"
    fed.write_text(
        FED.format(dir=tmp_path / "runs").replace("rounds = 2", "rounds = 3")
        + '[attack]\nkind = "scaling"\ncount = 2\n'
        + "[robustness]\nmax_norm_z = 3.0\nquarantine_after = 1\n"
    )
    assert runner.invoke(app, ["simulate", str(fed), "--json"]).exit_code == 0

    shown = runner.invoke(
        app, ["runs", "show", "latest", "--dir", str(tmp_path / "runs")]
    )

    as_json = runner.invoke(
        app, ["runs", "show", "latest", "--dir", str(tmp_path / "runs"), "--json"]
    )

    assert shown.exit_code == 0, shown.output
    assert "quarantined" in shown.stdout
    rounds = json.loads(as_json.stdout)["rounds"]
    out = [[o for o in r["outcomes"] if o["status"] == "quarantined"] for r in rounds]
    assert [len(o) for o in out] == [0, 2, 2]
    assert all(o["reason"].startswith("quarantined since round 2") for o in out[2])
    assert all(o["num_examples"] > 0 for o in out[1])  # valid, recorded, not folded


BASE = config_from_mapping(
    {
        "data": {"dataset": "digits"},
        "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        "attack": {"kind": "alie", "sites": ["site-01", "site-02", "site-03"]},
        "robustness": {"min_cosine": 0.1, "quarantine_after": 3},
    }
)


def test_a_cell_takes_the_files_attack_and_policy_with_its_own_names() -> None:
    cell = cell_config(BASE, "ipm", "median+quarantine")
    plain = cell_config(BASE, "scaling+backdoor", "trimmed_mean", malicious=1)
    clean = cell_config(BASE, "none", "mean")

    assert cell.attack is not None and cell.attack.kind == "ipm"
    assert cell.attack.sites == ["site-01", "site-02", "site-03"]
    assert cell.strategy.aggregation == "median"
    assert cell.robustness.min_cosine == 0.1 and cell.robustness.quarantine_after == 3
    assert plain.attack is not None and plain.attack.count == 1
    assert plain.attack.backdoor is not None and plain.attack.sites == []
    assert plain.robustness.quarantine_after is None and plain.robustness.min_cosine
    assert clean.attack is None and clean.federation.name == "federation|none|mean"


def test_without_a_policy_in_the_file_quarantine_uses_the_default() -> None:
    bare = config_from_mapping(
        {
            "data": {"dataset": "digits"},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        }
    )

    cell = cell_config(bare, "alie", "mean+quarantine")

    assert cell.attack is not None and cell.attack.count == 2
    assert cell.robustness.quarantine_after == DEFAULT_POLICY["quarantine_after"]


@pytest.mark.parametrize(
    ("attack", "defence", "match"),
    [
        ("alie+noise", "mean", r"\+backdoor"),
        ("alie", "median+clip", r"\+quarantine"),
        ("zero", "mean", "attack.kind"),
        ("alie", "krum-ish", "aggregation"),
    ],
)
def test_a_bad_name_is_refused_before_anything_runs(
    attack: str, defence: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        cell_config(BASE, attack, defence)


def test_a_cell_whose_run_aborts_is_reported_and_the_matrix_goes_on() -> None:
    from accord.simulation.robustness import run_matrix
    from accord.store import MemoryStore

    cfg = config_from_mapping(
        {
            "federation": {"rounds": 3, "seed": 1},
            "data": {"dataset": "digits", "partition": "dirichlet", "sites": 10},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            "round": {"quorum": 1.0, "max_failed_rounds": 1},
            "attack": {"kind": "scaling", "count": 2},
            "robustness": {"max_norm_z": 3.0, "quarantine_after": 1},
            "evaluation": {"federated": False},
            "simulation": {"workers": 0},
        }
    )
    store = MemoryStore()

    cells = run_matrix(
        cfg, attacks=["scaling"], defences=["mean+quarantine", "mean"], store=store
    )

    by = {(c.attack, c.defence): c for c in cells}
    stopped = by[("scaling", "mean+quarantine")]
    assert stopped.aborted is not None and "needs 10" in stopped.aborted
    assert store.get_run(stopped.run_id).status == "aborted"
    assert by[("scaling", "mean")].aborted is None
    assert by[("scaling", "mean")].accuracy > 0.5
    assert by[("scaling", "mean")].score == by[("scaling", "mean")].accuracy
    assert len(cells) == 4


def test_the_table_heads_with_the_federations_metric() -> None:
    from rich.console import Console

    from accord.cli.evaluate import matrix_table
    from accord.simulation.robustness import Cell

    cells = [
        Cell("none", "median", "r1", 0.9, float("nan"), 0, 0, metric="auc", score=0.8),
        Cell("ipm", "median", "r2", 0.9, float("nan"), 2, 1, metric="auc", score=0.7),
    ]
    console = Console(width=200, record=True)

    console.print(matrix_table(cells))

    text = console.export_text()
    assert "final central auc" in text and "accuracy" in text
    assert "│ 80.0  │ 70.0     │ 10.0 │ 90.0" in text
