"""``accord contributions`` end to end, on a simulated CSV federation in process.

Four sites hold the same kind of rows; site ``noisy`` has its labels shuffled (pure
noise). With ``keep_updates`` on, the command rebuilds coalition models from the
kept updates and values them on the sites' own holdouts: ``noisy`` scores lowest by
leave-one-out and by Shapley. A run that kept no updates is refused (exit 2) with
what to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from accord.cli.main import app

runner = CliRunner()

FED = """
[federation]
name = "contrib-test"
rounds = 4
seed = 1
[data]
dataset = "csv:sites.csv"
options = {{ target = "label", site_column = "site" }}
partition = "natural"
sites = 4
[task]
factory = "accord.task.numpy_task:softmax_regression"
[train]
epochs = 2
learning_rate = 0.1
[evaluation]
baselines = false
metric = "loss"
[simulation]
workers = 0
[store]
directory = "{dir}"
[contribution]
keep_updates = {keep}
"""


def write_sites(path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=5)
    lines = ["site,x1,x2,x3,x4,x5,label"]
    for site in ("north", "south", "east", "noisy"):
        x = rng.normal(size=(200, 5))
        y = (x @ w + 0.3 * rng.normal(size=200) > 0).astype(int)
        if site == "noisy":
            y = rng.permutation(y)
        lines += [
            ",".join([site, *(f"{v:.5f}" for v in row), "yes" if label else "no"])
            for row, label in zip(x, y, strict=True)
        ]
    path.write_text("\n".join(lines) + "\n")


def simulate(tmp_path: Path, *, keep: bool) -> Path:
    write_sites(tmp_path / "sites.csv")
    config = tmp_path / "fed.toml"
    runs = tmp_path / "runs"
    config.write_text(FED.format(dir=runs, keep="true" if keep else "false"))
    done = runner.invoke(app, ["simulate", str(config), "--json"])
    assert done.exit_code == 0, done.output
    return config


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("kept"), keep=True)


def contributions(config: Path, *args: str):
    store = ["--dir", str(config.parent / "runs"), "--config", str(config)]
    return runner.invoke(app, ["contributions", "latest", *store, *args])


def test_the_site_with_shuffled_labels_scores_lowest(kept_run: Path) -> None:
    # Act
    out = contributions(kept_run, "--json", "--permutations", "24")

    # Assert
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    by_site = {s["site"]: s for s in report["sites"]}
    assert set(by_site) == {"north", "south", "east", "noisy"}
    for method in ("loo", "shapley"):
        scores = {name: s[method] for name, s in by_site.items()}
        assert min(scores, key=scores.__getitem__) == "noisy", (method, scores)
    total = sum(s["shapley"] for s in report["sites"])
    assert total == pytest.approx(report["gain"], abs=1e-9)  # 4! = 24: exact
    assert report["exact_rounds"] == 4 and report["evaluations"] > 0


def test_sampled_shapley_has_intervals_and_the_table_prints(kept_run: Path) -> None:
    out = contributions(kept_run, "--method", "shapley", "--permutations", "6")

    assert out.exit_code == 0, out.output
    assert "noisy" in out.output and "95% interval" in out.output
    assert "evaluations" in out.output and "0 rounds exact" in out.output


def test_a_run_that_kept_no_updates_is_refused_with_what_to_do(tmp_path: Path) -> None:
    config = simulate(tmp_path, keep=False)

    out = contributions(config)

    assert out.exit_code == 2
    assert "did not keep its round updates" in out.output
    assert "keep_updates = true" in out.output


def test_an_unknown_method_is_refused(kept_run: Path) -> None:
    out = contributions(kept_run, "--method", "banzhaf")

    assert out.exit_code != 0 and "loo, shapley or both" in out.output
