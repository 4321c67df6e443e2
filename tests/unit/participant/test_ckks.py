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


def test_a_site_releases_a_flooded_sum_never_the_exact_one(holder):
    import dataclasses

    import numpy as np

    from accord.params import Params
    from accord.secagg.ckks import CkksAggregator, decrypt_sum
    from accord.secagg.ckks_release import PRECISION
    from accord.secagg.ckks_session import decode_sum

    site = CkksSite(holder.secret_context)
    job = CkksJob("run", 1, values=3, clip=1.0, max_examples=10)
    order = _order(job.to_json(), 1)
    update = Params([("w", np.array([0.25, -0.5, 0.125], np.float32))])
    aggregator = CkksAggregator(holder.public_context, 3)
    aggregator.add("site", site.upload(order, job, update, num_examples=5))
    blob = aggregator.result()
    exact = np.append(*decrypt_sum(holder.secret_context, blob, 3))

    weighted, weight = decode_sum(
        site.decrypt(dataclasses.replace(order, payload=blob)), 3
    )

    released = np.append(weighted, weight)
    assert not np.array_equal(released, exact)
    assert np.abs(released - [0.125, -0.25, 0.0625, 0.5]).max() < PRECISION
