"""A JSON document stored with a run as store events, in parts, under its digest.

The store keeps short texts per event (2,000 characters), not files; a document
recorded with a run (the fitted preprocessing, the data contract) is cut into
parts of :data:`PART` characters, each event's detail ``"<sha256> i/n <part>"``,
and read back whole, checked against its SHA-256, so that an edited or truncated
record is reported instead of used. The last document recorded under a kind wins
(a resumed run may record its contract again).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from accord.errors import StoreError

if TYPE_CHECKING:
    from accord.store.protocol import RunStore

__all__ = ["PART", "record_document", "recorded_document"]

#: Characters of a document per event (the store keeps 2,000 per event).
PART = 1800


def record_document(store: RunStore, run_id: str, kind: str, text: str) -> str:
    """Record ``text`` with ``run_id`` as events of ``kind``; return its SHA-256."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    parts = [text[i : i + PART] for i in range(0, len(text), PART)] or [""]
    for i, part in enumerate(parts, 1):
        store.record_event(
            run_id,
            round=0,
            participant=None,
            kind=kind,
            detail=f"{digest} {i}/{len(parts)} {part}",
        )
    return digest


def recorded_document(store: RunStore, run_id: str, kind: str) -> bytes | None:
    """The document of ``kind`` last recorded with ``run_id`` (None: none was).

    Raises :class:`StoreError` when its parts are incomplete or do not match the
    digest they were recorded under.
    """
    parts: dict[str, dict[int, str]] = {}
    totals: dict[str, int] = {}
    last: str | None = None
    for event in store.events(run_id):
        if event.kind != kind:
            continue
        digest, index, total, part = _split(event.detail, kind)
        parts.setdefault(digest, {})[index] = part
        totals[digest] = total
        last = digest
    if last is None:
        return None
    pieces = parts[last]
    if sorted(pieces) != list(range(1, totals[last] + 1)):
        raise StoreError(f"the {kind} recorded with run {run_id} is incomplete")
    data = "".join(pieces[i] for i in sorted(pieces)).encode("utf-8")
    if hashlib.sha256(data).hexdigest() != last:
        raise StoreError(
            f"the {kind} recorded with run {run_id} does not match its digest "
            f"{last[:16]}…: the store was edited"
        )
    return data


def _split(detail: str, kind: str) -> tuple[str, int, int, str]:
    digest, _, rest = detail.partition(" ")
    place, _, part = rest.partition(" ")
    index, _, total = place.partition("/")
    if len(digest) != 64 or not index.isdigit() or not total.isdigit():
        raise StoreError(f"a {kind} event is malformed: {detail[:80]!r}")
    return digest, int(index), int(total), part
