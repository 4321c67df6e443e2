from __future__ import annotations

import numpy as np
import pytest

from accord.data import FederatedData, build_federation, load_table
from accord.errors import DatasetError

OPTIONS = {"rows": 4000, "features": 6, "classes": 3}


def test_synthetic_builds_deterministically() -> None:
    a = load_table("synthetic", **OPTIONS)
    b = load_table("synthetic", **OPTIONS)
    assert a.frame.equals(b.frame)
    spec = a.spec
    assert spec.site_column is None
    assert spec.numeric == ("x00", "x01", "x02", "x03", "x04", "x05")
    assert spec.classes == ("class_0", "class_1", "class_2")
    assert len(a.frame) == 4000
    counts = a.frame[spec.target].value_counts()
    assert set(counts.index) == set(spec.classes)
    assert counts.max() - counts.min() <= 1
    # a caller's edit does not reach the next load
    a.frame.loc[0, "x00"] = 1e9
    assert load_table("synthetic", **OPTIONS).frame.equals(b.frame)


def test_synthetic_is_learnable_not_constant() -> None:
    table = load_table("synthetic", rows=3000, features=4, classes=2)
    x = table.frame[list(table.spec.numeric)].to_numpy()
    y = (table.frame["label"] == "class_1").to_numpy()
    gap = np.abs(x[y].mean(axis=0) - x[~y].mean(axis=0)).max()
    assert gap > 0.2 and x.std() > 0.5


def test_synthetic_partitions_into_1000_iid_sites() -> None:
    def build(holdout_fraction: float = 0.2) -> FederatedData:
        return build_federation(
            "synthetic",
            partition="iid",
            sites=1000,
            seed=0,
            min_site_size=1,
            holdout_fraction=holdout_fraction,
            options=OPTIONS,
        )

    fed = build()
    assert len(fed.sites) == 1000 and len({s.name for s in fed.sites}) == 1000
    assert fed.info.feature_shape == (6,) and fed.info.n_classes == 3
    assert all(len(s.train) >= 1 for s in fed.sites)
    total = len(fed.test) + sum(len(s.train) + len(s.holdout) for s in fed.sites)
    assert total == 4000
    again = build()
    for sa, sb in zip(fed.sites, again.sites, strict=True):
        assert sa.train.x.tobytes() == sb.train.x.tobytes()
        assert np.array_equal(sa.train.y, sb.train.y)
    no_holdout = build(holdout_fraction=0.0)
    assert all(len(s.train) >= 3 and len(s.holdout) == 0 for s in no_holdout.sites)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rows": 10, "colour": 1}, "unknown synthetic options"),
        ({"rows": 0}, "positive integer"),
        ({"features": 2.5}, "positive integer"),
        ({"classes": True}, "positive integer"),
        ({"classes": 1}, "classes >= 2"),
        ({"rows": 3, "classes": 4}, "rows >= classes"),
        ({"rows": 10**8, "features": 10}, "limited to"),
    ],
)
def test_synthetic_options_are_checked(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        load_table("synthetic", **options)
