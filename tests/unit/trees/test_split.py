import numpy as np
import pytest

from accord.trees.params import TreeParams
from accord.trees.split import best_split, leaf_weight


def _hist(g: list[list[float]], h: list[list[float]]) -> np.ndarray:
    return np.stack([np.array(g, dtype=float), np.array(h, dtype=float)], axis=-1)


def test_gain_is_xgboosts_and_the_best_cut_wins() -> None:
    hist = _hist([[-4.0, 1.0, 3.0]], [[2.0, 1.0, 2.0]])
    params = TreeParams(reg_lambda=1.0)

    found = best_split(hist, np.array([3]), params)

    assert found is not None and (found.feature, found.bin) == (0, 0)
    expected = 0.5 * (16 / 3 + 16 / 4 - 0 / 6)
    assert found.gain == pytest.approx(expected)
    assert found.left == (-4.0, 2.0) and found.right == (4.0, 3.0)


def test_min_child_weight_and_gamma_stop_a_split() -> None:
    hist = _hist([[-4.0, 1.0, 3.0]], [[2.0, 1.0, 2.0]])
    bins = np.array([3])

    assert best_split(hist, bins, TreeParams(min_child_weight=2.5)) is None
    assert best_split(hist, bins, TreeParams(gamma=100.0)) is None


def test_cuts_past_a_features_last_bin_are_not_considered() -> None:
    hist = _hist([[-4.0, 4.0, 0.0]], [[2.0, 2.0, 0.0]])

    found = best_split(hist, np.array([2]), TreeParams())

    assert found is not None and found.bin == 0


def test_leaf_weight() -> None:
    assert leaf_weight(-3.0, 2.0, TreeParams(reg_lambda=1.0)) == pytest.approx(1.0)


def test_bad_settings_name_the_key() -> None:
    from accord.errors import ConfigError

    with pytest.raises(ConfigError, match="depth"):
        TreeParams(max_depth=0)
    with pytest.raises(ConfigError, match="learning_rate"):
        TreeParams(learning_rate=0.0)
