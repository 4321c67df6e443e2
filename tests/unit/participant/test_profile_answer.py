"""A csv: site's data profile in its ``encoding`` answer: asked for, guarded, and
never below the site's own floor (``--min-profile-count``)."""

import json

import numpy as np
import pytest

from accord.data.handshake import (
    PrepareRequest,
    encoding_payload,
    parse_encoding_ack,
    parse_encoding_summary,
)
from accord.data.profile import Schema, fit_encoder, profile_from_json
from accord.data.summary import Guard
from accord.errors import ConfigError, DatasetError
from accord.participant.data import load_local_data
from accord.participant.policy import SitePolicy
from accord.participant.preparation import Preparation
from accord.participant.table import SiteTable
from accord.transport.messages import TaskOrder

OPTIONS = {"target": "label", "categorical": "colour"}
SCHEMA = Schema(("b", "a"), ("colour",), ("no", "yes"), {})


@pytest.fixture
def site(tmp_path) -> SiteTable:
    rng = np.random.default_rng(2)
    colours = ("red", "red", "red", "blue")
    rows = ["b,colour,a,label"] + [
        f"{rng.normal(4, 2):.4f},{colours[i % 4]},{rng.normal():.4f},"
        f"{'yes' if i % 3 else 'no'}"
        for i in range(80)
    ]
    path = tmp_path / "clinic.csv"
    path.write_text("\n".join(rows) + "\n")
    table = load_local_data(f"csv:{path}", options=OPTIONS)
    assert isinstance(table, SiteTable)
    return table


def order(stage: str, payload: bytes) -> TaskOrder:
    return TaskOrder("run", 0, "secagg", "", stage=stage, payload=payload)


def answer(site, request: PrepareRequest, policy: SitePolicy | None = None) -> bytes:
    prep = Preparation(site, builder=lambda data: None, policy=policy or SitePolicy())
    profile = profile_from_json(prep.answer(order("profile", request.to_json())))
    encoder = fit_encoder([("clinic", profile)], SCHEMA)
    return prep.answer(order("encoding", encoding_payload(request, encoder)))


def test_without_a_guard_the_answer_holds_no_profile(site):
    sent = answer(site, PrepareRequest(3, 0.2, 0))

    assert set(json.loads(sent)) == {"digest", "features"}
    assert parse_encoding_summary(sent) is None
    assert len(parse_encoding_ack(sent)) == 64


def test_with_a_guard_the_site_profiles_its_training_rows(site):
    request = PrepareRequest(3, 0.2, 0, summary=Guard(min_count=10))
    sent = answer(site, request)

    summary = parse_encoding_summary(sent)
    train, _ = site.split(request)
    red = int((site.table.frame["colour"].to_numpy()[train] == "red").sum())
    assert summary is not None
    assert summary.rows == 64  # 80 rows, 16 held out
    assert summary.guard.min_count == 10
    assert set(summary.categorical["colour"]) == {"blue", "red"}
    assert summary.categorical["colour"] == {"blue": 64 - red, "red": red}


def test_the_site_floor_raises_the_runs_minimum_count(site):
    request = PrepareRequest(3, 0.2, 0, summary=Guard(min_count=2))

    sent = answer(site, request, SitePolicy(min_profile_count=50))

    summary = parse_encoding_summary(sent)
    assert summary is not None and summary.guard.min_count == 50
    # red (about 48 of 64) is under the site's floor now: suppressed, blue with it
    assert summary.categorical["colour"] == {"blue": None, "red": None}


def test_a_floor_under_the_runs_minimum_changes_nothing(site):
    request = PrepareRequest(3, 0.2, 0, summary=Guard(min_count=20))

    sent = answer(site, request, SitePolicy(min_profile_count=5))

    summary = parse_encoding_summary(sent)
    assert summary is not None and summary.guard.min_count == 20


def test_a_floor_out_of_range_is_refused_naming_the_option():
    with pytest.raises(ConfigError, match="--min-profile-count"):
        SitePolicy(min_profile_count=0)
    assert SitePolicy(min_profile_count=1_000_000).min_profile_count == 1_000_000


def test_a_request_with_a_bad_guard_is_refused():
    doc = json.loads(PrepareRequest(3, 0.2, 0, summary=Guard()).to_json())
    doc["summary"]["minCount"] = -1

    with pytest.raises(DatasetError, match="minCount"):
        PrepareRequest.from_json(json.dumps(doc))
