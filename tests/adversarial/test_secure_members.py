"""A roster member running modified code against masking, and what stops it.

Pure protocol objects (no sockets), driven as tests/unit/secagg does: keys no
honest site advertises (small-order X25519 points, two equal keys, a key copied
from another member) are refused by the coordinator on arrival, naming the sender;
an honest participant refuses them too, should a coordinator relay them; and an
unmasked sum no clipped, weight-bounded inputs can produce is not released.
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque

import numpy as np
import pytest

from accord.config import SecureAggregationConfig
from accord.coordinator.executor import JobFailed, SecAggReply, TrainJob
from accord.coordinator.round import RoundPlan
from accord.coordinator.secure import SecureCollector
from accord.errors import SecAggAborted, SubmissionRefused
from accord.params import Params
from accord.secagg import transcript as tx
from accord.secagg.crypto import identity_public, sign, small_order
from accord.secagg.encoding import FixedPointEncoding
from accord.secagg.messages import KeyDirectory, Stage
from accord.secagg.session import SecureSession
from accord.task.protocol import TrainConfig
from accord.transport.secagg_wire import decode_from_coordinator, encode

from ..unit.secagg.conftest import Harness

_P = 2**255 - 19
_ORDER8 = bytes.fromhex(
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"
)


def _le(u: int) -> bytes:
    return u.to_bytes(32, "little")


#: Every encoding of a small-order point X25519 accepts: the canonical ones, the
#: non-canonical p and p + 1, and a high bit set (X25519 ignores it).
SMALL_ORDER = {
    "zero": bytes(32),
    "one": _le(1),
    "minus-one": _le(_P - 1),
    "order8": _ORDER8,
    "order8-b": _le(
        39382357235489614581723060781553021112529911719440698176882885853963445705823
    ),
    "p": _le(_P),
    "p+1": _le(_P + 1),
    "order8-high-bit": _ORDER8[:31] + bytes([_ORDER8[31] | 0x80]),
}


def resigned(h: Harness, who: str, **change):
    """``who``'s real advertisement with fields changed, signed again by ``who``."""
    advert = h.parts[who].advertise()
    advert = dataclasses.replace(advert, **change)
    statement = tx.advertisement(
        h.config,
        who,
        advert.encryption_key,
        advert.masking_key,
        advert.seed_commitment,
    )
    return dataclasses.replace(advert, signature=sign(h.identities[who], statement))


def relayed(h: Harness, bad) -> KeyDirectory:
    """The directory a coordinator that skipped its checks would send."""
    honest = [h.parts[p].advertise() for p in sorted(h.parts) if p != bad.sender]
    for advert in honest:
        h.server.receive(advert)
    adverts = sorted([*honest, bad], key=lambda a: a.sender)
    return KeyDirectory("run-1", 1, tuple(adverts))


def test_the_small_order_list_is_what_x25519_refuses():
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )

    private = X25519PrivateKey.from_private_bytes(bytes(range(32)))
    for name, raw in SMALL_ORDER.items():
        assert small_order(raw), name
        with pytest.raises(ValueError):
            private.exchange(X25519PublicKey.from_public_bytes(raw))
    rng = np.random.default_rng(5)
    for _ in range(200):
        raw = rng.bytes(32)
        private.exchange(X25519PublicKey.from_public_bytes(raw))  # no error
        assert not small_order(raw)


@pytest.mark.parametrize("field", ["encryption_key", "masking_key"])
@pytest.mark.parametrize("point", list(SMALL_ORDER.values()), ids=list(SMALL_ORDER))
def test_the_coordinator_refuses_a_signed_small_order_key(point, field):
    h = Harness(n=5)
    with pytest.raises(SubmissionRefused, match="small-order X25519 point") as err:
        h.server.receive(resigned(h, "site04", **{field: point}))
    assert err.value.kind == "malformed"
    assert err.value.participant == "site04"


@pytest.mark.parametrize("field", ["encryption_key", "masking_key"])
def test_an_honest_participant_refuses_a_relayed_small_order_key(field):
    h = Harness(n=5)
    directory = relayed(h, resigned(h, "site04", **{field: _ORDER8}))

    with pytest.raises(SecAggAborted, match="'site04' carries a small-order"):
        h.parts["site00"].share_keys(directory)


@pytest.mark.parametrize("crypto_error", [False, True])
def test_a_deployed_site_reports_the_failed_stage_and_keeps_serving(
    tmp_path, monkeypatch, crypto_error
):
    """A relayed small-order key, or a crypto error no check foresaw, fails the
    stage for this site; the participant process stays up for the next round."""
    from accord.participant.secure import SecureSite
    from accord.transport.messages import Goodbye, TaskOrder

    from ..unit.participant.test_runtime import Script, runtime

    h = Harness(n=5)
    directory = relayed(h, resigned(h, "site04", encryption_key=bytes(32)))
    if crypto_error:  # as if the directory check had let it through
        monkeypatch.setattr("accord.secagg.dealing.small_order", lambda _: False)
    session = SecureSession.__new__(SecureSession)
    session.clipped = 0
    session._vector = h.inputs["site00"].copy()
    session._state = h.parts["site00"]
    order = TaskOrder(
        "run-1", 1, "secagg", "", stage="share_keys", payload=encode(directory)
    )
    script = Script([order, Goodbye("run-1", "done")])
    r = runtime(script, tmp_path=tmp_path)
    site = SecureSite(None, None)
    site._session = ("run-1", 1, session)
    r._secure._masking = site

    try:
        assert r.run() == "done"
    finally:
        r.log.close()
    (failure,) = script.failures
    assert failure.kind == "secagg"


def test_an_advertisement_with_two_equal_keys_is_refused_on_arrival():
    h = Harness(n=5)
    own = h.parts["site04"]._encryption.public_bytes()
    bad = resigned(h, "site04", encryption_key=own, masking_key=own)

    with pytest.raises(SubmissionRefused, match="keys are the same"):
        h.server.receive(bad)


def test_a_key_copied_from_another_member_is_refused_on_arrival():
    h = Harness(n=5)
    honest = h.parts["site00"].advertise()
    h.server.receive(honest)
    bad = resigned(h, "site04", masking_key=honest.encryption_key)

    with pytest.raises(SubmissionRefused, match="another participant advertised"):
        h.server.receive(bad)
    for p in ("site01", "site02", "site03"):
        h.server.receive(h.parts[p].advertise())  # the others are unaffected


def test_the_coordinator_aborts_cleanly_if_a_small_order_key_got_past_it(
    monkeypatch,
):
    """The second line: unmasking with such a key aborts the sum, naming it."""
    from accord.secagg import server as server_module
    from accord.secagg.messages import (
        ConsistencySignature,
        MaskedInput,
        RevealedShare,
        ShareKind,
        UnmaskShares,
    )

    monkeypatch.setattr(server_module, "small_order", lambda _: False)
    h = Harness(n=5, threshold=3)
    cfg = h.config
    for p in ["site00", "site01", "site02", "site03"]:
        h.server.receive(h.parts[p].advertise())
    bad = resigned(h, "site04", masking_key=bytes(32))
    h.parts["site04"]._advert = bad  # its own (modified) code deals on it
    h.server.receive(bad)
    directory = h.server.key_directory()
    for p in ("site02", "site03", "site04"):  # colluders skip the directory check
        monkeypatch.setattr("accord.secagg.dealing.small_order", lambda _: False)
        h.server.receive(h.parts[p].share_keys(directory))
    for p in ("site00", "site01"):
        h.server.receive(h.parts[p].share_keys(directory))
    deliveries = h.server.deliver_shares()
    # site00 and site01 (honest) drop out before their masked input.
    for p in ["site02", "site03"]:
        part = h.parts[p]
        dealings = {d.dealer: d for d in deliveries[p].dealings}
        for s in deliveries[p].shares:
            part._receive_bundle(s, dealings)
        h.server.receive(MaskedInput("run-1", 1, p, os.urandom(4 * cfg.vector_size)))
    h.server.receive(
        h.parts["site04"].masked_input(deliveries["site04"], h.inputs["site04"])
    )
    u3 = h.server.survivor_list()
    statement = tx.survivor_statement(
        cfg, u3.survivors, tx.directory_digest(cfg, directory.keys)
    )
    for p in u3.survivors:
        h.server.receive(
            ConsistencySignature("run-1", 1, p, sign(h.identities[p], statement))
        )
    h.server.survivor_signatures()
    for p in u3.survivors:
        bundles = h.parts[p]._bundles
        shares = []
        for dealer in sorted(bundles):
            kind = ShareKind.SELF_MASK if dealer in u3.survivors else ShareKind.MASK_KEY
            value, salt = bundles[dealer].share(kind)
            shares.append(
                RevealedShare(dealer, kind, bundles[dealer].index, value, salt)
            )
        h.server.receive(UnmaskShares("run-1", 1, p, tuple(shares)))
    with pytest.raises(SecAggAborted, match="agrees on no secret"):
        h.server.aggregate()


# -- the unmasked sum -------------------------------------------------------------


class FakeExecutor:
    """Runs SecureSessions in-process; ``words`` overrides a site's ring input."""

    def __init__(self, h: Harness, updates, examples, words=None):
        self.h = h
        self.updates = updates
        self.examples = examples
        self.words = words or {}
        self.sessions = {}
        self.queue: deque = deque()
        self.now = 0.0

    def clock(self):
        return self.now

    def participants(self):
        return tuple(self.h.identities)

    def identity_keys(self, ps):
        return {p: identity_public(self.h.identities[p]) for p in ps}

    def submit_train(self, round_number, jobs):
        keys = self.identity_keys(list(self.h.identities))
        for j in jobs:
            p = j.participant
            if p in self.words:
                s = SecureSession.of_words(
                    j.secure, p, self.h.identities[p], keys, self.words[p]
                )
            else:
                s = SecureSession(
                    j.secure,
                    p,
                    self.h.identities[p],
                    keys,
                    self.updates[p],
                    self.examples[p],
                    seed=7,
                )
            self.sessions[p] = s
            self.queue.append(
                SecAggReply(p, round_number, "advertise", encode(s.advertise()))
            )

    def submit_secagg(self, round_number, stage, payloads):
        for p, blob in payloads.items():
            try:
                msg = decode_from_coordinator(blob, Stage(stage))
                reply = self.sessions[p].step(msg)
            except SecAggAborted as exc:
                self.queue.append(
                    JobFailed(p, round_number, "secagg", "failed", exc.reason)
                )
                continue
            self.queue.append(SecAggReply(p, round_number, stage, encode(reply)))

    def next_event(self, timeout):
        if self.queue:
            return self.queue.popleft()
        self.now += timeout or 1.0
        return None

    def release(self, event):
        pass

    def abandon(self, round_number, participants):
        pass

    def publish(self, *a, **k):
        pass

    def submit_eval(self, *a, **k):
        pass

    def close(self):
        pass


def run_collector(words_for_malicious, *, n=5, values=4, examples=1000, value=0.1):
    h = Harness(n=n)
    spec_update = {
        p: Params({"w": np.full(values, value, np.float32)}) for p in h.identities
    }
    words = None if words_for_malicious is None else {"site04": words_for_malicious}
    ex = FakeExecutor(h, spec_update, dict.fromkeys(h.identities, examples), words)
    settings = SecureAggregationConfig(mode="masking", clip=1.0, max_examples=100_000)
    plan = RoundPlan(1, tuple(h.identities), 1)
    coll = SecureCollector(
        executor=ex,
        settings=settings,
        run_id="run-1",
        plan=plan,
        spec=spec_update["site00"].spec,
        clock=ex.clock,
    )
    jobs = [TrainJob(p, TrainConfig(round=1, seed=3)) for p in h.identities]
    return coll.run(jobs, training_deadline=100.0)


def test_an_honest_round_is_released():
    outcome = run_collector(None)
    assert outcome.delta is not None
    np.testing.assert_allclose(outcome.delta["w"], 0.1, atol=1e-6)


def test_honest_inputs_at_the_clip_and_the_weight_cap_are_released():
    # Values past the clip are clipped to 1.0, every weight is the cap (1):
    # the weighted sum is exactly clip x total weight, up to the rounding.
    outcome = run_collector(None, examples=100_000, value=5.0)
    assert outcome.reason is None and outcome.delta is not None
    np.testing.assert_allclose(outcome.delta["w"], 1.0, atol=1e-6)
    outcome = run_collector(None, examples=100_000, value=-5.0)
    assert outcome.delta is not None
    np.testing.assert_allclose(outcome.delta["w"], -1.0, atol=1e-6)


def _words(values: int, n: int, *, value_units: int, weight: float) -> np.ndarray:
    enc = FixedPointEncoding(1.0, n, max_weight=1.0)
    words = np.zeros(values + 1, dtype=np.uint32)
    words.view(np.int32)[:values] = value_units
    words.view(np.int32)[-1] = int(weight * enc.weight_scale)
    return words


def test_values_past_the_clip_range_are_not_released():
    # site04 writes 4x the largest word an honest site may send, at weight 1.
    enc = FixedPointEncoding(1.0, 5, max_weight=1.0)
    words = _words(4, 5, value_units=4 * enc._units, weight=1.0)
    outcome = run_collector(words)
    assert outcome.delta is None
    assert "beyond the clip range" in (outcome.reason or "")


def test_a_negative_weight_word_is_not_released():
    # Four honest sites weigh 0.01 each; site04 claims -0.039: the total weight
    # 0.001 would blow the honest mean 0.1 up 40 times.
    outcome = run_collector(_words(4, 5, value_units=0, weight=-0.039))
    assert outcome.delta is None
    assert "beyond the clip range" in (outcome.reason or "")


def test_a_total_weight_past_the_contributors_is_not_released():
    # Four honest sites at the weight cap (1 each) and site04 claiming 1.5: the
    # total 5.5 is more than five weights of at most 1 can make.
    outcome = run_collector(_words(4, 5, value_units=0, weight=1.5), examples=100_000)
    assert outcome.delta is None
    assert "is outside [0, 5]" in (outcome.reason or "")  # 5.5 wraps below 0


def test_survivor_signatures_of_another_sum_are_not_accepted():
    """Two sums under one run and round (a coordinator's word): the signatures
    collected in one do not vouch for the survivor set in the other."""
    from accord.secagg.messages import SurvivorSignatures
    from accord.secagg.participant import SecAggParticipant

    from ..unit.secagg.conftest import seeded_entropy

    a = Harness(n=5, seed=0)
    b = Harness(n=5, seed=0)  # the same roster, run and round: a second sum
    b.parts = {
        p: SecAggParticipant(b.config, p, k, entropy=seeded_entropy(99, p))
        for p, k in b.identities.items()
    }
    survivors_a = a.masked(a.share(a.advertise()))
    signed_a = [a.parts[p].consistency_check(survivors_a) for p in a.parts]
    survivors_b = b.masked(b.share(b.advertise()))
    assert survivors_b.survivors == survivors_a.survivors
    signed_b = [b.parts[p].consistency_check(survivors_b) for p in b.parts]
    u3 = survivors_b.survivors
    relayed = SurvivorSignatures("run-1", 1, u3, (signed_b[0], *signed_a[1:]))

    with pytest.raises(SecAggAborted, match="do not cover the survivor set"):
        b.parts["site00"].unmask(relayed)
    # The sum's own signatures still unlock it for the others.
    assert b.parts["site01"].unmask(SurvivorSignatures("run-1", 1, u3, tuple(signed_b)))
