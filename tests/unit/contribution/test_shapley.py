"""Leave-one-out and GTG-Shapley on games whose exact values are known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from accord.contribution import RoundGame, leave_one_out, shapley

# A 3-player game that is neither additive nor symmetric.
TABLE = {
    (): 0.10,
    (0,): 0.40,
    (1,): 0.30,
    (2,): 0.12,
    (0, 1): 0.55,
    (0, 2): 0.45,
    (1, 2): 0.33,
    (0, 1, 2): 0.60,
}


def table_game(table: dict[tuple[int, ...], float], players: int) -> RoundGame:
    return RoundGame(players, lambda c: table[tuple(sorted(c))])


def exact_shapley(table: dict[tuple[int, ...], float], players: int) -> list[float]:
    """The subset formula, independent of the permutation walk under test."""
    out = []
    for i in range(players):
        others = [p for p in range(players) if p != i]
        total = 0.0
        for size in range(players):
            for subset in itertools.combinations(others, size):
                weight = (
                    math.factorial(size)
                    * math.factorial(players - size - 1)
                    / math.factorial(players)
                )
                with_i = tuple(sorted((*subset, i)))
                total += weight * (table[with_i] - table[tuple(sorted(subset))])
        out.append(total)
    return out


def random_table(players: int, seed: int) -> dict[tuple[int, ...], float]:
    rng = np.random.default_rng(seed)
    return {
        c: float(rng.random()) + 0.1 * len(c)
        for size in range(players + 1)
        for c in itertools.combinations(range(players), size)
    }


def test_enumerating_every_permutation_gives_the_exact_values() -> None:
    # Arrange
    game = table_game(TABLE, 3)

    # Act
    scores = shapley(game, permutations=6, rng=np.random.default_rng(0))

    # Assert
    assert scores.exact and scores.permutations == 6
    assert scores.values == pytest.approx(exact_shapley(TABLE, 3), abs=1e-12)
    assert scores.variance == (0.0, 0.0, 0.0)
    assert game.evaluations == 8  # every coalition, each once


def test_values_add_up_to_the_rounds_gain() -> None:
    scores = shapley(table_game(TABLE, 3), permutations=6, rng=np.random.default_rng(0))

    assert sum(scores.values) == pytest.approx(TABLE[(0, 1, 2)] - TABLE[()], abs=1e-12)


def test_sampled_values_stay_efficient_and_their_interval_covers_the_exact() -> None:
    # Arrange: 6 players, 720 permutations; 60 sampled
    table = random_table(6, seed=3)
    exact = exact_shapley(table, 6)

    # Act
    scores = shapley(
        table_game(table, 6), permutations=60, rng=np.random.default_rng(1)
    )

    # Assert
    assert not scores.exact and scores.permutations == 60
    gain = table[tuple(range(6))] - table[()]
    assert sum(scores.values) == pytest.approx(gain, abs=1e-9)
    half = [1.96 * math.sqrt(v) for v in scores.variance]
    assert all(h > 0 for h in half)
    covered = [
        abs(s - e) <= h for s, e, h in zip(scores.values, exact, half, strict=True)
    ]
    assert sum(covered) >= 5  # a 95 % interval; seeded, so this is stable


def test_one_permutation_short_of_all_is_sampled_not_enumerated() -> None:
    game = table_game(TABLE, 3)

    scores = shapley(game, permutations=5, rng=np.random.default_rng(0))

    assert not scores.exact and scores.permutations == 5
    assert sum(scores.values) == pytest.approx(TABLE[(0, 1, 2)] - TABLE[()])


def test_fewer_than_two_permutations_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        shapley(table_game(TABLE, 3), permutations=1, rng=np.random.default_rng(0))
    assert (
        shapley(
            table_game(TABLE, 3), permutations=2, rng=np.random.default_rng(0)
        ).permutations
        == 2
    )


def test_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerances"):
        shapley(
            table_game(TABLE, 3),
            permutations=6,
            rng=np.random.default_rng(0),
            within_tolerance=-1e-9,
        )


def test_a_round_whose_gain_is_within_the_tolerance_is_skipped() -> None:
    gain = TABLE[(0, 1, 2)] - TABLE[()]

    at = shapley(
        table_game(TABLE, 3),
        permutations=6,
        rng=np.random.default_rng(0),
        round_tolerance=gain,
    )
    game = table_game(TABLE, 3)
    past = shapley(
        game,
        permutations=6,
        rng=np.random.default_rng(0),
        round_tolerance=gain * (1 - 1e-9),
    )

    assert at.truncated and at.values == (0.0, 0.0, 0.0)
    assert not past.truncated and game.evaluations == 8


def test_within_round_truncation_saves_evaluations_and_keeps_the_gain() -> None:
    # Arrange: player 0 alone reaches the grand value; the others add nothing
    table = {c: (1.0 if 0 in c else 0.0) + 1e-4 * len(c) for c in random_table(8, 0)}
    full, cut = table_game(table, 8), table_game(table, 8)

    # Act
    exact = shapley(full, permutations=200, rng=np.random.default_rng(0))
    truncated = shapley(
        cut, permutations=200, rng=np.random.default_rng(0), within_tolerance=0.01
    )

    # Assert
    assert cut.evaluations < full.evaluations
    assert truncated.values[0] == pytest.approx(exact.values[0], abs=0.01)
    assert sum(truncated.values) == pytest.approx(sum(exact.values), abs=0.01)


def test_leave_one_out_is_the_loss_without_each_player() -> None:
    game = table_game(TABLE, 3)

    scores = leave_one_out(game)

    assert scores.values == pytest.approx([0.60 - 0.33, 0.60 - 0.45, 0.60 - 0.55])
    assert game.evaluations == 4


def test_a_non_finite_value_is_refused_with_the_coalition() -> None:
    game = RoundGame(2, lambda c: float("nan") if c == frozenset({1}) else 0.5)

    with pytest.raises(ValueError, match=r"coalition \[1\].*finite"):
        shapley(game, permutations=2, rng=np.random.default_rng(0))
