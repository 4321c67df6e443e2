"""A secure deployment's release and model card judge fairness by the secure sum.

``accord coordinator`` and three ``accord participant --data csv:`` processes,
under ``[secure_aggregation] mode = "masking"``, with ``colour`` declared
sensitive and both fairness gates set. After each evaluation the sites' per-group
counts are summed securely (no site's counts reach the coordinator); ``accord
release`` judges the gates by the final round's sum, which equals the pooled
counts of every site's holdout, and the model card (``accord report``) shows the
same figures.
"""

import json

import pytest

pytest.importorskip("cryptography")  # the secagg extra

from accord.cli.release import final_model
from accord.config import load_config
from accord.coordinator.group_sum import EVENT_KIND
from accord.evaluation.fairness import fairness_report, sum_counts
from accord.evaluation.group_sums import is_count_metric
from accord.simulation.holdouts import score_sites
from accord.store import SqlStore

from ..integration.test_preprocess_deploy import write_tables

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SITES = ("site-00", "site-01", "site-02")
SECURE = """
[evaluation]
central = false
sensitive = "colour"
[secure_aggregation]
mode = "masking"
stage_timeout_s = 30
[gates]
max_demographic_parity_difference = 1.0
max_equalized_odds_difference = 1.0
"""


def test_a_secure_deployments_release_and_card_use_the_securely_summed_counts(
    deployment, monkeypatch
):
    root = deployment.root
    _, tables = write_tables(root)
    fed = root / "fed.toml"
    fed.write_text(fed.read_text().replace("\n[evaluation]\ncentral = false\n", SECURE))
    deployment.enrol()
    coordinator, port = deployment.coordinator()
    for site in SITES:
        deployment.spawn(
            site,
            "participant",
            "--coordinator",
            f"localhost:{port}",
            "--identity",
            site,
            "--data",
            f"csv:{tables[site].name}",
            "--data-option",
            "target=y",
            "--data-option",
            "categorical=colour",
            "--task",
            "accord.task.numpy_task:softmax_regression",
            "--require-secure-aggregation",
        )
    deployed = json.loads(deployment.finish(coordinator, "coordinator"))
    assert [r["status"] for r in deployed["rounds"]] == ["completed"] * 3
    assert deployed["rejections"] == []

    released = deployment.accord(
        "release",
        deployed["run_id"],
        "-o",
        "model.safetensors",
        "--store",
        deployment.store_url,
        "--pki",
        "coordinator",
        "-c",
        "fed.toml",
        "--json",
    )
    card = deployment.accord(
        "report", deployed["run_id"], "--store", deployment.store_url, "--json"
    )

    # The gates were judged by the pooled counts of the final model.
    decision = json.loads(released.stdout)
    assert decision["passed"]
    monkeypatch.chdir(root)  # the store's checkpoint paths are relative to it
    store = SqlStore(deployment.store_url)
    try:
        model = final_model(store, deployed["run_id"])
        rounds = store.rounds(deployed["run_id"])
        events = store.events(deployed["run_id"])
    finally:
        store.close()
    plain = load_config(fed)
    plain = plain.model_copy(
        update={
            "secure_aggregation": plain.secure_aggregation.model_copy(
                update={"mode": "off"}
            )
        }
    )
    pooled = sum_counts(
        s.groups for s in score_sites(plain, model.params, fairness=True)
    )
    expected = fairness_report(pooled, column="colour", threshold=0.5).to_dict()
    assert decision["fairness"] == expected
    assert sorted(decision["fairness"]["groups"]) == [
        "blue",
        "green",
        "missing",
        "red",
        "yellow",
    ]
    # The card shows the release's figures.
    assert _card_groups(json.loads(card.stdout)) == {g: c.n for g, c in pooled.items()}
    # Only totals were recorded: no site's count metric, a sum per round.
    for record in rounds:
        assert not [
            m for m in record.metrics if m.participant and is_count_metric(m.name)
        ]
    sums = [json.loads(e.detail) for e in events if e.kind == EVENT_KIND]
    assert [s["coverage"] for s in sums] == [1.0, 1.0, 1.0]
    for site in SITES:
        assert len(deployment.site_events(site, "counted_groups")) == 3
        assert not deployment.site_events(site, "sent_update")


def _card_groups(card: dict) -> dict[str, int]:
    """Rows per group of the card's per-group table: group -> n."""
    for section in card["sections"]:
        for block in section["blocks"]:
            if block.get("columns", [])[:3] == ["group", "n", "selection rate"]:
                return {row[0]: int(row[1]) for row in block["rows"]}
    raise AssertionError("the card has no per-group table")
