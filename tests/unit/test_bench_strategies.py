"""``bench/strategies.py`` on a natural split (``--example``) and its refusals.

The strategy tables of ``docs/strategies.md`` come from this script; these tests
check that ``--example`` runs the example's own split and task with the strategy,
rounds and evaluation the table names, and that bad arguments stop it with a
usage error before anything trains. Offline, seeded, small (covid, 2 rounds).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import strategies  # noqa: E402

COVID = ROOT / "examples" / "covid" / "fed.toml"


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "rounds": 2,
        "epochs": 1,
        "example": COVID,
        "metric": "auc",
        "server_lr": None,
        "dataset": "covid",
    }
    base.update(kw)
    return argparse.Namespace(**base)


def test_example_config_keeps_the_split_and_replaces_the_strategy(
    tmp_path: Path,
) -> None:
    args = _args(rounds=3)
    cfg = strategies.config(
        "natural",
        4,
        {"server_optimizer": "yogi", "server_lr": 0.1},
        args,
        baselines=True,
        state=tmp_path,
    )
    assert cfg.data.partition == "natural"
    assert cfg.data.dataset == "covid_testing"
    assert cfg.federation.rounds == 3
    assert cfg.federation.seed == 4
    assert cfg.strategy.server_optimizer == "yogi"
    assert cfg.strategy.server_lr == 0.1
    assert cfg.evaluation.metric == "auc"
    assert cfg.evaluation.every == 3
    assert cfg.simulation.workers == 0


def test_example_run_scores_federated_and_pooled_on_the_metric(
    tmp_path: Path,
) -> None:
    got = strategies.run_one("natural", 0, "FedAvg", _args(), tmp_path)
    assert 0.0 <= got["accuracy"] <= 1.0
    assert 0.0 <= got["pooled"] <= 1.0
    assert math.isfinite(got["worst_site"])
    again = strategies.run_one("natural", 0, "FedAvg", _args(), tmp_path)
    assert again["accuracy"] == got["accuracy"]  # seeded: same model, same score


def test_server_lr_reaches_the_adaptive_strategies_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, object]] = []
    real = strategies.config

    def spy(alpha, seed, strategy, args, *, baselines, state):  # type: ignore[no-untyped-def]
        seen.append(dict(strategy))
        return real(alpha, seed, strategy, args, baselines=baselines, state=state)

    monkeypatch.setattr(strategies, "config", spy)
    args = _args(server_lr=0.2)
    strategies.run_one("natural", 0, "FedAdam", args, tmp_path)
    strategies.run_one("natural", 0, "SCAFFOLD", args, tmp_path)
    assert seen[0]["server_lr"] == 0.2
    assert "server_lr" not in seen[1]
    assert strategies.STRATEGIES["FedAdam"]["server_lr"] == 0.03  # not mutated


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--example", str(COVID), "--flower"], "--flower"),
        (["--example", "no/such/fed.toml"], "no such fed.toml"),
        (["--only", "FedNope"], "unknown strategies"),
    ],
)
def test_bad_arguments_stop_before_training(
    argv: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "argv", ["strategies.py", *argv])
    with pytest.raises(SystemExit) as exc:
        strategies.main()
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
