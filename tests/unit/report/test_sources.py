"""Reading a run's ledger for its card: a damaged entry is reported, not fatal."""

from __future__ import annotations

from accord.records import LedgerRecord
from accord.report.sources import check_ledger, read_entries


def test_an_unreadable_opening_entry_fails_the_check_and_keeps_its_place():
    records = [LedgerRecord("run-1", 0, "run-opened", None, "a" * 64, "{not json")]

    entries = read_entries(records)
    check = check_ledger("run-1", records, [], anchors=None)

    assert [(e.sequence, e.kind, dict(e.predicate)) for e in entries] == [
        (0, "run-opened", {})
    ]
    assert check is not None
    assert check.verified is False
    assert check.problems


def test_a_run_without_a_ledger_has_no_check():
    assert check_ledger("run-1", [], [], anchors=None) is None
