"""Subjects of ledger statements: which digest algorithm each artefact names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from accord.errors import LedgerError
from accord.ledger.dsse import Envelope
from accord.ledger.statement import build_statement, parse_statement, subject
from accord.ledger.writer import simulation_signer

from .conftest import digest, write_ledger


def _payload(subjects: list[dict[str, Any]]) -> bytes:
    statement = build_statement(
        "round",
        run="run-1",
        sequence=1,
        previous=digest(1),
        subjects=subjects,
        predicate={"round": 1},
    )
    return json.dumps(statement).encode()


def test_models_name_blake3_and_documents_sha256(tmp_path):
    lines = write_ledger(simulation_signer(tmp_path), rounds=1)
    digests = [
        json.loads(Envelope.from_json(e.envelope).payload)["subject"] for e in lines
    ]
    opened, round_one, closed = digests
    assert opened == [
        {"name": "config", "digest": {"sha256": opened[0]["digest"]["sha256"]}}
    ]
    assert round_one == [
        {"name": "model:round-1", "digest": {"blake3": digest(101)}},
        {"name": "aggregate:round-1", "digest": {"blake3": digest(51)}},
    ]
    assert closed == [{"name": "model:final", "digest": {"blake3": digest(101)}}]


@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
def test_either_algorithm_reads_back(algorithm):
    statement = parse_statement(
        _payload([subject("model:final", digest(9), algorithm)])
    )
    assert statement.subjects == (("model:final", digest(9)),)


@pytest.mark.parametrize(
    "digests",
    [
        {},
        {"md5": digest(9)[:32]},
        {"sha256": digest(9), "blake3": digest(8)},
        {"blake3": digest(9)[:63]},
        {"blake3": digest(0xABC).upper()},
        {"blake3": 9},
    ],
    ids=["none", "unknown", "two", "short", "upper", "number"],
)
def test_a_subject_without_exactly_one_known_digest_is_refused(digests):
    payload = _payload([{"name": "model:final", "digest": digests}])
    with pytest.raises(LedgerError, match="lacks a name or a digest"):
        parse_statement(payload)


def test_an_unknown_algorithm_is_not_written():
    with pytest.raises(ValueError, match="md5"):
        subject("model:final", digest(9), "md5")
