"""Gradient-boosted trees through the real CLI: demo, store, refusals."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_demo_gbdt_records_a_run_and_compares(tmp_path, accord_json, accord_cli):
    pytest.importorskip("xgboost")
    out = accord_json("demo", "--model", "gbdt", cwd=tmp_path)

    assert out["kind"] == "gbdt" and out["trees"] == 50
    assert [r["status"] for r in out["rounds"]] == ["completed"] * 50
    model = tmp_path / out["model"]
    assert json.loads(model.read_text())["learner"]["objective"]["name"] == (
        "binary:logistic"
    )
    comparison = out["comparison"]
    assert set(comparison["sites"]) and comparison["ratio_to_pooled"] >= 0.98
    listed = accord_cli("runs", cwd=tmp_path)
    assert listed.returncode == 0 and out["run_id"] in listed.stdout


def test_an_unknown_demo_model_is_refused(tmp_path, accord_cli):
    proc = accord_cli("demo", "--model", "forest", cwd=tmp_path)

    assert proc.returncode == 2 and "--model" in proc.stderr


def test_the_coordinator_refuses_trees_before_listening(tmp_path, accord_cli):
    config = REPO / "examples" / "gbdt_churn" / "fed.toml"

    proc = accord_cli(
        "coordinator",
        str(config),
        "--listen",
        "127.0.0.1:0",
        "--insecure",
        cwd=tmp_path,
    )

    assert proc.returncode == 2
    assert "model.kind" in proc.stderr and "simulate` only" in proc.stderr


def test_a_gbdt_run_cannot_resume_yet(tmp_path, accord_cli):
    config = REPO / "examples" / "gbdt_churn" / "fed.toml"

    proc = accord_cli("simulate", str(config), "--resume", "auto", cwd=tmp_path)

    assert proc.returncode == 2 and "cannot be resumed yet" in proc.stderr
