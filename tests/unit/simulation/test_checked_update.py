"""Writing an update with its digest, finiteness and norm in one pass.

:func:`~accord.simulation.jobs.write_update` with ``check`` hashes and squares each
chunk as it writes it; the result must be exactly what reading the update again
gives (:meth:`Params.digest`, the round's float64 sum of squares), across chunk
boundaries, dtypes and bad values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from accord.aggregation.integrity import SQUARE_CHUNK, l2_norm, square_sum
from accord.params import Params
from accord.simulation.jobs import JobError, Trained, TrainOutcome, write_update
from accord.task.protocol import TrainResult


def _model(rng: np.random.Generator) -> Params:
    return Params(
        {
            "big": rng.standard_normal(2 * SQUARE_CHUNK + 7).astype(np.float32),
            "wide": rng.standard_normal((3, 5)),  # float64
            "half": rng.standard_normal(SQUARE_CHUNK).astype(np.float16),
            "empty": np.zeros(0, np.float32),
            "scalar": np.float32(0.5),
        }
    )


def _trained(local: Params) -> Trained:
    return Trained(TrainResult(local, num_examples=7, metrics={"loss": 0.25}), 0.1)


def _write(glob: Params, local: Params) -> tuple[TrainOutcome, Params]:
    out = Params({n: np.empty_like(a) for n, a in glob.items()})
    done = write_update(_trained(local), glob, out, check=True)
    assert isinstance(done, TrainOutcome)
    return done, out


def test_the_checked_write_gives_the_digest_and_norm_of_what_it_wrote():
    rng = np.random.default_rng(0)
    glob, local = _model(rng), _model(rng)

    done, out = _write(glob, local)

    for name in glob:
        np.testing.assert_array_equal(out[name], local[name] - glob[name])
    assert done.digest == out.digest()
    exact = math.sqrt(sum(square_sum(a) for a in out.values()))
    assert done.norm == pytest.approx(l2_norm(out), rel=1e-12)
    assert done.norm == pytest.approx(exact, rel=1e-12)
    assert (done.num_examples, done.metrics) == (7, {"loss": 0.25})


def test_without_check_nothing_is_hashed():
    rng = np.random.default_rng(1)
    glob, local = _model(rng), _model(rng)
    out = Params({n: np.empty_like(a) for n, a in glob.items()})

    done = write_update(_trained(local), glob, out)

    assert isinstance(done, TrainOutcome)
    assert (done.digest, done.norm) == ("", None)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("where", ["big", "wide", "half"])
def test_a_value_that_is_not_finite_leaves_no_norm(where, bad):
    rng = np.random.default_rng(2)
    glob, local = _model(rng), _model(rng)
    local[where].reshape(-1)[-1] = bad

    done, out = _write(glob, local)

    assert done.norm is None  # the round reads it again and names the tensor
    assert done.digest == out.digest()


def test_finite_float64_values_with_an_overflowing_norm_are_still_checked():
    glob = Params({"w": np.zeros(3)})
    local = Params({"w": np.array([1e200, -1e200, 1.0])})

    done, _ = _write(glob, local)

    assert done.norm == math.inf  # finite values, infinite norm: bounds refuse it


def test_a_result_of_another_shape_is_refused_before_anything_is_written():
    glob = Params({"w": np.zeros(4, np.float32)})
    out = Params({"w": np.full(4, 9.0, np.float32)})
    local = Params({"w": np.zeros(5, np.float32)})

    done = write_update(_trained(local), glob, out, check=True)

    assert isinstance(done, JobError) and done.status == "rejected"
    assert "shape" in done.reason
    np.testing.assert_array_equal(out["w"], 9.0)
