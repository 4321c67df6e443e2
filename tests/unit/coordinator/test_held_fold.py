"""A round that holds its updates folds them with no copy, bit for bit as before.

Under ``[strategy] max_norm_ratio`` the round holds every update until it can judge
them; with the capped mean (the default ``max_weight_share``) it then hands them
all to :meth:`CappedMeanAccumulator.add_last` instead of feeding them one by one
to ``add`` (which copies the heaviest). These tests run the same round both ways
(the reference hides ``add_last``, forcing the old path) and compare the aggregate
byte for byte, across a rejected update, a dropped site, an outlier, a binding
cap, a quarantined site and a mix of dtypes.
"""

from __future__ import annotations

import numpy as np
import pytest

from accord.aggregation.capped_mean import CappedMeanAccumulator
from accord.coordinator.executor import JobFailed, TrainDone
from accord.coordinator.round import BatchAccumulator, Round, RoundPlan
from accord.errors import RoundFailed, UpdateRejected
from accord.params import Params, ParamSpec, TensorSpec

SPEC = ParamSpec(
    (
        TensorSpec("w32", "<f4", (40, 7)),
        TensorSpec("w64", "<f8", (33,)),
        TensorSpec("w16", "<f2", (5, 3)),
    )
)
NAMES = tuple(f"site-{i}" for i in range(8))


class OneByOne:
    """The capped mean without ``add_last``: the path every round took before."""

    def __init__(self, inner: CappedMeanAccumulator) -> None:
        self.inner = inner

    def add(self, update: Params, weight: float) -> None:
        self.inner.add(update, weight)

    def result(self) -> Params:
        return self.inner.result()


class Copies:
    """An observer that keeps a copy of what it saw, to check order and values."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool, Params]] = []

    def add(self, participant: str, update: Params, *, excluded: bool) -> None:
        self.seen.append((participant, excluded, update.copy()))


def _update(rng: np.random.Generator, scale: float = 1.0) -> Params:
    return Params(
        {
            t.name: (rng.standard_normal(t.shape) * scale).astype(t.dtype)
            for t in SPEC.tensors
        }
    )


def _events(seed: int, *, huge: str | None = None, nan: str | None = None):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 500, size=len(NAMES))
    out: list[TrainDone | JobFailed] = []
    for i, p in enumerate(NAMES):
        update = _update(rng, 1e3 if p == huge else 1.0)
        if p == nan:
            update["w32"].reshape(-1)[3] = np.nan
        out.append(
            TrainDone(
                participant=p,
                round=1,
                update=update,
                num_examples=int(counts[i]),
                duration_s=0.0,
            )
        )
    return out


def _run(events, acc, *, order, share=0.5, excluded=None, observer=None, released=None):
    rnd = Round(
        RoundPlan(1, NAMES, 1),
        SPEC,
        acc,
        max_norm_ratio=10.0,
        excluded=excluded,
        observer=observer,
    )
    for i in order:
        event = events[i]
        if isinstance(event, JobFailed):
            rnd.fail(event)
        else:
            rnd.receive(event)
        rnd.drain(None if released is None else released.append)
    return rnd


def assert_same_bits(a: Params, b: Params) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype
        assert a[name].tobytes() == b[name].tobytes(), name


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("share", [0.5, 0.2, 0.125, 1.0])
def test_the_held_round_folds_bit_for_bit_as_one_update_at_a_time(seed, share):
    events = _events(seed)
    order = np.random.default_rng(seed + 10).permutation(len(NAMES))
    batch = CappedMeanAccumulator(SPEC, share)
    assert isinstance(batch, BatchAccumulator)
    new = _run(events, batch, order=order)
    old = _run(events, OneByOne(CappedMeanAccumulator(SPEC, share)), order=order)
    assert new.outcomes == old.outcomes
    assert_same_bits(new.aggregate(), old.aggregate())


def test_a_rejected_update_a_dropped_site_and_an_outlier_change_nothing_else():
    events = _events(3, huge="site-2", nan="site-5")
    events[6] = JobFailed("site-6", 1, "train", "failed", "worker died")
    order = [7, 6, 5, 4, 3, 2, 1, 0]
    released: list[TrainDone] = []
    new = _run(events, CappedMeanAccumulator(SPEC, 0.5), order=order, released=released)
    old = _run(events, OneByOne(CappedMeanAccumulator(SPEC, 0.5)), order=order)
    status = {o.participant: o.status for o in new.outcomes}
    assert status["site-2"] == "rejected"  # 1000 x the others' norm
    assert status["site-5"] == "rejected"  # NaN
    assert status["site-6"] == "failed"
    assert new.succeeded == old.succeeded == 5
    assert new.total_examples == old.total_examples
    assert_same_bits(new.aggregate(released.append), old.aggregate())
    # Every valid update was released once, the outlier included (those the
    # capped mean kept once it was done with them); the NaN one was never held
    # (the caller releases a rejected update itself).
    assert sorted(d.participant for d in released) == [
        "site-0",
        "site-1",
        "site-2",
        "site-3",
        "site-4",
        "site-7",
    ]


def test_a_quarantined_site_is_seen_by_the_observer_but_not_folded():
    events = _events(4)
    excluded = {"site-1": "flagged twice"}
    seen_new, seen_old = Copies(), Copies()
    order = range(len(NAMES))
    new = _run(
        events,
        CappedMeanAccumulator(SPEC, 0.5),
        order=order,
        excluded=excluded,
        observer=seen_new,
    )
    old = _run(
        events,
        OneByOne(CappedMeanAccumulator(SPEC, 0.5)),
        order=order,
        excluded=excluded,
        observer=seen_old,
    )
    assert [(p, x) for p, x, _ in seen_new.seen] == [(p, p == "site-1") for p in NAMES]
    assert [(p, x) for p, x, _ in seen_old.seen] == [
        (p, x) for p, x, _ in seen_new.seen
    ]
    for (_, _, a), (_, _, b) in zip(seen_new.seen, seen_old.seen, strict=True):
        assert_same_bits(a, b)
    assert_same_bits(new.aggregate(), old.aggregate())
    assert new.succeeded == len(NAMES) - 1


def test_add_last_after_some_adds_matches_adding_each():
    rng = np.random.default_rng(5)
    updates = [_update(rng) for _ in range(6)]
    weights = [5.0, 900.0, 7.0, 850.0, 3.0, 1000.0]  # three heavy: caps bind
    one = CappedMeanAccumulator(SPEC, 0.3)
    for u, w in zip(updates, weights, strict=True):
        one.add(u, w)
    mixed = CappedMeanAccumulator(SPEC, 0.3)
    mixed.add(updates[0], weights[0])
    mixed.add(updates[1], weights[1])
    mixed.add_last(updates[2:], weights[2:])
    assert_same_bits(mixed.result(), one.result())
    with pytest.raises(RuntimeError, match="start a new accumulator"):
        mixed.add(updates[0], 1.0)


def test_add_last_copies_nothing_and_leaves_the_callers_arrays_alone():
    rng = np.random.default_rng(6)
    updates = [_update(rng) for _ in range(4)]
    before = [u.copy() for u in updates]
    acc = CappedMeanAccumulator(SPEC, 0.5)
    acc.add_last(updates, [10.0, 20.0, 30.0, 40.0])
    for u in updates:  # the caller may reuse its buffers once add_last returns
        for a in u.values():
            a[...] = np.nan
    result = acc.result()
    reference = CappedMeanAccumulator(SPEC, 0.5)
    for u, w in zip(before, [10.0, 20.0, 30.0, 40.0], strict=True):
        reference.add(u, w)
    assert_same_bits(result, reference.result())


def test_add_last_refuses_a_bad_weight_before_folding_anything():
    rng = np.random.default_rng(7)
    acc = CappedMeanAccumulator(SPEC, 0.5)
    with pytest.raises(ValueError, match="weight"):
        acc.add_last([_update(rng), _update(rng)], [1.0, float("nan")])
    assert acc.count == 0
    acc.add_last([_update(rng)], [2.0])
    assert acc.count == 1


def _judged_at_the_end(events, acc, order):
    """The round as it ran before early folding: drained once, after the last."""
    rnd = Round(RoundPlan(1, NAMES, 1), SPEC, acc, max_norm_ratio=10.0)
    for i in order:
        event = events[i]
        if isinstance(event, JobFailed):
            rnd.fail(event)
        else:
            rnd.receive(event)
    rnd.drain()
    return rnd


@pytest.mark.parametrize("seed", range(12))
def test_folding_safe_updates_early_changes_no_outcome_and_no_bit(seed):
    rng = np.random.default_rng(100 + seed)
    huge = f"site-{rng.integers(len(NAMES))}" if seed % 3 else None
    events = _events(seed, huge=huge)
    for i in rng.choice(len(NAMES), size=seed % 4, replace=False):
        events[i] = JobFailed(NAMES[i], 1, "train", "failed", "dropped")
    if seed % 2:  # a moderate outlier: 12 x the others, refused only at the end
        i = int(rng.integers(len(NAMES)))
        if isinstance(events[i], TrainDone):
            scaled = Params(
                {n: a * a.dtype.type(12) for n, a in events[i].update.items()}
            )
            events[i] = TrainDone(NAMES[i], 1, scaled, events[i].num_examples, 0.0)
    order = rng.permutation(len(NAMES))
    released: list[TrainDone] = []
    early = _run(
        events, CappedMeanAccumulator(SPEC, 0.5), order=order, released=released
    )
    late = _judged_at_the_end(events, OneByOne(CappedMeanAccumulator(SPEC, 0.5)), order)

    assert early.outcomes == late.outcomes
    assert early.total_examples == late.total_examples
    assert_same_bits(early.aggregate(released.append), late.aggregate())
    assert sorted(d.participant for d in released) == sorted(
        e.participant for e in events if isinstance(e, TrainDone)
    )


def test_an_honest_round_folds_half_its_updates_before_the_last_answer():
    events = _events(42)
    released: list[TrainDone] = []
    rnd = Round(
        RoundPlan(1, NAMES, 1),
        SPEC,
        CappedMeanAccumulator(SPEC, 0.5),
        max_norm_ratio=10.0,
    )
    folded_after: list[int] = []
    for event in events:
        rnd.receive(event)
        folded_after.append(len(rnd.drain(released.append)))
    # 8 selected: once 4 norms are known, the lowest median is half the smallest
    # norm; honest norms are within 5 x of each other, so all 4 fold at once.
    assert folded_after == [0, 0, 0, 4, 1, 1, 1, 1]


class CopyAll:
    """The capped mean as it was: every update copied and kept, the lightest folded."""

    def __init__(self, share: float) -> None:
        import math

        from accord.aggregation.integrity import cap_weights
        from accord.aggregation.mean import MeanAccumulator

        self._cap = lambda ws: cap_weights(ws, share)
        self._keep = max(1, math.floor(1.0 / share + 1e-9))
        self._sum = MeanAccumulator(SPEC)
        self._weights: list[float] = []
        self._held: dict[int, Params] = {}

    def add(self, update: Params, weight: float) -> None:
        index = len(self._weights)
        self._weights.append(weight)
        self._held[index] = update.copy()
        if len(self._held) > self._keep:
            lightest = max(self._held, key=lambda i: (-self._weights[i], i))
            self._sum.add(self._held.pop(lightest), self._weights[lightest])

    def result(self) -> Params:
        capped = self._cap(self._weights)
        for index in sorted(self._held):
            self._sum.add(self._held.pop(index), capped[index])
        return self._sum.result()


@pytest.mark.parametrize("share", [0.5, 0.3, 0.2])
@pytest.mark.parametrize(
    "weights",
    [
        [100.0] * 8,  # all equal: every update after the first few folds at once
        [5.0, 900.0, 7.0, 850.0, 3.0, 1000.0, 900.0, 2.0],
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],  # each heavier than the last
        [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0],
    ],
)
def test_adding_one_by_one_is_bit_for_bit_the_copying_capped_mean(share, weights):
    rng = np.random.default_rng(len(weights) + int(share * 10))
    updates = [_update(rng) for _ in weights]
    new, old = CappedMeanAccumulator(SPEC, share), CopyAll(share)
    for u, w in zip(updates, weights, strict=True):
        new.add(u, w)
        old.add(u, w)
        for a in u.values():  # the caller reuses its buffer once add returns
            a[...] = np.nan

    assert_same_bits(new.result(), old.result())


# -- the float64 sums, reused from round to round ---------------------------------


def test_the_next_rounds_sums_reuse_the_buffers_and_give_the_same_bits():
    from accord.aggregation.mean import MeanAccumulator, SumBuffers

    rng = np.random.default_rng(9)
    pool = SumBuffers()
    rounds = [
        [(_update(rng, 1e3), 7.0), (_update(rng), 1.0)],  # large values first
        [(_update(rng), 3.0)],  # one update: the first fold overwrites the sums
        [(_update(rng), 2.0), (_update(rng), 5.0), (_update(rng), 11.0)],
    ]
    seen: list[int] = []
    for adds in rounds:
        reused = CappedMeanAccumulator(SPEC, 0.5, buffers=pool)
        fresh = CappedMeanAccumulator(SPEC, 0.5)
        for update, weight in adds:
            reused.add(update, weight)
            fresh.add(update, weight)
        assert_same_bits(reused.result(), fresh.result())
        seen.append(id(reused._sum._acc[0]))
        del reused  # the round is over: its sums go back to the pool
    assert len(set(seen)) == 1  # one set of buffers for all three rounds

    alive = MeanAccumulator(SPEC, buffers=pool)
    other = MeanAccumulator(SPEC, buffers=pool)  # the first is still alive
    assert all(a is not b for a, b in zip(alive._acc, other._acc, strict=True))


def test_a_round_of_another_model_gets_buffers_of_its_own_sizes():
    from accord.aggregation.mean import MeanAccumulator, SumBuffers

    pool = SumBuffers()
    first = MeanAccumulator(SPEC, buffers=pool)
    del first
    small = ParamSpec((TensorSpec("w", "<f4", (3,)),))
    acc = MeanAccumulator(small, buffers=pool)
    acc.add(Params({"w": np.array([1.0, 2.0, 3.0], np.float32)}), 2.0)
    np.testing.assert_array_equal(acc.result()["w"], [1.0, 2.0, 3.0])


def test_the_round_takes_the_norm_an_executor_computed_as_it_checked_the_values():
    rng = np.random.default_rng(11)
    names = ("a", "b", "c")
    rnd = Round(
        RoundPlan(1, names, 1),
        SPEC,
        CappedMeanAccumulator(SPEC, 1.0),
        max_norm_ratio=10.0,
    )
    for p, norm in (("a", 1.0), ("b", 1.0), ("c", 100.0)):
        # Values of equal size: only the executor's norm sets c apart.
        rnd.receive(
            TrainDone(p, 1, _update(rng), 5, 0.0, values_checked=True, norm=norm)
        )
    rnd.drain()
    status = {o.participant: o.status for o in rnd.outcomes}
    assert status == {"a": "ok", "b": "ok", "c": "rejected"}
    reason = next(o.reason for o in rnd.outcomes if o.participant == "c") or ""
    assert "L2 norm is 100," in reason


def test_a_norm_without_checked_values_is_not_trusted():
    rng = np.random.default_rng(12)
    rnd = Round(
        RoundPlan(1, ("a", "b", "c"), 1),
        SPEC,
        CappedMeanAccumulator(SPEC, 1.0),
        max_norm_ratio=10.0,
    )
    for p in ("a", "b", "c"):
        rnd.receive(TrainDone(p, 1, _update(rng), 5, 0.0, norm=1e30))
    rnd.drain()
    assert [o.status for o in rnd.outcomes] == ["ok", "ok", "ok"]


# -- digests: the new model is hashed once a round ---------------------------------


def test_the_round_loop_hashes_the_new_model_once_and_hands_the_digest_on(
    monkeypatch,
):
    from accord.coordinator.runner import Coordinator
    from accord.store import MemoryStore

    from .test_integrity import Scripted, _config

    class Publishing(Scripted):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.digests: list[str | None] = []

        def publish(self, params: Params, *, digest: str | None = None) -> None:
            super().publish(params)
            self.digests.append(digest)

    hashed: list[Params] = []
    real = Params.digest

    def counting(self: Params) -> str:
        hashed.append(self)
        return real(self)

    monkeypatch.setattr(Params, "digest", counting)
    start = Params({"w": np.zeros(4, np.float32)})
    executor = Publishing(lambda p, rnd: (Params({"w": np.ones(4, np.float32)}), 5))
    store = MemoryStore()

    result = Coordinator(_config(rounds=3), executor=executor, store=store).run(start)

    # One digest a round (no ledger: the aggregate is not hashed), the one that
    # the executor got, the one recorded, and the model's.
    assert len(hashed) == 3
    records = store.rounds(result.run_id)
    assert executor.digests == [None] + [r.global_digest for r in records]
    assert records[-1].global_digest == real(result.params)


def test_sums_larger_than_the_bound_are_freed_with_their_round():
    from accord.aggregation.mean import MeanAccumulator, SumBuffers

    nbytes = 8 * SPEC.size  # the float64 sums of SPEC
    at_bound = SumBuffers(max_bytes=nbytes)
    first = MeanAccumulator(SPEC, buffers=at_bound)
    buffer = first._acc[0]
    del first
    second = MeanAccumulator(SPEC, buffers=at_bound)
    assert second._acc[0] is buffer  # kept: reused

    past = SumBuffers(max_bytes=nbytes - 1)
    first = MeanAccumulator(SPEC, buffers=past)
    buffer = first._acc[0]
    del first
    second = MeanAccumulator(SPEC, buffers=past)
    assert second._acc[0] is not buffer  # freed with its round


def test_kept_updates_are_lent_not_copied_and_released_after_the_aggregate():
    events = _events(21)
    released: list[TrainDone] = []
    acc = CappedMeanAccumulator(SPEC, 0.5)
    rnd = Round(RoundPlan(1, NAMES, 1), SPEC, acc, max_norm_ratio=10.0)
    for event in events[:4]:  # four norms of eight: the four fold early
        rnd.receive(event)
        rnd.drain(released.append)
    # The fourth settles all four at once, lent together (lend_many): the two
    # the accumulator keeps are the sites' own arrays (no copy), not released;
    # the two it folded are released at once, held by nothing.
    held = list(acc._held.values())
    assert len(held) == 2
    assert all(any(h is e.update for e in events[:4]) for h in held)  # no copy
    assert len(released) == 2
    assert not any(h is d.update for d in released for h in held)
    assert {d.participant for d in released} < {e.participant for e in events[:4]}
    for event in events[4:]:
        rnd.receive(event)
        rnd.drain(released.append)

    reference = OneByOne(CappedMeanAccumulator(SPEC, 0.5))
    late = _judged_at_the_end(events, reference, range(len(NAMES)))
    assert_same_bits(rnd.aggregate(released.append), late.aggregate())
    assert sorted(d.participant for d in released) == list(NAMES)


def test_lent_updates_are_released_even_when_the_round_fails():
    events = _events(22)
    released: list[TrainDone] = []
    names = NAMES[:4]
    rnd = Round(
        RoundPlan(1, names, 3),
        SPEC,
        CappedMeanAccumulator(SPEC, 0.5),
        max_norm_ratio=10.0,
    )
    for event in events[:2]:  # two of four norms: both safe, both lent
        rnd.receive(event)
        rnd.drain(released.append)
    for name in names[2:]:
        rnd.fail(JobFailed(name, 1, "train", "failed", "gone"))
        rnd.drain(released.append)
    assert released == []

    with pytest.raises(RoundFailed):  # 2 of the 3 updates it needs
        rnd.aggregate(released.append)
    assert [d.participant for d in released] == list(NAMES[:2])


def test_without_the_ratio_the_round_copies_instead_of_lending():
    events = _events(23)
    released: list[TrainDone] = []
    rnd = Round(RoundPlan(1, NAMES, 1), SPEC, CappedMeanAccumulator(SPEC, 0.5))
    for event in events:
        rnd.receive(event)
        rnd.drain(released.append)
    # Nothing holds a round's updates: each is released as soon as it is folded.
    assert [d.participant for d in released] == list(NAMES)


# -- updates settled together are lent together ----------------------------------


class LendsOneAtATime:
    """The capped mean without ``lend_many``: a round lends it one update at a time."""

    def __init__(self, inner: CappedMeanAccumulator) -> None:
        self.inner = inner

    def add(self, update: Params, weight: float) -> None:
        self.inner.add(update, weight)

    def lend(self, update: Params, weight: float) -> bool:
        return self.inner.lend(update, weight)

    def add_last(self, updates, weights) -> None:  # type: ignore[no-untyped-def]
        self.inner.add_last(updates, weights)

    def result(self) -> Params:
        return self.inner.result()


class CountsBatches(CappedMeanAccumulator):
    """The capped mean, noting how many updates each ``lend_many`` took."""

    def __init__(self, spec: ParamSpec, share: float) -> None:
        super().__init__(spec, share)
        self.batches: list[int] = []

    def lend_many(self, updates, weights):  # type: ignore[no-untyped-def]
        self.batches.append(len(updates))
        return super().lend_many(updates, weights)


@pytest.mark.parametrize("share", [0.5, 0.3, 0.2])
@pytest.mark.parametrize(
    "weights",
    [
        [100.0] * 8,
        [5.0, 900.0, 7.0, 850.0, 3.0, 1000.0, 900.0, 2.0],
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0],
    ],
)
@pytest.mark.parametrize("cuts", [(0, 8), (1, 4, 8), (3, 5, 6, 8)])
def test_lending_together_is_bit_for_bit_the_copying_capped_mean(share, weights, cuts):
    rng = np.random.default_rng(len(cuts) + int(share * 10))
    updates = [_update(rng) for _ in weights]
    new, old = CappedMeanAccumulator(SPEC, share), CopyAll(share)
    for u, w in zip(updates, weights, strict=True):
        old.add(u, w)
    start = 0
    for stop in cuts:
        kept = new.lend_many(updates[start:stop], weights[start:stop])
        held = list(new._held.values())
        for u, keep in zip(updates[start:stop], kept, strict=True):
            # kept: held as it is (no copy); not kept: folded, held by nothing
            assert any(h is u for h in held) == keep
        start = stop

    assert_same_bits(new.result(), old.result())


def test_lend_many_refuses_before_keeping_or_folding_anything():
    rng = np.random.default_rng(8)
    acc = CappedMeanAccumulator(SPEC, 0.5)
    acc.lend(_update(rng), 3.0)
    with pytest.raises(UpdateRejected, match="weight"):
        acc.lend_many([_update(rng), _update(rng)], [1.0, -2.0])
    wrong = Params({"w32": np.zeros((40, 7), np.float64)})
    with pytest.raises(UpdateRejected):
        acc.lend_many([_update(rng), wrong], [1.0, 1.0])
    with pytest.raises(ValueError, match="2 updates but 1 weights"):
        acc.lend_many([_update(rng), _update(rng)], [1.0])
    assert acc.count == 1
    assert len(acc._held) == 1


@pytest.mark.parametrize("seed", range(6))
def test_a_round_lends_the_updates_settled_together_in_one_call(seed):
    events = _events(seed, huge="site-3" if seed % 2 else None)
    order = np.random.default_rng(seed + 50).permutation(len(NAMES))
    counting = CountsBatches(SPEC, 0.5)
    released: list[TrainDone] = []
    together = _run(events, counting, order=order, released=released)
    apart = _run(events, LendsOneAtATime(CappedMeanAccumulator(SPEC, 0.5)), order=order)

    assert max(counting.batches) > 1  # half the norms settle several at once
    assert together.outcomes == apart.outcomes
    assert_same_bits(together.aggregate(released.append), apart.aggregate())
    assert sorted(d.participant for d in released) == list(NAMES)  # each once
