"""``accord simulate`` and ``accord runs show`` with differential privacy."""

import json

from typer.testing import CliRunner

from accord.cli.main import app

runner = CliRunner()

FED = """
[federation]
name = "dp-cli"
rounds = 5
seed = 3
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[evaluation]
federated = false
[simulation]
workers = 0
[store]
directory = "{dir}"
[privacy]
level = "{level}"
noise_multiplier = 2.0
clip = 0.5
accountant = "rdp"
budget_epsilon = 4.5
noise_seed = 1
"""


def _simulate(tmp_path, *extra, level="participant"):
    config = tmp_path / "fed.toml"
    config.write_text(FED.format(dir=tmp_path / "runs", level=level))
    return runner.invoke(app, ["simulate", str(config), *extra])


def test_a_spent_budget_ends_simulate_with_exit_0_and_says_so(tmp_path):
    # every round selects all 3 sites: epsilon (RDP, z = 2) is 2.17, 3.19, 4.01,
    # 4.73 after rounds 1-4, so round 4 would pass the budget of 4.5
    result = _simulate(tmp_path)

    assert result.exit_code == 0, result.output
    assert "3/3 rounds completed" in result.output
    assert "stopped: budget exhausted before round 4" in result.output


def test_json_carries_each_rounds_epsilon_and_why_the_run_stopped(tmp_path):
    result = _simulate(tmp_path, "--json")

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    epsilons = [r["epsilon"] for r in out["rounds"]]
    assert len(epsilons) == 3
    assert epsilons == sorted(epsilons) and epsilons[-1] <= 4.5
    assert out["stopped"].startswith("budget exhausted before round 4")


def test_runs_show_lists_epsilon_per_round_as_text_and_json(tmp_path):
    run_id = json.loads(_simulate(tmp_path, "--json").stdout)["run_id"]
    where = ["--dir", str(tmp_path / "runs")]

    shown = runner.invoke(app, ["runs", "show", run_id, *where])
    as_json = runner.invoke(app, ["runs", "show", run_id, "--json", *where])

    assert shown.exit_code == 0, shown.output
    assert "epsilon" in shown.stdout and "budget exhausted" in shown.stdout
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.stdout)
    assert doc["status"] == "completed"
    assert doc["summary"]["privacy"]["budget_epsilon"] == 4.5
    (first, *_), last = doc["rounds"], doc["rounds"][-1]
    assert first["privacy"][0]["noise_multiplier"] == 2.0
    assert first["privacy"][0]["sampling_rate"] == 1.0
    assert last["epsilon"] == doc["summary"]["privacy"]["epsilon"]
    assert f"{last['epsilon']:.4f}" in shown.stdout


def test_record_level_shows_each_sites_epsilon_as_text_and_json(tmp_path):
    result = _simulate(tmp_path, "--json", level="record")
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout)["run_id"]
    where = ["--dir", str(tmp_path / "runs")]

    shown = runner.invoke(app, ["runs", "show", run_id, *where])
    as_json = runner.invoke(app, ["runs", "show", run_id, "--json", *where])

    assert shown.exit_code == 0, shown.output
    assert "record level" in shown.stdout
    assert "epsilon of each site's records" in shown.stdout
    doc = json.loads(as_json.stdout)
    sites = doc["summary"]["privacy"]["sites"]
    assert set(sites) == {"site-00", "site-01", "site-02"}
    last = doc["rounds"][-1]
    assert last["sites_epsilon"] == sites
    assert last["epsilon"] == max(sites.values()) <= 4.5
    assert {p["level"] for p in last["privacy"]} == {"record"}
    for name, value in sites.items():
        assert f"{name} {value:.4f}" in shown.stdout
