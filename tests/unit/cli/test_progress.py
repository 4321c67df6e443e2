"""The progress display: one step per participant, the reason of each refusal."""

import io

from rich.console import Console

from accord.cli.progress import ProgressObserver
from accord.records import ParticipantOutcome


def _outcome(participant: str, status: str, reason: str | None = None):
    return ParticipantOutcome(
        participant=participant,
        status=status,
        reason=reason,
        num_examples=10 if status == "ok" else 0,
        update_digest=None,
        duration_s=0.1,
        metrics={},
    )


def test_an_ok_revised_to_rejected_advances_the_bar_once_and_prints_why():
    out = io.StringIO()
    observer = ProgressObserver(
        Console(file=out, width=200), rounds=1, metric="accuracy"
    )
    observer.round_started(1, ("a", "b", "c"))

    observer.participant_finished(1, _outcome("a", "ok"))
    observer.participant_finished(1, _outcome("b", "ok"))
    observer.participant_finished(1, _outcome("b", "rejected", "above 10 x median"))

    task = observer._progress.tasks[1]
    assert (task.completed, task.total) == (2, 3)
    assert "round 1: b rejected above 10 x median" in out.getvalue()
