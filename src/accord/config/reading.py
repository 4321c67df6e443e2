"""Reading ``fed.toml`` into plain data, refusing what a config file cannot be.

:func:`~accord.config.load_config` validates *values*; this module makes sure there
is a document to validate, and that reading it cannot hang, exhaust memory or
recurse without bound:

* the path must be a regular file of at most :data:`MAX_CONFIG_BYTES` (a FIFO or a
  device is refused before it is read, see :mod:`accord.localfile`);
* the bytes must be UTF-8, as TOML requires; the message gives the offset of the
  first bad byte;
* tables and arrays may nest :data:`MAX_DEPTH` levels deep. ``tomllib`` parses nested
  inline tables and arrays by recursion, so a document nested a thousand deep raises
  ``RecursionError`` inside it: that is caught and reported, and a document ``tomllib``
  could parse is measured afterwards (dotted keys nest without any bracket), since
  the store and the workers serialise the configuration by recursion too;
* numbers must be finite: TOML has ``inf`` and ``nan``, which no setting means and
  which make every round fail (a learning rate of ``inf``), anywhere in the file.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from accord.errors import EXCERPT_CHARS, ConfigError, excerpt
from accord.localfile import read_regular

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "check_document",
    "read_toml",
    "shown_key",
]

#: The largest fed.toml read: a configuration is a few kB.
MAX_CONFIG_BYTES = 1 << 20
#: How deep tables and arrays may nest; ``[task] options = {a = [1]}`` is 3 deep.
MAX_DEPTH = 32


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at ``path``, checked as the module docstring says."""
    data = read_regular(
        path, max_bytes=MAX_CONFIG_BYTES, what="config file", error=ConfigError
    )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{excerpt(str(path))} is not UTF-8 text (byte 0x{data[exc.start]:02x} "
            f"at offset {exc.start}); TOML files are UTF-8: save it as UTF-8"
        ) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{excerpt(str(path))} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"{excerpt(str(path))} nests tables or arrays far deeper than the "
            f"{MAX_DEPTH} levels a configuration may use; flatten it"
        ) from None
    check_document(document)
    return document


def shown_key(key: str) -> str:
    """A dotted key as a message shows it: as is if short and printable, else cut."""
    if len(key) <= EXCERPT_CHARS and key.isprintable():
        return key
    return excerpt(key)


def check_document(document: dict[str, Any]) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` and non-finite numbers."""
    for key, value, depth in _walk(document):
        if isinstance(value, dict | list) and depth > MAX_DEPTH:
            raise ConfigError(
                f"tables or arrays nest {depth} levels deep here, more than the "
                f"{MAX_DEPTH} a configuration may use; flatten it",
                key=shown_key(key),
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"is {value}; settings must be finite numbers", key=shown_key(key)
            )


def _walk(document: dict[str, Any]) -> Iterator[tuple[str, Any, int]]:
    """Every value with its dotted key and depth, without recursion.

    A section is at depth 1, each table or array inside it one deeper. A container
    is reported before its content, so nesting is refused before it is descended.
    """
    stack: list[tuple[str, Any, int]] = [
        (str(k), v, 1) for k, v in reversed(document.items())
    ]
    while stack:
        key, value, depth = stack.pop()
        yield key, value, depth
        if isinstance(value, dict):
            children = [(f"{key}.{k}", v) for k, v in value.items()]
        elif isinstance(value, list):
            children = [(f"{key}[{i}]", v) for i, v in enumerate(value)]
        else:
            continue
        stack.extend((k, v, depth + 1) for k, v in reversed(children))
