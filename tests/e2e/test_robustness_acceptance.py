"""Issue 10's end-to-end acceptance on digits: ALIE and scaling attackers.

``examples/digits`` (10 sites, Dirichlet alpha = 0.5, the PyTorch MLP of its
``task.py``, seed 1), 2 malicious sites drawn by the seed, in process, through
:func:`accord.simulation.robustness.run_matrix` (what ``accord evaluate
robustness`` runs), with FedAvg (``mean``) and the defence ``docs/robustness.md``
recommends (``centered_clip`` with its defaults), 12 rounds instead of 30 to stay
affordable. What holds, per attack (figures in ``docs/robustness.md``):

- **scaling + backdoor** (model replacement, Bagdasaryan et al.): the backdoor
  succeeds against FedAvg; centered clipping stops it and stays within 3 points
  of attack-free FedAvg; both attackers are flagged in the stored scores.
- **ALIE** (Baruch et al., ``z`` = the paper's ``z_max`` = 0.253 for 10 sites and
  2 attackers): the acceptance's first clause does **not** hold on digits. FedAvg
  loses well under 10 points (it did at ``z`` = 1, 2 and 5 too, and the paper's
  backdooring variant implanted no trigger); this test pins that finding so that
  a change that makes ALIE bite here is noticed and the docs updated. Centered
  clipping stays within 3 points, and both attackers are flagged (they send one
  vector: copies).
"""

from __future__ import annotations

import pytest

from accord.config import load_config
from accord.simulation.context import build_context
from accord.simulation.robustness import run_matrix
from accord.store import SqlStore

pytestmark = [pytest.mark.slow, pytest.mark.torch]
pytest.importorskip("torch")


def test_alie_and_scaling_attackers_on_digits(repo, tmp_path):
    # Arrange
    cfg = load_config(
        repo / "examples" / "digits" / "fed.toml",
        federation={"rounds": 12},
        attack={"kind": "alie", "count": 2},
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
            defences=["mean", "centered_clip"],
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
    finally:
        store.close()
    got = {(c.attack, c.defence): c for c in cells}
    clean = got["none", "mean"].accuracy

    # Assert: the model replacement's backdoor takes FedAvg, not centered clipping
    assert len(malicious) == 2
    assert all(c.aborted is None for c in cells)
    assert got["scaling+backdoor", "mean"].backdoor_success >= 0.9
    assert got["scaling+backdoor", "centered_clip"].backdoor_success <= 0.05
    # ALIE at z_max does not cost FedAvg 10 points here (see the module docstring)
    assert clean - got["alie", "mean"].accuracy < 0.10
    for attack in ("alie", "scaling+backdoor"):
        defended = got[attack, "centered_clip"].accuracy
        assert defended >= clean - 0.03, (attack, defended, clean)
        for defence in ("mean", "centered_clip"):
            assert malicious <= flagged[attack, defence], (attack, defence)
