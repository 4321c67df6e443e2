"""A deployed secure run sums its fairness counts securely: the pooled figures.

Three csv sites over real gRPC and mutual TLS, under ``[secure_aggregation]
mode = "masking"``, with the categorical ``colour`` declared sensitive (the
tables of ``test_preprocess_deploy``). After each federated evaluation the
coordinator opens a ``fairness`` secure sum of the round: each site counts its
decisions per colour on its own holdout and sends them masked; the coordinator
unmasks only the total. The final round's summed counts equal the pooled ones
(every site's holdout predictions counted together, as Fairlearn would) and
those the simulated twin's ``accord release`` sums securely, and no site's
counts appear anywhere in the clear. A site that drops out of the sum leaves a
sum over the others, with who is in it and the coverage recorded.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("cryptography")  # the secagg extra

from accord.cli.deploy import _prepare
from accord.config import load_config
from accord.coordinator.group_sum import COVERAGE, EVENT_KIND, run_groups
from accord.coordinator.preparation import recorded_encoder
from accord.coordinator.runner import Coordinator
from accord.evaluation.fairness import sum_counts
from accord.evaluation.group_sums import counts_from_metrics, is_count_metric
from accord.participant.backoff import Backoff
from accord.participant.data import build_task, load_local_data
from accord.participant.runtime import ParticipantRuntime
from accord.participant.sitelog import SiteLog
from accord.simulation.engine import simulate
from accord.simulation.fair_sum import secure_group_counts
from accord.simulation.holdouts import score_sites
from accord.store import MemoryStore
from accord.transport import pki
from accord.transport.identity import load_signing_identity
from accord.transport.jobs import STAGES

from .test_preprocess_deploy import FACTORY, SITE_OPTIONS, SITES, write_tables

pytestmark = pytest.mark.timeout(600)

SECURE = """
[evaluation]
central = false
sensitive = "colour"
[secure_aggregation]
mode = "masking"
stage_timeout_s = 30
"""


class _SilentInTheSum(ParticipantRuntime):
    """A site that never answers the fairness sum of ``round`` (it went away)."""

    def __init__(self, *args, silent_round: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._silent_round = silent_round

    def _fairness_sum(self, client, order) -> None:
        if order.round == self._silent_round:
            return  # no answer: the coordinator's stage deadline passes
        super()._fairness_sum(client, order)


def _configs(tmp_path):
    """The plain tables' fed.toml, secure, with colour sensitive; and a plain twin."""
    _, per_site = write_tables(tmp_path)
    fed = tmp_path / "fed.toml"
    text = fed.read_text().replace("\n[evaluation]\ncentral = false\n", SECURE)
    secure = tmp_path / "fed-secure.toml"
    secure.write_text(text)
    config = load_config(secure)
    assert config.secure_aggregation.mode == "masking"
    plain = config.model_copy(
        update={
            "secure_aggregation": config.secure_aggregation.model_copy(
                update={"mode": "off"}
            )
        }
    )
    return config, plain, per_site


def _deploy(config, tables, logs, start_coordinator, background, *, silent=None):
    """Prepare and run the federation as ``accord coordinator`` does."""
    logs.mkdir()
    running = start_coordinator(SITES)
    goodbyes: dict[str, object] = {}
    threads = []
    for name, path in tables.items():
        folder = running.federation.root / name
        kind = ParticipantRuntime
        extra = {}
        if silent is not None and name == silent[0]:
            kind, extra = _SilentInTheSum, {"silent_round": silent[1]}
        runtime = kind(
            lambda n=name: running.client(n),
            None,
            load_local_data(f"csv:{path}", options=SITE_OPTIONS),
            builder=lambda data: build_task(data, FACTORY),
            log=SiteLog(logs / f"{name}.jsonl"),
            backoff=Backoff(initial_s=0.05, maximum_s=0.5),
            signing=load_signing_identity(folder),
            ca_pem=pki.load_identity(folder).ca_pem,
            **extra,
        )

        def serve(r=runtime, n=name):
            try:
                goodbyes[n] = r.run()
            except Exception as exc:  # the test looks at it
                goodbyes[n] = exc
            finally:
                r.log.close()

        threads.append(background(serve))
    assert running.executor.wait_for(SITES, 20) == set(SITES)
    store = MemoryStore()
    try:
        ctx = _prepare(
            config, running.executor, list(SITES), running.store, running.run_id
        )
        groups = run_groups(config, recorded_encoder(running.store, running.run_id))
        result = Coordinator(
            config, executor=running.executor, store=store, fairness_groups=groups
        ).run(ctx.task.init_params(config.federation.seed))
    finally:
        running.executor.close()
        for thread in threads:
            thread.join(20)
    return ctx, store, result, goodbyes, groups


def _sums(store, run_id) -> dict[int, dict]:
    return {
        e.round: json.loads(e.detail)
        for e in store.events(run_id)
        if e.kind == EVENT_KIND
    }


def test_a_deployed_masking_run_sums_the_pooled_fairness_counts_securely(
    start_coordinator, tmp_path, background
):
    config, plain, tables = _configs(tmp_path)
    simulated = simulate(config, store=MemoryStore()).run

    ctx, store, deployed, goodbyes, groups = _deploy(
        config, tables, tmp_path / "logs", start_coordinator, background
    )

    assert goodbyes == dict.fromkeys(SITES, "run finished")
    assert groups is not None and "blue" in groups
    # The secure rounds give the simulated secure run's models.
    assert deployed.params.digest() == simulated.params.digest()
    final = store.rounds(deployed.run_id)[-1].metrics
    summed = counts_from_metrics(
        {m.name: m.value for m in final if m.scope == "federated"}
    )
    # The pooled counts: every site's holdout predictions of the final model.
    pooled = sum_counts(
        s.groups for s in score_sites(plain, simulated.params, fairness=True)
    )
    assert summed == pooled
    assert sorted(summed) == ["blue", "green", "missing", "red", "yellow"]
    assert sum(c.n for c in summed.values()) == sum(
        len(ctx.site(s).holdout) for s in SITES
    )
    # ... and the simulation's secure sum of them (accord release's).
    assert summed == secure_group_counts(config, simulated.params)
    # No site's counts in the clear: no per-site count metric anywhere.
    for record in store.rounds(deployed.run_id):
        assert not [
            m for m in record.metrics if m.scope == "site" and is_count_metric(m.name)
        ]
        coverage = [m.value for m in record.metrics if m.name == COVERAGE]
        assert coverage == [1.0]
    # Every round's sum covers every site, and is recorded with the round.
    sums = _sums(store, deployed.run_id)
    assert sorted(sums) == [1, 2, 3]
    for number, detail in sums.items():
        assert detail["contributors"] == list(SITES), number
        assert detail["coverage"] == 1.0 and detail["missing"] == {}
    # At each site, after each round's evaluation: the fairness sum's stages.
    for name in SITES:
        entries = SiteLog.read(tmp_path / "logs" / f"{name}.jsonl")
        sent = [
            e["stage"]
            for e in entries
            if e["event"] == "sent_secagg" and e["round"] == 3
        ]
        assert sent == [*STAGES, "fairness", *STAGES[1:]], name
        assert [e["round"] for e in entries if e["event"] == "counted_groups"] == [
            1,
            2,
            3,
        ]


def test_a_site_that_drops_out_of_the_sum_leaves_the_others_counts(
    start_coordinator, tmp_path, background
):
    config, plain, tables = _configs(tmp_path)
    config = config.model_copy(
        update={
            "secure_aggregation": config.secure_aggregation.model_copy(
                update={"stage_timeout_s": 8.0, "threshold": 2}
            )
        }
    )

    ctx, store, deployed, goodbyes, _ = _deploy(
        config,
        tables,
        tmp_path / "logs",
        start_coordinator,
        background,
        silent=("site-01", 2),
    )

    assert goodbyes == dict.fromkeys(SITES, "run finished")
    assert [r.status for r in store.rounds(deployed.run_id)] == ["completed"] * 3
    sums = _sums(store, deployed.run_id)
    dropped = sums[2]
    assert dropped["contributors"] == ["site-00", "site-02"]
    assert list(dropped["missing"]) == ["site-01"]
    assert "no fairness message" in dropped["missing"]["site-01"]
    assert dropped["coverage"] == pytest.approx(2 / 3)
    assert sums[1]["coverage"] == sums[3]["coverage"] == 1.0
    # Round 2's sum is the two survivors' counts of round 2's model (the
    # simulated twin's after two rounds: the dropout changed no training).
    second = store.rounds(deployed.run_id)[1]
    summed = counts_from_metrics(
        {m.name: m.value for m in second.metrics if m.scope == "federated"}
    )
    federation = config.federation.model_copy(update={"rounds": 2})
    twin = simulate(
        config.model_copy(update={"federation": federation}), store=MemoryStore()
    ).run
    assert twin.params.digest() == second.global_digest
    survivors = score_sites(
        plain, twin.params, sites=["site-00", "site-02"], fairness=True
    )
    assert summed == sum_counts(s.groups for s in survivors)
    assert sum(c.n for c in summed.values()) == sum(
        len(ctx.site(s).holdout) for s in ("site-00", "site-02")
    )
    coverage = [m.value for m in second.metrics if m.name == COVERAGE]
    assert coverage == [pytest.approx(2 / 3)]


def test_a_sum_below_the_threshold_leaves_the_round_without_counts(
    start_coordinator, tmp_path, background
):
    config, _, tables = _configs(tmp_path)  # threshold 3 of 3: no dropout allowed
    config = config.model_copy(
        update={
            "secure_aggregation": config.secure_aggregation.model_copy(
                update={"stage_timeout_s": 8.0}
            )
        }
    )

    _, store, deployed, goodbyes, _ = _deploy(
        config,
        tables,
        tmp_path / "logs",
        start_coordinator,
        background,
        silent=("site-02", 3),
    )

    # The round stands; its counts are absent, and why is recorded.
    assert goodbyes == dict.fromkeys(SITES, "run finished")
    final = store.rounds(deployed.run_id)[-1]
    assert final.status == "completed"
    assert not [m for m in final.metrics if is_count_metric(m.name)]
    assert not [m for m in final.metrics if m.name == COVERAGE]
    detail = _sums(store, deployed.run_id)[3]
    assert not detail["summed"] and detail["contributors"] == []
    assert "fewer than the threshold 3" in detail["reason"]
    assert "no fairness message" in detail["missing"]["site-02"]
