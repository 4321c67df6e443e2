"""Drift flags: a shifted site is flagged with column, measure and threshold; an
IID split is not (seeded)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.data.drift import DriftThresholds, drift_flags
from accord.data.preprocess import Encoder, FeatureMatrix
from accord.data.summary import Guard, summarize

CLASSES = ("no", "yes")
LEVELS = ("a", "b", "c", "missing")


def federation(
    sites: int = 6,
    rows: int = 150,
    *,
    seed: int = 0,
    shift: float = 0.0,
    level_shift: bool = False,
    label_rate: float | None = None,
):
    """``sites`` IID sites of ``rows`` rows; the last one changed as asked."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(sites):
        last = i == sites - 1
        x = rng.normal(0.0, 1.0, (rows, 2))
        if last:
            x[:, 0] += shift
        p = [0.6, 0.3, 0.1, 0.0] if not (last and level_shift) else [0.1, 0.3, 0.6, 0]
        codes = rng.choice(4, (rows, 1), p=p).astype(np.int64)
        rate = label_rate if (last and label_rate is not None) else 0.3
        labels = (rng.random(rows) < rate).astype(np.int64)
        parts.append(
            (FeatureMatrix(x, codes, ("x1", "x2"), (("colour", LEVELS),)), labels)
        )
    encoder = Encoder.fit(f for f, _ in parts)
    guard = Guard(min_count=10)
    return [
        (f"site-{i}", summarize(f, y, CLASSES, encoder, guard))
        for i, (f, y) in enumerate(parts)
    ]


@pytest.mark.parametrize("seed", range(5))
def test_an_iid_split_raises_no_flag(seed):
    assert drift_flags(federation(seed=seed), DriftThresholds()) == []


def test_a_shifted_site_is_flagged_naming_column_measure_and_threshold():
    flags = drift_flags(federation(shift=1.5), DriftThresholds())

    found = {(f.site, f.column, f.measure) for f in flags}
    assert ("site-5", "x1", "smd") in found
    assert ("site-5", "x1", "ks") in found
    assert all(f.column == "x1" for f in flags if f.site == "site-5")
    smd = next(f for f in flags if f.measure == "smd" and f.site == "site-5")
    assert smd.threshold == 0.5 and smd.value == pytest.approx(1.5, abs=0.4)
    assert str(smd).startswith("site 'site-5': 'x1' smd")


def test_a_site_with_other_categories_is_flagged_by_tvd():
    flags = drift_flags(federation(level_shift=True), DriftThresholds())

    assert [(f.site, f.column, f.measure) for f in flags] == [
        ("site-5", "colour", "tvd")
    ]
    assert flags[0].value == pytest.approx(0.5, abs=0.12)


def test_a_site_with_another_label_rate_is_flagged():
    flags = drift_flags(federation(label_rate=0.8), DriftThresholds())

    assert [(f.site, f.column, f.measure) for f in flags] == [
        ("site-5", "label", "label_rate")
    ]


def test_a_difference_under_its_threshold_is_not_flagged():
    summaries = federation(shift=1.5)

    assert drift_flags(summaries, DriftThresholds(max_smd=3.0, max_ks=0.9)) == []


def test_one_site_has_nothing_to_be_compared_with():
    assert drift_flags(federation(sites=1, shift=3.0), DriftThresholds()) == []


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(2, 6),
    st.integers(1, 200),
    st.integers(1, 30),
)
def test_identical_sites_are_never_flagged(seed, sites, rows, k):
    # Arrange: one site's rows, copied to every site (suppression included)
    rng = np.random.default_rng(seed)
    x = rng.standard_exponential((rows, 2))
    x[rng.random(rows) < 0.2, 1] = np.nan
    codes = rng.integers(0, 4, (rows, 1))
    features = FeatureMatrix(x, codes, ("x1", "x2"), (("colour", LEVELS),))
    labels = rng.integers(0, 2, rows)
    encoder = Encoder.fit([features])
    summary = summarize(features, labels, CLASSES, encoder, Guard(min_count=k))

    flags = drift_flags([(f"s{i}", summary) for i in range(sites)], DriftThresholds())

    assert flags == []
