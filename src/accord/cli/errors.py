"""Turning accord's errors into a message and an exit code at the command line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from accord.cli.text import shown
from accord.errors import (
    AccordError,
    AuthenticationFailed,
    ConfigError,
    ContributionUnavailable,
    DatasetError,
    LedgerError,
    LedgerInvalid,
    MissingExtraError,
    PkiError,
    ReleaseRefused,
    RoundFailed,
    RunAborted,
    RunInterrupted,
    RunNotFound,
    StoreError,
)

__all__ = [
    "EXIT_CODES",
    "EXIT_INTERRUPTED",
    "EXIT_RELEASE_REFUSED",
    "EXIT_RUN_INTERRUPTED",
    "reported",
]

#: This command was interrupted (Ctrl-C); 128 + SIGINT, as shells report it.
EXIT_INTERRUPTED = 130
#: A participant whose coordinator was interrupted: the run may resume, so start
#: the participant again (EX_TEMPFAIL of sysexits.h: a temporary failure).
EXIT_RUN_INTERRUPTED = 75
#: ``accord release``: a release gate failed, the model was not written.
EXIT_RELEASE_REFUSED = 7

#: Exit code per error class; the first matching entry wins. 2 is for what the user
#: can fix in what they gave the command (config, data, a run id), 4 for a store that
#: cannot serve (an unknown run id is a typo, not a broken store).
EXIT_CODES: tuple[tuple[type[AccordError], int], ...] = (
    (LedgerInvalid, 6),
    (ReleaseRefused, EXIT_RELEASE_REFUSED),
    (LedgerError, 2),
    (ConfigError, 2),
    (ContributionUnavailable, 2),
    (DatasetError, 2),
    (RunNotFound, 2),
    (PkiError, 2),
    (AuthenticationFailed, 5),
    (MissingExtraError, 3),
    (StoreError, 4),
    (RunInterrupted, EXIT_RUN_INTERRUPTED),
    (RunAborted, 1),
    (RoundFailed, 1),
    (AccordError, 1),
)


@contextmanager
def reported() -> Iterator[None]:
    """Print an AccordError as one readable message and exit with its code."""
    try:
        yield
    except AccordError as exc:
        code = next(c for cls, c in EXIT_CODES if isinstance(exc, cls))
        # shown: messages quote config sections such as "[deployment]", which
        # Rich would otherwise take for markup and drop, and text from a store, a
        # file or a peer (a coordinator's reason), whose control characters would
        # reach the terminal. soft_wrap: a line of the message stays one line of
        # output, whatever the terminal's width.
        Console(stderr=True).print(
            f"[bold red]error:[/] {shown(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(code) from None
