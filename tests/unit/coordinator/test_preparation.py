import numpy as np
import pytest

from accord.coordinator.preparation import (
    EVENT_KIND,
    check_recorded,
    record_encoder,
    recorded_encoder,
)
from accord.data.preprocess import Encoder
from accord.data.profile import encoder_digest
from accord.errors import RunAborted, StoreError, SubmissionRefused
from accord.store import MemoryStore
from accord.transport.jobs import PREPARE_MAX_BYTES, JobBook
from accord.transport.messages import SecAggHeader, TaskOrder
from accord.transport.secure_rounds import check_stage_header


def encoder(columns: int = 3, shift: float = 0.0) -> Encoder:
    names = tuple(f"column-{j}" for j in range(columns))
    levels = (("colour", tuple(f"level-{k}" for k in range(columns))),)
    mean = np.linspace(-1.0, 1.0, columns) / 3 + shift
    return Encoder(names, levels, mean, np.full(columns, 0.1))


@pytest.fixture
def store():
    store = MemoryStore()
    run_id = store.create_run(name="t", config={}, seed=0, rounds_planned=1)
    return store, run_id


@pytest.mark.parametrize("columns", [1, 400])  # one event, and many parts
def test_the_recorded_encoder_reads_back_bit_for_bit(store, columns):
    runs, run_id = store
    fitted = encoder(columns)

    digest = record_encoder(runs, run_id, fitted)

    back = recorded_encoder(runs, run_id)
    assert back is not None and encoder_digest(back) == digest
    assert back.mean.tobytes() == fitted.mean.tobytes()
    parts = [e for e in runs.events(run_id) if e.kind == EVENT_KIND]
    assert all(len(e.detail) <= 2000 for e in parts)
    assert (len(parts) > 1) == (columns > 1)


def test_a_run_without_a_record_has_none(store):
    runs, run_id = store
    assert recorded_encoder(runs, run_id) is None


def test_an_edited_record_is_detected(store):
    runs, run_id = store
    digest = record_encoder(runs, run_id, encoder())
    detail = runs.events(run_id)[0].detail
    forged = detail.replace("0.1", "0.2")
    runs.record_event(run_id, round=0, participant=None, kind=EVENT_KIND, detail=forged)

    with pytest.raises(StoreError, match=f"does not match its digest {digest[:16]}"):
        recorded_encoder(runs, run_id)


def test_a_resumed_run_refuses_data_that_fits_otherwise(store):
    runs, run_id = store
    record_encoder(runs, run_id, encoder())

    assert check_recorded(runs, run_id, encoder())["digest"]
    with pytest.raises(RunAborted, match="a site's table changed"):
        check_recorded(runs, run_id, encoder(shift=1e-12))


def test_a_run_from_before_records_its_fit_on_resume(store):
    runs, run_id = store
    check_recorded(runs, run_id, encoder())
    assert encoder_digest(recorded_encoder(runs, run_id)) == encoder_digest(encoder())


def _book_with_profile_job() -> JobBook:
    book = JobBook("run", ["a", "b"])
    order = TaskOrder("run", 0, "secagg", "", stage="profile", payload=b"{}")
    book.open("a", order)
    return book


def test_the_profile_stage_is_admitted_once_and_only_from_its_site():
    book = _book_with_profile_job()

    job = book.admit_stage("a", "profile", 0, "run")
    job.state = "done"

    with pytest.raises(SubmissionRefused) as duplicate:
        book.admit_stage("a", "profile", 0, "run")
    with pytest.raises(SubmissionRefused) as other:
        book.admit_stage("b", "profile", 0, "run")
    with pytest.raises(SubmissionRefused) as early:
        book.admit_stage("a", "encoding", 0, "run")
    with pytest.raises(SubmissionRefused) as protocol:
        book.admit_stage("a", "share_keys", 0, "run")
    assert duplicate.value.kind == "duplicate"
    assert other.value.kind == "forbidden"
    assert early.value.kind == "forbidden"
    assert protocol.value.kind == "mismatch"


@pytest.mark.parametrize(
    ("size", "kind"),
    [
        (0, "malformed"),
        (1, None),
        (PREPARE_MAX_BYTES, None),
        (PREPARE_MAX_BYTES + 1, "too_large"),
    ],
)
def test_a_preparation_message_is_bounded(size, kind):
    header = SecAggHeader("run", 0, "profile", size, 0.0)
    if kind is None:
        check_stage_header(header, None)
        return
    with pytest.raises(SubmissionRefused) as refused:
        check_stage_header(header, None)
    assert refused.value.kind == kind
