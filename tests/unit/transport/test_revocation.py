"""A revocation reaches the calls already open (the trust store's files change)."""

from accord.transport import pki
from accord.transport.revocation import RevocationWatch
from accord.transport.trust import TrustStore

from .conftest import PASS


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_revoked_participant_with_an_open_call_is_reported_once(ca, enrol):
    for name in ("site-a", "site-b"):
        enrol(name)
    trust, seen = TrustStore.load(ca), []
    watch = RevocationWatch(trust, lambda n, r: seen.append((n, r)), clock=Clock())
    pem = {n: (ca.parent / n / pki.CERT).read_bytes() for n in ("site-a", "site-b")}
    untrack = {n: watch.track(n, p) for n, p in pem.items()}
    assert watch.check() == []

    pki.revoke(ca, "site-b", passphrase=PASS)

    assert watch.check() == ["site-b"]
    ((name, reason),) = seen
    assert name == "site-b" and "was revoked on" in reason
    assert watch.check() == []  # reported once
    untrack["site-a"]()
    untrack["site-b"]()


def test_nothing_is_reverified_until_the_trust_changes_or_a_full_check_is_due(
    ca, enrol
):
    enrol("site-a")
    clock, seen = Clock(), []
    trust = TrustStore.load(ca)
    watch = RevocationWatch(
        trust, lambda n, r: seen.append(n), full_every_s=60, clock=clock
    )
    watch.track("site-a", (ca.parent / "site-a" / pki.CERT).read_bytes())
    assert watch.check() == []  # the first look at the trust store
    # A certificate the store no longer accepts, without any file changing: only a
    # full check finds it.
    watch.track("impostor", (ca / pki.CA_CERT).read_bytes())

    clock.now = 59.0
    assert watch.check() == []
    clock.now = 60.0
    assert watch.check() == ["impostor"]


def test_an_untracked_call_is_not_reported(ca, enrol):
    enrol("site-a")
    watch = RevocationWatch(TrustStore.load(ca), lambda n, r: None, clock=Clock())
    untrack = watch.track("site-a", (ca.parent / "site-a" / pki.CERT).read_bytes())
    watch.check()
    untrack()

    pki.revoke(ca, "site-a", passphrase=PASS)

    assert watch.check() == []
