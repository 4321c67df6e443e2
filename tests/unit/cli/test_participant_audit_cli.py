"""``accord participant audit-privacy``: a site audits a released model by itself.

A simulated run is released (``accord release``) and each site audits the file with
its own data and records, with no store: the figures must be those ``accord audit
privacy`` computes from the store for the same site, model, shadows and seed.
"""

import json
import pickle

import numpy as np
import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.params import Params
from accord.participant.privacy_audit import MODEL_SIZE_FACTOR
from accord.store.checkpoint import MAX_HEADER_BYTES, CheckpointStore

runner = CliRunner()

FED = """
[federation]
name = "site-audit"
rounds = 2
seed = 5
[data]
dataset = "wine"
sites = 2
holdout_fraction = 0.4
[task]
factory = "accord.task.numpy_task:softmax_regression"
[evaluation]
federated = false
[simulation]
workers = 0
[store]
directory = "{dir}"
[privacy]
level = "record"
noise_multiplier = 1.2
clip = 1.0
[privacy.sites.site-01]
max_epsilon = 1000
"""


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A record-level simulated run, its released model, and its fed.toml."""
    root = tmp_path_factory.mktemp("released")
    config = root / "fed.toml"
    config.write_text(FED.format(dir=root / "runs"))
    ran = runner.invoke(app, ["simulate", str(config), "--json"])
    assert ran.exit_code == 0, ran.output
    model = root / "model.safetensors"
    out = runner.invoke(
        app,
        ["release", "latest", "-o", str(model), "-c", str(config)]
        + ["--dir", str(root / "runs")],
    )
    assert out.exit_code == 0, out.output
    return root, config, model, json.loads(ran.stdout)["run_id"]


def _coordinator_audit(root, site, *args):
    result = runner.invoke(
        app,
        ["audit", "privacy", "latest", "--site", site, "--json"]
        + ["--dir", str(root / "runs"), *args],
    )
    assert result.exit_code == 0, result.output
    (found,) = json.loads(result.stdout)["sites"]
    return found


def _site_audit(config, model, site, *args):
    return runner.invoke(
        app,
        ["participant", "audit-privacy", "--model", str(model)]
        + ["--data", f"sim:{config}#{site}", *args],
    )


def test_a_dp_site_gets_the_coordinators_figures_and_its_ledgers_epsilon(released):
    root, config, model, run_id = released
    ledger = root / "runs" / "sites" / "site-01" / "privacy-ledger.json"
    args = ["--shadows", "2", "--seed", "3"]

    result = _site_audit(
        config, model, "site-01", "--privacy-ledger", str(ledger), "--json", *args
    )
    expected = _coordinator_audit(root, "site-01", *args)

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["run_id"] == run_id and doc["round"] == 2 and doc["passes"] == 2
    assert doc["dp_sgd"] == {"noise_multiplier": 1.2, "clip": 1.0}
    assert doc["attacks"] == expected["attacks"]  # loss and LiRA, exactly
    assert (doc["members"], doc["nonmembers"]) == (
        expected["members"],
        expected["nonmembers"],
    )
    assert 0 < doc["epsilon"] == pytest.approx(expected["epsilon"], rel=1e-6)
    assert doc["bound"]["auc"] == pytest.approx(expected["bound"]["auc"], rel=1e-6)
    assert doc["bound"]["auc"] < 1.0


def test_the_table_sets_each_attack_beside_the_ledgers_bound(released):
    root, config, model, run_id = released
    ledger = root / "runs" / "sites" / "site-01" / "privacy-ledger.json"

    result = _site_audit(
        config, model, "site-01", "--privacy-ledger", str(ledger), "--shadows", "2"
    )

    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    for word in ("site-01", "loss", "lira", "TPR@0.1%", f"for run {run_id}"):
        assert word in text


def test_a_site_without_dp_records_needs_rounds_and_then_matches(released):
    root, config, model, _ = released

    without = _site_audit(config, model, "site-00", "--shadows", "0")
    result = _site_audit(
        config, model, "site-00", "--rounds", "2", "--shadows", "0", "--json"
    )
    expected = _coordinator_audit(root, "site-00", "--shadows", "0")

    assert without.exit_code == 2 and "--rounds" in without.output
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["epsilon"] is None and doc["bound"]["auc"] == 1.0  # no ledger: ε = ∞
    assert doc["attacks"] == expected["attacks"]


def test_a_model_of_another_shape_is_refused_naming_the_tensor(released, tmp_path):
    _, config, model, _ = released
    good = CheckpointStore(model.parent).load_checkpoint(model)
    wrong = Params(
        [
            (n, np.zeros((a.shape[0] + 1, *a.shape[1:]), a.dtype))
            for n, a in good.params.items()
        ]
    )
    path = CheckpointStore(tmp_path).save(good.run_id, 2, wrong)

    result = _site_audit(config, path, "site-00", "--rounds", "2")

    assert result.exit_code == 2
    assert "not a model of this task" in " ".join(result.output.split())


def test_a_model_file_past_the_size_bound_is_refused_unread(released, tmp_path):
    _, config, model, _ = released
    model_bytes = CheckpointStore(model.parent).load(model).spec.packed_nbytes
    limit = MODEL_SIZE_FACTOR * model_bytes + MAX_HEADER_BYTES + 8
    at_limit, past = tmp_path / "at.safetensors", tmp_path / "past.safetensors"
    for path, size in ((at_limit, limit), (past, limit + 1)):
        path.write_bytes(model.read_bytes())  # the released model, padded out
        with path.open("r+b") as f:
            f.truncate(size)  # sparse: no disk written

    at = _site_audit(config, at_limit, "site-00", "--rounds", "2")
    over = _site_audit(config, past, "site-00", "--rounds", "2")

    at_output = " ".join(at.output.split())
    assert at.exit_code == 2 and "is at most" not in at_output  # the size passes:
    assert "damaged or not an accord checkpoint" in at_output  # safetensors reads it
    assert over.exit_code == 2
    assert f"{limit + 1:,} bytes" in " ".join(over.output.split())


class _Trap:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_posing_as_a_model_is_refused_and_never_unpickled(released, tmp_path):
    _, config, _, _ = released
    marker = tmp_path / "unpickled"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps(_Trap(marker)))

    result = _site_audit(config, path, "site-00", "--rounds", "2")

    assert result.exit_code == 2
    assert "pass the model file `accord release` wrote" in " ".join(
        result.output.split()
    )
    assert not marker.exists()


def test_one_shadow_and_a_missing_ledger_are_refused_naming_the_option(
    released, tmp_path
):
    _, config, model, _ = released

    one = _site_audit(config, model, "site-01", "--shadows", "1")
    missing = _site_audit(
        config, model, "site-01", "--privacy-ledger", str(tmp_path / "none.json")
    )

    assert one.exit_code == 2 and "at least 2 shadows" in one.output
    assert missing.exit_code == 2 and "--privacy-ledger" in missing.output
