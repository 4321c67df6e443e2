"""Utility and membership inference at epsilon 1, 3, 8 and without DP (docs/privacy.md).

For each federation below and each epsilon, one simulated run with record-level
DP-SGD (``target_epsilon``: each site's records, after all rounds, at delta 1e-5;
``inf`` is the same run without DP), then ``accord audit privacy`` on its final model
(the loss attack and offline LiRA with ``--shadows`` shadow models per site):

- ``covid``: the demo's 8 clinics (``covid_testing``, natural partition), kept small
  to make memorisation possible: 90 % of the rows are the central test set, and
  each clinic's rest is split 60 / 40 into training and holdout rows;
- ``digits``: scikit-learn digits over 5 sites, Dirichlet alpha = 0.5, 70 % of
  the rows for the central test set, the rest half training, half holdout (about
  54 training rows per site).

Both train accord's numpy MLP (256 hidden units) for 10 rounds of 30 local epochs,
batch 16, learning rate 0.2, clip 1.0, accounted with RDP (PLD calibrates a target
epsilon over a thousand steps far more slowly; RDP's epsilon is the looser, so the
runs carry at least the noise PLD would ask for): many passes over few rows, so
that the model without DP overfits and the attacks have something to find. The
attack figures are over every site's records pooled (members: training rows;
non-members: holdout rows, as many of each); LiRA has ``--shadows`` shadow models
per site. Utility is the central test set's accuracy and AUC.

Run (about 4 minutes on two loaded cores): ``.venv/bin/python bench/privacy_audit.py
[--shadows 8] [--plot docs/img/privacy-audit.png]``.
Prints a Markdown table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from accord.config import FedConfig, config_from_mapping
from accord.simulation.engine import simulate
from accord.simulation.privacy_audit import RunAudit, audit_run
from accord.store.checkpoint import CheckpointStore
from accord.store.memory import MemoryStore

EPSILONS = (1.0, 3.0, 8.0, math.inf)
SEED = 11

TRAIN = {"epochs": 30, "batch_size": 16, "learning_rate": 0.2}
ROUNDS = 10
TASK = {"factory": "accord.task.numpy_task:mlp", "options": {"hidden": 256}}
FEDERATIONS: dict[str, dict[str, Any]] = {
    "covid": {
        "data": {
            "dataset": "covid_testing",
            "partition": "natural",
            "sites": 8,
            "test_fraction": 0.9,
            "holdout_fraction": 0.4,
        },
        "evaluation": {"metric": "auc", "federated": False},
    },
    "digits": {
        "data": {
            "dataset": "digits",
            "partition": "dirichlet",
            "alpha": 0.5,
            "sites": 5,
            "test_fraction": 0.7,
            "holdout_fraction": 0.5,
        },
        "evaluation": {"metric": "accuracy", "federated": False},
    },
}


def config(name: str, epsilon: float, directory: Path) -> FedConfig:
    """The federation ``name`` at ``epsilon`` (inf: no DP)."""
    privacy: dict[str, Any] = {"level": "off"}
    if math.isfinite(epsilon):
        privacy = {
            "level": "record",
            "target_epsilon": epsilon,
            "clip": 1.0,
            "accountant": "rdp",
        }
    return config_from_mapping(
        {
            "federation": {"name": f"mia-{name}", "rounds": ROUNDS, "seed": SEED},
            **FEDERATIONS[name],
            "task": TASK,
            "train": TRAIN,
            "privacy": privacy,
            "simulation": {"workers": 0},
            "store": {"directory": str(directory)},
        }
    )


def one(name: str, epsilon: float, shadows: int) -> dict[str, Any]:
    """Train, audit, and return the figures of one cell of the table."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config(name, epsilon, Path(tmp))
        store = MemoryStore()
        checkpoints = Path(tmp) / "checkpoints"
        t0 = time.perf_counter()
        result = simulate(cfg, store=store, checkpoint_dir=checkpoints)
        t1 = time.perf_counter()
        audit = audit_run(
            store,
            result.run.run_id,
            checkpoints=CheckpointStore(checkpoints),
            base_dir=Path(tmp),
            shadows=shadows,
            seed=SEED,
        )
        t2 = time.perf_counter()
        central = {
            m.name: m.value
            for m in store.rounds(result.run.run_id)[-1].metrics
            if m.scope == "central"
        }
    return _figures(name, epsilon, audit, central, train_s=t1 - t0, audit_s=t2 - t1)


def _figures(
    name: str,
    epsilon: float,
    audit: RunAudit,
    central: dict[str, float],
    *,
    train_s: float,
    audit_s: float,
) -> dict[str, Any]:
    return {
        "data": name,
        "epsilon": None if math.isinf(epsilon) else epsilon,
        "epsilon_spent": None if math.isinf(audit.epsilon) else audit.epsilon,
        "accuracy": central.get("accuracy"),
        "auc": central.get("auc"),
        "members": sum(s.members for s in audit.sites),
        "loss_auc": audit.overall["loss"].auc,
        "lira_auc": audit.overall["lira"].auc if "lira" in audit.overall else None,
        "lira_tpr_fpr_0.01": audit.overall["lira"].tpr[0.01]
        if "lira" in audit.overall
        else None,
        "sites_audited": len(audit.sites),
        "train_s": round(train_s, 1),
        "audit_s": round(audit_s, 1),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of docs/privacy.md."""

    def num(value: float | None, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [
        "| data | ε (target) | ε spent (max site) | accuracy | AUC | loss attack AUC "
        "| LiRA AUC | LiRA TPR @ 1 % FPR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        eps = "∞ (no DP)" if r["epsilon"] is None else f"{r['epsilon']:g}"
        lines.append(
            f"| {r['data']} | {eps} | {num(r['epsilon_spent'], 2)} | "
            f"{num(r['accuracy'])} | {num(r['auc'])} | {num(r['loss_auc'])} | "
            f"{num(r['lira_auc'])} | {num(r['lira_tpr_fpr_0.01'])} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Attack AUC and utility against epsilon, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["data"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6))
    labels = [("∞" if e is None else f"{e:g}") for e in _eps(rows, names[0])]
    for ax, name in zip(axes, names, strict=True):
        mine = [r for r in rows if r["data"] == name]
        xs = range(len(mine))
        utility = "auc" if name == "covid" else "accuracy"
        ax.plot(xs, [r["loss_auc"] for r in mine], "o-", label="loss attack AUC")
        ax.plot(xs, [r["lira_auc"] for r in mine], "s-", label="LiRA AUC")
        ax.plot(xs, [r[utility] for r in mine], "^--", label=f"central {utility}")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xticks(list(xs), labels)
        ax.set_xlabel("ε (record level, δ = 1e-5)")
        ax.set_title(name)
        ax.set_ylim(0.0, 1.0)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def closer_to_half(rows: list[dict[str, Any]]) -> dict[str, bool]:
    """Per dataset and finite ε: each attack's AUC nearer 0.5 than without DP."""
    verdict = {}
    for name in dict.fromkeys(r["data"] for r in rows):
        plain = [r for r in rows if r["data"] == name and r["epsilon"] is None]
        if not plain:
            continue
        for r in rows:
            if r["data"] != name or r["epsilon"] is None:
                continue
            verdict[f"{name}@{r['epsilon']:g}"] = all(
                abs(r[k] - 0.5) < abs(plain[0][k] - 0.5)
                for k in ("loss_auc", "lira_auc")
                if r[k] is not None and plain[0][k] is not None
            )
    return verdict


def _eps(rows: list[dict[str, Any]], name: str) -> list[float | None]:
    return [r["epsilon"] for r in rows if r["data"] == name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shadows", type=int, default=8)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--data", nargs="*", default=list(FEDERATIONS))
    parser.add_argument("--epsilons", nargs="*", type=float, default=EPSILONS)
    args = parser.parse_args()
    rows = []
    for name in args.data:
        for eps in args.epsilons:
            rows.append(one(name, eps, args.shadows))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(table(rows))
    if args.plot is not None:
        plot(rows, args.plot)
    print(
        json.dumps(
            {
                "shadows": args.shadows,
                "seed": SEED,
                "closer_to_half": closer_to_half(rows),
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
