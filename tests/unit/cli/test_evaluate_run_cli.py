"""``accord evaluate run``: a recorded run's models scored on each site's holdout.

The final model's score on each site, computed after the run from its checkpoint,
must equal what that site reported in the run's own federated evaluation: the
holdouts are rebuilt exactly, and nothing is retrained.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.store import SqlStore

from .test_release_cli import FED

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    root = tmp_path_factory.mktemp("evaluate-run")
    config = root / "fed.toml"
    config.write_text(FED.format(dir=root / "runs", gates=""))
    done = runner.invoke(app, ["simulate", str(config), "--json"])
    assert done.exit_code == 0, done.output
    store = SqlStore(f"sqlite:///{root / 'runs' / 'accord.db'}")
    try:
        (info,) = store.list_runs()
        last = store.rounds(info.run_id)[-1]
    finally:
        store.close()
    sites = {
        str(m.participant): m.value
        for m in last.metrics
        if m.scope == "site" and m.name == "accuracy"
    }
    return root, sites


def evaluate(root: Path, *args: str):
    store = ["--dir", str(root / "runs"), "-c", str(root / "fed.toml")]
    return runner.invoke(app, ["evaluate", "run", "latest", *store, *args])


def test_the_final_model_scores_what_each_site_reported_during_the_run(run):
    root, reported = run

    result = evaluate(root, "--json", "--rounds", "1,final")

    assert result.exit_code == 0, result.output
    matrix = json.loads(result.stdout)
    assert matrix["metric"] == "accuracy"
    first, final = matrix["models"]
    assert (first["round"], final["round"]) == (1, 2)
    assert first["digest"] != final["digest"]
    assert sorted(final["sites"]) == sorted(reported) and len(reported) == 3
    for site, value in reported.items():
        assert final["sites"][site]["accuracy"] == pytest.approx(value, abs=1e-12)


def test_a_table_for_chosen_sites_and_clear_refusals(run):
    root, reported = run
    one = sorted(reported)[0]

    table = evaluate(root, "--sites", one)
    unknown = evaluate(root, "--sites", "nowhere")
    past = evaluate(root, "--rounds", "3")

    assert table.exit_code == 0, table.output
    assert "global round 2" in table.stdout and one in table.stdout
    assert unknown.exit_code == 2 and "no site" in unknown.output
    assert past.exit_code == 2 and "not a completed round" in past.output
