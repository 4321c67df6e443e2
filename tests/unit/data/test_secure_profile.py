"""What a site reveals under secure aggregation: its columns; and the requests."""

import json

import numpy as np
import pytest

from accord.data.handshake import PrepareRequest, StatisticsRequest
from accord.data.preprocess import SufficientStats
from accord.data.profile import (
    Schema,
    SiteColumns,
    SiteProfile,
    check_columns,
    columns_from_json,
    columns_to_json,
    fit_encoder,
)
from accord.errors import DatasetError, SchemaMismatch

SCHEMA = Schema(("a", "b"), ("colour",), ("no", "yes"), {})
DECLARED = Schema(("a", "b"), ("colour",), ("no", "yes"), {"colour": ("red", "blue")})


def columns(levels=("red",), **overrides) -> SiteColumns:
    fields = {
        "classes": ("no", "yes"),
        "numeric": ("a", "b"),
        "categorical": {"colour": tuple(levels)},
    }
    return SiteColumns(**{**fields, **overrides})


def test_columns_travel_without_a_single_number():
    sent = columns_to_json(columns(("red", "blue")))

    doc = json.loads(sent)
    assert set(doc) == {"classes", "numeric_columns", "categorical"}
    assert columns_from_json(sent) == columns(("red", "blue"))


@pytest.mark.parametrize(
    "doc",
    [
        '{"classes": ["no", "yes"], "numeric_columns": ["a"], "categorical": {}, '
        '"numeric": {"a": [1, 2, 3]}}',  # sums in a secure profile
        '{"classes": ["no", "yes"], "numeric_columns": ["a", "a"], "categorical": {}}',
        '{"classes": ["no", "yes"], "numeric_columns": [1], "categorical": {}}',
        '{"classes": ["no"], "numeric_columns": [], "categorical": {"c": "red"}}',
    ],
)
def test_malformed_columns_are_refused(doc):
    with pytest.raises(DatasetError):
        columns_from_json(doc.encode())


def test_columns_are_checked_like_profiles_and_give_the_union_of_levels():
    sites = [("s0", columns(("red",))), ("s1", columns(("blue", "green")))]

    levels = check_columns(sites, SCHEMA)

    assert levels == (("colour", ("blue", "green", "red")),)


def test_the_levels_of_a_profile_and_of_columns_are_the_same():
    values = np.arange(6.0).reshape(3, 2)
    stats = SufficientStats.of(values)
    numeric = {
        n: (float(stats.count[j]), float(stats.total[j]), float(stats.total_sq[j]))
        for j, n in enumerate(("a", "b"))
    }
    profile = SiteProfile(("no", "yes"), numeric, {"colour": ("red", "blue")}, 3)

    plain = fit_encoder([("s0", profile)], SCHEMA)

    assert plain.levels == check_columns([("s0", columns(("red", "blue")))], SCHEMA)


def test_a_site_without_a_column_is_named_under_secure_aggregation_too():
    with pytest.raises(SchemaMismatch) as caught:
        check_columns([("s0", columns()), ("s1", columns(numeric=("a",)))], SCHEMA)
    assert (caught.value.site, caught.value.column) == ("s1", "b")


def test_declared_levels_need_none_from_the_sites():
    # Withheld levels (the site checked them itself) fit the declared ones.
    assert check_columns([("s0", columns(()))], DECLARED) == (
        ("colour", ("red", "blue")),
    )


def test_a_request_carries_the_declared_levels_and_reads_an_older_one():
    request = PrepareRequest(3, 0.2, 1, "masking", {"colour": ("red", "missing")})

    assert PrepareRequest.from_json(request.to_json()) == request
    older = (
        b'{"seed": 3, "holdout_fraction": 0.2, "index": 1, "secure_aggregation": "off"}'
    )
    assert PrepareRequest.from_json(older).declared == {}
    assert request.secure and not PrepareRequest.from_json(older).secure


@pytest.mark.parametrize("declared", ['{"c": "red"}', '{"c": [1]}', '["red"]'])
def test_bad_declared_levels_are_refused(declared):
    doc = (
        '{"seed": 3, "holdout_fraction": 0.2, "index": 1, '
        f'"secure_aggregation": "masking", "declared": {declared}}}'
    )
    with pytest.raises(DatasetError, match="declared levels"):
        PrepareRequest.from_json(doc.encode())


def test_a_statistics_request_round_trips_and_refuses_a_bad_one():
    request = StatisticsRequest(PrepareRequest(3, 0.2, 1, "masking"), ("a", "b"), "{}")

    assert StatisticsRequest.from_json(request.to_json()) == request
    doc = json.loads(request.to_json())
    doc["columns"] = ["a", "a"]
    with pytest.raises(DatasetError, match="columns or job"):
        StatisticsRequest.from_json(json.dumps(doc).encode())
    with pytest.raises(DatasetError, match="exactly"):
        StatisticsRequest.from_json(b'{"columns": []}')
