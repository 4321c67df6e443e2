"""Every example config runs end to end through the real CLI, in worker processes."""

import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(
    p.name for p in (REPO / "examples").iterdir() if (p / "fed.toml").exists()
)


def test_every_dataset_has_an_example():
    assert {"covid", "digits", "breast_cancer", "lending_club", "mlc_churn"} <= set(
        EXAMPLES
    )


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_simulates_and_compares(example, tmp_path, accord_json):
    if example.startswith("gbdt_"):  # its pooled baseline is XGBoost
        pytest.importorskip("xgboost")
    config = REPO / "examples" / example / "fed.toml"
    out = accord_json(
        "simulate",
        str(config),
        "--rounds",
        "3",
        "--workers",
        "2",
        "--store",
        f"sqlite:///{tmp_path}/runs.db",
        cwd=tmp_path,
    )
    assert [r["status"] for r in out["rounds"]] == ["completed"] * 3
    assert all(r["succeeded"] == r["selected"] for r in out["rounds"])
    comparison = out["comparison"]
    metric = comparison["metric"]
    assert math.isfinite(comparison["federated"][metric])
    assert math.isfinite(comparison["pooled"][metric])
    assert len(comparison["sites"]) >= 5
    assert (tmp_path / "accord-runs" / "checkpoints").is_dir()
