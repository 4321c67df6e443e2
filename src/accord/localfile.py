"""Opening a file that a user named: a regular file, within a size bound.

``fed.toml`` and ``csv:PATH`` data are whatever path the operator typed. A FIFO there
blocks a plain ``open()`` until some writer comes (forever, in practice), and a
device such as ``/dev/zero`` never ends, so a reader keeps allocating until the
machine runs out of memory. :func:`open_regular` opens without blocking
(``O_NONBLOCK``: a FIFO opens at once), checks what it opened with ``fstat`` (so
that nothing swapped in between a check and the open is read), and refuses anything
but a regular file no bigger than the caller's bound, with a message that says what
the path is and what to do.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from accord.errors import AccordError, excerpt

__all__ = ["open_regular", "read_regular"]

#: Builds the caller's error (ConfigError, DatasetError, ...) from a message.
ErrorFactory = Callable[[str], AccordError]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(
    path: Path | str, *, max_bytes: int, what: str, error: ErrorFactory
) -> BinaryIO:
    """Open ``path`` for reading in binary; it must be a regular file of <= max_bytes.

    ``what`` names the file in messages (``"fed.toml"``, ``"csv data"``); ``error``
    turns a message into the caller's exception. The caller closes the file.
    """
    shown = excerpt(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"{what} {shown} does not exist") from None
    except OSError as exc:
        raise error(f"cannot open {what} {shown}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(
                f"{what} {shown} is {_kind(info.st_mode)}, not a regular file; "
                "point it at a file (copy a stream to a file first)"
            )
        if info.st_size > max_bytes:
            raise error(
                f"{what} {shown} holds {info.st_size:,} bytes, more than the "
                f"{max_bytes:,} allowed; check that it is the right file"
            )
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(
    path: Path | str, *, max_bytes: int, what: str, error: ErrorFactory
) -> bytes:
    """The whole content of a regular file of at most ``max_bytes`` bytes."""
    with open_regular(path, max_bytes=max_bytes, what=what, error=error) as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise error(
                f"cannot read {what} {excerpt(str(path))}: {exc.strerror or exc}"
            ) from None
    if len(data) > max_bytes:  # it grew since it was opened
        raise error(
            f"{what} {excerpt(str(path))} holds more than the {max_bytes:,} bytes "
            "allowed; check that it is the right file"
        )
    return data
