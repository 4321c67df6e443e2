"""Per-group counts as one vector for the secure sum, and the checks of the sum."""

from __future__ import annotations

import numpy as np
import pytest

from accord.errors import DatasetError
from accord.evaluation.fairness import GroupCounts, sum_counts
from accord.evaluation.group_sums import (
    counts_from_sum,
    counts_length,
    counts_vector,
)

GROUPS = ("a", "b", "c")


def test_summed_vectors_read_back_as_the_summed_counts_without_empty_groups():
    # Arrange: two sites; group c is declared but no row falls in it
    one = {"a": GroupCounts(1, 2, 3, 4), "b": GroupCounts(0, 0, 5, 0)}
    two = {"a": GroupCounts(10, 0, 1, 7)}

    # Act
    total = counts_vector(one, GROUPS) + counts_vector(two, GROUPS)
    summed = counts_from_sum(total, GROUPS, max_rows=33)

    # Assert
    assert counts_length(3) == 12
    assert counts_vector(one, GROUPS).tolist()[:8] == [1, 2, 3, 4, 0, 0, 5, 0]
    assert summed == sum_counts([one, two])
    assert "c" not in summed


def test_a_group_that_was_not_declared_is_refused_by_the_site():
    with pytest.raises(DatasetError, match=r"'z'.*not among .*declared groups"):
        counts_vector({"z": GroupCounts(1, 0, 0, 0)}, GROUPS)


def test_the_row_bound_holds_at_its_value_and_refuses_one_past_it():
    total = counts_vector({"a": GroupCounts(1, 1, 1, 1)}, GROUPS)

    assert counts_from_sum(total, GROUPS, max_rows=4)["a"].n == 4
    with pytest.raises(DatasetError, match="5 rows are counted; the holdouts hold 4"):
        counts_from_sum(total + np.eye(12)[0], GROUPS, max_rows=4)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(-1.0, "tp = -1.0"), (0.5, "tp = 0.5"), (2.0**53, "tp = 9007199254740992.0")],
)
def test_counts_no_holdout_gives_are_refused_without_naming_a_site(value, shown):
    total = np.zeros(12)
    total[0] = value

    with pytest.raises(DatasetError, match=f"impossible .*{shown}.*hides which"):
        counts_from_sum(total, GROUPS)


def test_the_largest_exact_count_is_accepted():
    total = np.zeros(12)
    total[0] = 2.0**53 - 1

    assert counts_from_sum(total, GROUPS)["a"].tp == 2**53 - 1


def test_a_sum_of_another_length_or_not_finite_is_refused():
    with pytest.raises(DatasetError, match="hold 11 values; 3 group"):
        counts_from_sum(np.zeros(11), GROUPS)
    bad = np.zeros(12)
    bad[3] = np.nan
    with pytest.raises(DatasetError, match="not finite"):
        counts_from_sum(bad, GROUPS)
