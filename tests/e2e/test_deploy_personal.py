"""FedPer deployed: the head stays at each site and survives a site's restart.

``accord coordinator`` and three ``accord participant`` processes on loopback with
certificates from ``accord pki``, on ``sim:`` data whose fed.toml asks for
``[personalization] method = "fedper"`` with the second layer of a numpy MLP
private. Each site's update carries the first layer only (its size in the site's
log is the body's), its head is in its state folder as safetensors, and the
coordinator's models and stored figures never name the head. site-02 is SIGKILLed
while it trains round 2 and started again: it reads its head of round 1 back from
its state folder, and the run ends with the model, and the per-site figures,
that ``accord simulate`` gives, bit for bit (a site that lost its head would have
trained its round-2 body from a fresh head, and the model would differ).
"""

import json

import pytest
from safetensors.numpy import load_file

from accord.data.arrays import DatasetInfo
from accord.params import Params
from accord.store import SqlStore
from accord.task.numpy_task import mlp

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SITES = ("site-00", "site-01", "site-02")
HIDDEN = 8
FEATURES = 13  # wine

GATED_MLP = f"""
from gated import Gated
from accord.task.numpy_task import mlp


def build(info, gates="gates"):
    return Gated(mlp(info, hidden={HIDDEN}), gates)
"""

PERSONAL = """
[personalization]
method = "fedper"
private = ["w2", "b2"]
"""


def _configure(deployment) -> None:
    deployment.configure(gated=True)
    (deployment.root / "gated_mlp.py").write_text(GATED_MLP)
    fed = deployment.root / "fed.toml"
    text = fed.read_text().replace('"gated:build"', '"gated_mlp:build"')
    fed.write_text(text + PERSONAL)


def _site_figures(url: str, run_id: str) -> dict[tuple[int, str, str], float]:
    with SqlStore(url) as store:
        return {
            (r.number, m.participant, m.name): m.value
            for r in store.rounds(run_id)
            for m in r.metrics
            if m.scope == "site" and m.participant is not None
        }


def test_the_head_stays_at_the_site_and_survives_its_restart(deployment):
    _configure(deployment)
    deployment.enrol()
    deployment.close_gate("site-02", 2)
    coordinator, port = deployment.coordinator()
    sites = {s: deployment.participant(s, port) for s in SITES if s != "site-02"}
    first = deployment.participant("site-02", port)
    deployment.wait_until(lambda: deployment.held("site-02", 2), "site-02 in round 2")

    deployment.kill(first)  # SIGKILL mid-training: its head of round 1 is on disk
    sites["site-02"] = deployment.participant("site-02", port, name="site-02-again")
    deployment.wait_until(
        lambda: len(deployment.site_events("site-02", "connected")) >= 2,
        "site-02 back",
    )
    deployment.open_gate("site-02", 2, 1)

    out = json.loads(deployment.finish(coordinator, "coordinator"))
    for site, process in sites.items():
        deployment.finish(process, site if site != "site-02" else "site-02-again")
    simulated = deployment.simulate()
    run_id = out["run_id"]
    assert [r["succeeded"] for r in out["rounds"]] == [3, 3, 3]
    assert out["final_digest"] == simulated["final_digest"]
    deployed = _site_figures(deployment.store_url, run_id)
    assert deployed == _site_figures(
        f"sqlite:///{deployment.root}/sim.db", simulated["run_id"]
    )
    assert {(3, s, "personalized_accuracy") for s in SITES} <= set(deployed)
    full = mlp(DatasetInfo("wine", (FEATURES,), ("a", "b", "c")), hidden=HIDDEN)
    model = full.init_params(0)
    body = Params({n: model[n] for n in ("w1", "b1")})
    body_bytes = body.spec.packed_nbytes  # the packed w1 and b1: no head
    assert body_bytes < model.spec.packed_nbytes
    for site in SITES:
        sent = deployment.site_events(site, "sent_update")
        assert len(sent) >= 3 and {e["bytes"] for e in sent} == {body_bytes}, site
        folder = deployment.root / site / "state" / "personal" / run_id / site
        kept = sorted(folder.glob("round-*.safetensors"))
        assert [p.name for p in kept][-1] == "round-00003.safetensors", site
        assert sorted(load_file(kept[-1])) == ["b2", "w2"]
    with SqlStore(deployment.store_url) as store:
        stored = {m.name for r in store.rounds(run_id) for m in r.metrics}
    assert not any("w2" in n or "b2" in n for n in stored)
