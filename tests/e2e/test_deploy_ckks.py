"""A CKKS deployment as separate processes: key holder, coordinator, three sites.

``accord ckks keys`` makes the key; the coordinator gets the public context, each
site the secret one. Only ciphertexts leave the sites, and the run trains the CKKS
simulation's model from the same fed.toml, within CKKS noise (the keys differ, so
the digests do).
"""

import json
import math

import pytest

pytest.importorskip("tenseal")
pytest.importorskip("cryptography")  # accord.secagg imports the secagg extra

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SITES = ("site-00", "site-01", "site-02")
CKKS = """
[secure_aggregation]
mode = "ckks"
stage_timeout_s = 30
"""


def test_a_ckks_deployment_trains_the_ckks_simulations_model(deployment):
    deployment.configure()
    with (deployment.root / "fed.toml").open("a") as f:
        f.write(CKKS)
    deployment.enrol()
    deployment.accord("ckks", "keys", "--out", "keys")
    coordinator, port = deployment.coordinator("--ckks-public", "keys/ckks-public.bin")
    participants = [
        deployment.participant(
            site,
            port,
            "--ckks-context",
            "keys/ckks-secret.bin",
            "--require-secure-aggregation",
        )
        for site in SITES
    ]

    deployed = json.loads(deployment.finish(coordinator, "coordinator"))
    for site, process in zip(SITES, participants, strict=True):
        deployment.finish(process, site)
    simulated = deployment.simulate()

    assert [r["status"] for r in deployed["rounds"]] == ["completed"] * 3
    assert deployed["rejections"] == []
    for mine, theirs in zip(deployed["rounds"], simulated["rounds"], strict=True):
        assert mine["metrics"].keys() == theirs["metrics"].keys()
        for name, value in mine["metrics"].items():
            # A float32 model: CKKS noise can flip a last bit, which training
            # carries into the next rounds' scores.
            assert math.isclose(value, theirs["metrics"][name], abs_tol=1e-4), name
    for site in SITES:
        stages = [e["stage"] for e in deployment.site_events(site, "sent_secagg")]
        assert stages.count("ckks_upload") == 3
        assert not deployment.site_events(site, "sent_update")
    decrypted = sum(
        e["stage"] == "ckks_decrypt"
        for site in SITES
        for e in deployment.site_events(site, "sent_secagg")
    )
    assert decrypted == 3  # one contributor a round
