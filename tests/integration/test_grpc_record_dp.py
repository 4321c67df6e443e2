"""Record-level DP over gRPC with mutual TLS: declared plans, site policies, ledgers.

Three sites train with DP-SGD over real gRPC; site-00's own policy (``--max-epsilon``
over its ledger) allows one round, so it refuses round 2 and the round goes on
without it. The coordinator records each site's epsilon per round, equal to the
accountant's for the plan it declared, and the sites' ledgers say the same.
"""

import json
from pathlib import Path

import pytest

from accord.config import load_config
from accord.participant.policy import SitePolicy
from accord.participant.privacy_ledger import PrivacyLedger
from accord.privacy.accountant import DpAccountant
from accord.privacy.dpsgd import site_mechanism
from accord.privacy.events import dp_sgd_event
from accord.simulation.context import build_context
from accord.store.memory import MemoryStore

SITES = ("site-00", "site-01", "site-02")
Z, BATCH = 1.0, 16

pytestmark = pytest.mark.timeout(180)

FED = """
[federation]
name = "grpc-record-dp"
rounds = 2
seed = 11
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[train]
batch_size = 16
[simulation]
workers = 0
[round]
deadline_s = 60
[privacy]
level = "record"
noise_multiplier = 1.0
clip = 1.0
"""


def epsilon(rows: int, rounds: int) -> float:
    q, steps = site_mechanism(rows, batch_size=BATCH, epochs=1)
    accountant = DpAccountant("pld")
    accountant.compose(dp_sgd_event(Z, q, steps), rounds)
    return accountant.epsilon(1e-5)


def test_a_site_policy_refuses_over_its_epsilon_and_the_round_goes_on(
    coordinator, tmp_path: Path, sim_sites
):
    # Arrange: the coordinator knows each site's rows from declared_examples.
    probe = tmp_path / "probe.toml"
    probe.write_text(FED)
    rows = {s.name: len(s.train) for s in build_context(load_config(probe)).data.sites}
    declared = ", ".join(f'"{s}" = {n}' for s, n in rows.items())
    fed_toml = tmp_path / "fed.toml"
    fed_toml.write_text(
        FED
        + f"[deployment]\nparticipants = {list(SITES)!r}\n"
        + f"declared_examples = {{ {declared} }}\n".replace("'", '"')
    )
    config = load_config(fed_toml)
    limit = (epsilon(rows["site-00"], 1) + epsilon(rows["site-00"], 2)) / 2
    ledgers = {name: tmp_path / name / "privacy-ledger.json" for name in SITES}
    initial = build_context(config).task.init_params(config.federation.seed)

    # Act
    store = MemoryStore()
    sites = sim_sites(
        coordinator,
        fed_toml,
        SITES,
        tmp_path,
        policy=lambda n: SitePolicy(max_epsilon=limit if n == "site-00" else None),
        ledger=lambda n: PrivacyLedger(ledgers[n]),
    )
    result = sites.run(config, initial, store=store)

    # Assert: both rounds completed; site-00 trained round 1 only.
    assert [r.status for r in result.rounds] == ["completed"] * 2
    (run,) = store.list_runs()
    first, second = store.rounds(run.run_id)
    refused = {o.participant: o for o in second.outcomes}["site-00"]
    assert refused.status == "rejected"
    assert refused.reason is not None and "--max-epsilon" in refused.reason
    for number, record in ((1, first), (2, second)):
        for spent in record.privacy:
            assert spent.participant is not None
            trained = 1 if spent.participant == "site-00" else number
            assert spent.epsilon == pytest.approx(
                epsilon(rows[spent.participant], trained), rel=1e-9
            )
    assert {p.participant for p in second.privacy} == {"site-01", "site-02"}
    # The sites' own ledgers agree with the coordinator's record.
    for name in SITES:
        doc = json.loads(ledgers[name].read_text())
        (entry,) = doc["runs"].values()
        trained = 1 if name == "site-00" else 2
        assert sorted(entry["rounds"]) == [str(n) for n in range(1, trained + 1)]
        assert doc["total_epsilon"] == pytest.approx(epsilon(rows[name], trained))
    log = (tmp_path / "site-00.jsonl").read_text()
    assert "privacy_spent" in log and "--max-epsilon" in log
