"""Issue 13's bar: federated trees reach 98 % of pooled XGBoost's AUC.

On covid_testing by clinic and mlc_churn by state (examples/gbdt_covid,
examples/gbdt_churn), with the same depth, trees, learning rate, bins and lambda,
with plain sums and under secure aggregation. ``bench/gbdt.py`` prints the table.
"""

from pathlib import Path

import pytest

from accord.config import load_config
from accord.simulation.context import build_data
from accord.simulation.trees import pooled_xgboost, score, tree_params
from accord.trees import MaskedSum, PlainSum, Summer, TreeSite, boost

pytest.importorskip("xgboost")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["plain", "masking"])
@pytest.mark.parametrize("example", ["gbdt_covid", "gbdt_churn"])
def test_federated_trees_reach_98_percent_of_pooled_xgboost(
    example: str, mode: str
) -> None:
    if mode == "masking":
        pytest.importorskip("cryptography")
    config = load_config(REPO / "examples" / example / "fed.toml")
    params = tree_params(config)
    data = build_data(config)
    sites = [TreeSite(s.name, s.train.x, s.train.y) for s in data.sites]
    summer: Summer = (
        MaskedSum(tuple(s.name for s in sites)) if mode == "masking" else PlainSum()
    )

    booster = boost(sites, params, summer)

    federated = score(booster.predict_proba(data.test.x), data.test)["auc"]
    pooled = score(pooled_xgboost(data, params), data.test)["auc"]
    assert federated >= 0.98 * pooled, (federated, pooled)
