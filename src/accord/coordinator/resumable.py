"""Which run ``--resume auto`` continues: one rule for a simulation and a deployment.

``accord coordinator --resume auto`` and ``accord simulate --resume auto`` both pick
the run of the federation (``[federation] name``) that stopped before its end:

1. the one marked ``running`` that no process serves: whoever ran it died without
   recording an end (killed, crashed, machine lost). Several such runs are an
   error that lists their ids (:class:`~accord.errors.ConfigError`): which to
   continue is the user's choice. A run another process serves is passed over;
   if that is all there is, :class:`~accord.errors.RunBusy` rather than a second
   run beside it;
2. otherwise the federation's newest run, if it was ``aborted``: interrupted by
   Ctrl-C or SIGTERM, or stopped by a checkpoint or store it could not write, by
   participants that did not come, by rounds that kept failing. It goes on after
   its last recorded round, as a crashed one does;
3. otherwise none: a newest run that completed (or failed, having trained
   nothing) means a new run.

The chosen run is leased (:meth:`~accord.store.protocol.RunStore.lease_run`) into
the caller's :class:`~contextlib.ExitStack`, so that it is served by this process
alone from the moment it is chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING

from accord.errors import ConfigError, RunBusy

if TYPE_CHECKING:
    from accord.store.protocol import RunStore

__all__ = ["interrupted_run"]


def interrupted_run(
    store: RunStore,
    federation: str,
    lease: ExitStack,
    say: Callable[[str], None],
) -> str | None:
    """The run of ``federation`` that ``--resume auto`` continues, leased; or None.

    ``say`` tells the user what was chosen or passed over, and why.
    """
    runs = [r for r in store.list_runs() if r.name == federation]  # newest first
    running = [r.run_id for r in runs if r.status == "running"]
    with ExitStack() as taken:
        free: list[str] = []
        busy: list[RunBusy] = []
        for run_id in running:
            try:
                taken.enter_context(store.lease_run(run_id))
                free.append(run_id)
            except RunBusy as exc:
                busy.append(exc)
        if len(free) > 1:
            raise ConfigError(
                f"{len(free)} runs of {federation!r} are marked running and served "
                f"by no process ({', '.join(free)}); pass --resume RUN_ID to "
                "say which to continue (`accord runs` lists them)",
                key="--resume",
            )
        if free:
            for refusal in busy:
                who = refusal.holder or "another process"
                say(f"passing over run {refusal.run_id}: served by {who}")
            lease.enter_context(taken.pop_all())
            return free[0]
    if not busy and runs and runs[0].status == "aborted":
        aborted = runs[0]
        lease.enter_context(store.lease_run(aborted.run_id))
        say(
            f"run {aborted.run_id} of {federation!r} was aborted after "
            f"{len(store.rounds(aborted.run_id))} recorded round(s); resuming it "
            "(leave out --resume to start a new run instead)"
        )
        return aborted.run_id
    if busy:
        others = ", ".join(refusal.run_id for refusal in busy[1:])
        raise RunBusy(
            busy[0].run_id,
            holder=busy[0].holder,
            context=f"--resume auto found no interrupted run of {federation!r} "
            "(leave out --resume to start a new one)"
            + (f"; {others} in use too" if others else ""),
        )
    return None
