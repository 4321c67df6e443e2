"""A site's guarded profile: counts, categorical levels, suppression, DP, JSON."""

import json

import numpy as np
import pytest

from accord.data.histogram import BINS
from accord.data.preprocess import Encoder, FeatureMatrix
from accord.data.summary import (
    MAX_SUMMARY_BYTES,
    Guard,
    summarize,
    summary_from_json,
    summary_to_json,
)
from accord.errors import DatasetError
from accord.privacy.noise import NoiseSource

CLASSES = ("no", "yes")
LEVELS = ("blue", "green", "missing", "red")


def site(colours: list[str], *, seed: int = 0, shift: float = 0.0):
    """Numeric ``age`` (some missing) and categorical ``colour`` for each row."""
    rng = np.random.default_rng(seed)
    n = len(colours)
    age = rng.normal(50 + shift, 10, n)
    age[::25] = np.nan
    codes = np.array([[LEVELS.index(c)] for c in colours], dtype=np.int64)
    features = FeatureMatrix(age.reshape(n, 1), codes, ("age",), (("colour", LEVELS),))
    labels = (rng.random(n) < 0.3).astype(np.int64)
    return features, labels


def fitted(features: FeatureMatrix) -> Encoder:
    return Encoder.fit([features])


def test_a_categorical_profile_counts_each_federation_level():
    colours = ["red"] * 40 + ["blue"] * 25 + ["missing"] * 12 + ["green"] * 23
    features, labels = site(colours)

    s = summarize(features, labels, CLASSES, fitted(features), Guard(min_count=10))

    assert s.categorical == {
        "colour": {"blue": 25, "green": 23, "missing": 12, "red": 40}
    }
    assert s.rows == 100
    assert s.labels == {"no": int((labels == 0).sum()), "yes": int(labels.sum())}


def test_numeric_columns_have_missing_count_moments_and_a_full_sketch():
    features, labels = site(["red"] * 200)
    encoder = fitted(features)

    s = summarize(features, labels, CLASSES, encoder, Guard(min_count=1))
    age = features.numeric[:, 0]

    column = s.numeric["age"]
    assert column.missing == 8
    assert column.mean == pytest.approx(np.nanmean(age), rel=1e-12)
    assert column.std == pytest.approx(np.nanstd(age), rel=1e-12)
    assert len(column.bins) == BINS and sum(column.bins) == 192


def test_a_level_held_by_k_minus_1_rows_is_suppressed_and_by_k_is_shown():
    k = 10
    below = ["red"] * 60 + ["blue"] * (k - 1) + ["green"] * 31
    at = ["red"] * 60 + ["blue"] * k + ["green"] * 30
    f_below, l_below = site(below)
    f_at, l_at = site(at)

    s_below = summarize(f_below, l_below, CLASSES, fitted(f_below), Guard(k))
    s_at = summarize(f_at, l_at, CLASSES, fitted(f_at), Guard(k))

    # blue hidden, and the smallest other non-empty level so it cannot be derived
    assert s_below.categorical["colour"] == {
        "blue": None,
        "green": None,
        "missing": 0,
        "red": 60,
    }
    assert s_at.categorical["colour"] == {
        "blue": 10,
        "green": 30,
        "missing": 0,
        "red": 60,
    }


def test_a_site_with_fewer_than_k_rows_reveals_no_count_and_no_mean():
    features, labels = site(["red"] * 9)

    s = summarize(features, labels, CLASSES, fitted(features), Guard(min_count=10))

    assert s.rows is None
    assert s.numeric["age"].mean is None and s.numeric["age"].std is None
    assert all(v is None or v == 0 for v in s.categorical["colour"].values())


def test_laplace_noise_moves_the_counts_and_is_recorded_with_its_epsilon():
    features, labels = site(["red"] * 300 + ["blue"] * 200)
    encoder = fitted(features)
    guard = Guard(min_count=10, noise="laplace", epsilon=1.0)

    a = summarize(features, labels, CLASSES, encoder, guard, source=NoiseSource(1))
    b = summarize(features, labels, CLASSES, encoder, guard, source=NoiseSource(1))
    c = summarize(features, labels, CLASSES, encoder, guard, source=NoiseSource(2))
    exact = summarize(features, labels, CLASSES, encoder, Guard(min_count=10))

    assert a == b  # a seeded source repeats itself (tests only)
    assert a != c
    assert a.categorical != exact.categorical
    # 1 label + 3 numeric + 1 categorical queries: Laplace scale 5/ε per count
    red = a.categorical["colour"]["red"]
    assert red is not None and abs(red - 300) < 5 * 5 * 8  # 8 scales: p < 1e-3
    assert a.rows == sum(v for v in a.labels.values() if v is not None)
    assert a.numeric["age"].mean == pytest.approx(exact.numeric["age"].mean, abs=5)
    assert json.loads(summary_to_json(a))["guard"] == {
        "minCount": 10,
        "noise": "laplace",
        "epsilon": 1.0,
        "delta": None,
    }


def test_gaussian_noise_needs_a_delta_and_laplace_an_epsilon():
    with pytest.raises(DatasetError, match="delta"):
        Guard(noise="gaussian", epsilon=1.0)
    with pytest.raises(DatasetError, match="epsilon"):
        Guard(noise="laplace")
    with pytest.raises(DatasetError, match="min_count"):
        Guard(min_count=0)
    assert Guard(min_count=1).min_count == 1


def test_a_summary_survives_its_json():
    features, labels = site(["red"] * 50 + ["green"] * 9 + ["blue"] * 41)
    s = summarize(features, labels, CLASSES, fitted(features), Guard(min_count=10))

    assert summary_from_json(summary_to_json(s)) == s


def _doc(**changes):
    features, labels = site(["red"] * 50)
    s = summarize(features, labels, CLASSES, fitted(features), Guard(min_count=1))
    doc = json.loads(summary_to_json(s))
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"[1]", "must be an object"),
        (b'{"rows": NaN}', "not a number accord accepts"),
        (_doc(rows=-1), "not a count"),
        (_doc(rows=True), "not a count"),
        (_doc(rows=2**53), "not a count"),
        (_doc(labels={"no": 1.5}), "not a count"),
        (_doc(extra=1), "exactly"),
        (
            _doc(numeric={"age": {"missing": 0, "mean": 1, "std": 1, "bins": [0]}}),
            f"needs {BINS} bins",
        ),
        (
            _doc(
                numeric={
                    "age": {"missing": 0, "mean": 1, "std": -1, "bins": [0] * BINS}
                }
            ),
            "negative std",
        ),
        (
            _doc(
                guard={"minCount": 10, "noise": "loud", "epsilon": None, "delta": None}
            ),
            "guard",
        ),
        (b" " * (MAX_SUMMARY_BYTES + 1), "more than"),
    ],
)
def test_a_bad_summary_is_refused_saying_why(data, words):
    with pytest.raises(DatasetError, match=words):
        summary_from_json(data)


def test_the_largest_count_is_accepted():
    assert summary_from_json(_doc(rows=2**53 - 1)).rows == 2**53 - 1
