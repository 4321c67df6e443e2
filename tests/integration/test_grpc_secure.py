"""Secure rounds over gRPC with mutual TLS: five participant runtimes in threads.

Each site is enrolled with the federation's CA (a TLS certificate and an Ed25519
identity certificate), presents its identity certificate when it subscribes, and
checks the roster's certificates itself before it trains. Dropouts are injected at
the sites (a connection that stops sending from a given stage on, as a crashed
site would), and the model is compared with a plain round without the same sites.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cryptography")  # the secagg extra

from accord.config import FedConfig, config_from_mapping
from accord.coordinator.executor import JobFailed, TrainDone
from accord.coordinator.runner import Coordinator
from accord.errors import TransportError
from accord.params import Params
from accord.participant.policy import SitePolicy
from accord.simulation.context import build_context
from accord.simulation.inprocess import InProcessExecutor
from accord.store import MemoryStore
from accord.transport import pki
from accord.transport.identity import IdentityCertificate, load_signing_identity
from accord.transport.jobs import STAGES

pytestmark = pytest.mark.timeout(120)

SITES = tuple(f"site-{i:02d}" for i in range(5))


def make_config(tmp_path: Path, mode: str = "masking", **extra) -> FedConfig:
    raw: dict = {
        "federation": {"name": "grpc-secure", "rounds": 1, "seed": 11},
        "data": {"dataset": "wine", "sites": len(SITES)},
        "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        # Long enough for honest sites on a loaded machine; sites that go silent
        # are given up on at once (``deploy_sites``'s SilenceClock).
        "round": {"deadline_s": 120, "quorum": 0.5},
        "evaluation": {"federated": False},
        "simulation": {"workers": 0},
        "secure_aggregation": {"mode": mode, "stage_timeout_s": 60},
    }
    for section, values in extra.items():
        raw[section] = {**raw.get(section, {}), **values}
    return config_from_mapping(raw, base_dir=tmp_path)


@pytest.fixture
def enrolled(federation):
    """SITES enrolled (the federation fixture enrols the first three)."""
    for name in SITES:
        if not (federation.root / name).exists():
            federation.enrol(name)
    return federation


@pytest.fixture
def deploy(enrolled, deploy_sites):
    """``deploy(config, **start)``: a coordinator and SITES ready to run."""
    return functools.partial(deploy_sites, SITES)


def initial_model(config: FedConfig) -> Params:
    return build_context(config).task.init_params(config.federation.seed)


def max_diff(a: Params, b: Params) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


class WithoutSites:
    """A simulation executor whose ``gone`` sites' updates fail: the plain reference."""

    def __init__(self, inner, gone) -> None:
        self.inner, self.gone = inner, set(gone)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    @property
    def participants(self):
        return self.inner.participants

    def next_event(self, timeout):
        event = self.inner.next_event(timeout)
        if isinstance(event, TrainDone) and event.participant in self.gone:
            self.inner.release(event)
            return JobFailed(event.participant, event.round, "train", "failed", "gone")
        return event


def plain_reference(tmp_path: Path, gone=()) -> Params:
    config = make_config(tmp_path, "off")
    ctx = build_context(config)
    executor = WithoutSites(InProcessExecutor(ctx), gone)
    return (
        Coordinator(config, executor=executor, store=MemoryStore())
        .run(ctx.task.init_params(config.federation.seed))
        .params
    )


# (a) The secure round's model is the plain round's.


def test_a_secure_deployment_round_gives_the_plain_deployment_model(deploy, tmp_path):
    config = make_config(tmp_path, federation={"rounds": 2})
    plain_config = make_config(tmp_path, "off", federation={"rounds": 2})
    plain = deploy(plain_config)
    plain_run, _ = plain.run(initial_model(plain_config))

    secure = deploy(config)
    secure_run, store = secure.run(initial_model(config))

    assert [r.status for r in secure_run.rounds] == ["completed"] * 2
    assert [r.succeeded for r in secure_run.rounds] == [5, 5]
    assert max_diff(secure_run.params, plain_run.params) < 1e-5
    assert secure_run.params.digest() != plain_run.params.digest()  # via the ring
    assert not secure.running.executor.rejections.snapshot()
    assert secure.ended == dict.fromkeys(SITES, "run finished")
    sent = secure.site_log("site-01", "sent_secagg")
    assert [e["stage"] for e in sent] == list(STAGES) * 2
    assert not secure.site_log("site-01", "sent_update")  # no update in the clear
    (record, _) = store.rounds(secure_run.run_id)
    assert all(o.status == "ok" and o.num_examples == 0 for o in record.outcomes)


# (b) Up to n - t sites may go silent at any stage: the sum is still exact.


@pytest.mark.parametrize("stage", STAGES)
def test_a_site_silent_from_a_stage_on_leaves_the_sum_exact(deploy, tmp_path, stage):
    # Silent from "advertise" means it never answers its training job: the round
    # waits for the training deadline (skipped once only site-03 owes an answer).
    config = make_config(tmp_path)
    deployed = deploy(config, silent={"site-03": stage})

    result, store = deployed.run(initial_model(config))

    contributed = STAGES.index(stage) > STAGES.index("masked_input")
    (record,) = store.rounds(result.run_id)
    assert record.status == "completed"
    outcome = {o.participant: o for o in record.outcomes}["site-03"]
    assert (outcome.status == "ok") is contributed
    if not contributed:
        assert outcome.status == "timeout" and stage in outcome.reason
    assert result.rounds[0].succeeded == (5 if contributed else 4)
    reference = plain_reference(tmp_path, gone=() if contributed else ["site-03"])
    assert max_diff(result.params, reference) < 1e-5


# (c) More than n - t silent: the round fails with the protocol's reason.


@pytest.mark.parametrize("stage", ["share_keys", "masked_input", "unmask"])
def test_more_than_n_minus_t_silent_sites_fail_the_round_and_keep_the_model(
    deploy, tmp_path, stage
):
    config = make_config(tmp_path)
    initial = initial_model(config)
    deployed = deploy(config, silent={"site-01": stage, "site-04": stage})

    result, store = deployed.run(initial)

    (record,) = store.rounds(result.run_id)
    assert record.status == "failed"
    reason = result.rounds[0].reason
    assert "secure aggregation aborted" in reason
    assert stage in reason
    assert result.params.digest() == initial.digest()
    assert record.checkpoint is None
    if stage == "share_keys":
        # Nobody revealed anything: no site got as far as its masked input.
        assert not any(
            e["stage"] == "masked_input"
            for site in SITES
            for e in deployed.site_log(site, "sent_secagg")
        )


# (d) Identity certificates come from this federation's CA only.


def _foreign_identity(federation, tmp_path: Path, name: str) -> Path:
    """``name``'s TLS files with an identity key certified by another CA."""
    other = tmp_path / "other-ca"
    if not other.exists():
        pki.init_ca(other, federation="other", passphrase=b"another passphrase")
    source = tmp_path / f"other-{name}"
    csr = pki.request(source, name, role="participant")
    pki.sign(other, csr, passphrase=b"another passphrase", role="participant")
    folder = tmp_path / f"forged-{name}"
    folder.mkdir()
    for f in (pki.KEY, pki.CERT, pki.CA_CERT):
        (folder / f).write_bytes((federation.root / name / f).read_bytes())
    for f in (pki.IDENTITY_KEY, pki.IDENTITY_CERT):
        (folder / f).write_bytes((source / f).read_bytes())
    (folder / pki.IDENTITY_KEY).chmod(0o600)
    return folder


def test_an_identity_certificate_of_another_ca_is_refused_at_hello(
    enrolled, coordinator, tmp_path
):
    folder = _foreign_identity(enrolled, tmp_path, "site-01")
    client = coordinator.client("site-01", folder=folder)

    with pytest.raises(TransportError) as info:
        next(client.subscribe())

    assert info.value.code == "UNAUTHENTICATED"
    assert "not issued by this federation's CA" in str(info.value)
    assert ("site-01", None, "unauthenticated") in coordinator.events()
    assert "site-01" not in coordinator.executor.identity_keys(["site-01"])


def test_a_site_refuses_a_secure_task_with_a_certificate_of_another_ca(
    deploy, enrolled, tmp_path
):
    config = make_config(tmp_path)
    initial = initial_model(config)
    deployed = deploy(config)
    assert deployed.running.executor.wait_for(SITES, 20) == set(SITES)
    # The coordinator (or whoever sits in its place) hands out a foreign key.
    forged = load_signing_identity(_foreign_identity(enrolled, tmp_path, "site-04"))
    book = deployed.running.executor._identities
    real = book.keys(["site-04"])["site-04"]
    cert = IdentityCertificate("site-04", forged.certificate, real, _far_future())
    book.present("site-04", cert)

    result, store = deployed.run(initial)

    (record,) = store.rounds(result.run_id)
    assert record.status == "failed"
    assert result.params.digest() == initial.digest()
    for site in ("site-00", "site-01", "site-02", "site-03"):
        (refused,) = deployed.site_log(site, "refused_task")
        assert "'site-04' was not issued by this federation's CA" in refused["reason"]
        outcome = {o.participant: o for o in record.outcomes}[site]
        assert outcome.status == "rejected" and "refused by the site" in outcome.reason
    assert not any(deployed.site_log(s, "sent_secagg") for s in SITES)


def _far_future():
    from datetime import UTC, datetime

    return datetime(2100, 1, 1, tzinfo=UTC)


# (f) The site's policy.


def test_a_site_requiring_secure_aggregation_refuses_a_plain_task(deploy, tmp_path):
    config = make_config(tmp_path, "off")
    policy = SitePolicy(require_secure_aggregation=True)
    deployed = deploy(config, policies={"site-02": policy})

    result, store = deployed.run(initial_model(config))

    (record,) = store.rounds(result.run_id)
    outcome = {o.participant: o for o in record.outcomes}["site-02"]
    assert outcome.status == "rejected"
    assert "site policy" in outcome.reason and "plain" in outcome.reason
    (refused,) = deployed.site_log("site-02", "refused_task")
    assert "--require-secure-aggregation" in refused["reason"]
    assert not deployed.site_log("site-02", "sent_update")
    assert result.rounds[0].succeeded == 4


def test_a_site_refuses_a_threshold_below_its_minimum(deploy, tmp_path):
    config = make_config(tmp_path)  # five sites: threshold 4 by default
    deployed = deploy(config, policies={"site-00": SitePolicy(min_threshold=5)})

    result, store = deployed.run(initial_model(config))

    (record,) = store.rounds(result.run_id)
    outcome = {o.participant: o for o in record.outcomes}["site-00"]
    assert outcome.status == "rejected"
    assert "threshold 4 is below this site's minimum of 5" in outcome.reason
    assert deployed.site_log("site-00", "refused_task")
    assert record.status == "completed" and result.rounds[0].succeeded == 4
    assert max_diff(result.params, plain_reference(tmp_path, ["site-00"])) < 1e-5


def test_a_site_enrolled_without_identity_key_sits_secure_rounds_out(
    deploy, enrolled, tmp_path
):
    # Enrolled before identity keys existed: TLS files only.
    old = tmp_path / "old-site-02"
    old.mkdir()
    for f in (pki.KEY, pki.CERT, pki.CA_CERT):
        (old / f).write_bytes((enrolled.root / "site-02" / f).read_bytes())
    config = make_config(tmp_path)
    deployed = deploy(config, folders={"site-02": old})

    result, store = deployed.run(initial_model(config))

    (record,) = store.rounds(result.run_id)
    assert record.status == "completed" and result.rounds[0].succeeded == 4
    outcome = {o.participant: o for o in record.outcomes}["site-02"]
    assert outcome.status == "failed" and "no identity key" in outcome.reason
    assert max_diff(result.params, plain_reference(tmp_path, ["site-02"])) < 1e-5
