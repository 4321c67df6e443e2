"""``accord release`` of a run with secure aggregation: fairness from the secure sum.

A one-round simulated run on lending_club by state (ten sites) under masking, with
``verification_status`` declared sensitive and both fairness gates set, is
released: the recorded per-group counts are those the plain computation gives
on the same final model (to the integer), and nothing the store keeps (run
events, ledger entries) holds a count of one site.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytest.importorskip("cryptography")

from accord.cli.main import app  # noqa: E402
from accord.cli.release import final_model  # noqa: E402
from accord.config import load_config  # noqa: E402
from accord.evaluation.fairness import fairness_report, sum_counts  # noqa: E402
from accord.ledger.dsse import Envelope  # noqa: E402
from accord.simulation.holdouts import score_sites  # noqa: E402
from accord.store import SqlStore  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
runner = CliRunner()

FED = """
[federation]
name = "secure-fairness"
rounds = 1
seed = 11
[data]
dataset = "lending_club"
partition = "natural"
sites = 10
[task]
factory = "task:build"
options = {{ hidden = 8 }}
[evaluation]
metric = "auc"
baselines = false
sensitive = "verification_status"
decision_threshold = 0.35
[secure_aggregation]
mode = "{mode}"
[simulation]
workers = 0
[store]
directory = "{dir}"
[gates]
max_demographic_parity_difference = 1.0
max_equalized_odds_difference = 1.0
"""


def count_holders(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The paths of every mapping that holds a confusion count (``tp``)."""
    if isinstance(value, dict):
        if "tp" in value:
            yield path
        for key, item in value.items():
            yield from count_holders(item, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from count_holders(item, (*path, str(i)))


def parsed(detail: str) -> Any:
    """An event's detail: JSON where it is JSON, else its text."""
    try:
        return json.loads(detail)
    except ValueError:
        return detail


def test_a_secure_run_releases_the_exact_federation_counts_and_stores_no_sites(
    tmp_path: Path,
) -> None:
    # Arrange: a secure run
    shutil.copy(EXAMPLES / "lending_club" / "task.py", tmp_path / "task.py")
    fed = tmp_path / "fed.toml"
    fed.write_text(FED.format(mode="masking", dir=tmp_path / "runs"))
    done = runner.invoke(app, ["simulate", str(fed), "--json"])
    assert done.exit_code == 0, done.output

    # Act
    out = tmp_path / "model.safetensors"
    args = ["release", "latest", "-o", str(out), "--dir", str(tmp_path / "runs")]
    released = runner.invoke(app, [*args, "--json", "-c", str(fed)])

    # Assert: the plain computation on the same final model gives the same counts
    assert released.exit_code == 0, released.output
    decision = json.loads(released.stdout)
    plain_cfg = tmp_path / "plain.toml"
    plain_cfg.write_text(FED.format(mode="off", dir=tmp_path / "runs"))
    store = SqlStore(f"sqlite:///{tmp_path / 'runs' / 'accord.db'}")
    try:
        (info,) = store.list_runs()
        model = final_model(store, info.run_id)
        events = store.events(info.run_id)
        entries = store.ledger(info.run_id)
    finally:
        store.close()
    plain = sum_counts(
        s.groups
        for s in score_sites(load_config(plain_cfg), model.params, fairness=True)
    )
    expected = fairness_report(plain, column="verification_status", threshold=0.35)
    assert decision["fairness"] == expected.to_dict()
    groups = decision["fairness"]["groups"]
    assert sorted(groups) == ["Not_Verified", "Source_Verified", "Verified"]
    assert all(g["tp"] and g["fp"] and g["tn"] and g["fn"] for g in groups.values())
    assert sum(c.n for c in plain.values()) == 907  # every holdout row, once
    # Nothing stored holds a count but the federation's, per declared group
    stored = [parsed(e.detail) for e in events]
    stored += [json.loads(Envelope.from_json(e.envelope).payload) for e in entries]
    holders = {p for document in stored for p in count_holders(document)}
    assert holders, "the release recorded no counts"
    for path in holders:
        assert path[-3:-1] == ("fairness", "groups") and path[-1] in groups, path
