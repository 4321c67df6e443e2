"""``accord release``: the model is written only when every gate passes.

A small simulated run (wine, three sites, numpy softmax regression) is released
with gates set just at and just past its recorded figures: at them the checkpoint
is written, byte for byte, and a signed ``release`` entry follows the run's
closing entry (the ledger still verifies, and ``--model`` matches the written
file); past them nothing is written, the exit code is 7, each failed gate is
named, and the refusal is recorded too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.store import SqlStore

runner = CliRunner()

FED = """
[federation]
name = "release-test"
rounds = 2
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
[store]
directory = "{dir}"
{gates}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """A completed run; its folder and its final recorded figures."""
    root = tmp_path_factory.mktemp("release")
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
    figures = {
        f"{m.scope}:{m.participant}": m.value
        for m in last.metrics
        if m.name == "accuracy"
    }
    return root, figures


def release(root: Path, gates: str, out: Path, *extra: str):
    config = root / f"fed-{out.stem}.toml"
    config.write_text(FED.format(dir=root / "runs", gates=gates))
    args = ["release", "latest", "-o", str(out), "-c", str(config)]
    return runner.invoke(app, [*args, "--dir", str(root / "runs"), *extra])


def worst(figures: dict[str, float]) -> float:
    return min(v for k, v in figures.items() if k.startswith("site:"))


def test_release_at_the_bounds_writes_the_checkpoint_and_a_verified_entry(run):
    root, figures = run
    gates = (
        "[gates]\n"
        f"central_metric = {figures['central:None']!r}\n"
        f"worst_site_metric = {worst(figures)!r}\n"
    )
    out = root / "at.safetensors"

    result = release(root, gates, out, "--json")

    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["passed"] is True
    assert [g["gate"] for g in decision["gates"]] == [
        "completed",
        "central_metric",
        "worst_site_metric",
    ]
    final = sorted((root / "runs" / "checkpoints").rglob("round-*.safetensors"))[-1]
    assert out.read_bytes() == final.read_bytes()
    assert decision["outputSha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    export = root / "at.jsonl"
    exported = runner.invoke(
        app,
        ["audit", "export", "latest", "-o", str(export), "--dir", str(root / "runs")],
    )
    assert exported.exit_code == 0, exported.output
    verified = runner.invoke(
        app,
        [
            "audit",
            "verify",
            str(export),
            "--model",
            str(out),
            "--key",
            str(root / "runs" / "ledger-key.pem"),
        ],
    )
    assert verified.exit_code == 0, verified.output
    last = json.loads(export.read_text().splitlines()[-1])
    statement = json.loads(base64.b64decode(last["payload"]))
    assert statement["predicateType"] == "https://accord.dev/ledger/release/v1"
    assert statement["predicate"]["passed"] is True
    assert statement["predicate"]["modelFile"] == decision["outputSha256"]


def test_release_just_past_a_bound_writes_nothing_and_exits_7(run):
    root, figures = run
    past = math.nextafter(worst(figures), math.inf)
    gates = f"[gates]\nworst_site_metric = {past!r}\nmax_epsilon = 10.0\n"
    out = root / "past.safetensors"

    result = release(root, gates, out)

    assert result.exit_code == 7, result.output
    assert not out.exists()
    assert not list(root.glob(".past.safetensors*"))
    assert "worst_site_metric" in result.output
    assert "max_epsilon" in result.output  # no DP: epsilon unbounded
    store = SqlStore(f"sqlite:///{root / 'runs' / 'accord.db'}")
    try:
        (info,) = store.list_runs()
        events = [e for e in store.events(info.run_id) if e.kind == "release"]
        entries = store.ledger(info.run_id)
    finally:
        store.close()
    refused = json.loads(events[-1].detail)
    assert refused["passed"] is False
    assert refused["failed"] == ["worst_site_metric", "max_epsilon"]
    assert entries[-1].kind == "release"


def test_a_config_of_another_federation_is_refused(run):
    root, _ = run
    other = root / "other.toml"
    other.write_text(
        FED.format(dir=root / "runs", gates="").replace("seed = 3", "seed = 4")
    )
    args = ["release", "latest", "-o", str(root / "x.safetensors"), "-c", str(other)]

    result = runner.invoke(app, [*args, "--dir", str(root / "runs")])

    assert result.exit_code == 2
    assert "[federation]" in result.output
    assert not (root / "x.safetensors").exists()


def test_a_store_key_that_did_not_sign_the_run_is_refused(run, tmp_path):
    # Arrange: a copy of the store whose simulation key was replaced
    import shutil

    from accord.ledger.writer import simulation_signer

    root, _ = run
    copy = tmp_path / "runs"
    shutil.copytree(root / "runs", copy)
    (copy / "ledger-key.pem").unlink()
    simulation_signer(copy)
    before = SqlStore(f"sqlite:///{copy / 'accord.db'}")
    try:
        (info,) = before.list_runs()
        entries = len(before.ledger(info.run_id))
    finally:
        before.close()
    out = tmp_path / "m.safetensors"
    args = ["release", "latest", "-o", str(out), "-c", str(root / "fed.toml")]

    # Act
    result = runner.invoke(app, [*args, "--dir", str(copy)])

    # Assert
    assert result.exit_code == 2, result.output
    assert "release it with the key that signed the run" in result.output
    assert not out.exists()
    after = SqlStore(f"sqlite:///{copy / 'accord.db'}")
    try:
        assert len(after.ledger(info.run_id)) == entries
    finally:
        after.close()
