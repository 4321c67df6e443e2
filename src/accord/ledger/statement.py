"""Ledger entries as in-toto Statements (v1), and reading them back.

Each entry of a run's ledger is an in-toto Statement
(https://github.com/in-toto/attestation, ``spec/v1/statement.md``)::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "model:round-3", "digest": {"blake3": "..."}}],
     "predicateType": "https://accord.dev/ledger/round/v1",
     "predicate": {"run": "...", "sequence": 4, "previous": "<sha256>", ...}}

The predicate types are accord's own (:data:`PREDICATE_TYPES`). Every predicate
carries the run's id, the entry's ``sequence`` (0, 1, 2, ... in the order written)
and ``previous``, the SHA-256 of the previous entry's DSSE envelope (None for the
first): that is the hash chain. A subject's digest is SHA-256 for a document
(the config, the contract) and :meth:`~accord.params.Params.digest`'s BLAKE3 for a
model or an aggregate (earlier ledgers named those SHA-256 too).
:func:`parse_statement` reads one back strictly, since an export is untrusted input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from accord.errors import LedgerError

__all__ = [
    "ALGORITHMS",
    "PREDICATE_TYPES",
    "STATEMENT_TYPE",
    "EntryKind",
    "Statement",
    "build_statement",
    "parse_statement",
    "subject",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"

#: ``run-opened``: what the run was set up with; ``run-resumed``: a coordinator took
#: it up again; ``round``: one round, completed or failed; ``run-closed``: the run
#: ended (completed, failed or aborted) and its final model; ``release``: the
#: release gates were evaluated on the final model after the run closed (passed or
#: not, with a reason per gate; there may be several); ``data-contract``: the data
#: contract agreed before the run's next round (schema, preprocessing digest, each
#: site's profile digest, drift flags), right after the entry that (re)opened it.
EntryKind = Literal[
    "run-opened", "run-resumed", "data-contract", "round", "run-closed", "release"
]

PREDICATE_TYPES: dict[str, EntryKind] = {
    f"https://accord.dev/ledger/{kind}/v1": kind for kind in get_args(EntryKind)
}
_TYPE_OF = {kind: uri for uri, kind in PREDICATE_TYPES.items()}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: The digest algorithms a subject may name, as in-toto digest sets spell them.
ALGORITHMS = ("sha256", "blake3")


def subject(name: str, digest: str, algorithm: str = "sha256") -> dict[str, Any]:
    """One in-toto subject: a named artefact and its digest (64 hex digits)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"digest algorithm {algorithm!r} is not one of {ALGORITHMS}")
    return {"name": name, "digest": {algorithm: digest}}


@dataclass(frozen=True, slots=True)
class Statement:
    """A parsed ledger entry: its kind, place in the chain and predicate."""

    kind: EntryKind
    run: str
    sequence: int
    previous: str | None
    round: int | None
    subjects: tuple[tuple[str, str], ...]
    predicate: Mapping[str, Any]


def build_statement(
    kind: EntryKind,
    *,
    run: str,
    sequence: int,
    previous: str | None,
    subjects: list[dict[str, Any]],
    predicate: Mapping[str, Any],
) -> dict[str, Any]:
    """The Statement of an entry; ``predicate`` gets run, sequence and previous."""
    body = {"run": run, "sequence": sequence, "previous": previous, **predicate}
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": _TYPE_OF[kind],
        "predicate": body,
    }


def _fail(why: str) -> LedgerError:
    return LedgerError(f"the entry is not an accord ledger statement: {why}")


def parse_statement(payload: bytes) -> Statement:
    """Read a Statement written by :func:`build_statement`; LedgerError if it is not."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise _fail(f"its payload is not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("_type") != STATEMENT_TYPE:
        raise _fail(f"_type is not {STATEMENT_TYPE}")
    kind = PREDICATE_TYPES.get(str(data.get("predicateType")))
    if kind is None:
        raise _fail(f"unknown predicateType {str(data.get('predicateType'))[:80]!r}")
    predicate = data.get("predicate")
    if not isinstance(predicate, dict):
        raise _fail("its predicate is not an object")
    run, seq, prev = (predicate.get(k) for k in ("run", "sequence", "previous"))
    if not isinstance(run, str) or not run:
        raise _fail("its predicate names no run")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise _fail("its sequence is not a whole number >= 0")
    if prev is not None and not (isinstance(prev, str) and _HEX64.match(prev)):
        raise _fail("its previous digest is not 64 hex digits")
    number = predicate.get("round")
    if number is not None and (not isinstance(number, int) or isinstance(number, bool)):
        raise _fail("its round is not a number")
    return Statement(
        kind=kind,
        run=run,
        sequence=seq,
        previous=prev,
        round=number,
        subjects=_subjects(data.get("subject")),
        predicate=predicate,
    )


def _subjects(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise _fail("it has no subject")
    out = []
    for item in value:
        digest = item.get("digest") if isinstance(item, dict) else None
        name = item.get("name") if isinstance(item, dict) else None
        digests = digest if isinstance(digest, dict) else {}
        named = [digests[a] for a in ALGORITHMS if a in digests]
        if (
            not isinstance(name, str)
            or len(named) != 1
            or not isinstance(named[0], str)
            or not _HEX64.match(named[0])
        ):
            raise _fail(
                "a subject lacks a name or a digest (one of "
                f"{', '.join(ALGORITHMS)}, 64 hex digits)"
            )
        out.append((name, named[0]))
    return tuple(out)
