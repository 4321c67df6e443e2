"""Anomaly scores and the quarantine policy: pure, deterministic, each rule's bound."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from accord.detection import (
    FlagRules,
    QuarantineState,
    UpdateMatrix,
    replay,
    score_round,
)
from accord.detection.scores import robust_z
from accord.params import Params
from accord.records import RoundRecord, UpdateScore

NAMES = tuple(f"s{i}" for i in range(8))


def _honest(seed: int = 0, n: int = 8, d: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.2, 1.0, size=(n, d))


def _by_name(scores: tuple[UpdateScore, ...]) -> dict[str, UpdateScore]:
    return {s.participant: s for s in scores}


def test_scores_match_their_definitions() -> None:
    rows = _honest()
    agg = rows.mean(0)

    scores = score_round(NAMES, rows, agg, FlagRules())

    s = scores[3]
    assert s.norm == pytest.approx(np.linalg.norm(rows[3]))
    assert s.cosine == pytest.approx(
        rows[3] @ agg / (np.linalg.norm(rows[3]) * np.linalg.norm(agg))
    )
    others = [np.linalg.norm(rows[3] - rows[j]) for j in range(8) if j != 3]
    assert s.mean_distance == pytest.approx(np.mean(others))
    assert s.median_distance == pytest.approx(
        np.linalg.norm(rows[3] - np.median(rows, 0))
    )
    nearest = [
        min(np.linalg.norm(rows[i] - rows[j]) for j in range(8) if j != i)
        for i in range(8)
    ]
    assert s.nearest_ratio == pytest.approx(nearest[3] / np.median(nearest))
    assert not any(x.flagged for x in scores)


def test_a_scaled_update_is_flagged_by_its_norm_just_past_the_bound() -> None:
    rows = _honest()
    rows[5] *= 10
    scores = score_round(NAMES, rows, rows.mean(0), FlagRules())
    z = scores[5].norm_z

    at = _by_name(score_round(NAMES, rows, rows.mean(0), FlagRules(max_norm_z=z)))
    below = _by_name(
        score_round(NAMES, rows, rows.mean(0), FlagRules(max_norm_z=z * 0.999))
    )

    assert z > 5
    assert not at["s5"].flagged  # the bound itself passes
    assert below["s5"].flags == (f"norm_z {z:.3g} > {z * 0.999:g}",)
    assert [n for n, s in below.items() if s.flagged] == ["s5"]


def test_a_flipped_update_is_flagged_by_cosine() -> None:
    rows = _honest(1)
    agg = rows.mean(0)
    rows[2] = -3 * agg

    scores = _by_name(score_round(NAMES, rows, agg, FlagRules(min_cosine=0.0)))

    assert scores["s2"].cosine == pytest.approx(-1.0)
    assert [n for n, s in scores.items() if s.flagged] == ["s2"]


def test_colluding_copies_are_flagged_by_their_nearest_neighbour() -> None:
    rows = _honest(2)
    crafted = rows[:6].mean(0) + 0.25 * rows[:6].std(0)  # ALIE-like, inside the spread
    rows[6] = rows[7] = crafted

    scores = _by_name(
        score_round(NAMES, rows, rows.mean(0), FlagRules(min_nearest_ratio=0.1))
    )

    assert scores["s6"].nearest_ratio == 0.0
    assert [n for n, s in scores.items() if s.flagged] == ["s6", "s7"]


def test_robust_z_ignores_outliers_and_handles_a_zero_mad() -> None:
    z = robust_z([1.0, 2.0, 3.0, 4.0, 1000.0])
    flat = robust_z([1.0, 1.0, 1.0, 5.0])

    assert z[2] == 0.0 and z[4] > 100
    assert list(flat[:3]) == [0.0, 0.0, 0.0] and math.isinf(flat[3])


def test_one_update_is_scored_without_neighbours() -> None:
    rows = _honest(n=1)

    (only,) = score_round(("a",), rows, rows[0], FlagRules(min_nearest_ratio=0.5))

    assert only.mean_distance == 0.0 and only.nearest_ratio == 1.0
    assert only.cosine == pytest.approx(1.0) and not only.flagged


def test_a_zero_aggregate_gives_cosine_zero_not_nan() -> None:
    rows = _honest(n=3)

    scores = score_round(NAMES[:3], rows, np.zeros(50), FlagRules())

    assert all(s.cosine == 0.0 for s in scores)


def test_mismatched_shapes_are_a_bug_not_a_score() -> None:
    with pytest.raises(ValueError, match="names"):
        score_round(NAMES[:2], _honest(n=3), np.zeros(50), FlagRules())


def test_the_update_matrix_scores_float32_params_in_arrival_order() -> None:
    kept = UpdateMatrix()
    rng = np.random.default_rng(0)
    for name in ("b", "a"):
        kept.add(
            name,
            Params({"w": rng.normal(size=(2, 3)).astype(np.float32)}),
            excluded=name == "a",
        )

    scores = kept.score(Params({"w": np.ones((2, 3), np.float32)}), FlagRules())

    assert [s.participant for s in scores] == ["b", "a"]
    assert [s.excluded for s in scores] == [False, True]


def _flag(name: str, flagged: bool) -> UpdateScore:
    return UpdateScore(name, 1, 1, 1, 1, 1, 0, 0, flags=("x",) if flagged else ())


def test_a_site_is_quarantined_at_the_kth_flag_from_the_next_round() -> None:
    state = QuarantineState(after=2)
    others = [_flag(x, False) for x in "cde"]

    state, first = state.step(1, [_flag("a", True), _flag("b", False), *others])
    state, second = state.step(2, [_flag("a", True), _flag("b", True), *others])

    assert first == () and second == ("a",)
    assert state.quarantined == frozenset({"a"})
    assert state.since["a"] == 3
    assert state.flags == {"a": 2, "b": 1}
    assert "since round 3" in state.reason("a")


def test_never_half_of_the_sites_are_quarantined() -> None:
    names = [f"s{i}" for i in range(10)]
    state = QuarantineState(after=1)

    state, newly = state.step(1, [_flag(n, n != "s9") for n in names])
    state, later = state.step(2, [_flag(n, True) for n in names])

    assert state.limit == 4
    assert newly == ("s0", "s1", "s2", "s3")  # 4 of 10: still a majority in
    assert later == () and len(state.quarantined) == 4
    assert state.flags["s9"] == 1 and state.flags["s0"] == 2


def test_a_place_left_under_the_cap_takes_the_next_flagged_site() -> None:
    names = [f"s{i}" for i in range(5)]
    state = QuarantineState(after=1)

    state, first = state.step(1, [_flag(n, n == "s4") for n in names])
    state, second = state.step(2, [_flag(n, n in ("s3", "s2")) for n in names])

    assert first == ("s4",) and second == ("s2",)  # limit 2 of 5, in score order


def test_without_quarantine_after_flags_are_counted_only() -> None:
    state, newly = QuarantineState(after=None).step(1, [_flag("a", True)] * 1)

    assert newly == () and state.quarantined == frozenset()
    assert state.flags == {"a": 1}


def test_replaying_recorded_rounds_rebuilds_the_state() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)

    def record(number: int, flagged: bool) -> RoundRecord:
        return RoundRecord(
            "r", number, t, t, "completed", "d", ("a",), (), (), None,
            scores=(_flag("a", flagged), _flag("b", False), _flag("c", False)),
        )  # fmt: skip

    state = replay(2, [record(1, True), record(2, False), record(3, True)])

    assert state.since == {"a": 4}
    assert state.flags == {"a": 2} and state.seen == {"a", "b", "c"}
