"""A site's CKKS rounds: which context it holds, which tasks it takes."""

import pytest

pytest.importorskip("tenseal")

from accord.errors import ConfigError
from accord.participant.ckks import CkksSite
from accord.secagg.ckks_keys import KeyHolder
from accord.secagg.ckks_session import CkksJob
from accord.task.protocol import TrainConfig
from accord.transport.messages import TaskOrder


@pytest.fixture(scope="module")
def holder() -> KeyHolder:
    return KeyHolder.create()


def _order(job_json: str, round_number: int = 1) -> TaskOrder:
    config = TrainConfig(round=round_number)
    return TaskOrder("run", round_number, "train", "d", config, job_json)


def test_a_site_refuses_to_hold_the_public_context(holder):
    with pytest.raises(ConfigError, match="participants need the secret context"):
        CkksSite(holder.public_context)


def test_a_job_of_another_round_or_unreadable_is_refused(holder):
    site = CkksSite(holder.secret_context)
    job = CkksJob("run", 2, values=3, clip=1.0, max_examples=10)

    other_round = site.prepare(_order(job.to_json(), 1))
    garbage = site.prepare(_order('{"mode": "ckks"}', 1))

    assert other_round == "the CKKS settings are for round 2; this is round 1"
    assert isinstance(garbage, str) and "not a valid CKKS job" in garbage
    assert site.prepare(_order(job.to_json(), 2)) == job
