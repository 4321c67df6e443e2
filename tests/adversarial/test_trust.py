"""Attacks on a site's trust in its coordinator (issue 8, "Revocation").

Real gRPC, real mutual TLS, certificates from a real federation CA. Each site runs
the participant runtime as ``accord participant`` does: its handshake trusts the
coordinator certificate pinned at enrolment (``coordinator.pem``), and it checks
the CRL the coordinator sends with every message against its own CA certificate.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from accord.config import config_from_mapping
from accord.errors import AuthenticationFailed, TransportError
from accord.participant.backoff import Backoff
from accord.participant.data import LocalData
from accord.participant.runtime import ParticipantRuntime
from accord.participant.sitelog import SiteLog
from accord.simulation.context import build_context
from accord.store import SqlStore
from accord.transport import pki
from accord.transport.client import CoordinatorClient
from accord.transport.coordinator_pin import (
    PIN,
    SITE_CRL,
    CoordinatorPin,
    pin_coordinator,
    pinned_identity,
)
from accord.transport.executor import GrpcExecutor, wire_run_id
from accord.transport.server import serve
from accord.transport.trust import TrustStore

pytestmark = pytest.mark.timeout(120)

SITE = "site-00"


def _crl_number(folder: Path) -> int:
    crl = x509.load_pem_x509_crl((folder / SITE_CRL).read_bytes())
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


class Site:
    """``accord participant`` for one enrolled site, in a thread, with its pin."""

    def __init__(
        self, folder: Path, target: str, logs: Path, *, give_up_after_s=None
    ) -> None:
        config = config_from_mapping(
            {
                "federation": {"name": "trust", "rounds": 1, "seed": 3},
                "data": {"dataset": "wine", "sites": 3},
                "task": {"factory": "accord.task.numpy_task:softmax_regression"},
                "simulation": {"workers": 0},
            },
            base_dir=logs,
        )
        ctx = build_context(config)
        site = ctx.site(SITE)
        self.folder = folder
        self.log_path = logs / f"{folder.name}.jsonl"
        self.pin = CoordinatorPin.load(folder)
        files = pki.load_identity(folder)
        pin = self.pin

        def connect() -> CoordinatorClient:
            trusted = pinned_identity(files, pin) if pin is not None else files
            return CoordinatorClient(target, identity=trusted)

        self.runtime = ParticipantRuntime(
            connect,
            ctx.task,
            LocalData(SITE, ctx.data.info, site.train, site.holdout),
            log=SiteLog(self.log_path),
            backoff=Backoff(initial_s=0.05, maximum_s=0.2),
            give_up_after_s=give_up_after_s,
            pin=pin,
        )
        self.ended: object = None
        self.stop = threading.Event()

    def run(self) -> object:
        try:
            self.ended = self.runtime.run(self.stop)
        except Exception as exc:  # the test looks at it
            self.ended = exc
        finally:
            self.runtime.log.close()
        return self.ended

    def events(self, event: str) -> list[dict]:
        return [e for e in SiteLog.read(self.log_path) if e["event"] == event]


def _serve_as(federation, identity: Path, directory: Path, *, trust: TrustStore):
    """A coordinator for SITE presenting ``identity``'s certificate."""
    directory.mkdir()
    store = SqlStore(f"sqlite:///{directory}/runs.db")
    run_id = store.create_run(name="trust", config={}, seed=0, rounds_planned=1)
    executor = GrpcExecutor(
        (SITE,), run_id=wire_run_id(run_id), spool_dir=directory, grace_s=30.0
    )
    server = serve(
        executor,
        listen="127.0.0.1:0",
        identity=pki.load_identity(identity),
        trust=trust,
    )
    return executor, server, store


@pytest.fixture
def serve_as(federation, tmp_path):
    started = []

    def start(identity: Path, *, trust: TrustStore | None = None):
        directory = tmp_path / f"coordinator-as-{len(started)}"
        running = _serve_as(
            federation,
            identity,
            directory,
            trust=trust or TrustStore.load(federation.ca),
        )
        started.append(running)
        return running

    yield start
    for executor, server, store in started:
        executor.close()
        server.stop(0.5)
        store.close()


def test_a_site_refuses_a_coordinator_certificate_revoked_after_it_pinned_it(
    federation, serve_as, tmp_path
):
    # Arrange: the site pinned the coordinator's certificate at enrolment (CRL 1);
    # then the operator revokes it (its key was stolen), and the thief serves with
    # it, passing the CA's current CRL on as every coordinator does.
    folder = federation.root / SITE
    pinned = (folder / PIN).read_bytes()
    assert pinned == (federation.root / "coordinator" / pki.CERT).read_bytes()
    assert _crl_number(folder) == 1
    federation.revoke("coordinator")
    executor, server, _ = serve_as(federation.root / "coordinator")
    site = Site(folder, f"localhost:{server.port}", tmp_path)

    # Act
    ended = site.run()

    # Assert: the site took the newer CRL from the welcome, left, and refused to
    # dial again; the CRL it keeps now names the revoked certificate.
    assert isinstance(ended, AuthenticationFailed)
    assert "trusts no coordinator certificate" in str(ended)
    assert "revoked" in str(ended)
    assert [e["number"] for e in site.events("crl_updated")] == [2]
    (revoked,) = site.events("coordinator_revoked")
    assert revoked["fingerprints"] == list(site.pin.fingerprints)
    assert len(site.events("refused_coordinator")) == 1
    assert site.events("received_task") == []
    assert _crl_number(folder) == 2
    # A restarted site refuses before any connection: its CRL is on disk.
    with pytest.raises(AuthenticationFailed, match="is revoked"):
        CoordinatorPin(folder).roots()


def test_a_coordinator_certificate_the_site_did_not_pin_is_refused(
    federation, serve_as, tmp_path
):
    # Arrange: a second coordinator certificate from the same CA, for the same
    # host names (an insider with the CA's help, or a mis-issued certificate).
    rogue = federation.enrol("rogue-coordinator", "coordinator")
    _, server, _ = serve_as(rogue)
    pinned_site = Site(  # one failed dial ends it
        federation.root / SITE, f"localhost:{server.port}", tmp_path, give_up_after_s=0
    )

    # Act
    ended = pinned_site.run()

    # Assert: the handshake failed; no subscription reached the rogue server.
    assert isinstance(ended, TransportError)
    (dial,) = pinned_site.events("disconnected")
    assert dial["code"] == "UNAVAILABLE"
    assert pinned_site.events("connected") == []


def test_without_the_pin_the_same_rogue_certificate_is_accepted(
    federation, serve_as, tmp_path, background
):
    # The control for the test above: the rogue certificate is otherwise valid,
    # so it is the pin, not a broken certificate, that refuses it.
    rogue = federation.enrol("rogue-coordinator", "coordinator")
    executor, server, _ = serve_as(rogue)
    folder = federation.root / SITE
    (folder / PIN).unlink()
    site = Site(folder, f"localhost:{server.port}", tmp_path)
    background(site.run)

    connected = executor.wait_for([SITE], 30)

    assert connected == {SITE}
    executor.close()


def _forged_crl(ca_pem: bytes, number: int) -> bytes:
    """A CRL naming the federation's CA as issuer, signed by another key."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    now = datetime.now(UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(days=30))
        .add_extension(x509.CRLNumber(number), critical=False)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("attack", ["forged", "stale"])
def test_a_forged_or_stale_crl_is_refused_and_the_sites_own_stays(
    federation, serve_as, tmp_path, background, attack, monkeypatch
):
    # Arrange: a revocation (site-02) the site learnt of: it holds CRL 2.
    folder = federation.root / SITE
    old_crl = (federation.ca / pki.CRL).read_bytes()  # number 1
    federation.revoke("site-02")
    coordinator_cert = (federation.root / "coordinator" / pki.CERT).read_bytes()
    pin_coordinator(
        folder, coordinator_cert, crl_pem=(federation.ca / pki.CRL).read_bytes()
    )
    held = (folder / SITE_CRL).read_bytes()
    assert _crl_number(folder) == 2
    # The pinned coordinator (compromised, or fed an old copy of the CA folder)
    # sends a CRL that would hide the revocation.
    trust = TrustStore.load(federation.ca)
    executor, server, _ = serve_as(federation.root / "coordinator", trust=trust)
    if attack == "forged":
        sent = _forged_crl((federation.ca / pki.CA_CERT).read_bytes(), 99)
        reason = "not signed by this site's CA"
    else:
        sent = x509.load_pem_x509_crl(old_crl).public_bytes(serialization.Encoding.DER)
        reason = "older than number 2"
    monkeypatch.setattr(trust, "crl_der", lambda: sent)
    site = Site(folder, f"localhost:{server.port}", tmp_path)

    # Act: the site dials and receives the welcome carrying the bad CRL.
    thread = background(site.run)
    assert executor.wait_for([SITE], 30) == {SITE}
    executor.close()  # goodbye: the runtime returns
    thread.join(30)

    # Assert: refused, recorded, the site stayed (the CRL only ever adds
    # refusals, so a bad one costs nothing) and its own CRL is untouched.
    assert isinstance(site.ended, str), site.ended
    (refusal,) = site.events("refused_crl")
    assert reason in refusal["reason"]
    assert site.events("crl_updated") == []
    assert (folder / SITE_CRL).read_bytes() == held
    assert site.pin.crl_number == 2
