"""JSON from another party, parsed without letting its nesting escape as a crash.

Python's ``json.loads`` raises :class:`RecursionError` (not a ``ValueError``) on a
document nested deeper than the interpreter's recursion limit: a few hundred
kilobytes of ``[`` do it. Code that reads JSON a peer sent catches ``ValueError``
for "not JSON"; a ``RecursionError`` slipped past those handlers and stopped the
process that read it (a receipt's payload stopped the coordinator's round loop).
:func:`parse_json` turns it into a :class:`json.JSONDecodeError`, a ``ValueError``,
so every existing handler refuses such a document as the malformed input it is.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["parse_json"]


def parse_json(text: str | bytes | bytearray) -> Any:
    """``json.loads(text)``; too deep a document raises ``JSONDecodeError`` too."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError(
            "the document nests arrays or objects too deeply to parse", "", 0
        ) from None
