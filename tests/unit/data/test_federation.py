from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from accord.data import FederatedData, build_federation, datasets
from accord.data.federation import plan_rows
from accord.errors import DatasetError

KINDS = ("iid", "dirichlet", "quantity")


def assert_identical(a: FederatedData, b: FederatedData) -> None:
    assert a.info == b.info
    pairs = [(a.test, b.test)]
    for sa, sb in zip(a.sites, b.sites, strict=True):
        assert sa.name == sb.name
        pairs += [(sa.train, sb.train), (sa.holdout, sb.holdout)]
    for da, db in pairs:
        assert da.x.dtype == db.x.dtype and da.x.tobytes() == db.x.tobytes()
        assert da.y.dtype == db.y.dtype and da.y.tobytes() == db.y.tobytes()


@pytest.mark.parametrize("partition", KINDS)
def test_digits_federation_shapes_and_types(partition: Any) -> None:
    fed = build_federation("digits", partition=partition, sites=4, seed=0, alpha=1.0)
    assert fed.info.feature_shape == (64,) and fed.info.n_classes == 10
    assert len(fed.sites) == 4 and [s.name for s in fed.sites][0] == "site-00"
    assert len(fed.test) == round(0.2 * 1797)
    total = len(fed.test) + sum(len(s.train) + len(s.holdout) for s in fed.sites)
    assert total == 1797
    for data in [
        fed.test,
        *(s.train for s in fed.sites),
        *(s.holdout for s in fed.sites),
    ]:
        assert data.x.dtype == np.float32 and data.y.dtype == np.int64
        assert data.x.shape[1] == 64 and data.y.min() >= 0 and data.y.max() <= 9
    for site in fed.sites:
        assert len(site.train) >= 1 and len(site.holdout) >= 1


@pytest.mark.parametrize("partition", KINDS)
def test_same_arguments_give_bit_identical_arrays(partition: Any) -> None:
    args: dict[str, Any] = {"partition": partition, "sites": 5, "seed": 11}
    assert_identical(
        build_federation("covid_testing", **args),
        build_federation("covid_testing", **args),
    )


def test_other_seed_gives_other_rows() -> None:
    a = build_federation("digits", sites=3, seed=1)
    b = build_federation("digits", sites=3, seed=2)
    assert not np.array_equal(a.sites[0].train.y, b.sites[0].train.y)


def test_test_set_does_not_depend_on_the_partition() -> None:
    tests = [build_federation("wine", partition=k, sites=3, seed=4).test for k in KINDS]
    assert all(np.array_equal(t.y, tests[0].y) for t in tests)


def test_test_set_is_stratified() -> None:
    fed = build_federation("covid_testing", sites=4, seed=0)
    pooled = np.concatenate([fed.test.y, fed.pooled_train().y])
    assert abs(fed.test.y.mean() - pooled.mean()) < 0.005


def test_pooled_train_is_standardized_but_test_is_not_fitted() -> None:
    fed = build_federation("digits", sites=4, seed=3)
    train = fed.pooled_train().x.astype(np.float64)
    varying = train.std(axis=0) > 0
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0)[varying], 1.0, rtol=1e-4)
    assert np.abs(fed.test.x.mean(axis=0)[varying]).max() > 1e-3


def test_holdout_and_test_rows_do_not_change_the_fitted_statistics(
    tmp_path: Path, csv_path: Path, csv_options: dict[str, Any]
) -> None:
    args: dict[str, Any] = {"partition": "natural", "sites": 3, "seed": 5}
    before = build_federation(f"csv:{csv_path}", options=csv_options, **args)
    frame = pd.read_csv(csv_path)
    labels = (frame["label"] == "yes").to_numpy().astype(np.int64)
    plan = plan_rows(labels, frame["hospital"].to_numpy(), **args)
    unseen = np.concatenate([plan.test, *plan.holdout])
    frame.loc[unseen, "a"] = 1e6  # evaluation rows become absurd
    changed = tmp_path / "changed.csv"
    frame.to_csv(changed, index=False)
    after = build_federation(f"csv:{changed}", options=csv_options, **args)
    for sb, sa in zip(before.sites, after.sites, strict=True):
        assert sb.train.x.tobytes() == sa.train.x.tobytes()
        assert not np.array_equal(sb.holdout.x, sa.holdout.x)
    assert not np.array_equal(before.test.x, after.test.x)
    assert before.info.feature_names[:2] == ("a", "b")


def test_covid_natural_sites_are_the_largest_clinics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    build_federation("covid_testing", sites=2, seed=0)  # warm the table cache

    # The table is read once, then served from the cache: reading it again fails.
    def read_again(locator: str) -> None:
        raise AssertionError(f"{locator} was read again instead of cached")

    monkeypatch.setattr(datasets, "_read_rdataset", read_again)
    fed = build_federation("covid_testing", partition="natural", sites=8, seed=0)
    names = [s.name for s in fed.sites]
    assert names[:4] == ["clinical lab", "emergency dept", "oncology day hosp", "nicu"]
    assert len(names) == 8
    nicu = fed.sites[3]
    assert (
        nicu.train.y.sum() == 0 and len(nicu.holdout) > 0
    )  # no positives, still split
    assert all(len(s.holdout) > 0 for s in fed.sites)
    assert fed.info.class_names == ("negative", "positive")


def test_covid_features_exclude_leaks_and_identifiers() -> None:
    fed = build_federation("covid_testing", sites=3, seed=0)
    columns = {name.split("=")[0] for name in fed.info.feature_names}
    assert not columns & {"ct_result", "subject_id", "fake_first_name", "clinic_name"}
    assert "age" in columns and "payor_group" in columns
    # no single feature should nearly decide the outcome, as ct_result would
    train = fed.pooled_train()
    for j in range(train.x.shape[1]):
        auc = roc_auc_score(train.y, train.x[:, j])
        assert max(auc, 1 - auc) < 0.8, fed.info.feature_names[j]


def test_natural_pool_and_site_column_override() -> None:
    fed = build_federation(
        "covid_testing",
        partition="natural",
        sites=2,
        seed=0,
        site_column="payor_group",
        other="pool",
    )
    assert [s.name for s in fed.sites] == ["missing", "commercial", "other"]


def test_no_test_set_when_fraction_is_zero() -> None:
    fed = build_federation("wine", sites=2, seed=0, test_fraction=0.0)
    assert fed.test.x.shape == (0, 13) and len(fed.pooled_train()) > 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "digits", "partition": "natural"}, "needs a site column"),
        ({"dataset": "digits", "partition": "random"}, "unknown partition"),
        ({"dataset": "wine", "sites": 40}, "fewer sites"),
        (
            {"dataset": "wine", "site_column": "region", "partition": "natural"},
            "region",
        ),
        ({"dataset": "wine", "seed": -1}, "non-negative"),
    ],
)
def test_impossible_federations_are_explained(
    kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"sites": 3, "seed": 0, **kwargs}
    with pytest.raises(DatasetError, match=message):
        build_federation(args.pop("dataset"), **args)


def test_csv_with_unlisted_class_is_refused(
    csv_path: Path, csv_options: dict[str, Any]
) -> None:
    options = {**csv_options, "classes": ["no", "maybe"]}
    with pytest.raises(DatasetError, match="not among the classes"):
        build_federation(f"csv:{csv_path}", sites=2, seed=0, options=options)
