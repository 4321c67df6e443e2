"""The folder name of a site's own files (SCAFFOLD's ``c_i``, FedPer/Ditto state).

Site names come from the data (a natural split names a site after its clinic or
state: ``"clinical lab"``, ``"emergency dept"``) and may hold spaces or other
characters a folder name should not. :func:`site_folder` maps every name to a
folder name that is safe on any filesystem and distinct for distinct names, so
that such a site can keep state instead of failing its rounds:

* a name of letters, digits, ``.``, ``_`` and ``-`` that starts with a letter or a
  digit is its own folder (the folders written before this mapping keep working);
* any other name has each character outside ``[A-Za-z0-9_-]`` (``.`` included, so
  no ``..``) written as ``%XX`` of its UTF-8 bytes. Such a folder starts with ``%``
  or ``_``/``-``, or holds a ``%``: it never equals a folder of the first kind, and
  percent-encoding is reversible, so two names never share a folder.

Pure: no I/O. An empty name, or one whose folder would exceed 200 characters, is
refused with :class:`~accord.errors.ConfigError`.
"""

from __future__ import annotations

import re

from accord.errors import ConfigError

__all__ = ["site_folder"]

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_KEEP = re.compile(r"[A-Za-z0-9_-]")
_MAX = 200


def site_folder(site: str) -> str:
    """The folder name of ``site``'s files: the name itself when already safe."""
    if _SAFE.match(site):
        return site
    if not site:
        raise ConfigError("an empty site name cannot name a folder")
    out = "".join(
        ch if _KEEP.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode())
        for ch in site
    )
    if len(out) > _MAX:
        raise ConfigError(
            f"site name {site[:40]!r}... is too long for a folder "
            f"({len(out)} characters once encoded; at most {_MAX})"
        )
    return out
