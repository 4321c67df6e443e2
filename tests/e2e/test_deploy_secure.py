"""A secure deployment as separate processes: `accord pki`, coordinator, three sites.

The enrolment of ``accord pki`` gives each site its identity key and certificate
besides its TLS ones; the sites demand secure aggregation (``--min-threshold``),
and the model the deployment trains equals, bit for bit, the one ``accord
simulate`` trains under secure aggregation from the same fed.toml: the masks
cancel exactly in the ring and the encoding's rounding is seeded alike.
"""

import json

import pytest

pytest.importorskip("cryptography")  # the secagg extra

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SITES = ("site-00", "site-01", "site-02")
SECURE = """
[secure_aggregation]
mode = "masking"
stage_timeout_s = 30
"""


def test_a_secure_deployment_trains_the_secure_simulations_model(deployment):
    deployment.configure()
    with (deployment.root / "fed.toml").open("a") as f:
        f.write(SECURE)
    deployment.enrol()
    coordinator, port = deployment.coordinator()
    participants = [
        deployment.participant(site, port, "--min-threshold", "3") for site in SITES
    ]

    deployed = json.loads(deployment.finish(coordinator, "coordinator"))
    for site, process in zip(SITES, participants, strict=True):
        deployment.finish(process, site)
    simulated = deployment.simulate()

    assert [r["status"] for r in deployed["rounds"]] == ["completed"] * 3
    assert deployed["final_digest"] == simulated["final_digest"]
    assert deployed["rejections"] == []
    for site in SITES:
        assert (deployment.root / site / "identity-cert.pem").exists()
        stages = [e["stage"] for e in deployment.site_events(site, "sent_secagg")]
        assert stages.count("masked_input") == 3 and stages.count("unmask") == 3
        assert not deployment.site_events(site, "sent_update")


def test_a_coordinator_refuses_secure_aggregation_without_tls(deployment):
    deployment.configure()
    with (deployment.root / "fed.toml").open("a") as f:
        f.write(SECURE)

    done = deployment.spawn(
        "coordinator", "coordinator", "fed.toml", "--insecure", may_fail=True
    )

    assert done.wait(timeout=120) != 0
    assert "mutual TLS" in deployment.log("coordinator")
