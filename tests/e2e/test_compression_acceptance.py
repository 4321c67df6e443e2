"""Issue 12's compression bar, measured on the digits example with its own seed.

The example's federation (ten sites, Dirichlet alpha = 0.5, the PyTorch MLP, 30
rounds, two worker processes) runs uncompressed, with 8-bit stochastic
quantization and with top-k 1 % plus error feedback, with top-k's defaults: Deep
Gradient Compression's density warm-up over 3 rounds and momentum correction
0.5. Bytes are the payloads the sites actually sent, as recorded per site per
round (warm-up rounds included), against the dense float32 updates the
uncompressed run sends.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.config import load_config
from accord.coordinator.transfers import per_round
from accord.simulation.engine import simulate
from accord.store import SqlStore

pytestmark = [pytest.mark.slow, pytest.mark.torch, pytest.mark.timeout(600)]


def _run(repo: Path, tmp_path: Path, method: str) -> tuple[float, float]:
    """(final central accuracy, dense bytes / sent bytes) of the digits example."""
    cfg = load_config(
        repo / "examples" / "digits" / "fed.toml",
        evaluation={"federated": False, "baselines": False},
        store={"directory": str(tmp_path / method), "checkpoints": False},
        compression={"method": method, "fraction": 0.01},
    )
    store = SqlStore(f"sqlite:///{tmp_path / method}.db")
    try:
        run = simulate(cfg, store=store).run
        rounds = store.rounds(run.run_id)
        transfers = per_round(store.events(run.run_id))
    finally:
        store.close()
    assert len(rounds) == cfg.federation.rounds
    accuracy = next(
        m.value
        for m in rounds[-1].metrics
        if m.scope == "central" and m.name == "accuracy"
    )
    if method == "none":
        assert transfers == []
        return accuracy, 1.0
    assert len(transfers) == cfg.federation.rounds
    assert all(t.sites == cfg.data.sites for t in transfers)
    return accuracy, sum(t.dense for t in transfers) / sum(t.sent for t in transfers)


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict[str, tuple[float, float]]:
    pytest.importorskip("torch")
    repo = Path(__file__).resolve().parents[2]
    tmp = tmp_path_factory.mktemp("compression")
    return {m: _run(repo, tmp, m) for m in ("none", "q8", "topk")}


def test_q8_is_within_half_a_point_with_four_times_fewer_bytes(measured):
    dense, q8 = measured["none"][0], measured["q8"]

    assert dense > 0.9  # the example learns, so "within half a point" means something
    assert q8[0] >= dense - 0.005
    assert q8[1] >= 4.0


def test_topk_sends_twenty_times_fewer_bytes_and_still_learns(measured):
    dense, topk = measured["none"][0], measured["topk"]

    # Warm-up rounds included: measured 33.6x with this seed.
    assert topk[1] >= 20.0
    assert topk[0] >= dense - 0.02


def test_topk_is_within_one_point(measured):
    # Issue 12's bar, met by the defaults (DGC's density warm-up and momentum
    # correction): measured 0.9582 against 0.9638 uncompressed with this seed.
    assert measured["topk"][0] >= measured["none"][0] - 0.01
