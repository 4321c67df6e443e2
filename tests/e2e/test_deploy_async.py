"""``accord coordinator`` with ``[round] mode = "async"``: separate processes, mTLS.

The coordinator and three participants as processes (the ``deployment`` fixture);
the run makes its versions from updates folded in arrival order, records each like
a round with the staleness of every contribution, and its ledger verifies with only
the CA certificate. (The slow-site and replay cases are in
``tests/integration/test_grpc_async.py`` and
``tests/unit/transport/test_executor_versions.py``.)
"""

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SITES = ("site-00", "site-01", "site-02")
ASYNC = """[round]
deadline_s = 120
mode = "async"
buffer_size = 2
max_staleness = 3
[evaluation]
federated = false
"""


def test_the_coordinator_runs_async_versions_over_mutual_tls(deployment) -> None:
    deployment.configure()
    fed = deployment.root / "fed.toml"
    text = fed.read_text()
    assert "[round]\ndeadline_s = 120\n" in text
    fed.write_text(text.replace("[round]\ndeadline_s = 120\n", ASYNC))
    deployment.enrol()
    coordinator, port = deployment.coordinator()
    participants = [deployment.participant(site, port) for site in SITES]

    deployed = json.loads(deployment.finish(coordinator, "coordinator"))
    for site, process in zip(SITES, participants, strict=True):
        deployment.finish(process, site)

    assert [r["status"] for r in deployed["rounds"]] == ["completed"] * 3
    shown = json.loads(
        deployment.accord(
            "runs", "show", "latest", "--store", deployment.store_url, "--json"
        ).stdout
    )
    ok = [o for r in shown["rounds"] for o in r["outcomes"] if o["status"] == "ok"]
    assert len(ok) == 2 * 3  # buffer_size updates per version
    assert all(0 <= o["metrics"]["staleness"] <= 3 for o in ok)
    deployment.accord(
        "audit", "export", "latest", "--store", deployment.store_url, "-o", "l.jsonl"
    )
    verified = json.loads(
        deployment.accord(
            "audit", "verify", "l.jsonl", "--trust", "ca", "--json"
        ).stdout
    )
    assert verified["ok"] and verified["final_model"] == deployed["final_digest"]
    assert verified["rounds"] == 3
