"""The ``accord`` command: the only place that configures logging.

Exit codes: 0 success; 1 the run failed or was aborted; 2 invalid configuration,
data or arguments; 3 a missing optional dependency; 4 the store could not be used;
5 a certificate was refused; 6 a ledger failed ``accord audit verify``; 7 a
release gate failed (``accord release`` wrote no model); 75 (a
participant) the coordinator was interrupted and may resume the run; 130
interrupted (Ctrl-C); 143 terminated (SIGTERM).

SIGTERM (what ``kill``, systemd and container runtimes send) ends a command the
way Ctrl-C does, as a :class:`KeyboardInterrupt`: ``finally`` blocks run, a run is
marked aborted in the store after its last recorded round, and a coordinator tells
its sites that the run was interrupted, rather than vanishing mid-round.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
from types import FrameType

import typer
from rich.console import Console
from rich.logging import RichHandler

from accord.cli.audit import register as register_audit
from accord.cli.ckks import register as register_ckks
from accord.cli.contributions import register as register_contributions
from accord.cli.dashboard import register as register_dashboard
from accord.cli.datasets import register as register_datasets
from accord.cli.deploy import register as register_deploy
from accord.cli.errors import EXIT_INTERRUPTED
from accord.cli.evaluate import register as register_evaluate
from accord.cli.participant import register as register_participant
from accord.cli.pki import register as register_pki
from accord.cli.profile import register as register_profile
from accord.cli.release import register as register_release
from accord.cli.report import register as register_report
from accord.cli.runs import register as register_runs
from accord.cli.simulate import register as register_simulate
from accord.memory import keep_freed_memory

__all__ = ["app", "main"]

app = typer.Typer(
    name="accord",
    help="Federated learning across organizations that cannot pool their data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _configure(
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, help="More log output (-v info, -vv debug)."
    ),
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
        force=True,
    )
    # dp-accounting's RDP accountant warns for each Renyi order it cannot compute
    # and leaves out (dozens per epsilon at some sampling rates); the epsilon it
    # reports stays a valid bound, so only -vv shows them.
    logging.getLogger("absl").setLevel(logging.ERROR if verbose < 2 else level)


register_simulate(app)
register_runs(app)
register_datasets(app)
register_profile(app)
register_deploy(app)
register_participant(app)
register_pki(app)
register_ckks(app)
register_evaluate(app)
register_audit(app)
register_release(app)
register_contributions(app)
register_report(app)
register_dashboard(app)


def main() -> None:
    """Console-script entry point."""
    # A fatal signal (SIGBUS from a mapped file, SIGSEGV in a native library)
    # prints where it struck instead of ending the process without a word.
    faulthandler.enable()
    # This process is accord's own: a round's freed arrays are kept for the next.
    keep_freed_memory()
    terminated: list[int] = []

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        terminated.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(_interrupted_code(terminated))
    except SystemExit as exc:  # typer turns KeyboardInterrupt into exit code 130
        if exc.code == EXIT_INTERRUPTED:
            sys.exit(_interrupted_code(terminated))
        raise


def _interrupted_code(terminated: list[int]) -> int:
    """128 + the signal, as shells report it: SIGTERM if one came, else SIGINT."""
    return 128 + terminated[0] if terminated else EXIT_INTERRUPTED
