"""Issue 10's end-to-end acceptance on digits: ALIE and scaling attackers.

``examples/digits`` (10 sites, Dirichlet alpha = 0.5, the PyTorch MLP of its
``task.py``, 30 rounds, seed 1), 2 malicious sites drawn by the seed, in process,
through :func:`accord.simulation.robustness.run_matrix` (what ``accord evaluate
robustness`` runs), with FedAvg (``mean``) and the defence ``docs/robustness.md``
recommends (``centered_clip+quarantine``: centered clipping, sites quarantined
after two flags on norm or copies).

The attackers are the ones the brief asks us to assume: they pass every check,
including a *plausible* example count. Each claims 600 examples for every update
(``[attack] examples``; the largest honest site trained on 228, the federation's
bound is 100,000), and ALIE uses ``z = 3``. With their true counts, ALIE at the
paper's ``z_max`` (0.253) or at ``z = 3`` costs FedAvg under a point on digits:
the two sites drawn hold 10 % of the example weight (``docs/robustness.md``).

- **ALIE**: FedAvg loses more than 10 points; the defence stays within 3 points of
  attack-free FedAvg; both attackers are flagged (they send one vector: copies).
- **scaling + backdoor** (model replacement, Bagdasaryan et al.): the backdoor
  takes FedAvg; the defence keeps its accuracy within 3 points and the backdoor
  under 10 %; both attackers are flagged (by norm).
"""

from __future__ import annotations

import pytest

from accord.config import load_config
from accord.simulation.context import build_context
from accord.simulation.robustness import run_matrix
from accord.store import SqlStore

pytestmark = [pytest.mark.slow, pytest.mark.torch]
pytest.importorskip("torch")

DEFENCE = "centered_clip+quarantine"


def test_alie_and_scaling_attackers_on_digits(repo, tmp_path):
    # Arrange
    cfg = load_config(
        repo / "examples" / "digits" / "fed.toml",
        attack={"kind": "alie", "count": 2, "z": 3.0, "examples": 600},
        evaluation={"federated": False, "baselines": False},
        simulation={"workers": 0},
        store={"directory": str(tmp_path), "checkpoints": False},
    )
    malicious = set(build_context(cfg, poison=True).malicious)
    store = SqlStore(f"sqlite:///{tmp_path}/runs.db")

    # Act
    try:
        cells = run_matrix(
            cfg,
            attacks=["alie", "scaling+backdoor"],
            defences=["mean", DEFENCE],
            store=store,
        )
        flagged = {
            (c.attack, c.defence): {
                s.participant
                for r in store.rounds(c.run_id)
                for s in r.scores
                if s.flagged
            }
            for c in cells
        }
        claims = {
            o.participant: o.num_examples
            for c in cells
            if c.attack == "alie"
            for o in store.rounds(c.run_id)[0].outcomes
        }
    finally:
        store.close()
    got = {(c.attack, c.defence): c for c in cells}
    clean = got["none", "mean"].accuracy

    # Assert: the attackers lied about their counts, and only they did
    assert len(malicious) == 2
    assert {p for p, n in claims.items() if n == 600} == malicious
    assert all(c.aborted is None for c in cells)
    # FedAvg falls to both: ALIE by more than 10 points, the backdoor takes hold
    assert clean - got["alie", "mean"].accuracy > 0.10
    assert got["scaling+backdoor", "mean"].backdoor_success >= 0.9
    # the recommended defence holds within 3 points, and the backdoor under 10 %
    for attack in ("alie", "scaling+backdoor"):
        defended = got[attack, DEFENCE].accuracy
        assert defended >= clean - 0.03, (attack, defended, clean)
        for defence in ("mean", DEFENCE):
            assert malicious <= flagged[attack, defence], (attack, defence)
    assert got["scaling+backdoor", DEFENCE].backdoor_success <= 0.10
