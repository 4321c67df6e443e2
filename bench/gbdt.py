"""Federated gradient-boosted trees against XGBoost on the pooled rows.

For covid_testing by clinic (examples/gbdt_covid) and mlc_churn by state
(examples/gbdt_churn): the test-set AUC of accord's federated trees with plain
sums and under secure aggregation (masking), beside XGBoost trained on the pooled
training rows with the same depth, trees, learning rate, bins and lambda, and the
ratio. Prints a table, then one JSON line (the last line of stdout). The
acceptance bar (issue 13) is a ratio of at least 0.98 in every row.

    python bench/gbdt.py [--trees 50] [--depth 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from accord.config import load_config
from accord.simulation.context import build_data
from accord.simulation.trees import pooled_xgboost, score, tree_params
from accord.trees import MaskedSum, PlainSum, Summer, TreeSite, boost

REPO = Path(__file__).resolve().parents[1]
FEDERATIONS = {"covid_testing": "gbdt_covid", "mlc_churn": "gbdt_churn"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--depth", type=int, default=4)
    args = parser.parse_args()
    rows = []
    for dataset, example in FEDERATIONS.items():
        config = load_config(REPO / "examples" / example / "fed.toml")
        params = dataclasses.replace(
            tree_params(config), trees=args.trees, max_depth=args.depth
        )
        data = build_data(config)
        pooled = score(pooled_xgboost(data, params), data.test)["auc"]
        for mode in ("plain", "masking"):
            sites = [TreeSite(s.name, s.train.x, s.train.y) for s in data.sites]
            names = tuple(s.name for s in sites)
            summer: Summer = MaskedSum(names) if mode == "masking" else PlainSum()
            start = time.perf_counter()
            booster = boost(sites, params, summer)
            seconds = time.perf_counter() - start
            auc = score(booster.predict_proba(data.test.x), data.test)["auc"]
            rows.append(
                {
                    "dataset": dataset,
                    "sites": len(sites),
                    "sums": mode,
                    "federated_auc": auc,
                    "pooled_xgboost_auc": pooled,
                    "ratio": auc / pooled,
                    "seconds": seconds,
                }
            )
    print(
        f"trees {args.trees}, depth {args.depth}, eta {params.learning_rate}, "
        f"bins {params.bins}, lambda {params.reg_lambda}"
    )
    print(
        f"{'dataset':<14} {'sites':>5} {'sums':<8} {'federated':>9} "
        f"{'pooled xgb':>10} {'ratio':>7} {'seconds':>8}"
    )
    for r in rows:
        print(
            f"{r['dataset']:<14} {r['sites']:>5} {r['sums']:<8} "
            f"{r['federated_auc']:>9.4f} {r['pooled_xgboost_auc']:>10.4f} "
            f"{100 * r['ratio']:>6.1f}% {r['seconds']:>8.1f}"
        )
    print(
        json.dumps(
            {"bench": "gbdt", "trees": args.trees, "depth": args.depth, "rows": rows}
        )
    )


if __name__ == "__main__":
    main()
