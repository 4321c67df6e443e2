"""Release entries: they follow the run's closing entry, signed by the run's signer."""

from accord.ledger.dsse import Envelope
from accord.ledger.export import dump_export, parse_export
from accord.ledger.statement import parse_statement
from accord.ledger.verify import ModelFile, verify_export
from accord.ledger.writer import LedgerWriter, simulation_signer

from .conftest import digest, write_ledger


def release(writer: LedgerWriter, passed: bool):
    return writer.release(
        model=digest(103),
        passed=passed,
        gates={"central_metric": 0.9},
        results=[{"gate": "central_metric", "passed": passed, "reason": "r"}],
        fairness=None,
        output=digest(9) if passed else None,
    )


def verdict_of(records, signer, **kwargs):
    lines = [r.envelope for r in records]
    return verify_export(
        parse_export(dump_export("run-1", lines, [])), anchors=None, **kwargs
    )


def test_releases_after_the_closing_entry_verify_and_keep_the_final_model(tmp_path):
    # Arrange: a refused release, then a passed one, after the run closed
    signer = simulation_signer(tmp_path)
    records = write_ledger(signer)
    writer = LedgerWriter(signer, "run-1", head=records)
    refused = release(writer, False)
    writer.accept(refused)
    passed = release(writer, True)

    # Act
    verdict = verdict_of(
        [*records, refused, passed],
        signer,
        model=ModelFile("m", digest(1), digest(103)),
    )

    # Assert
    assert verdict.ok, [str(p) for p in verdict.problems]
    assert verdict.status == "completed"
    assert verdict.final_model == digest(103)
    statement = parse_statement(Envelope.from_json(passed.envelope).payload)
    assert statement.kind == "release"
    assert statement.predicate["passed"] is True
    assert statement.sequence == records[-1].sequence + 2


def test_a_release_entry_before_the_closing_entry_is_named(tmp_path):
    signer = simulation_signer(tmp_path)
    records = write_ledger(signer, rounds=1)
    # a release entry written after round 1, before the run closed
    writer = LedgerWriter(signer, "run-1", head=records[:2])
    early = release(writer, True)
    writer.accept(early)
    closed = writer.closed(
        status="completed", model=digest(101), checkpoint=None, rounds=1, reason=None
    )

    verdict = verdict_of([*records[:2], early, closed], signer)

    assert not verdict.ok
    assert any(
        p.position == 2 and "does not follow the run's closing" in p.message
        for p in verdict.problems
    )


def test_a_release_of_another_model_than_the_closed_one_is_named(tmp_path):
    signer = simulation_signer(tmp_path)
    records = write_ledger(signer)  # closed with digest(103) as the final model
    writer = LedgerWriter(signer, "run-1", head=records)
    other = writer.release(
        model=digest(102),  # round 2's model, released as the final one
        passed=True,
        gates={},
        results=[],
        fairness=None,
        output=digest(9),
    )

    verdict = verdict_of([*records, other], signer)

    assert not verdict.ok
    (problem,) = verdict.problems
    assert problem.position == len(records)
    assert "the release is not of this run's model" in problem.message
