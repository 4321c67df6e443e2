"""What an upload says about itself in its call metadata, before its first byte.

An update (``SubmitUpdate``) or a secure round's message (``SubmitSecAgg``) is a
client stream that can be large and slow. So that the coordinator can refuse an
upload nobody asked for *before* it reads any of it (and before it gives the call a
thread for longer than a lookup), the participant names the run, the round and, for
a secure round, the stage in the call's metadata; the coordinator checks them against
its open jobs, and then checks that the header in the stream says the same
(:func:`check_header`). An old participant that sends no such metadata is refused
with a reason that says to upgrade.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from accord.errors import SubmissionRefused

__all__ = ["RUN_KEY", "ROUND_KEY", "STAGE_KEY", "UploadTag", "check_header"]

RUN_KEY = "accord-run"
ROUND_KEY = "accord-round"
STAGE_KEY = "accord-stage"
_MAX_VALUE = 256


@dataclass(frozen=True, slots=True)
class UploadTag:
    """The run, round and (secure rounds) stage an upload claims to answer."""

    run_id: str
    round: int
    stage: str = ""

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The tag as gRPC call metadata."""
        out = ((RUN_KEY, self.run_id), (ROUND_KEY, str(self.round)))
        return (*out, (STAGE_KEY, self.stage)) if self.stage else out

    @classmethod
    def parse(
        cls, metadata: Iterable[tuple[str, str | bytes]] | None, *, stage: bool
    ) -> UploadTag:
        """Read the tag from call metadata; refuse a missing or unreadable one."""
        found: dict[str, str] = {}
        for key, value in metadata or ():
            if key in (RUN_KEY, ROUND_KEY, STAGE_KEY) and isinstance(value, str):
                found[key] = value[:_MAX_VALUE]
        wanted = (RUN_KEY, ROUND_KEY, STAGE_KEY) if stage else (RUN_KEY, ROUND_KEY)
        missing = [k for k in wanted if not found.get(k)]
        if missing:
            raise SubmissionRefused(
                "malformed",
                f"the upload's call metadata lacks {', '.join(missing)}; this "
                "coordinator checks them before it reads an upload. Install the "
                "coordinator's accord version at this site",
            )
        number = found[ROUND_KEY]
        if not number.isdigit() or len(number) > 10:
            raise SubmissionRefused(
                "malformed", f"{ROUND_KEY} is {number[:32]!r}, not a round number"
            )
        return cls(found[RUN_KEY], int(number), found.get(STAGE_KEY, ""))


def check_header(tag: UploadTag, *, run_id: str, round: int, stage: str = "") -> None:
    """Refuse a stream whose header names another run, round or stage than ``tag``."""
    if (run_id, round, stage) != (tag.run_id, tag.round, tag.stage):
        said = f"run {tag.run_id[:32]!r}, round {tag.round}"
        sent = f"run {run_id[:32]!r}, round {round}"
        if stage or tag.stage:
            said += f", stage {tag.stage[:32]!r}"
            sent += f", stage {stage[:32]!r}"
        raise SubmissionRefused(
            "mismatch", f"the call metadata says {said} but the header {sent}"
        )
