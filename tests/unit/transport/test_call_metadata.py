"""An upload's run, round and stage in its call metadata."""

import pytest

from accord.errors import SubmissionRefused
from accord.transport.call_metadata import UploadTag, check_header


def test_a_tag_survives_its_metadata():
    tag = UploadTag("run-1", 7, "share_keys")

    assert UploadTag.parse(tag.metadata(), stage=True) == tag
    plain = UploadTag("run-1", 7)
    assert UploadTag.parse(plain.metadata(), stage=False) == plain
    assert dict(plain.metadata()) == {"accord-run": "run-1", "accord-round": "7"}


@pytest.mark.parametrize(
    ("metadata", "stage", "words"),
    [
        ((), False, "lacks accord-run, accord-round"),
        ((("accord-run", "r"),), False, "lacks accord-round"),
        ((("accord-run", "r"), ("accord-round", "1")), True, "lacks accord-stage"),
        ((("accord-run", "r"), ("accord-round", "-1")), False, "not a round number"),
        ((("accord-run", "r"), ("accord-round", "1" * 11)), False, "not a round"),
        ((("accord-run", "r"), ("accord-round", b"1")), False, "lacks accord-round"),
    ],
)
def test_a_missing_or_unreadable_tag_is_refused_with_what_to_do(metadata, stage, words):
    with pytest.raises(SubmissionRefused) as info:
        UploadTag.parse(metadata, stage=stage)

    assert info.value.kind == "malformed" and words in info.value.reason
    if "lacks" in words:
        assert "Install the coordinator's accord version" in info.value.reason


def test_a_header_that_contradicts_its_tag_is_a_mismatch():
    tag = UploadTag("run-1", 3, "unmask")
    check_header(tag, run_id="run-1", round=3, stage="unmask")

    for run_id, number, stage in (
        ("run-2", 3, "unmask"),
        ("run-1", 4, "unmask"),
        ("run-1", 3, "consistency"),
    ):
        with pytest.raises(SubmissionRefused) as info:
            check_header(tag, run_id=run_id, round=number, stage=stage)
        assert info.value.kind == "mismatch"
