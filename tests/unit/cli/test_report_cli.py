"""``accord report``: the card of a real simulated run holds what the store holds.

One small run (wine, three sites, numpy softmax regression, three rounds) with
participant-level DP, anomaly scores, [gates] and kept updates, released once;
and one plain run (one round, nothing of those). Every figure the tests expect is
read back from the store, not restated.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.report.text import number
from accord.store import SqlStore

runner = CliRunner()

FED = """
[federation]
name = "{name}"
rounds = {rounds}
seed = 5
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[evaluation]
baselines = false
[simulation]
workers = 0
[store]
directory = "{dir}"
"""

GUARDED = """
[privacy]
level = "participant"
noise_multiplier = 0.5
clip = 5.0
budget_epsilon = 1000
[robustness]
scores = true
max_norm_z = 3.0
[gates]
central_metric = 0.0
max_epsilon = 1000
[contribution]
keep_updates = true
"""


def simulate(root: Path, name: str, rounds: int, extra: str) -> Path:
    config = root / f"{name}.toml"
    config.write_text(FED.format(name=name, rounds=rounds, dir=root / "runs") + extra)
    done = runner.invoke(app, ["simulate", str(config), "--json"])
    assert done.exit_code == 0, done.output
    return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The guarded run (released) and the plain one; their ids and records."""
    root = tmp_path_factory.mktemp("report")
    config = simulate(root, "guarded", 3, GUARDED)
    released = runner.invoke(
        app,
        ["release", "latest", "-o", str(root / "model.safetensors")]
        + ["-c", str(config), "--dir", str(root / "runs")],
    )
    assert released.exit_code == 0, released.output
    simulate(root, "plain", 1, "")
    store = SqlStore(f"sqlite:///{root / 'runs' / 'accord.db'}")
    try:
        plain, guarded = (r.run_id for r in store.list_runs())  # newest first
        return {
            "root": root,
            "config": config,
            "guarded": guarded,
            "plain": plain,
            "rounds": store.rounds(guarded),
            "ledger": store.ledger(guarded),
        }
    finally:
        store.close()


def report(runs, *args: str):
    return runner.invoke(app, ["report", *args, "--dir", str(runs["root"] / "runs")])


def test_the_markdown_card_holds_the_stored_figures(runs):
    result = report(runs, runs["guarded"])

    assert result.exit_code == 0, result.output
    card = result.stdout
    last = runs["rounds"][-1]
    (spent,) = last.privacy
    assert f"- **epsilon spent**: {number(spent.epsilon)}" in card
    accuracy = next(
        m.value for m in last.metrics if m.scope == "central" and m.name == "accuracy"
    )
    assert f"- **final central.accuracy (round 3)**: {number(accuracy)}" in card
    assert f"- **head digest (SHA-256)**: {runs['ledger'][-1].digest}" in card
    assert f"- **final model digest**: {last.global_digest}" in card
    assert "- **chain verifies**: yes: the chain is whole" in card
    assert "- **decision**: passed: the model was released" in card
    assert "| max_epsilon | pass | epsilon " in card
    for outcome in last.outcomes:
        assert f"| {outcome.participant} | {outcome.num_examples} | 3/3 |" in card
    assert "- **anomaly scores**: on; flag rules max_norm_z 3.0" in card
    # The simulated run records its data contract in the ledger: the card names it.
    (contract,) = [e for e in runs["ledger"] if e.kind == "data-contract"]
    named = f"ledger entry {contract.sequence} (data-contract)"
    assert f"- **data contract**: {named}" in card
    assert "the ledger holds no data-contract entry" not in card


def test_a_run_without_privacy_or_gates_says_not_recorded(runs):
    result = report(runs, runs["plain"])

    assert result.exit_code == 0, result.output
    card = result.stdout
    privacy = card.split("## Privacy")[1].split("## ")[0]
    assert "*Not recorded: the run used no differential privacy" in privacy
    gates = card.split("## Release gates")[1].split("## ")[0]
    assert "[gates] sets no threshold" in gates
    assert "*Not recorded: no release was attempted" in gates
    assert "*Not recorded: no update was scored" in card
    assert "*Not recorded: the run kept no round updates" in card


def test_json_is_the_card_document(runs):
    result = report(runs, runs["guarded"], "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["run_id"] == runs["guarded"]
    privacy = next(s for s in document["sections"] if s["key"] == "privacy")
    (plot,) = [b for b in privacy["blocks"] if b["type"] == "plot"]
    assert plot["series"][0]["y"] == [r.privacy[0].epsilon for r in runs["rounds"]]


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.figures: dict[str, str] = {}
        self._plot: str | None = None

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        for key in ("src", "href"):
            if found.get(key):
                self.sources.append(f"{tag} {found[key]}")
        self._plot = found.get("data-plot") if tag == "script" else None

    def handle_data(self, data):
        if self._plot is not None:
            self.figures[self._plot] = self.figures.get(self._plot, "") + data


def test_html_is_one_file_with_the_plots_and_their_data(runs, tmp_path):
    out = tmp_path / "card.html"

    result = report(
        runs,
        runs["guarded"],
        "--html",
        "-o",
        str(out),
        "--contributions",
        "-c",
        str(runs["config"]),
    )

    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == [out]
    parser = _Scripts()
    parser.feed(out.read_text(encoding="utf-8"))
    parser.close()
    assert not [s for s in parser.sources if "http://" in s or "https://" in s]
    figures = {k: json.loads(v) for k, v in parser.figures.items()}
    assert set(figures) == {
        "plot-privacy",
        "plot-global",
        "plot-sites",
        "plot-norm_z",
        "plot-distance_z",
        "plot-contributions",
    }
    rounds = runs["rounds"]
    assert figures["plot-privacy"]["data"][0]["y"] == [
        r.privacy[0].epsilon for r in rounds
    ]
    norms = {t["name"]: t["y"] for t in figures["plot-norm_z"]["data"]}
    assert norms["site-01"] == [
        next(s.norm_z for s in r.scores if s.participant == "site-01") for r in rounds
    ]
    bars = figures["plot-contributions"]["data"]
    assert [t["name"] for t in bars] == ["leave-one-out", "Shapley"]
    assert bars[0]["x"] == ["site-00", "site-01", "site-02"]


def test_an_unknown_run_id_is_refused_with_exit_2(runs):
    result = report(runs, "no-such-run")

    assert result.exit_code == 2
    assert (
        "no run 'no-such-run' in the store; `accord runs` lists them" in result.output
    )


def test_html_and_json_together_are_refused(runs):
    result = report(runs, runs["plain"], "--html", "--json")

    assert result.exit_code == 2
    assert "choose one of --html and --json" in result.output


def test_html_without_plotly_names_the_extra_with_exit_3(runs, monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "plotly.graph_objects", None)

    result = report(runs, runs["guarded"], "--html", "-o", str(tmp_path / "c.html"))

    assert result.exit_code == 3
    assert "plotly" in result.output and "report" in result.output
    assert not (tmp_path / "c.html").exists()
