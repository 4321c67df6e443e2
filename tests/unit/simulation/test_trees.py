"""A gbdt federation through the simulation: recorded rounds, model file, baselines."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from accord.config import config_from_mapping
from accord.simulation.context import build_data
from accord.simulation.trees import simulate_trees
from accord.store import MemoryStore

RAW = {
    "federation": {"name": "bc-trees", "rounds": 4, "seed": 3},
    "data": {"dataset": "breast_cancer", "sites": 3},
    "trees": {"depth": 3, "bins": 16},
    "evaluation": {"metric": "auc", "baselines": True},
}


def test_each_tree_is_a_recorded_round_and_the_model_loads_in_xgboost(
    tmp_path: Path,
) -> None:
    xgb = pytest.importorskip("xgboost")
    config = config_from_mapping(RAW)
    store = MemoryStore()

    run = simulate_trees(config, store, model_dir=tmp_path)

    info = store.get_run(run.run_id)
    rounds = store.rounds(run.run_id)
    assert info.status == "completed" and info.rounds_completed == 4
    assert [r.number for r in rounds] == [1, 2, 3, 4]
    assert all(len(r.outcomes) == 3 for r in rounds)
    assert info.summary is not None and info.summary["kind"] == "gbdt"
    assert info.summary["model"] == str(run.model_path)
    assert math.isclose(info.summary["final"]["central.auc"], run.central["auc"])
    sites = {m.participant for m in rounds[0].metrics if m.scope == "site"}
    assert len(sites) == 3
    test = build_data(config).test
    loaded = xgb.Booster(model_file=str(run.model_path))
    np.testing.assert_allclose(
        loaded.predict(xgb.DMatrix(test.x, feature_names=loaded.feature_names)),
        run.booster.predict_proba(test.x),
        atol=1e-6,
    )
    assert json.loads(run.model_path.read_text())["learner"]["feature_names"]
    assert run.comparison is not None and len(run.comparison.sites) == 3
    assert run.comparison.pooled["auc"] > 0.9 and run.central["auc"] > 0.9


def test_masked_sums_reach_the_same_model(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    raw = {**RAW, "evaluation": {"metric": "auc"}, "federation": {"rounds": 2}}
    plain = simulate_trees(config_from_mapping(raw), MemoryStore(), model_dir=tmp_path)

    masked = simulate_trees(
        config_from_mapping({**raw, "secure_aggregation": {"mode": "masking"}}),
        MemoryStore(),
        model_dir=tmp_path,
    )

    assert masked.secure_sums == 1 + 2 * 3 and plain.secure_sums == 0
    assert masked.central["auc"] == pytest.approx(plain.central["auc"], abs=1e-3)


def test_a_multiclass_dataset_is_refused_before_a_run_starts(tmp_path: Path) -> None:
    from accord.errors import ConfigError

    config = config_from_mapping({"data": {"dataset": "wine", "sites": 3}, "trees": {}})
    store = MemoryStore()

    with pytest.raises(ConfigError, match="two classes"):
        simulate_trees(config, store, model_dir=tmp_path)
    assert store.list_runs() == []


def test_ctrl_c_keeps_the_recorded_trees_and_marks_the_run_aborted(
    tmp_path: Path,
) -> None:
    config = config_from_mapping({**RAW, "evaluation": {"metric": "auc"}})
    store = MemoryStore()
    started: list[str] = []

    def interrupt(number: int, central: object) -> None:
        if number == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate_trees(
            config, store, model_dir=tmp_path, on_tree=interrupt, on_run=started.append
        )

    info = store.get_run(started[0])
    assert info.status == "aborted" and info.rounds_completed == 2
    assert not (tmp_path / started[0] / "model.json").exists()
