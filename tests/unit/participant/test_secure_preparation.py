"""A csv: site's answers to the preprocessing stages when secure aggregation is on."""

import json

import numpy as np
import pytest

from accord.data.handshake import PrepareRequest, StatisticsRequest
from accord.data.profile import columns_from_json
from accord.data.sums import statistics_from_sum
from accord.errors import DatasetError
from accord.participant.data import load_local_data
from accord.participant.policy import SitePolicy
from accord.participant.preparation import Preparation, PreparationRefused
from accord.participant.rounds import SecureRounds
from accord.participant.table import SiteTable
from accord.transport.messages import TaskOrder

OPTIONS = {"target": "label", "categorical": "colour"}


@pytest.fixture
def site(tmp_path) -> SiteTable:
    rng = np.random.default_rng(1)
    colours = ("red", "blue", "")
    rows = ["b,colour,a,label"] + [
        f"{rng.normal(4, 2):.4f},{colours[i % 3]},"
        f"{'' if i % 9 == 0 else f'{rng.normal():.4f}'},{'yes' if i % 3 else 'no'}"
        for i in range(45)
    ]
    path = tmp_path / "clinic.csv"
    path.write_text("\n".join(rows) + "\n")
    table = load_local_data(f"csv:{path}", options=OPTIONS)
    assert isinstance(table, SiteTable)
    return table


def order(stage: str, payload: bytes) -> TaskOrder:
    return TaskOrder("run", 0, "secagg", "", stage=stage, payload=payload)


def preparation(site, policy=None) -> Preparation:
    policy = policy or SitePolicy()
    return Preparation(
        site, builder=lambda data: None, policy=policy, secure=SecureRounds(policy)
    )


def test_a_secure_profile_holds_columns_and_levels_only(site):
    request = PrepareRequest(3, 0.2, 0, "masking")

    sent = preparation(site).answer(order("profile", request.to_json()))

    doc = json.loads(sent)
    assert set(doc) == {"classes", "numeric_columns", "categorical"}
    described = columns_from_json(sent)
    assert described.numeric == ("b", "a")
    assert described.categorical == {"colour": ("blue", "missing", "red")}


def test_declared_levels_are_checked_at_the_site_and_not_sent(site):
    declared = {"colour": ("red", "blue", "green", "missing")}
    request = PrepareRequest(3, 0.2, 0, "masking", declared)

    sent = preparation(site).answer(order("profile", request.to_json()))

    assert columns_from_json(sent).categorical == {"colour": ()}


def test_a_level_outside_the_declared_ones_is_refused_naming_the_column(site, caplog):
    request = PrepareRequest(3, 0.2, 0, "masking", {"colour": ("red", "missing")})

    with pytest.raises(PreparationRefused, match="column 'colour' holds 1 level") as e:
        preparation(site).answer(order("profile", request.to_json()))

    assert "blue" not in str(e.value)  # the level itself stays at the site
    assert "'blue'" in caplog.text  # and in its operator's log


def test_a_site_requiring_secure_aggregation_sends_its_columns_not_its_sums(site):
    policy = SitePolicy(require_secure_aggregation=True)
    secure = PrepareRequest(3, 0.2, 0, "masking")
    plain = PrepareRequest(3, 0.2, 0, "off")

    assert preparation(site, policy).answer(order("profile", secure.to_json()))
    with pytest.raises(PreparationRefused, match='mode = "masking"'):
        preparation(site, policy).answer(order("profile", plain.to_json()))


def test_the_statistics_are_the_plain_profile_in_the_federation_order(site):
    request = PrepareRequest(3, 0.2, 0, "masking")
    profile = site.profile(request)

    vector = site.statistics(request, ("a", "b"))

    stats, rows = statistics_from_sum(vector, 2)
    assert rows == profile.train_rows == 36
    for j, name in enumerate(("a", "b")):
        count, total, squares = profile.numeric[name]
        assert (stats.count[j], stats.total[j], stats.total_sq[j]) == (
            count,
            total,
            squares,
        )
    assert stats.count.tolist() == [34.0, 36.0]  # a's missing values count nowhere
    with pytest.raises(DatasetError, match="every site needs the same"):
        site.statistics(request, ("a", "c"))


def test_a_statistics_task_without_an_identity_is_refused_with_the_reason(site):
    task = StatisticsRequest(PrepareRequest(3, 0.2, 0, "masking"), ("a", "b"), "{}")

    with pytest.raises(PreparationRefused, match="no identity key"):
        preparation(site).answer(order("statistics", task.to_json()))


def test_a_statistics_task_in_a_plain_run_is_refused(site):
    task = StatisticsRequest(PrepareRequest(3, 0.2, 0, "off"), ("a", "b"), "{}")

    with pytest.raises(PreparationRefused, match="without secure sums"):
        preparation(site).answer(order("statistics", task.to_json()))
