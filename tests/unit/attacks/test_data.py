"""Data attacks: label flipping, the backdoor trigger, its success rate, site draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from accord.attacks.data import (
    Trigger,
    attack_success_rate,
    flip_labels,
    make_trigger,
    poison_federation,
)
from accord.attacks.sites import malicious_sites
from accord.config import AttackConfig, BackdoorConfig
from accord.data.arrays import ArrayData
from accord.data.federation import build_federation
from accord.errors import ConfigError
from accord.params import Params

SITES = tuple(f"site-{i:02d}" for i in range(10))


def _data(n: int = 40, d: int = 6, seed: int = 0) -> ArrayData:
    rng = np.random.default_rng(seed)
    return ArrayData(
        rng.uniform(0, 1, (n, d)).astype(np.float32),
        rng.integers(0, 3, n).astype(np.int64),
    )


def test_label_flip_maps_y_to_k_minus_1_minus_y() -> None:
    data = _data()

    flipped = flip_labels(data, 3)

    np.testing.assert_array_equal(flipped.y, 2 - data.y)
    np.testing.assert_array_equal(flipped.x, data.x)


@pytest.mark.parametrize(("fraction", "expected"), [(0.5, 20), (1.0, 40), (0.01, 1)])
def test_backdoor_poisons_the_fraction_of_rows_with_trigger_and_target(
    fraction: float, expected: int
) -> None:
    data = _data()
    trigger = Trigger(features=(4, 5), value=9.0, target=1, fraction=fraction)

    out = trigger.poison(data, np.random.default_rng(0))

    stamped = (out.x[:, 4] == 9.0) & (out.x[:, 5] == 9.0)
    assert int(stamped.sum()) == expected
    assert (out.y[stamped] == 1).all()
    np.testing.assert_array_equal(out.x[~stamped], data.x[~stamped])
    np.testing.assert_array_equal(out.y[~stamped], data.y[~stamped])


def test_trigger_defaults_are_the_last_four_features_at_their_largest_value() -> None:
    data = _data(d=10)

    trigger = make_trigger(BackdoorConfig(), pooled_train=data, n_classes=3)

    assert trigger.features == (6, 7, 8, 9)
    assert trigger.value == pytest.approx(float(data.x[:, 6:].max()))


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (BackdoorConfig(target=3), "not a class"),
        (BackdoorConfig(features=[10]), "outside"),
        (BackdoorConfig(features=[-1]), "outside"),
    ],
)
def test_a_trigger_that_does_not_fit_the_data_is_refused(
    config: BackdoorConfig, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        make_trigger(config, pooled_train=_data(d=10), n_classes=3)


class _FeatureZeroTask:
    """Predicts class 2 whenever feature 0 is above 5, else class 0."""

    def predict(self, params: Params, x: np.ndarray) -> np.ndarray:
        cls = np.where(x[:, 0] > 5, 2, 0)
        return np.eye(3)[cls]


def test_attack_success_rate_counts_only_rows_of_other_classes() -> None:
    test = _data(n=30)
    on = Trigger(features=(0,), value=9.0, target=2, fraction=1.0)
    off = Trigger(features=(1,), value=9.0, target=2, fraction=1.0)
    task = _FeatureZeroTask()

    assert attack_success_rate(task, Params({}), test, on) == 1.0  # type: ignore[arg-type]
    assert attack_success_rate(task, Params({}), test, off) == 0.0  # type: ignore[arg-type]
    only_target = ArrayData(test.x, np.full(30, 2))
    assert math.isnan(attack_success_rate(task, Params({}), only_target, on))  # type: ignore[arg-type]


def test_malicious_sites_by_count_are_seeded_and_by_name_exact() -> None:
    by_count = AttackConfig(kind="alie", count=2)

    first = malicious_sites(by_count, SITES, seed=1)

    assert len(first) == 2
    assert malicious_sites(by_count, SITES, seed=1) == first
    assert any(malicious_sites(by_count, SITES, seed=s) != first for s in range(2, 6))
    named = AttackConfig(kind="alie", sites=["site-07", "site-02"])
    assert malicious_sites(named, SITES, seed=0) == ("site-02", "site-07")
    assert len(malicious_sites(AttackConfig(kind="ipm", fraction=0.25), SITES, 0)) == 2


def test_malicious_sites_must_exist_and_leave_an_honest_one() -> None:
    with pytest.raises(ConfigError, match="site-99"):
        malicious_sites(AttackConfig(kind="alie", sites=["site-99"]), SITES, 0)
    with pytest.raises(ConfigError, match="no honest site"):
        malicious_sites(AttackConfig(kind="alie", count=10), SITES, 0)
    assert len(malicious_sites(AttackConfig(kind="alie", count=9), SITES, 0)) == 9


def test_poisoning_a_federation_changes_only_the_malicious_training_rows() -> None:
    data = build_federation("digits", partition="iid", sites=4, seed=2)
    attack = AttackConfig(kind="label_flip", sites=["site-01"])

    out = poison_federation(data, attack, seed=2)

    assert out.malicious == ("site-01",)
    assert out.trigger is None
    np.testing.assert_array_equal(out.data.sites[1].train.y, 9 - data.sites[1].train.y)
    np.testing.assert_array_equal(out.data.sites[1].holdout.y, data.sites[1].holdout.y)
    for i in (0, 2, 3):
        assert out.data.sites[i] is data.sites[i]
    assert out.data.test is data.test
