import json
import math

import numpy as np
import pytest

from accord.data.handshake import (
    PrepareRequest,
    encoding_ack,
    encoding_payload,
    parse_encoding,
    parse_encoding_ack,
)
from accord.data.preprocess import Encoder, SufficientStats
from accord.data.profile import (
    MAX_LEVELS,
    MAX_NAME,
    Schema,
    SiteProfile,
    encoder_digest,
    encoder_from_json,
    encoder_to_json,
    fit_encoder,
    profile_from_json,
    profile_to_json,
)
from accord.errors import DatasetError, SchemaMismatch

SCHEMA = Schema(("a", "b"), ("colour",), ("no", "yes"), {})


def profile(values: np.ndarray, levels=("red",), **overrides) -> SiteProfile:
    stats = SufficientStats.of(values)
    fields = {
        "classes": ("no", "yes"),
        "numeric": {
            name: (
                float(stats.count[j]),
                float(stats.total[j]),
                float(stats.total_sq[j]),
            )
            for j, name in enumerate(("a", "b"))
        },
        "categorical": {"colour": tuple(levels)},
        "train_rows": len(values),
    }
    return SiteProfile(**{**fields, **overrides})


def test_the_fit_equals_the_pooled_fit_in_any_site_order():
    rng = np.random.default_rng(3)
    parts = [rng.normal(k * 5.0, k + 1.0, (n, 2)) for k, n in enumerate((7, 30, 12))]
    profiles = [(f"s{k}", profile(p)) for k, p in enumerate(parts)]

    fitted = fit_encoder(profiles, SCHEMA)
    reversed_fit = fit_encoder(profiles[::-1], SCHEMA)

    pooled = SufficientStats.of(np.concatenate(parts))
    np.testing.assert_allclose(fitted.mean, pooled.mean, rtol=1e-12)
    assert encoder_digest(fitted) == encoder_digest(reversed_fit)


def test_levels_are_the_sorted_union_or_the_declared_ones():
    x = np.ones((3, 2))
    sites = [("s0", profile(x, ("red", "blue"))), ("s1", profile(x, ("green",)))]

    union = fit_encoder(sites, SCHEMA)
    declared = fit_encoder(
        sites,
        Schema(
            ("a", "b"),
            ("colour",),
            ("no", "yes"),
            {"colour": ("red", "green", "blue", "missing")},
        ),
    )

    assert union.levels == (("colour", ("blue", "green", "red")),)
    assert declared.levels == (("colour", ("red", "green", "blue", "missing")),)


@pytest.mark.parametrize(
    ("site_profile", "column", "words"),
    [
        (
            {"numeric": {"a": (1.0, 1.0, 1.0)}},
            "b",
            "has no column 'b'",
        ),
        (
            {"categorical": {"colour": ("red",), "b": ("x",)}, "numeric": {}},
            "a",
            "has no column 'a'",
        ),
        (
            {"classes": ("no", "yes", "maybe")},
            "classes",
            "classes",
        ),
        (
            {"categorical": {"colour": ("red",), "extra": ("x",)}},
            "extra",
            "a column 'extra' that the federation's schema lacks",
        ),
    ],
)
def test_a_mismatch_names_the_site_and_the_column(site_profile, column, words):
    good = profile(np.ones((3, 2)))
    bad = SiteProfile(**{**_fields(good), **site_profile})

    with pytest.raises(SchemaMismatch, match=words) as caught:
        fit_encoder([("good", good), ("bad-site", bad)], SCHEMA)

    assert (caught.value.site, caught.value.column) == ("bad-site", column)


def test_a_column_numeric_at_one_site_and_categorical_at_another_is_named():
    good = profile(np.ones((3, 2)))
    bad = SiteProfile(
        **{
            **_fields(good),
            "numeric": {"a": (3.0, 3.0, 3.0)},
            "categorical": {"colour": ("red",), "b": ("1", "2")},
        }
    )

    with pytest.raises(SchemaMismatch, match="'b' is categorical at site 'x'"):
        fit_encoder([("x", bad)], SCHEMA)


def test_an_undeclared_level_is_refused_and_a_declared_one_is_not():
    schema = Schema(
        ("a", "b"), ("colour",), ("no", "yes"), {"colour": ("red", "missing")}
    )
    x = np.ones((2, 2))

    fit_encoder([("ok", profile(x, ("red", "missing")))], schema)
    with pytest.raises(SchemaMismatch, match="'blue' of column 'colour'"):
        fit_encoder(
            [("ok", profile(x, ("red",))), ("s", profile(x, ("blue",)))], schema
        )


def _fields(p: SiteProfile) -> dict:
    return {
        "classes": p.classes,
        "numeric": p.numeric,
        "categorical": p.categorical,
        "train_rows": p.train_rows,
    }


def test_profiles_and_encoders_survive_their_json_bit_for_bit():
    rng = np.random.default_rng(0)
    p = profile(rng.normal(1e3, 1e-3, (9, 2)))
    encoder = fit_encoder([("s", p)], SCHEMA)

    assert profile_from_json(profile_to_json(p)) == p
    back = encoder_from_json(encoder_to_json(encoder))
    assert back.mean.tobytes() == encoder.mean.tobytes()
    assert back.scale.tobytes() == encoder.scale.tobytes()
    assert back.levels == encoder.levels and encoder_digest(back) == encoder_digest(
        encoder
    )


def _doc(**changes) -> bytes:
    doc = {
        "classes": ["no", "yes"],
        "numeric": {"a": [2, 2.0, 2.0]},
        "categorical": {"colour": ["red"]},
        "train_rows": 2,
    }
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
        (_doc(extra=1), "exactly"),
        (_doc(train_rows=0), "out of range"),
        (_doc(train_rows=2**53), "out of range"),
        (_doc(train_rows=True), "not an integer"),
        (_doc(numeric={"a": [3, 2.0, 2.0]}), "impossible"),  # count > rows
        (_doc(numeric={"a": [1.5, 2.0, 2.0]}), "impossible"),
        (_doc(numeric={"a": [2, 2.0, -1e-9]}), "impossible"),
        (_doc(numeric={"a": [2, 3.0, 4.0]}), "impossible"),  # 9 > 2 * 4
        (_doc(numeric={"a": [2, 1e300, 1.0]}).replace(b"1e+300", b"1e309"), "finite"),
        (_doc(numeric={"a": [2, 10**400, 1.0]}), "not finite"),
        (
            b'{"classes": ["no", "yes"], "numeric": {"a": [2, NaN, 1]}, '
            b'"categorical": {}, "train_rows": 2}',
            "not valid JSON",
        ),
        (_doc(numeric={"a": [2, "2", 2.0]}), "not a number"),
        (_doc(numeric={"a": [2, 2.0]}), "list of 3"),
        (_doc(categorical={"colour": ["red", "red"]}), "twice"),
        (_doc(categorical={"colour": ["x" * (MAX_NAME + 1)]}), "1 to 256"),
        (_doc(categorical={"colour": [""]}), "1 to 256"),
        (_doc(categorical={"colour": ["l"] * (MAX_LEVELS + 1)}), "at most"),
    ],
)
def test_a_bad_profile_is_refused_saying_why(data, words):
    with pytest.raises(DatasetError, match=words):
        profile_from_json(data)


def test_the_bounds_themselves_are_accepted():
    longest = "x" * MAX_NAME
    levels = [f"l{i}" for i in range(MAX_LEVELS)]
    ok = profile_from_json(
        _doc(
            train_rows=2**53 - 1,
            numeric={"a": [2, 3.0, 4.5]},  # 9 == 2 * 4.5: a zero variance
            categorical={longest: levels},
        )
    )
    assert ok.train_rows == 2**53 - 1 and len(ok.categorical[longest]) == MAX_LEVELS


def test_an_encoder_with_a_zero_scale_or_a_twice_named_column_is_refused():
    enc = Encoder(("a",), (("c", ("x",)),), np.zeros(1), np.ones(1))
    doc = json.loads(encoder_to_json(enc))
    with pytest.raises(DatasetError, match="positive"):
        encoder_from_json(json.dumps({**doc, "scale": [0.0]}).encode())
    with pytest.raises(DatasetError, match="twice"):
        encoder_from_json(json.dumps({**doc, "levels": [["a", ["x"]]]}).encode())


def test_the_encoding_message_carries_request_and_encoder():
    enc = Encoder(("a",), (), np.array([math.pi]), np.array([math.e]))
    request = PrepareRequest(seed=5, holdout_fraction=0.25, index=2)

    got_request, got = parse_encoding(encoding_payload(request, enc))

    assert got_request == request and encoder_digest(got) == encoder_digest(enc)
    assert parse_encoding_ack(encoding_ack(enc, 1)) == encoder_digest(enc)


@pytest.mark.parametrize(
    "doc",
    [
        {"seed": -1, "holdout_fraction": 0.2, "index": 0, "secure_aggregation": "off"},
        {"seed": 0, "holdout_fraction": 1.0, "index": 0, "secure_aggregation": "off"},
        {
            "seed": 0,
            "holdout_fraction": 0.2,
            "index": True,
            "secure_aggregation": "off",
        },
        {"seed": 0, "holdout_fraction": 0.2, "index": 0, "secure_aggregation": "on"},
        {"seed": 0, "holdout_fraction": 0.2, "index": 0},
    ],
)
def test_a_bad_request_is_refused(doc):
    with pytest.raises(DatasetError):
        PrepareRequest.from_json(json.dumps(doc))


def test_a_request_at_the_bounds_is_accepted():
    doc = {"seed": 0, "holdout_fraction": 0.0, "index": 0, "secure_aggregation": "ckks"}
    assert PrepareRequest.from_json(json.dumps(doc)).holdout_fraction == 0.0
