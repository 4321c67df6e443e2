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


def test_release_and_evaluate_refuse_a_gbdt_run_naming_why(tmp_path, accord_cli):
    config = REPO / "examples" / "gbdt_churn" / "fed.toml"
    ran = accord_cli("simulate", str(config), "--rounds", "2", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]

    released = accord_cli("release", "latest", "-o", "m.safetensors", cwd=tmp_path)
    evaluated = accord_cli("evaluate", "run", "latest", cwd=tmp_path)

    for proc in (released, evaluated):
        assert proc.returncode == 2
        assert "model.kind" in proc.stderr and "XGBoost JSON" in proc.stderr
    assert not (tmp_path / "m.safetensors").exists()


def test_the_signed_ledger_names_the_model_file(tmp_path, accord_json, accord_cli):
    pytest.importorskip("cryptography")
    config = REPO / "examples" / "gbdt_churn" / "fed.toml"
    out = accord_json("simulate", str(config), "--rounds", "2", cwd=tmp_path)
    exported = accord_cli("audit", "export", "latest", "-o", "l.jsonl", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-2000:]
    (tmp_path / "other.json").write_text("{}")

    good = accord_cli(
        "audit", "verify", "l.jsonl", "--model", out["model"], cwd=tmp_path
    )
    bad = accord_cli(
        "audit", "verify", "l.jsonl", "--model", "other.json", cwd=tmp_path
    )

    assert good.returncode == 0 and "2 rounds, closed completed" in good.stdout
    assert bad.returncode == 6 and "not this run's final model" in bad.stderr
