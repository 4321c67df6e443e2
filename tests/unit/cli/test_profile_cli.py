"""``accord profile fed.toml``: the table, ``--json``, and ``refuse``'s exit code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from accord.cli.main import app
from accord.store import SqlStore

runner = CliRunner()

FED = """
[federation]
name = "profiled"
seed = 2
[data]
dataset = "csv:table.csv"
options = {{ target = "y", site_column = "site", categorical = "colour" }}
partition = "natural"
sites = 4
[task]
factory = "accord.task.numpy_task:softmax_regression"
{profile}
"""


def write(folder: Path, *, shifted: str | None = "s3", profile: str = "") -> Path:
    """Four sites of 100 rows; ``shifted``'s x is 2 standard deviations higher."""
    rng = np.random.default_rng(5)
    lines = ["x,colour,y,site"]
    for i in range(400):
        site = f"s{i % 4}"
        x = rng.normal(2.0 if site == shifted else 0.0)
        colour = ("red", "blue", "green")[int(rng.integers(3))]
        lines.append(f"{x:.4f},{colour},{'yes' if rng.random() < 0.4 else 'no'},{site}")
    (folder / "table.csv").write_text("\n".join(lines) + "\n")
    config = folder / "fed.toml"
    config.write_text(FED.format(profile=profile))
    return config


def test_json_has_every_site_its_columns_and_the_flags(tmp_path):
    config = write(tmp_path)

    result = runner.invoke(app, ["profile", str(config), "--json"])

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc["sites"]) == {"s0", "s1", "s2", "s3"}
    s0 = doc["sites"]["s0"]
    assert s0["rows"] == sum(s0["labels"].values())
    assert set(s0["categorical"]["colour"]) == {"blue", "green", "red"}
    assert len(s0["numeric"]["x"]["quartiles"]) == 3
    assert {(f["site"], f["column"]) for f in doc["flags"]} >= {("s3", "x")}
    assert all(f["site"] == "s3" for f in doc["flags"])
    assert doc["guard"] == {
        "minCount": 10,
        "noise": "off",
        "epsilon": None,
        "delta": None,
    }
    assert len(doc["contract"]) == 64


def test_the_table_names_the_flags_and_the_guard(tmp_path):
    config = write(tmp_path)

    result = runner.invoke(app, ["profile", str(config)])

    assert result.exit_code == 0, result.output
    flat = " ".join(result.stdout.split())
    assert "drift flags (warnings unless [profile] refuse = true)" in flat
    assert "s3" in flat and "smd" in flat
    assert "counts under 10 suppressed, no DP noise" in flat


def test_an_iid_federation_has_no_flag(tmp_path):
    config = write(tmp_path, shifted=None)

    result = runner.invoke(app, ["profile", str(config)])

    assert result.exit_code == 0, result.output
    assert "no drift flags" in result.stdout


def test_refuse_exits_2_naming_the_flags(tmp_path):
    config = write(tmp_path, profile="[profile]\nrefuse = true")

    result = runner.invoke(app, ["profile", str(config)])

    assert result.exit_code == 2
    flat = " ".join(result.output.split())
    assert "site 's3': 'x' smd" in flat and "refuse = true" in flat


def test_dp_noise_is_said_with_its_epsilon(tmp_path):
    config = write(
        tmp_path, profile='[profile]\nnoise = "laplace"\nepsilon = 2.0\nmin_count = 5'
    )

    result = runner.invoke(app, ["profile", str(config), "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["guard"] == {
        "minCount": 5,
        "noise": "laplace",
        "epsilon": 2.0,
        "delta": None,
    }


def test_a_simulation_with_refuse_stops_before_round_1(tmp_path):
    config = write(tmp_path, profile="[profile]\nrefuse = true")
    store = tmp_path / "runs"

    result = runner.invoke(
        app, ["simulate", str(config), "--store", f"sqlite:///{store}.db"]
    )

    assert result.exit_code == 2
    assert "the run stops before round 1" in " ".join(result.output.split())
    with SqlStore(f"sqlite:///{store}.db") as db:
        assert db.list_runs() == []
