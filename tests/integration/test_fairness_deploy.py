"""A deployment's sites report per-group confusion counts: the simulation's figures.

Three csv sites over real gRPC and mutual TLS (the fixture of
``test_preprocess_deploy``), with the categorical ``colour`` declared sensitive:
each site counts its decisions per colour on its own holdout at every evaluation
and reports them with its metrics; the coordinator sums them. The final round's
counts, per site and summed, are those ``accord release`` computes for the
simulated twin of the federation (same model round for round), so the fairness
gates judge a deployed run as they judge a simulated one. Every other metric is
unchanged.
"""

from __future__ import annotations

from accord.cli.deploy import _prepare
from accord.config import load_config
from accord.coordinator.runner import Coordinator
from accord.evaluation.fairness import fairness_report, sum_counts
from accord.evaluation.group_sums import counts_from_metrics
from accord.simulation.engine import simulate
from accord.simulation.holdouts import score_sites
from accord.store import MemoryStore

from .test_preprocess_deploy import SITES, start_csv_sites, write_tables

SENSITIVE = '\n[evaluation]\ncentral = false\nsensitive = "colour"\n'


def test_deployed_sites_report_the_simulated_fairness_counts(
    start_coordinator, tmp_path, background
):
    # Arrange: the fixture's tables, with colour declared sensitive
    write_tables(tmp_path)
    fed = tmp_path / "fed.toml"
    fed.write_text(
        fed.read_text().replace("\n[evaluation]\ncentral = false\n", SENSITIVE)
    )
    config = load_config(fed)
    assert config.evaluation.sensitive == "colour"
    per_site = {name: tmp_path / f"{name}.csv" for name in SITES}
    simulated = simulate(config, store=MemoryStore()).run
    running = start_coordinator(SITES)
    goodbyes, threads = start_csv_sites(running, per_site, tmp_path, background)

    # Act: a deployed run
    ctx = _prepare(config, running.executor, list(SITES), running.store, running.run_id)
    store = MemoryStore()
    deployed = Coordinator(config, executor=running.executor, store=store).run(
        ctx.task.init_params(config.federation.seed)
    )
    running.executor.close()
    for thread in threads:
        thread.join(20)

    # Assert: the same model, and the simulation's counts per site and summed
    assert deployed.params.digest() == simulated.params.digest()
    assert goodbyes == dict.fromkeys(SITES, "run finished")
    final = store.rounds(deployed.run_id)[-1].metrics
    scores = score_sites(config, simulated.params, fairness=True)
    for score in scores:
        reported = {
            m.name: m.value
            for m in final
            if m.scope == "site" and m.participant == score.site
        }
        assert counts_from_metrics(reported) == score.groups, score.site
    expected = sum_counts(s.groups for s in scores)
    summed = counts_from_metrics(
        {m.name: m.value for m in final if m.scope == "federated"}
    )
    assert summed == expected
    assert sorted(summed) == ["blue", "green", "missing", "red", "yellow"]
    assert sum(c.n for c in summed.values()) == sum(
        len(ctx.site(s).holdout) for s in SITES
    )
    report = fairness_report(summed, column="colour", threshold=0.5)
    assert (
        report.to_dict()
        == fairness_report(expected, column="colour", threshold=0.5).to_dict()
    )
    # Every other figure is the simulation's
    for mine, twin in zip(deployed.rounds, simulated.rounds, strict=True):
        plain = {k: v for k, v in mine.metrics.items() if "fairness:" not in k}
        assert plain == twin.metrics
        assert len(plain) < len(mine.metrics)
