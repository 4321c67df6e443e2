"""Who hears of a run's progress as it happens, and what a broken one may not do.

A :class:`RunObserver` is told when a round starts, when each selected site's job
ends and when a round is recorded: the CLI's progress display, the dashboard's
tests, a user's own code. It draws or records; it decides nothing. So the
coordinator wraps it in :class:`Guarded`: an observer that raises (a display fed
text it cannot draw, a bug in a user's callback) is logged with its traceback and
detached, and the run goes on without it, where before its exception ended the
run. An interrupt (``KeyboardInterrupt``, ``SystemExit``) still passes: Ctrl-C
during a redraw is the operator's, not the display's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from accord.records import ParticipantOutcome

if TYPE_CHECKING:
    from accord.coordinator.summary import RoundSummary

__all__ = ["Guarded", "RunObserver", "SilentObserver"]

logger = logging.getLogger(__name__)


class RunObserver(Protocol):
    """Receives progress as it happens (the CLI draws it; tests record it)."""

    def round_started(self, number: int, selected: Sequence[str]) -> None:
        """A round dispatched its jobs."""
        ...

    def participant_finished(self, number: int, outcome: ParticipantOutcome) -> None:
        """A selected participant's job ended, well or not.

        An ``ok`` may be followed by a ``rejected`` for the same participant, once
        the round judges its updates (``[strategy] max_norm_ratio``).
        """
        ...

    def round_finished(self, summary: RoundSummary) -> None:
        """A round was recorded."""
        ...


class SilentObserver:
    """Hears everything, says nothing: a run without a display."""

    def round_started(self, number: int, selected: Sequence[str]) -> None:
        """Nothing to draw."""

    def participant_finished(self, number: int, outcome: ParticipantOutcome) -> None:
        """Nothing to draw."""

    def round_finished(self, summary: RoundSummary) -> None:
        """Nothing to draw."""


class Guarded:
    """``inner``, detached for the rest of the run at its first exception."""

    def __init__(self, inner: RunObserver) -> None:
        self.inner = inner
        #: What the observer raised, once it has (it is told nothing more).
        self.failure: Exception | None = None

    def round_started(self, number: int, selected: Sequence[str]) -> None:
        """Tell ``inner``, unless it failed before."""
        self._tell("round_started", lambda: self.inner.round_started(number, selected))

    def participant_finished(self, number: int, outcome: ParticipantOutcome) -> None:
        """Tell ``inner``, unless it failed before."""
        self._tell(
            "participant_finished",
            lambda: self.inner.participant_finished(number, outcome),
        )

    def round_finished(self, summary: RoundSummary) -> None:
        """Tell ``inner``, unless it failed before."""
        self._tell("round_finished", lambda: self.inner.round_finished(summary))

    def _tell(self, what: str, call: Callable[[], None]) -> None:
        if self.failure is not None:
            return
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - any display bug; interrupts pass
            self.failure = exc
            logger.exception(
                "the run's progress observer %s failed in %s and is detached; the "
                "run goes on without it",
                type(self.inner).__name__,
                what,
            )
