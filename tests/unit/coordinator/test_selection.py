from hypothesis import given
from hypothesis import strategies as st

from accord.coordinator.selection import derive_seed, select

ROSTER = tuple(f"site-{i:02d}" for i in range(20))


def test_full_fraction_selects_everyone_in_roster_order():
    assert select(ROSTER, fraction=1.0, minimum=1, run_seed=3, round_number=1) == ROSTER


@given(
    fraction=st.floats(0.01, 1.0),
    minimum=st.integers(1, 25),
    seed=st.integers(0, 2**32),
    rnd=st.integers(1, 1000),
)
def test_selection_size_order_and_determinism(fraction, minimum, seed, rnd):
    chosen = select(
        ROSTER, fraction=fraction, minimum=minimum, run_seed=seed, round_number=rnd
    )
    again = select(
        ROSTER, fraction=fraction, minimum=minimum, run_seed=seed, round_number=rnd
    )
    assert chosen == again
    assert len(set(chosen)) == len(chosen)
    assert len(chosen) >= min(minimum, len(ROSTER))
    assert list(chosen) == sorted(chosen, key=ROSTER.index)


def test_rounds_select_different_subsets():
    picks = {
        select(ROSTER, fraction=0.3, minimum=1, run_seed=0, round_number=r)
        for r in range(1, 11)
    }
    assert len(picks) > 1


def test_derived_seeds_are_distinct_and_stable():
    seeds = {derive_seed(42, r, i) for r in range(5) for i in range(50)}
    assert len(seeds) == 250
    assert derive_seed(42, 1, 2) == derive_seed(42, 1, 2)
    assert all(0 <= s < 2**32 for s in seeds)
