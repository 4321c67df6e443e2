"""`accord simulate` with participant-level DP, as a user runs it (own processes).

The budget stops the run at the round the accountant predicts, whatever executor runs
it; the stored epsilons increase; with a noise seed the model is the same in process
and with worker processes.
"""

from pathlib import Path

from accord.privacy.accountant import DpAccountant
from accord.privacy.events import participant_round_event

FED = """
[federation]
name = "dp-e2e"
rounds = 8
seed = 4
[data]
dataset = "wine"
sites = 6
[task]
factory = "accord.task.numpy_task:softmax_regression"
[selection]
fraction = 0.5
[evaluation]
federated = false
[privacy]
level = "participant"
noise_multiplier = 1.3
clip = 0.5
budget_epsilon = {budget}
noise_seed = 17
"""


def _rounds_within(budget: float) -> int:
    """How many rounds (3 of 6 sites each) the PLD accountant allows in ``budget``."""
    accountant, event = DpAccountant("pld"), participant_round_event(1.3, 0.5)
    rounds = 0
    while accountant.epsilon_after(event, 1e-5) <= budget:
        accountant.compose(event)
        rounds += 1
    return rounds


def test_the_budget_stops_the_run_where_the_accountant_says(
    tmp_path: Path, accord_json
) -> None:
    # Arrange
    budget = 4.3
    expected = _rounds_within(budget)
    assert 1 < expected < 8  # the budget, not the planned rounds, ends the run
    (tmp_path / "fed.toml").write_text(FED.format(budget=budget))

    def simulate(workers: int) -> dict:
        return accord_json(
            "simulate",
            "fed.toml",
            "--workers",
            str(workers),
            "--store",
            f"sqlite:///{tmp_path}/runs-{workers}.db",
            cwd=tmp_path,
        )

    # Act
    in_process, pooled = simulate(0), simulate(2)

    # Assert
    assert len(in_process["rounds"]) == expected
    assert in_process["stopped"].startswith(
        f"budget exhausted before round {expected + 1}"
    )
    epsilons = [r["epsilon"] for r in in_process["rounds"]]
    assert all(a < b for a, b in zip(epsilons, epsilons[1:], strict=False))
    assert epsilons[-1] <= budget
    assert pooled["final_digest"] == in_process["final_digest"]
    assert [r["epsilon"] for r in pooled["rounds"]] == epsilons
