"""Deeply nested JSON from a peer is refused as malformed, never a RecursionError."""

from __future__ import annotations

import json

import pytest

from accord.errors import SubmissionRefused
from accord.jsontext import parse_json
from accord.params import ParamSpec
from accord.secagg.ckks_session import CkksJob
from accord.secagg.session import SecureJob
from accord.simulation.secure import parse_job
from accord.transport.codec import decode_train_config

DEEP = "[" * 200_000


def test_a_document_nested_past_the_parser_raises_a_decode_error():
    with pytest.raises(json.JSONDecodeError, match="nests arrays or objects too"):
        parse_json(DEEP)
    with pytest.raises(ValueError):
        parse_json(DEEP.encode())


def test_ordinary_documents_parse_as_json_loads_does():
    text = '{"a": [1, 2.5, {"b": null}], "c": "d"}'
    assert parse_json(text) == json.loads(text)
    assert parse_json("[" * 50 + "]" * 50) == json.loads("[" * 50 + "]" * 50)


@pytest.mark.parametrize(
    "parse",
    [SecureJob.from_json, CkksJob.from_json, parse_job, ParamSpec.from_json],
)
def test_a_peers_deep_document_is_refused_with_a_value_error(parse):
    with pytest.raises(ValueError):
        parse(DEEP)


def test_a_deep_training_configuration_is_refused_as_malformed():
    with pytest.raises(SubmissionRefused) as err:
        decode_train_config(DEEP)
    assert err.value.kind == "malformed"
