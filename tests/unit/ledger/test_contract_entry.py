"""The data-contract entry: written after the opening, verified, tampering named."""

import hashlib
import json
from datetime import timedelta

import numpy as np
import pytest

from accord.data.contract import agree
from accord.data.drift import DriftThresholds
from accord.data.preprocess import Encoder, FeatureMatrix
from accord.data.summary import Guard, summarize
from accord.ledger.dsse import Envelope, canonical_json
from accord.ledger.export import dump_export, parse_export
from accord.ledger.statement import parse_statement
from accord.ledger.verify import verify_export
from accord.ledger.writer import LedgerWriter, simulation_signer

from .conftest import SITES, T0, digest, round_record


def contract_dict(shift: float = 2.0) -> dict:
    """A real contract of two sites, the second shifted (one flag at least)."""
    rng = np.random.default_rng(0)
    parts = []
    for i, _ in enumerate(SITES):
        x = rng.normal(shift * i, 1.0, (200, 1))
        codes = rng.integers(0, 2, (200, 1))
        parts.append(FeatureMatrix(x, codes, ("x",), (("c", ("p", "q")),)))
    encoder = Encoder.fit(parts)
    labels = rng.integers(0, 2, 200)
    summaries = [
        (s, summarize(f, labels, ("n", "y"), encoder, Guard(10)))
        for s, f in zip(SITES, parts, strict=True)
    ]
    contract = agree(
        encoder, ("n", "y"), summaries, guard=Guard(10), thresholds=DriftThresholds()
    )
    assert contract.flags  # the shifted site is flagged, and recorded
    return contract.to_dict()


def ledger(tmp_path, *, contract_after_round: bool = False):
    signer = simulation_signer(tmp_path)
    ticks = iter(T0 + timedelta(minutes=m) for m in range(100))
    writer = LedgerWriter(signer, "run-1", clock=lambda: next(ticks))
    lines: list[str] = []

    def keep(entry):
        writer.accept(entry)
        lines.append(entry.envelope)

    keep(writer.opened(config={}, version="0", code={}, roster=[]))
    if not contract_after_round:
        keep(writer.data_contract(contract_dict()))
    keep(writer.round(round_record("run-1", 1), aggregate=digest(51), inputs="update"))
    if contract_after_round:
        keep(writer.data_contract(contract_dict()))
    keep(
        writer.closed(
            status="completed",
            model=digest(101),
            checkpoint=None,
            rounds=1,
            reason=None,
        )
    )
    return signer, lines


def verify(lines):
    return verify_export(parse_export(dump_export("run-1", lines, [])), anchors=None)


def messages(verdict) -> list[str]:
    return [str(p) for p in verdict.problems]


def test_a_ledger_with_its_data_contract_verifies(tmp_path):
    _, lines = ledger(tmp_path)

    verdict = verify(lines)

    assert verdict.ok, messages(verdict)
    entry = parse_statement(Envelope.from_json(lines[1]).payload)
    assert entry.kind == "data-contract"
    contract = entry.predicate["contract"]
    assert (
        dict(entry.subjects)["contract"]
        == hashlib.sha256(canonical_json(contract)).hexdigest()
    )
    assert dict(entry.subjects)["preprocessing"] == contract["preprocessing"]
    assert set(contract["profiles"]) == set(SITES)
    # two sites: each differs from "the rest", so both are flagged
    assert {f["site"] for f in contract["flags"]} == set(SITES)
    assert set(contract["flags"][0]) == {
        "site",
        "column",
        "measure",
        "value",
        "threshold",
    }


def _edit(line: str, change) -> str:
    env = Envelope.from_json(line)
    statement = json.loads(env.payload)
    change(statement)
    return Envelope(
        env.payload_type, canonical_json(statement), env.signatures
    ).to_json()


def test_an_edited_contract_is_named(tmp_path):
    _, lines = ledger(tmp_path)

    lines[1] = _edit(lines[1], lambda s: s["predicate"]["contract"].update(flags=[]))
    found = messages(verify(lines))

    assert any(m.startswith("entry 1 (data-contract): its signature") for m in found)
    assert any(
        m.startswith("entry 2 (round 1): does not follow entry 1") for m in found
    )


def test_a_contract_rewritten_and_resigned_with_the_key_still_shows(tmp_path):
    # Someone holding the key drops the flags but keeps the subject digest.
    signer, lines = ledger(tmp_path)

    def drop_flags(statement):
        statement["predicate"]["contract"]["flags"] = []

    env = Envelope.from_json(_edit(lines[1], drop_flags))
    lines[1] = Envelope.signed(env.payload_type, env.payload, signer.signer).to_json()
    found = messages(verify(lines))

    assert any(
        m.startswith("entry 1 (data-contract): its contract subject")
        and "is not the digest of the contract it records" in m
        for m in found
    )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda c: c.update(preprocessing="nope"), "preprocessing digest"),
        (lambda c: c.update(flags=[{"site": "x"}]), "its flags are not objects"),
        (
            lambda c: c["flags"].append({**c["flags"][0], "site": "stranger"}),
            "that sent no profile",
        ),
        (lambda c: c.pop("schema"), "its contract is not an object"),
    ],
)
def test_a_contract_of_the_wrong_shape_is_named(tmp_path, change, words):
    # Written with the key (an insider), so only the contract's own checks see it.
    signer, lines = ledger(tmp_path)

    def edit(statement):
        change(statement["predicate"]["contract"])

    env = Envelope.from_json(_edit(lines[1], edit))
    lines[1] = Envelope.signed(env.payload_type, env.payload, signer.signer).to_json()
    found = messages(verify(lines))

    assert any(m.startswith("entry 1 (data-contract)") and words in m for m in found)


def test_a_contract_after_a_round_is_named(tmp_path):
    _, lines = ledger(tmp_path, contract_after_round=True)

    found = messages(verify(lines))

    assert any(
        m.startswith(
            "entry 2 (data-contract): a data-contract entry must directly "
            "follow the entry that opens or resumes the run, not round"
        )
        for m in found
    )
