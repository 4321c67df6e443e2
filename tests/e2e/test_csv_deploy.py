"""``accord coordinator`` and three ``accord participant --data csv:`` processes.

Each site holds only its own CSV (shifted means, different spreads, different
subsets of a categorical column's levels, missing values at one site). Before
round 1 the coordinator fits the preprocessing from the sites' profiles and ships
it; every round's global model then equals ``accord simulate`` on the one CSV the
site files were cut from (``partition = "natural"`` on its site column).
"""

import json

import pytest

from accord.coordinator.preparation import EVENT_KIND
from accord.store import SqlStore

from ..integration.test_preprocess_deploy import write_tables

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SITES = ("site-00", "site-01", "site-02")


def test_csv_sites_deployed_as_processes_train_the_simulated_model(deployment):
    root = deployment.root
    _, tables = write_tables(root)
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
        )

    deployed = json.loads(deployment.finish(coordinator, "coordinator"))
    simulated = deployment.simulate()

    assert [r["status"] for r in deployed["rounds"]] == ["completed"] * 3
    assert [r["global_digest"] for r in deployed["rounds"]] == [
        r["global_digest"] for r in simulated["rounds"]
    ]
    assert deployed["rejections"] == []
    store = SqlStore(deployment.store_url)
    try:
        kinds = [e.kind for e in store.events(deployed["run_id"])]
    finally:
        store.close()
    # the fit, the data contract and its drift flags: records, no refusal
    assert EVENT_KIND in kinds and "data_contract" in kinds
    assert set(kinds) <= {EVENT_KIND, "data_contract", "profile_flag"}
    for site in SITES:
        assert len(deployment.site_events(site, "encoded_data")) == 1
