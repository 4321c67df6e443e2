"""A real deployment: coordinator and three participants as separate processes.

Certificates come from ``accord pki`` (a federation CA, one request and one signed
certificate per site), every connection is mutual TLS on loopback, and the
coordinator listens on a port the OS picks. After three rounds the global model
must equal, bit for bit, the one ``accord simulate`` trains from the same fed.toml
(and the run's ledger verifies with only the CA certificate):
the round loop folds updates in selection order, seeds come from the roster index,
and each participant trains with one BLAS thread as a simulation worker does.
The processes are started and, whatever happens, killed by the ``deployment``
fixture (``conftest.py``); the faults are in ``test_deploy_faults.py``.
"""

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SITES = ("site-00", "site-01", "site-02")


def test_three_processes_over_mutual_tls_train_the_simulated_model_bit_for_bit(
    deployment,
):
    deployment.configure()
    deployment.enrol()
    coordinator, port = deployment.coordinator()
    participants = [deployment.participant(site, port) for site in SITES]

    deployed = json.loads(deployment.finish(coordinator, "coordinator"))
    for site, process in zip(SITES, participants, strict=True):
        deployment.finish(process, site)
    simulated = deployment.simulate()

    assert [r["status"] for r in deployed["rounds"]] == ["completed"] * 3
    assert deployed["final_digest"] == simulated["final_digest"]
    assert deployed["rejections"] == []
    for site in SITES:
        sent = deployment.site_events(site, "sent_update")
        assert len(sent) == 3 and all(
            e["bytes"] > 0 and len(e["digest"]) == 64 for e in sent
        )
    # The run's ledger, exported and verified with nothing but the CA certificate;
    # each site countersigned rounds 1 and 2 with its next update.
    deployment.accord(
        "audit", "export", "latest", "--store", deployment.store_url, "-o", "l.jsonl"
    )
    (deployment.root / "auditor").mkdir()
    (deployment.root / "auditor" / "ca.pem").write_bytes(
        (deployment.root / "ca" / "ca.pem").read_bytes()
    )
    verified = json.loads(
        deployment.accord(
            "audit", "verify", "l.jsonl", "--trust", "auditor", "--json"
        ).stdout
    )
    assert verified["ok"] and verified["final_model"] == deployed["final_digest"]
    assert (verified["rounds"], verified["receipts"]) == (3, 6)


def test_a_participant_killed_mid_round_is_a_dropout_and_rejoins_later(deployment):
    # site-02 is killed while it trains round 2; site-00's training of round 2 waits
    # at a gate, so that the round is still open when site-02's job fails (after
    # grace_s) and when site-02, started again, is back: it must sit round 2 out
    # and contribute to round 3.
    deployment.configure(gated=True, grace_s=1)
    deployment.enrol()
    deployment.close_gate("site-02", 2)
    deployment.close_gate("site-00", 2)
    coordinator, port = deployment.coordinator()
    participants = {site: deployment.participant(site, port) for site in SITES}
    deployment.wait_until(
        lambda: deployment.held("site-02", 2) and deployment.held("site-00", 2),
        "site-00 and site-02 training round 2",
    )

    deployment.kill(participants["site-02"])
    deployment.wait_until(
        lambda: (
            "site-02's train job of round 2 failed" in deployment.log("coordinator")
        ),
        "the coordinator to give up on site-02's round 2",
    )
    connections = len(deployment.site_events("site-02", "connected"))
    participants["site-02"] = deployment.participant(
        "site-02", port, name="site-02-again"
    )
    deployment.wait_until(
        lambda: len(deployment.site_events("site-02", "connected")) > connections,
        "site-02 to connect again",
    )
    deployment.open_gate("site-00", 2)

    rounds = json.loads(deployment.finish(coordinator, "coordinator"))["rounds"]
    for site, process in participants.items():
        deployment.finish(process, "site-02-again" if site == "site-02" else site)
    assert [r["status"] for r in rounds] == ["completed"] * 3
    assert [r["succeeded"] for r in rounds] == [3, 2, 3]
    sent = [e["round"] for e in deployment.site_events("site-02", "sent_update")]
    assert sent == [1, 3]
