"""Ledger entries are stored with what they describe, chained, in every store."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.errors import StoreError
from accord.ledger.dsse import KeySigner, key_id
from accord.ledger.writer import LedgerSigner, LedgerWriter
from accord.store import ReceiptRecord, RoundRecord, RunStore

MakeRound = Callable[..., RoundRecord]
NewRun = Callable[..., str]


@pytest.fixture
def writer_for() -> Callable[[str], LedgerWriter]:
    key = Ed25519PrivateKey.generate()
    signer = LedgerSigner(KeySigner(key, key_id(key.public_key())), None)
    return lambda run_id: LedgerWriter(signer, run_id)


def opened(writer: LedgerWriter):
    return writer.opened(config={}, version="0", code={}, roster=[])


def test_a_round_and_its_entry_are_stored_together_in_order(
    store: RunStore, new_run: NewRun, make_round: MakeRound, writer_for
) -> None:
    run_id = new_run()
    writer = writer_for(run_id)
    first = opened(writer)
    store.append_ledger(first)
    writer.accept(first)
    record = make_round(run_id, 1)
    entry = writer.round(record, aggregate=None, inputs="update")

    store.record_round(record, ledger=entry)
    writer.accept(entry)
    closing = writer.closed(
        status="completed", model="0" * 64, checkpoint=None, rounds=1, reason=None
    )
    store.finish_run(run_id, status="completed", summary={}, ledger=closing)

    assert store.ledger(run_id) == [first, entry, closing]
    assert store.get_run(run_id).status == "completed"


def test_an_entry_that_does_not_follow_leaves_its_round_unstored(
    store: RunStore, new_run: NewRun, make_round: MakeRound, writer_for
) -> None:
    # Arrange: an entry made as if the run-opened one were not stored
    run_id = new_run()
    writer = writer_for(run_id)
    writer.accept(opened(writer))
    record = make_round(run_id, 1)
    entry = writer.round(record, aggregate=None, inputs="update")

    # Act
    with pytest.raises(StoreError, match="does not follow the run's last entry"):
        store.record_round(record, ledger=entry)

    # Assert: neither the round nor its entry
    assert store.rounds(run_id) == []
    assert store.ledger(run_id) == []


def test_a_round_already_recorded_keeps_its_one_entry(
    store: RunStore, new_run: NewRun, make_round: MakeRound, writer_for
) -> None:
    run_id = new_run()
    writer = writer_for(run_id)
    first = opened(writer)
    store.append_ledger(first)
    writer.accept(first)
    record = make_round(run_id, 1)
    entry = writer.round(record, aggregate=None, inputs="update")
    store.record_round(record, ledger=entry)
    writer.accept(entry)

    again = writer.round(record, aggregate=None, inputs="update")
    with pytest.raises(StoreError, match="already recorded"):
        store.record_round(record, ledger=again)

    assert [e.sequence for e in store.ledger(run_id)] == [0, 1]


def test_an_entry_of_another_round_is_refused(
    store: RunStore, new_run: NewRun, make_round: MakeRound, writer_for
) -> None:
    run_id = new_run()
    writer = writer_for(run_id)
    entry = writer.round(make_round(run_id, 2), aggregate=None, inputs="update")

    with pytest.raises(StoreError, match="does not describe what it is stored with"):
        store.record_round(make_round(run_id, 1), ledger=entry)
    with pytest.raises(StoreError, match="does not describe"):
        store.append_ledger(entry)

    assert store.rounds(run_id) == []


def test_a_failed_finish_keeps_the_run_running(
    store: RunStore, new_run: NewRun, writer_for
) -> None:
    run_id = new_run()
    writer = writer_for(run_id)
    writer.accept(opened(writer))  # not stored: the closing entry cannot follow
    closing = writer.closed(
        status="completed", model="0" * 64, checkpoint=None, rounds=0, reason=None
    )

    with pytest.raises(StoreError, match="does not follow"):
        store.finish_run(run_id, status="completed", summary={}, ledger=closing)

    assert store.get_run(run_id).status == "running"


def test_receipts_round_trip_once_each(store: RunStore, new_run: NewRun) -> None:
    run_id = new_run()
    receipt = ReceiptRecord(run_id, 1, "site-a", '{"x": 1}', b"\x30\x82der")

    store.record_receipt(receipt)
    store.record_receipt(receipt)  # a site that sends it twice

    assert store.receipts(run_id) == [receipt]


def test_a_receipt_without_a_certificate_is_refused(
    store: RunStore, new_run: NewRun
) -> None:
    run_id = new_run()
    with pytest.raises(StoreError, match="no envelope or no certificate"):
        store.record_receipt(ReceiptRecord(run_id, 1, "site-a", "{}", b""))


def test_release_entries_are_stored_after_the_closing_entry(
    store: RunStore, new_run: NewRun, make_round: MakeRound, writer_for
) -> None:
    # Arrange: a closed run
    run_id = new_run()
    writer = writer_for(run_id)
    first = opened(writer)
    store.append_ledger(first)
    writer.accept(first)
    closing = writer.closed(
        status="completed", model="0" * 64, checkpoint=None, rounds=0, reason=None
    )
    store.finish_run(run_id, status="completed", summary={}, ledger=closing)
    writer.accept(closing)

    # Act: a refused release, then one that passed
    decisions = []
    for passed in (False, True):
        entry = writer.release(
            model="0" * 64,
            passed=passed,
            gates={"max_epsilon": 1.0},
            results=[],
            fairness=None,
            output=None,
        )
        store.append_ledger(entry)
        writer.accept(entry)
        decisions.append(entry)

    # Assert
    assert store.ledger(run_id) == [first, closing, *decisions]
    assert [e.kind for e in store.ledger(run_id)][-2:] == ["release", "release"]


def test_a_data_contract_entry_is_stored_between_the_opening_and_round_1(
    store: RunStore, new_run: NewRun, make_round: MakeRound, writer_for
) -> None:
    run_id = new_run()
    writer = writer_for(run_id)
    first = opened(writer)
    store.append_ledger(first)
    writer.accept(first)
    contract = writer.data_contract(
        {
            "schema": {"numeric": ["x"], "categorical": {}, "classes": ["n", "y"]},
            "preprocessing": "1" * 64,
            "profiles": {"site-a": "2" * 64},
            "guard": {"minCount": 10, "noise": "off", "epsilon": None, "delta": None},
            "flags": [],
        }
    )

    store.append_ledger(contract)
    writer.accept(contract)
    record = make_round(run_id, 1)
    entry = writer.round(record, aggregate=None, inputs="update")
    store.record_round(record, ledger=entry)

    assert [e.kind for e in store.ledger(run_id)] == [
        "run-opened",
        "data-contract",
        "round",
    ]
    assert store.ledger(run_id)[1] == contract
