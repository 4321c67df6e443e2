"""The core issue's quality bar, measured with fixed seeds on real bundled data."""

import json

from accord.config import load_config
from accord.simulation.engine import simulate
from accord.store import SqlStore


def test_demo_beats_median_site_and_reaches_pooled_auc(tmp_path, accord_cli):
    proc = accord_cli(
        "demo", "--json", "--store", f"sqlite:///{tmp_path}/d.db", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    c = out["comparison"]
    assert c["metric"] == "auc"
    assert len(c["sites"]) == 8
    assert c["federated"]["auc"] >= 0.98 * c["pooled"]["auc"]
    assert c["federated"]["auc"] > c["median_site"]
    # the figures are stored with the run, not just printed
    store = SqlStore(f"sqlite:///{tmp_path}/d.db")
    try:
        summary = store.get_run(out["run_id"]).summary
    finally:
        store.close()
    assert summary["comparison"]["federated"]["auc"] == c["federated"]["auc"]


def test_digits_dirichlet_half_federated_reaches_pooled(repo, tmp_path):
    cfg = load_config(
        repo / "examples" / "digits" / "fed.toml",
        evaluation={"federated": False},
        store={"directory": str(tmp_path), "checkpoints": False},
    )
    assert (cfg.data.partition, cfg.data.alpha, cfg.data.sites) == (
        "dirichlet",
        0.5,
        10,
    )
    store = SqlStore(f"sqlite:///{tmp_path}/runs.db")
    try:
        result = simulate(cfg, store=store)
    finally:
        store.close()
    c = result.comparison
    assert c is not None
    assert c.federated["accuracy"] >= 0.98 * c.pooled["accuracy"]
    assert c.federated["accuracy"] > c.median_site
