"""End to end: the unmasked sum is the plain sum, whoever drops out, within limits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import SecAggAborted
from accord.secagg.encoding import FixedPointEncoding
from accord.secagg.local import run_local_round
from accord.secagg.messages import Stage

STAGES = [
    Stage.ADVERTISE,
    Stage.SHARE_KEYS,
    Stage.MASKED_INPUT,
    Stage.CONSISTENCY,
    Stage.UNMASK,
]
# A participant that leaves at one of these stages never sent its masked input.
BEFORE_INPUT = {Stage.ADVERTISE, Stage.SHARE_KEYS, Stage.MASKED_INPUT}


@st.composite
def rounds(draw):
    n = draw(st.integers(3, 8))
    threshold = draw(st.integers(n // 2 + 1, n))
    size = draw(st.integers(1, 300))
    leavers = draw(
        st.lists(st.sampled_from(range(n)), unique=True, max_size=n - threshold)
    )
    stages = draw(
        st.lists(st.sampled_from(STAGES), min_size=len(leavers), max_size=len(leavers))
    )
    seed = draw(st.integers(0, 2**16))
    return n, threshold, size, dict(zip(leavers, stages, strict=True)), seed


@settings(max_examples=50, deadline=None)
@given(rounds())
def test_unmasked_sum_equals_plain_sum_within_quantisation_error(kit, case):
    # Arrange: float updates and weights, encoded as a site would
    n, threshold, size, leaving, seed = case
    rng = np.random.default_rng(seed)
    identities = kit.make_identities(n, seed)
    ids = list(identities)
    cfg = kit.make_config(identities, size + 1, threshold=threshold)
    enc = FixedPointEncoding(clip=1.0, participants=n, max_weight=10.0)
    updates = {p: rng.normal(0, 0.5, size) for p in ids}
    weights = {p: float(rng.uniform(0, 10)) for p in ids}
    inputs = {p: enc.encode(updates[p], weights[p], rng) for p in ids}
    drop: dict[Stage, list[str]] = {}
    for i, stage in leaving.items():
        drop.setdefault(stage, []).append(ids[i])
    # Act
    run = run_local_round(cfg, identities, inputs, drop=drop)
    # Assert: exactly those who sent a masked input are in the sum...
    gone_early = {ids[i] for i, s in leaving.items() if s in BEFORE_INPUT}
    assert set(run.result.contributors) == set(ids) - gone_early
    assert set(run.result.dropped) == gone_early
    assert not run.aborted and not run.result.offenders
    # ...the ring total is exact, and decodes to the float sum within the bound
    exact = kit.ring_sum((inputs[p] for p in run.result.contributors), size + 1)
    np.testing.assert_array_equal(run.result.total, exact)
    weighted, weight = enc.decode(run.result.total)
    plain = sum(
        weights[p] * np.clip(updates[p], -1, 1) for p in run.result.contributors
    )
    assert np.abs(weighted - plain).max() <= enc.bound
    assert (
        abs(weight - sum(weights[p] for p in run.result.contributors))
        <= enc.weight_bound
    )


@pytest.mark.parametrize("stage", STAGES)
def test_more_than_n_minus_t_dropouts_abort_cleanly(kit, stage):
    # Arrange: 7 participants, threshold 5: three leaving is one too many
    identities = kit.make_identities(7)
    cfg = kit.make_config(identities, 32, threshold=5)
    inputs = {p: np.arange(32, dtype=np.uint32) for p in identities}
    drop = {stage: list(identities)[2:5]}
    # Act / Assert
    with pytest.raises(SecAggAborted, match="fewer than the threshold 5") as info:
        run_local_round(cfg, identities, inputs, drop=drop)
    assert info.value.stage == str(stage)
    assert "no sum is released" in str(info.value).lower()


def test_aborted_coordinator_releases_nothing(harness):
    directory = harness.advertise()
    deliveries = harness.share(directory)
    with pytest.raises(SecAggAborted):
        harness.masked(deliveries, who=list(harness.parts)[:2])
    assert harness.server.stage is Stage.ABORTED
    with pytest.raises(RuntimeError, match="not open"):
        harness.server.aggregate()


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_secagg_plus_graph_reconstructs_with_dropouts_in_neighbourhoods(kit, seed):
    # Arrange: 40 participants, degree 8 (9 holders each), threshold 6: every
    # neighbourhood may lose up to 3. Drop participants so that none loses more.
    identities = kit.make_identities(40, seed=seed)
    cfg = kit.make_config(identities, 500, degree=8, threshold=6)
    graph = cfg.graph()
    assert not graph.complete
    rng = np.random.default_rng(seed)
    ids = list(identities)
    dropped: list[str] = []
    for p in rng.permutation(ids):
        trial = {*dropped, str(p)}
        if all(len(trial & set(graph.holders(q))) <= 3 for q in ids):
            dropped.append(str(p))
        if len(dropped) == 8:
            break
    drop = {
        Stage.SHARE_KEYS: dropped[:2],
        Stage.MASKED_INPUT: dropped[2:5],
        Stage.CONSISTENCY: dropped[5:6],
        Stage.UNMASK: dropped[6:],
    }
    inputs = {p: rng.integers(0, 2**32, 500, dtype=np.uint32) for p in ids}
    entropy = {p: kit.seeded_entropy(seed, p) for p in ids}
    # Act
    run = run_local_round(cfg, identities, inputs, drop=drop, entropy=entropy)
    # Assert
    assert len(run.result.contributors) == 35
    exact = kit.ring_sum((inputs[p] for p in run.result.contributors), 500)
    np.testing.assert_array_equal(run.result.total, exact)


def test_secagg_plus_aborts_when_one_neighbourhood_loses_too_many(kit):
    identities = kit.make_identities(40, seed=6)
    cfg = kit.make_config(identities, 10, degree=8, threshold=6)
    graph = cfg.graph()
    victim = cfg.participants[0]
    # Four of the victim's holders leave after it sent its input: its self-mask
    # seed can no longer be rebuilt, although 36 of 40 participants remain.
    leavers = [h for h in graph.holders(victim) if h != victim][:4]
    inputs = {p: np.zeros(10, np.uint32) for p in identities}
    with pytest.raises(SecAggAborted, match="too many dropouts") as info:
        run_local_round(cfg, identities, inputs, drop={Stage.CONSISTENCY: leavers})
    assert info.value.stage == "consistency"


def test_each_stage_is_timed(kit):
    identities = kit.make_identities(4)
    cfg = kit.make_config(identities, 8)
    run = run_local_round(
        cfg, identities, {p: np.ones(8, np.uint32) for p in identities}
    )
    assert list(run.timings) == STAGES
    assert all(
        t.participants_max_s <= t.participants_total_s for t in run.timings.values()
    )
    np.testing.assert_array_equal(run.result.total, np.full(8, 4, np.uint32))


def test_sites_sharing_a_verifier_verify_each_signature_once(make_harness, kit):
    # Arrange: five sites of one process share a Verifier, as a simulation's do
    from accord.secagg.crypto import Verifier
    from accord.secagg.participant import SecAggParticipant

    n = 5
    h = make_harness(n=n, threshold=3)
    shared = Verifier()
    h.parts = {
        p: SecAggParticipant(
            h.config, p, k, verifier=shared, entropy=kit.seeded_entropy(0, p)
        )
        for p, k in h.identities.items()
    }
    # Act
    result = h.unmask(h.consistency(h.masked(h.share(h.advertise()))))
    # Assert: the sum is exact; each advertisement and survivor signature was
    # verified once (not once per site), and each dealer's one dealing signature once
    np.testing.assert_array_equal(result.total, h.expected(h.parts))
    assert shared.verifications == 3 * n


def test_the_coordinator_rebuilds_every_needed_secret_in_one_batch(
    make_harness, monkeypatch
):
    # Arrange: six sites, one drops after dealing (its masking key is needed too)
    from accord.secagg import recovery

    batches = []
    real = recovery.combine_batch

    def counting(groups, *, threshold):
        batches.append(len(groups))
        return real(groups, threshold=threshold)

    def one_by_one(*args, **kwargs):
        raise AssertionError("a clean round needs no secret rebuilt on its own")

    monkeypatch.setattr(recovery, "combine_batch", counting)
    monkeypatch.setattr(recovery, "combine_shares", one_by_one)
    h = make_harness(n=6, threshold=4)
    stay = [p for p in h.parts if p != "site05"]
    # Act
    deliveries = h.share(h.advertise())
    survivors = h.masked(deliveries, who=stay)
    result = h.unmask(h.consistency(survivors, who=stay), who=stay)
    # Assert: 5 seeds and 1 masking key in one batch; the sum is exact
    assert batches == [6]
    np.testing.assert_array_equal(result.total, h.expected(stay))
    assert result.offenders == ()
