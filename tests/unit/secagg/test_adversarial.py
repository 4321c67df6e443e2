"""Misbehaviour is detected: corrupt shares, an equivocating coordinator, replays."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accord.errors import (
    EquivocationDetected,
    SecAggAborted,
    ShareRejected,
    SubmissionRefused,
)
from accord.secagg.messages import (
    ConsistencySignature,
    MaskedInput,
    SurvivorList,
    SurvivorSignatures,
    UnmaskShares,
)
from accord.secagg.shamir import SHARE_BYTES


def test_share_altered_in_transit_is_detected_and_attributed(harness):
    # Arrange: flip one bit of the shares site01 dealt to site00
    directory = harness.advertise()
    deliveries = harness.share(directory)
    inbox = deliveries["site00"]
    bad = [
        dataclasses.replace(
            s, ciphertext=s.ciphertext[:-1] + bytes([s.ciphertext[-1] ^ 1])
        )
        if s.dealer == "site01"
        else s
        for s in inbox.shares
    ]
    tampered = dataclasses.replace(inbox, shares=tuple(bad))
    # Act / Assert
    with pytest.raises(ShareRejected, match="failed to decrypt") as info:
        harness.parts["site00"].masked_input(tampered, harness.inputs["site00"])
    assert info.value.offender == "site01"
    assert info.value.detected_by == "site00"
    with pytest.raises(SecAggAborted, match="already aborted"):
        harness.parts["site00"].consistency_check(
            SurvivorList("run-1", 1, tuple(harness.parts))
        )


def test_dealer_of_inconsistent_shares_is_named_by_the_coordinator(make_harness):
    # Arrange: site02 deals shares of a seed other than the one it committed to
    h = make_harness(n=5, threshold=3)
    real = h.parts["site02"]._seed
    directory = h.advertise()
    h.parts["site02"]._seed = bytes(16)
    deliveries = h.share(directory)
    h.parts["site02"]._seed = real  # it masks with the committed seed
    survivors = h.masked(deliveries)
    signed = h.consistency(survivors)
    for p in h.parts:
        h.server.receive(h.parts[p].unmask(signed))
    # Act / Assert
    with pytest.raises(ShareRejected, match="inconsistent shares") as info:
        h.server.aggregate()
    assert info.value.offender == "site02"
    assert info.value.detected_by is None


def test_forged_revealed_share_is_attributed_and_left_out(make_harness):
    # Arrange: site03 reveals garbage instead of its share of site01's seed
    h = make_harness(n=6, threshold=4)
    signed = h.consistency(h.masked(h.share(h.advertise())))
    for p in h.parts:
        msg = h.parts[p].unmask(signed)
        if p == "site03":
            forged = [
                dataclasses.replace(s, value=bytes(SHARE_BYTES))
                if s.dealer == "site01"
                else s
                for s in msg.shares
            ]
            msg = dataclasses.replace(msg, shares=tuple(forged))
        h.server.receive(msg)
    # Act
    result = h.server.aggregate()
    # Assert: the sum is still exact and site03 is named
    np.testing.assert_array_equal(result.total, h.expected(h.parts))
    assert result.offenders == ("site03",)


def test_equivocating_coordinator_is_detected(make_harness):
    # Arrange: the coordinator tells site00 that site04 dropped out (to collect its
    # share of site04's masking key) and the others that site04 survived (to
    # collect shares of its self-mask seed): with both, site04's input is exposed.
    h = make_harness(n=5, threshold=3)
    survivors = h.masked(h.share(h.advertise()))
    lie = SurvivorList("run-1", 1, survivors.survivors[:-1])
    sigs = [h.parts["site00"].consistency_check(lie)]
    sigs += [h.parts[p].consistency_check(survivors) for p in list(h.parts)[1:]]
    # Act / Assert: whichever set the coordinator relays, someone refuses
    truth = SurvivorSignatures("run-1", 1, survivors.survivors, tuple(sigs))
    with pytest.raises(EquivocationDetected) as info:
        h.parts["site01"].unmask(truth)
    assert info.value.signers == ("site00",)
    with pytest.raises(EquivocationDetected, match="another now"):
        h.parts["site00"].unmask(truth)
    # Relaying the lie to site00 instead fails there: the others signed the truth
    h2 = make_harness(n=5, threshold=3)
    survivors2 = h2.masked(h2.share(h2.advertise()))
    lie2 = SurvivorList("run-1", 1, survivors2.survivors[:-1])
    sigs2 = [h2.parts["site00"].consistency_check(lie2)]
    sigs2 += [h2.parts[p].consistency_check(survivors2) for p in list(h2.parts)[1:]]
    told = SurvivorSignatures("run-1", 1, lie2.survivors, tuple(sigs2[:4]))
    with pytest.raises(EquivocationDetected) as info:
        h2.parts["site00"].unmask(told)
    assert info.value.signers == ("site01", "site02", "site03")
    assert h2.parts["site00"].stage == "aborted"


def test_a_view_too_few_participants_vouch_for_reveals_nothing(make_harness):
    # The coordinator keeps the groups apart and relays to site00 only the
    # signatures over the set it showed site00: one, below the threshold of 3.
    h = make_harness(n=5, threshold=3)
    survivors = h.masked(h.share(h.advertise()))
    lie = SurvivorList("run-1", 1, survivors.survivors[:-1])
    own = h.parts["site00"].consistency_check(lie)
    with pytest.raises(SecAggAborted, match="only 1 participants confirmed"):
        h.parts["site00"].unmask(SurvivorSignatures("run-1", 1, lie.survivors, (own,)))


def test_forged_consistency_signature_is_detected(make_harness):
    h = make_harness(n=4, threshold=3)
    survivors = h.masked(h.share(h.advertise()))
    sigs = [h.parts[p].consistency_check(survivors) for p in h.parts]
    sigs[2] = dataclasses.replace(sigs[2], signature=bytes(64))
    relayed = SurvivorSignatures("run-1", 1, survivors.survivors, tuple(sigs))
    with pytest.raises(EquivocationDetected):
        h.parts["site00"].unmask(relayed)


def test_replayed_and_misplaced_messages_are_refused_by_the_coordinator(make_harness):
    # Arrange: round 1's advertisements, then round 2 with the same participants
    old = make_harness(n=4, threshold=3, round_number=1)
    old_advert = old.advertise().keys[0]
    new = make_harness(n=4, threshold=3, round_number=2)
    server = new.server
    # Act / Assert: a round-1 advertisement replayed into round 2
    with pytest.raises(SubmissionRefused) as info:
        server.receive(old_advert)
    assert info.value.kind == "stale" and info.value.participant == "site00"
    # ...even with the round field rewritten, its signature no longer verifies
    with pytest.raises(SubmissionRefused) as info:
        server.receive(dataclasses.replace(old_advert, round_number=2))
    assert info.value.kind == "corrupt"
    # a message of a later stage, a duplicate, a stranger
    with pytest.raises(SubmissionRefused) as info:
        server.receive(MaskedInput("run-1", 2, "site00", bytes(64)))
    assert info.value.kind == "mismatch"
    advert = new.parts["site00"].advertise()
    server.receive(advert)
    with pytest.raises(SubmissionRefused) as info:
        server.receive(advert)
    assert info.value.kind == "duplicate"
    with pytest.raises(SubmissionRefused) as info:
        server.receive(
            dataclasses.replace(old_advert, sender="mallory", round_number=2)
        )
    assert info.value.kind == "forbidden"
    # the state is untouched: the round still completes
    for p in list(new.parts)[1:]:
        server.receive(new.parts[p].advertise())
    result = new.unmask(new.consistency(new.masked(new.share(server.key_directory()))))
    np.testing.assert_array_equal(result.total, new.expected(new.parts))


def test_coordinator_refuses_late_and_dropped_senders(make_harness):
    harness = make_harness(n=5, threshold=3)
    directory = harness.advertise(who=list(harness.parts)[:4])
    # site04 never advertised: it cannot join at stage 1
    with pytest.raises(SubmissionRefused) as info:
        harness.server.receive(
            dataclasses.replace(
                harness.parts["site00"].share_keys(directory), sender="site04"
            )
        )
    assert info.value.kind == "forbidden"
    deliveries = harness.share(directory, who=list(harness.parts)[1:4])
    survivors = harness.masked(deliveries, who=list(deliveries))
    # a stage-2 message after stage 2 closed is stale
    with pytest.raises(SubmissionRefused) as info:
        harness.server.receive(MaskedInput("run-1", 1, "site01", bytes(64)))
    assert info.value.kind == "stale"
    signed = harness.consistency(survivors, who=survivors.survivors)
    result = harness.unmask(signed, who=survivors.survivors)
    np.testing.assert_array_equal(result.total, harness.expected(survivors.survivors))


def test_malformed_messages_are_refused(harness):
    directory = harness.advertise()
    msg = harness.parts["site00"].share_keys(directory)
    with pytest.raises(SubmissionRefused, match="once to each holder"):
        harness.server.receive(dataclasses.replace(msg, shares=msg.shares[1:]))
    harness.server.receive(msg)
    deliveries = harness.share(directory, who=list(harness.parts)[1:])
    with pytest.raises(SubmissionRefused, match="words"):
        harness.server.receive(MaskedInput("run-1", 1, "site00", bytes(8)))
    survivors = harness.masked(deliveries)
    with pytest.raises(SubmissionRefused, match="does not cover"):
        harness.server.receive(ConsistencySignature("run-1", 1, "site00", bytes(64)))
    signed = harness.consistency(survivors)
    reveal = harness.parts["site00"].unmask(signed)
    wrong_index = dataclasses.replace(
        reveal.shares[0], index=reveal.shares[0].index + 1
    )
    with pytest.raises(SubmissionRefused, match="owed"):
        harness.server.receive(
            UnmaskShares("run-1", 1, "site00", (wrong_index, *reveal.shares[1:]))
        )


def test_participant_refuses_replays_and_out_of_order_messages(make_harness):
    old_directory = make_harness(n=4, threshold=3, round_number=1).advertise()
    new = make_harness(n=4, threshold=3, round_number=2)
    p = new.parts["site00"]
    p.advertise()
    with pytest.raises(SubmissionRefused) as info:
        p.share_keys(old_directory)
    assert info.value.kind == "stale"
    with pytest.raises(SubmissionRefused) as info:
        p.consistency_check(SurvivorList("run-1", 2, ()))
    assert info.value.kind == "mismatch"
    with pytest.raises(SubmissionRefused) as info:
        p.advertise()
    assert info.value.kind == "duplicate"


def test_participant_refuses_a_forged_key_directory(harness):
    directory = harness.advertise()
    forged = dataclasses.replace(directory.keys[1], masking_key=bytes(range(32)))
    bad = dataclasses.replace(
        directory, keys=(directory.keys[0], forged, *directory.keys[2:])
    )
    with pytest.raises(SecAggAborted, match="not signed by its identity key"):
        harness.parts["site00"].share_keys(bad)


def test_participant_refuses_too_small_a_round(harness):
    directory = harness.advertise()
    small = dataclasses.replace(directory, keys=directory.keys[:2])
    with pytest.raises(SecAggAborted, match="threshold"):
        harness.parts["site00"].share_keys(small)
