"""What ``accord audit verify`` checks in a ``data-contract`` entry, past its signature.

The signature and the chain show that the entry was not edited after it was
written; these checks show that what was written is a contract accord makes and
that it is consistent with itself: its ``contract`` subject is the SHA-256 of
the contract's canonical JSON (an entry signed over one contract but naming
another's digest is caught), its ``preprocessing`` subject is the digest the
contract names, the schema, profile digests and flags have their documented
shape (``docs/governance.md``), every flag names a site that sent a profile,
and the entry sits right after the entry that opened or resumed the run (a
contract is agreed before the run's next round, never in the middle).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from accord.ledger.dsse import canonical_json
from accord.ledger.statement import Statement

__all__ = ["contract_problems"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEYS = {"schema", "preprocessing", "profiles", "guard", "flags"}
_FLAG_KEYS = {"site", "column", "measure", "value", "threshold"}


def contract_problems(statement: Statement, previous_kind: str | None) -> list[str]:
    """Why ``statement`` (a data-contract entry) is not a sound one; [] if it is.

    ``previous_kind`` is the kind of the entry before it (None: it is the first).
    """
    found: list[str] = []
    if previous_kind not in ("run-opened", "run-resumed"):
        found.append(
            "a data-contract entry must directly follow the entry that opens or "
            f"resumes the run, not {previous_kind or 'nothing'}"
        )
    contract = statement.predicate.get("contract")
    if not isinstance(contract, dict) or set(contract) != _KEYS:
        return [*found, f"its contract is not an object with exactly {sorted(_KEYS)}"]
    found += _shape(contract)
    digest = hashlib.sha256(canonical_json(contract)).hexdigest()
    named = dict(statement.subjects)
    if named.get("contract") != digest:
        found.append(
            f"its contract subject {str(named.get('contract'))[:16]}… is not the "
            f"digest of the contract it records ({digest[:16]}…)"
        )
    if named.get("preprocessing") != contract.get("preprocessing"):
        found.append("its preprocessing subject is not the contract's preprocessing")
    return found


def _shape(contract: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    schema = contract["schema"]
    if not (
        isinstance(schema, dict)
        and set(schema) == {"numeric", "categorical", "classes"}
        and _names(schema["numeric"])
        and _names(schema["classes"])
        and isinstance(schema["categorical"], dict)
        and all(_names(v) for v in schema["categorical"].values())
    ):
        found.append("its schema is not numeric, categorical and classes names")
    if not (
        isinstance(contract["preprocessing"], str)
        and _HEX64.match(contract["preprocessing"])
    ):
        found.append("its preprocessing digest is not 64 hex digits")
    profiles = contract["profiles"]
    if not (
        isinstance(profiles, dict)
        and all(isinstance(v, str) and _HEX64.match(v) for v in profiles.values())
    ):
        found.append("its profiles are not site names with SHA-256 digests")
        profiles = {}
    flags = contract["flags"]
    if not isinstance(flags, list) or not all(_flag(f) for f in flags):
        found.append(
            "its flags are not objects of site, column, measure, value, threshold"
        )
    else:
        strangers = sorted({f["site"] for f in flags} - set(profiles))
        if strangers:
            found.append(f"it flags site(s) {strangers[:5]} that sent no profile")
    guard = contract["guard"]
    if guard is not None and not isinstance(guard, dict):
        found.append("its guard is not an object")
    return found


def _names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _flag(value: object) -> bool:
    if not isinstance(value, dict) or set(value) != _FLAG_KEYS:
        return False
    texts = all(isinstance(value[k], str) for k in ("site", "column", "measure"))
    numbers = all(
        isinstance(value[k], int | float) and not isinstance(value[k], bool)
        for k in ("value", "threshold")
    )
    return texts and numbers
