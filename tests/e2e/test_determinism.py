"""Same seed, same model: in-process and with worker processes, run after run.

Each run is its own `accord simulate` process, as a user runs it: libraries loaded
into a process can change its floating-point environment (torch's import does, here),
so the comparison is between processes that load the same modules.
"""

import pytest


def _final_digest(repo, tmp_path, accord_json, workers: int) -> str:
    out = accord_json(
        "simulate",
        str(repo / "examples" / "covid" / "fed.toml"),
        "--rounds",
        "3",
        "--workers",
        str(workers),
        "--store",
        f"sqlite:///{tmp_path}/runs.db",
        cwd=tmp_path,
    )
    assert [r["status"] for r in out["rounds"]] == ["completed"] * 3
    return out["final_digest"]


def test_same_seed_same_model_across_executors(repo, tmp_path, accord_json):
    in_process = _final_digest(repo, tmp_path, accord_json, 0)
    assert _final_digest(repo, tmp_path, accord_json, 2) == in_process
    assert _final_digest(repo, tmp_path, accord_json, 1) == in_process
    assert _final_digest(repo, tmp_path, accord_json, 0) == in_process


def test_ray_engine_gives_the_same_model(repo, tmp_path, accord_json):
    """`--engine ray` starts its own Ray on loopback and ends with the same model."""
    pytest.importorskip("ray")
    out = accord_json(
        "simulate",
        str(repo / "examples" / "covid" / "fed.toml"),
        "--rounds",
        "3",
        "--engine",
        "ray",
        "--store",
        f"sqlite:///{tmp_path}/ray.db",
        cwd=tmp_path,
    )
    assert [r["status"] for r in out["rounds"]] == ["completed"] * 3
    assert out["final_digest"] == _final_digest(repo, tmp_path, accord_json, 2)
