"""Whatever an export's entries hold, verification reports; it never crashes.

Each field of each entry's statement is replaced in turn by values of every JSON
type, the envelope re-signed by the run's own signer (so that only the content is
wrong, not the signature), and the result checked: a problem or a pass, never an
exception.
"""

import json

import pytest
from cryptography import x509

from accord.ledger.dsse import Envelope, canonical_json
from accord.ledger.export import dump_export, parse_export
from accord.ledger.verify import verify_export

from .conftest import write_ledger

ODD = [None, -1, 2**70, 1.5, "", "x" * 100, [], [1, "a"], {}, {"k": None}, True]


def paths(value, prefix=()):
    """Every key path of a JSON document (lists by index)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*prefix, k)
            yield from paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield (*prefix, i)
            yield from paths(v, (*prefix, i))


def replaced(document, path, new):
    doc = json.loads(json.dumps(document))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return doc


@pytest.mark.parametrize("position", [0, 1, 4])
def test_any_field_of_any_type_is_reported_not_raised(federation, position):
    signer = federation.signer()
    ledger = write_ledger(signer, rounds=3)
    anchors = x509.load_pem_x509_certificates((federation.ca / "ca.pem").read_bytes())
    env = Envelope.from_json(ledger[position].envelope)
    statement = json.loads(env.payload)
    checked = 0
    for path in paths(statement):
        for value in ODD:
            doc = replaced(statement, path, value)
            again = Envelope.signed(
                env.payload_type, canonical_json(doc), signer.signer
            )
            lines = [e.envelope for e in ledger]
            lines[position] = again.to_json()
            export = parse_export(dump_export("run-1", lines, [signer.certificate]))

            for anchor in (anchors, None):
                verdict = verify_export(export, anchors=anchor)  # must not raise
                assert verdict.entries == len(ledger)
            checked += 1
    assert checked > 100
