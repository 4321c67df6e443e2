"""A coordinator that stops early tells its sites why, over gRPC with mutual TLS.

Three participant runtimes in threads serve a coordinator whose round loop runs
inside :meth:`GrpcExecutor.ending` (what ``accord coordinator`` does). Ctrl-C after
round 1 must reach every site as "run interrupted by the coordinator; it may
resume", a failure as "run aborted: WHY", never "run finished"; each site logs the
reason, and ``accord participant`` turns it into its exit code (75, 1; 0 only for a
run that finished).
"""

from pathlib import Path

import pytest
import typer

from accord.cli.errors import EXIT_RUN_INTERRUPTED, reported
from accord.cli.participant import _ended
from accord.config import load_config
from accord.coordinator.runner import Coordinator
from accord.errors import RunAborted, RunInterrupted, StoreError
from accord.simulation.context import build_context
from accord.store import MemoryStore
from accord.transport.messages import RUN_FINISHED, RUN_INTERRUPTED

from .conftest import SITES

pytestmark = pytest.mark.timeout(120)

FED = """
[federation]
name = "goodbye"
rounds = 3
seed = 5
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[simulation]
workers = 0
[round]
deadline_s = 60
"""


class StopAfter:
    """An observer that raises ``error`` as round ``number`` is recorded."""

    def __init__(self, number: int, error: BaseException) -> None:
        self.number, self.error = number, error

    def round_started(self, number, selected):
        pass

    def participant_finished(self, number, outcome):
        pass

    def round_finished(self, summary):
        if summary.number == self.number:
            raise self.error


class DiskFullAfter(MemoryStore):
    """A store whose disk fills as round ``number + 1`` is recorded."""

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number

    def record_round(self, record, **kwargs):
        if record.number > self.number:
            raise StoreError(f"disk full while recording round {record.number}")
        super().record_round(record, **kwargs)


def run_until(deploy_sites, tmp_path: Path, error: BaseException):
    """Run the federation until ``error`` after round 1; the sites and the store.

    A ``StoreError`` comes from the store, as the round after is recorded; any
    other error from the progress observer (an interrupt: an observer's own
    exception only detaches it, :mod:`accord.coordinator.observer`).
    """
    fed = tmp_path / "fed.toml"
    fed.write_text(FED)
    config = load_config(fed)
    deployed = deploy_sites(SITES, config)
    executor = deployed.running.executor
    assert executor.wait_for(SITES, 20) == set(SITES), deployed.ended
    full = isinstance(error, StoreError)
    store = DiskFullAfter(1) if full else MemoryStore()
    initial = build_context(config).task.init_params(config.federation.seed)
    observer = None if full else StopAfter(1, error)
    coordinator = Coordinator(config, executor=executor, store=store, observer=observer)
    with pytest.raises(type(error)), executor.ending():
        coordinator.run(initial)
    for thread in deployed.threads:
        thread.join(20)
    return deployed, store


def exit_code(reason: str) -> int:
    """What ``accord participant`` exits with after this goodbye."""
    try:
        with reported():
            _ended(reason)
    except typer.Exit as exc:
        return exc.exit_code
    return 0


def test_an_interrupted_coordinator_tells_the_sites_it_may_resume(
    deploy_sites, tmp_path
):
    deployed, store = run_until(deploy_sites, tmp_path, KeyboardInterrupt())

    assert deployed.ended == dict.fromkeys(SITES, RUN_INTERRUPTED)
    for site in SITES:
        (goodbye,) = deployed.site_log(site, "goodbye")
        assert goodbye["reason"] == RUN_INTERRUPTED
    (run,) = store.list_runs()
    assert run.status == "aborted"
    assert [r.number for r in store.rounds(run.run_id)] == [1]  # round 1 kept
    assert exit_code(RUN_INTERRUPTED) == EXIT_RUN_INTERRUPTED == 75
    with pytest.raises(RunInterrupted, match="Start this participant again"):
        _ended(RUN_INTERRUPTED)


def test_an_aborted_run_tells_the_sites_why(deploy_sites, tmp_path):
    error = StoreError("disk full")
    deployed, store = run_until(deploy_sites, tmp_path, error)

    expected = "run aborted: disk full while recording round 2"
    assert deployed.ended == dict.fromkeys(SITES, expected)
    for site in SITES:
        assert [e["reason"] for e in deployed.site_log(site, "goodbye")] == [expected]
    assert store.list_runs()[0].status == "aborted"
    assert exit_code(expected) == 1
    with pytest.raises(RunAborted, match="disk full") as raised:
        _ended(expected)
    assert not isinstance(raised.value, RunInterrupted)


def test_only_a_finished_run_exits_zero():
    assert exit_code(RUN_FINISHED) == 0
    # What a site whose stream a newer connection took over hears: not a finish.
    assert exit_code("a newer connection with this identity took over") == 1
    assert exit_code("run finished.") == 1  # exactly the protocol's text, no more
