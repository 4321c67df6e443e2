"""A simulation whose sites keep their own tables (``[data] site_files``): a table
that does not fit stops the run before round 1 naming the site and the column; one
that fits trains, and its data contract is the run's ledger's second entry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.config import load_config
from accord.errors import SchemaMismatch
from accord.simulation.engine import simulate
from accord.store import MemoryStore, SqlStore

runner = CliRunner()
SITES = ("north", "south", "east")

FED = """
[federation]
name = "files"
rounds = 2
seed = 1
[data]
dataset = "csv:all.csv"
test_fraction = 0.2
site_files = {{ north = "north.csv", south = "south.csv", east = "east.csv" }}
options = {{ target = "y", categorical = "colour"{levels} }}
[task]
factory = "accord.task.numpy_task:softmax_regression"
[evaluation]
baselines = false
[simulation]
workers = 0
[store]
directory = "{store}"
"""


def table(rows: int, seed: int, *, colours=("red", "blue")) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(rows):
        x, z = rng.normal(), rng.normal()
        colour = colours[i % len(colours)]
        out.append([f"{x:.4f}", f"{z:.4f}", colour, "yes" if x > 0 else "no"])
    return out


def write(path: Path, rows: list[list[str]], header=("x", "z", "colour", "y")) -> None:
    path.write_text("\n".join(",".join(r) for r in [list(header), *rows]) + "\n")


@pytest.fixture
def federation(tmp_path: Path):
    """``federation(levels=...)``: fed.toml, the reference and three site files."""

    def make(levels: str = "") -> Path:
        write(tmp_path / "all.csv", table(150, 0))
        for i, name in enumerate(SITES):
            write(tmp_path / f"{name}.csv", table(60, i + 1))
        config = tmp_path / "fed.toml"
        config.write_text(FED.format(levels=levels, store=tmp_path / "runs"))
        return config

    return make


def run(config: Path):
    store = MemoryStore()
    with pytest.raises(SchemaMismatch) as caught:
        simulate(load_config(config), store=store)
    return caught.value, store


def test_a_renamed_column_stops_the_simulation_naming_site_and_column(federation):
    config = federation()
    write(config.parent / "south.csv", table(60, 2), header=("x", "zz", "colour", "y"))

    exc, store = run(config)

    assert (exc.site, exc.column) == ("south", "z")
    assert "site 'south' has no column 'z'" in str(exc)
    assert store.list_runs() == []  # stopped before a run (and round 1) began


def test_a_new_category_stops_the_simulation_naming_site_and_column(federation):
    config = federation(levels=', levels = { colour = ["red", "blue"] }')
    write(config.parent / "east.csv", table(60, 3, colours=("red", "blue", "green")))

    exc, store = run(config)

    assert (exc.site, exc.column) == ("east", "colour")
    assert "'green'" in str(exc) and "declared in fed.toml" in str(exc)
    assert store.list_runs() == []


def test_a_changed_type_stops_the_simulation_naming_site_and_column(federation):
    config = federation()
    rows = table(60, 1)
    for i in range(0, 60, 7):
        rows[i][1] = "high"  # z became text at north
    write(config.parent / "north.csv", rows)

    exc, store = run(config)

    assert (exc.site, exc.column) == ("north", "z")
    assert "holds text at site 'north'" in str(exc) and "numeric" in str(exc)
    assert store.list_runs() == []


def test_the_cli_exits_2_and_says_so(federation):
    config = federation()
    write(config.parent / "south.csv", table(60, 2), header=("x", "zz", "colour", "y"))

    result = runner.invoke(app, ["simulate", str(config)])

    assert result.exit_code == 2
    assert "site 'south' has no column 'z'" in result.output


def test_sites_that_fit_train_and_their_contract_opens_the_ledger(federation):
    config = federation()

    result = runner.invoke(app, ["simulate", str(config), "--json"])

    assert result.exit_code == 0, result.output
    with SqlStore(f"sqlite:///{config.parent / 'runs' / 'accord.db'}") as store:
        (info,) = store.list_runs()
        kinds = [e.kind for e in store.ledger(info.run_id)]
        recorded = [e for e in store.events(info.run_id) if e.kind == "data_contract"]
    assert kinds == ["run-opened", "data-contract", "round", "round", "run-closed"]
    assert recorded
