from __future__ import annotations

import itertools

import numpy as np
import pytest

from accord.aggregation.network import (
    compile_program,
    extremes_network,
    sorting_network,
)


def apply(comparators, values):
    values = list(values)
    for lo, hi in comparators:
        values[lo], values[hi] = (
            min(values[lo], values[hi]),
            max(values[lo], values[hi]),
        )
    return values


@pytest.mark.parametrize("n", range(1, 13))
def test_sorting_network_sorts_every_zero_one_input(n):
    # the 0-1 principle: a network that sorts all 0/1 inputs sorts everything
    network = sorting_network(n)

    for bits in itertools.product((0, 1), repeat=n):
        assert apply(network, bits) == sorted(bits)


@pytest.mark.parametrize(("n", "k"), [(3, 1), (6, 2), (9, 1), (10, 3), (12, 5)])
def test_extremes_network_keeps_the_middle_multiset(n, k):
    comparators, middle = extremes_network(n, k)
    rng = np.random.default_rng(n * 100 + k)

    for _ in range(200):
        values = list(rng.integers(0, 5, n))
        out = apply(comparators, values)
        assert sorted(out[w] for w in middle) == sorted(values)[k : n - k]


@pytest.mark.parametrize("n", [2, 5, 10, 17])
def test_program_computes_order_statistics_without_touching_inputs(n):
    rng = np.random.default_rng(n)
    inputs = [rng.standard_normal(33).astype(np.float32) for _ in range(n)]
    frozen = [x.copy() for x in inputs]
    for x in inputs:
        x.flags.writeable = False
    program = compile_program(n, sorting_network(n), (n // 2,))
    work = [np.empty(33, np.float32) for _ in range(program.n_work)]
    out = np.empty(33, np.float32)

    program.run(inputs, work, out)

    np.testing.assert_array_equal(out, np.sort(np.stack(frozen), axis=0)[n // 2])
    assert program.n_work <= n


def test_invalid_requests_are_refused():
    with pytest.raises(ValueError):
        extremes_network(4, 2)
    with pytest.raises(ValueError):
        compile_program(3, sorting_network(3), ())
