"""A site's privacy ledger and policy: epsilon across runs, refusals, durability."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accord.errors import ConfigError, PrivacyLedgerError
from accord.participant.policy import SitePolicy
from accord.participant.privacy_guard import PrivacyGuard
from accord.participant.privacy_ledger import LEDGER_SCHEMA, PrivacyLedger, RoundSpend
from accord.privacy.accountant import DpAccountant
from accord.privacy.dpsgd import OPTION_KEY, DpSgdPlan
from accord.privacy.events import dp_sgd_event
from accord.task.protocol import TrainConfig

Z, Q, STEPS = 1.1, 0.05, 20


def task(run: str, number: int, *, dp: bool = True) -> TrainConfig:
    plan = DpSgdPlan(
        run=run, noise_multiplier=Z, clip=1.0, sampling_rate=Q, steps=STEPS, delta=1e-5
    )
    options = {OPTION_KEY: plan.to_json()} if dp else {}
    return TrainConfig(round=number, participant="site", options=options)


def epsilon(rounds: int) -> float:
    accountant = DpAccountant("pld")
    accountant.compose(dp_sgd_event(Z, Q, STEPS), rounds)
    return accountant.epsilon(1e-5)


def guard(
    path: Path, max_epsilon: float | None = None, **policy: object
) -> PrivacyGuard:
    return PrivacyGuard(
        SitePolicy(max_epsilon=max_epsilon, **policy),  # type: ignore[arg-type]
        ledger=PrivacyLedger(path),
    )


def test_the_ledger_carries_epsilon_over_two_runs_and_refuses_the_third(
    tmp_path: Path,
) -> None:
    path = tmp_path / "privacy-ledger.json"
    # Two runs of two rounds fit; a fifth round does not.
    limit = (epsilon(4) + epsilon(5)) / 2
    for run in ("run-a", "run-b"):
        site = guard(path, limit)  # a fresh process each run: the file carries it
        for number in (1, 2):
            assert site.refusal(task(run, number), supports_dp=True) is None
            site.spent(task(run, number))

    third = guard(path, limit)
    reason = third.refusal(task("run-c", 1), supports_dp=True)

    assert reason is not None and "--max-epsilon" in reason
    assert f"{epsilon(4):.4g}" in reason and f"{epsilon(5):.4g}" in reason
    doc = json.loads(path.read_text())
    assert doc["schema"] == LEDGER_SCHEMA
    assert doc["runs"]["run-a"]["epsilon"] == pytest.approx(epsilon(2))
    assert doc["total_epsilon"] == pytest.approx(epsilon(4))
    assert "run-c" not in doc["runs"]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_a_round_is_trained_and_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    site = guard(path)
    site.spent(task("run", 1))

    again = guard(path)  # the site restarted; the coordinator resumed round 1
    reason = again.refusal(task("run", 1), supports_dp=True)

    assert reason is not None and "already trained" in reason
    with pytest.raises(PrivacyLedgerError, match="once"):
        again.ledger.record("run", 1, RoundSpend(Z, Q, STEPS, 1.0))  # type: ignore[union-attr]
    assert again.refusal(task("run", 2), supports_dp=True) is None
    assert PrivacyLedger(path).epsilon() == pytest.approx(epsilon(1))


def test_the_policy_refuses_tasks_without_dp_or_that_cannot_honour_it(
    tmp_path: Path,
) -> None:
    required = guard(tmp_path / "a.json", require_dp="record")
    bounded = guard(tmp_path / "b.json", 100.0)
    open_site = PrivacyGuard(SitePolicy(), ledger=None)

    assert "--require-dp record" in (
        required.refusal(task("r", 1, dp=False), supports_dp=True) or ""
    )
    assert "unbounded" in (
        bounded.refusal(task("r", 1, dp=False), supports_dp=True) or ""
    )
    assert "cannot train with record-level DP-SGD" in (
        open_site.refusal(task("r", 1), supports_dp=False) or ""
    )
    assert open_site.refusal(task("r", 1, dp=False), supports_dp=False) is None
    bad = TrainConfig(options={OPTION_KEY: {"run": "r"}})
    assert "malformed" in (open_site.refusal(bad, supports_dp=True) or "")
    seeded = DpSgdPlan(**{**task("r", 1).options[OPTION_KEY], "noise_seed": 7})
    seeded_task = TrainConfig(round=1, options={OPTION_KEY: seeded.to_json()})
    assert "seeded" in (required.refusal(seeded_task, supports_dp=True) or "")
    assert open_site.refusal(seeded_task, supports_dp=True) is None


def test_max_epsilon_exactly_reached_is_allowed(tmp_path: Path) -> None:
    site = guard(tmp_path / "l.json", epsilon(1))
    assert site.refusal(task("r", 1), supports_dp=True) is None
    tighter = guard(tmp_path / "m.json", epsilon(1) * (1 - 1e-9))
    assert tighter.refusal(task("r", 1), supports_dp=True) is not None


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        json.dumps({"schema": "other/1", "runs": {}}),
        json.dumps(
            {"schema": LEDGER_SCHEMA, "accountant": "pld", "delta": 1e-6, "runs": {}}
        ),
        json.dumps(
            {
                "schema": LEDGER_SCHEMA,
                "accountant": "pld",
                "delta": 1e-5,
                "runs": {"r": {"rounds": {"1": {"noise_multiplier": -1}}}},
            }
        ),
        json.dumps(
            {
                "schema": LEDGER_SCHEMA,
                "accountant": "pld",
                "delta": 1e-5,
                "runs": {
                    "r": {
                        "rounds": {
                            "1": {
                                "noise_multiplier": 1.0,
                                "sampling_rate": 1.5,
                                "steps": 1,
                                "clip": 1.0,
                            }
                        }
                    }
                },
            }
        ),
    ],
)
def test_a_corrupt_ledger_is_an_error_and_is_never_reset(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "ledger.json"
    path.write_text(text)
    with pytest.raises(PrivacyLedgerError, match="restore it from a backup"):
        PrivacyLedger(path)
    assert path.read_text() == text


def test_policy_values_just_past_their_bounds_are_refused() -> None:
    with pytest.raises(ConfigError, match="--max-epsilon"):
        SitePolicy(max_epsilon=0.0)
    with pytest.raises(ConfigError, match="--max-epsilon"):
        SitePolicy(max_epsilon=float("inf"))
    with pytest.raises(ConfigError, match="--delta"):
        SitePolicy(dp_delta=1.0)
    with pytest.raises(ConfigError, match="--require-dp"):
        SitePolicy(require_dp="participant")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ledger"):
        PrivacyGuard(SitePolicy(max_epsilon=1.0), ledger=None)
    SitePolicy(max_epsilon=1e-9, dp_delta=0.999)
