"""Drawing a run as it happens: a progress bar per round and a line per failure."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from accord.cli.text import shown
from accord.coordinator.runner import RoundSummary
from accord.records import ParticipantOutcome

__all__ = ["ProgressObserver"]


class ProgressObserver:
    """A :class:`~accord.coordinator.runner.RunObserver` that draws with rich."""

    def __init__(self, console: Console, *, rounds: int, metric: str) -> None:
        self._console = console
        self._metric = metric
        self._finished: set[str] = set()  # this round's, each counted once
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._rounds = self._progress.add_task("rounds", total=rounds, status="")
        self._sites = self._progress.add_task(
            "sites", total=1, status="", visible=False
        )

    def __enter__(self) -> ProgressObserver:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def round_started(self, number: int, selected: Sequence[str]) -> None:
        """Reset the per-round bar."""
        self._finished = set()
        self._progress.update(
            self._sites,
            description=f"round {number}",
            total=len(selected),
            completed=0,
            visible=True,
            status="",
        )

    def participant_finished(self, number: int, outcome: ParticipantOutcome) -> None:
        """Advance the per-round bar; print why a participant did not contribute.

        A participant comes again when its ``ok`` is revised to ``rejected``: the
        bar advances once for it, the reason is printed.
        """
        if outcome.participant not in self._finished:
            self._finished.add(outcome.participant)
            self._progress.advance(self._sites)
        if outcome.status != "ok":
            self._console.print(
                f"  [yellow]round {number}: {shown(outcome.participant)} "
                f"{outcome.status}[/] {shown(outcome.reason)}",
                highlight=False,
            )

    def round_finished(self, summary: RoundSummary) -> None:
        """Advance the run bar and show the live metric."""
        status = self._status(summary)
        self._progress.update(self._rounds, advance=1, status=status)
        if summary.status == "failed":
            self._console.print(
                f"  [red]round {summary.number} failed:[/] {shown(summary.reason)}"
            )

    def finish_baselines(self, total: int) -> None:
        """Switch the second bar to the baseline training."""
        self._progress.update(
            self._sites, description="baselines", total=total, completed=0, status=""
        )

    def baseline_done(self, name: str) -> None:
        """One baseline model trained."""
        self._progress.update(self._sites, advance=1, status=shown(name))

    def _status(self, summary: RoundSummary) -> str:
        spent = "" if summary.epsilon is None else f", epsilon {summary.epsilon:.3f}"
        for scope in ("central", "federated", "train"):
            value = summary.metrics.get(f"{scope}.{self._metric}")
            if value is not None and not math.isnan(value):
                return f"{scope} {self._metric} {value:.4f}{spent}"
        loss = summary.metrics.get("train.loss")
        return (f"train loss {loss:.4f}" if loss is not None else "") + spent
