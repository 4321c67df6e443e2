"""A coordinator with a valid server certificate, against the site that dials it.

The site refuses, with a reason, what would crash it or reveal its rows: a model
header announcing an impossible size (or a shape whose element count wraps past
int64), a run id that would name a folder outside its state, a plain profile
that a chosen split makes describe fewer rows than the site's floor.
"""

from __future__ import annotations

import numpy as np
import pytest

from accord.data.handshake import PrepareRequest
from accord.errors import SubmissionRefused
from accord.params import ParamSpec, TensorSpec
from accord.participant.backoff import Backoff
from accord.participant.data import load_local_data
from accord.participant.policy import SitePolicy
from accord.participant.preparation import Preparation, PreparationRefused
from accord.participant.runtime import ParticipantRuntime
from accord.participant.table import SiteTable
from accord.transport import client as client_mod
from accord.transport import codec
from accord.transport.messages import Goodbye, PackedHeader, TaskOrder, Welcome
from accord.transport.proto import accord_pb2 as pb

from ..unit.participant.test_runtime import DATA, DIGEST, AddOne, Script


def _runtime(script, **kw):
    backoff = Backoff(initial_s=0.001, maximum_s=0.002)
    return ParticipantRuntime(script.connect, AddOne(), DATA, backoff=backoff, **kw)


def _wire(shape, dtype="<f8", total=0):
    tensor = pb.TensorHeader(name="w", dtype=dtype, shape=list(shape))
    return pb.PackedHeader(tensors=[tensor], digest=DIGEST, total_bytes=total)


@pytest.mark.parametrize(
    "shape",
    [
        (2**44,),  # 128 TiB of float64, each dimension under the wire's 2**48
        (274177, 67280421310721),  # 2**64 + 1 elements: int64 wrapped it to 1
        (2**20, 2**20, 2**20),
    ],
)
def test_a_model_header_of_an_impossible_size_is_refused_as_malformed(shape):
    with pytest.raises(SubmissionRefused) as err:
        codec.decode_packed_header(_wire(shape))
    assert err.value.kind == "malformed"
    assert "impossible shape" in err.value.reason


def test_sizes_are_exact_past_int64():
    assert TensorSpec("w", "<f4", (274177, 67280421310721)).size == 2**64 + 1


def test_a_large_announced_model_is_not_allocated_before_its_bytes_come():
    """A header of 512 GiB (under the 1 TiB bound) and a stream of 64 bytes: the
    site allocates as bytes arrive, and refuses the short stream."""
    spec = ParamSpec((TensorSpec("w", "<f8", (2**36,)),))
    header = PackedHeader(spec, spec.packed_nbytes, DIGEST)
    with pytest.raises(SubmissionRefused, match=r"ended after 64 of 549755813888"):
        client_mod._assemble(iter([header, codec.Chunk(0, b"\0" * 64)]))


def test_a_model_of_ordinary_size_still_assembles():
    spec = ParamSpec((TensorSpec("w", "<f4", (3,)),))
    data = np.arange(3, dtype="<f4").tobytes() + b"\0" * (spec.packed_nbytes - 12)
    header = PackedHeader(spec, spec.packed_nbytes, DIGEST)
    got, buffer = client_mod._assemble(iter([header, codec.Chunk(0, data)]))
    np.testing.assert_array_equal(spec.view(buffer)["w"], [0, 1, 2])


@pytest.mark.parametrize("run_id", ["../../etc", "/abs", ".hidden", "a/b"])
def test_a_run_id_that_cannot_name_a_folder_is_refused_not_fatal(tmp_path, run_id):
    order = TaskOrder(run_id, 1, "eval", DIGEST)
    script = Script([Welcome("run", 0), order, Goodbye("run", "done")])
    r = _runtime(script, state_dir=tmp_path / "state")

    assert r.run() == "done"
    (failure,) = script.failures
    assert "cannot name a folder" in failure.reason
    assert not (tmp_path / "etc").exists()


@pytest.fixture
def site(tmp_path) -> SiteTable:
    rng = np.random.default_rng(2)
    rows = ["b,colour,a,label"] + [
        f"{rng.normal(4, 2):.4f},{('red', 'blue')[i % 2]},{rng.normal():.4f},"
        f"{'yes' if i % 3 else 'no'}"
        for i in range(80)
    ]
    path = tmp_path / "clinic.csv"
    path.write_text("\n".join(rows) + "\n")
    options = {"target": "label", "categorical": "colour"}
    table = load_local_data(f"csv:{path}", options=options)
    assert isinstance(table, SiteTable)
    return table


def _profile(site, fraction, floor):
    policy = SitePolicy(min_profile_count=floor)
    prep = Preparation(site, builder=lambda d: None, policy=policy)
    payload = PrepareRequest(3, fraction, 0).to_json()
    order = TaskOrder("run", 0, "secagg", "", stage="profile", payload=payload)
    return prep.answer(order)


def test_a_split_that_leaves_one_training_row_is_refused_under_the_sites_floor(site):
    with pytest.raises(PreparationRefused, match="would describe 1 training rows"):
        _profile(site, 0.9999, 20)
    assert _profile(site, 0.2, 20)  # an ordinary split is answered
