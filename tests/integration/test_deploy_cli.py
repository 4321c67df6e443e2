"""``accord coordinator`` and ``accord participant`` refuse unsafe or partial setups."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from typer.testing import CliRunner

from accord.cli.main import app
from accord.store import SqlStore

runner = CliRunner()
FED = """
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
"""


def test_plaintext_beyond_loopback_is_refused(tmp_path):
    config = tmp_path / "fed.toml"
    config.write_text(FED)

    result = runner.invoke(
        app, ["coordinator", str(config), "--listen", "0.0.0.0:0", "--insecure"]
    )

    assert result.exit_code == 2
    assert "loopback" in result.output


def test_a_coordinator_without_certificates_says_what_to_pass(tmp_path):
    config = tmp_path / "fed.toml"
    config.write_text(FED)

    result = runner.invoke(app, ["coordinator", str(config), "--listen", "127.0.0.1:0"])

    assert result.exit_code == 2
    assert "--pki" in result.output


def test_a_participant_needs_an_identity_or_explicit_plaintext(tmp_path):
    result = runner.invoke(
        app,
        ["participant", "--coordinator", "127.0.0.1:1", "--data", f"sim:{tmp_path}#a"],
    )

    assert result.exit_code == 2
    assert "--identity" in result.output


def test_plaintext_participant_must_dial_loopback(tmp_path):
    config = tmp_path / "fed.toml"
    config.write_text(FED)

    result = runner.invoke(
        app,
        [
            "participant",
            "--coordinator",
            "10.1.2.3:7000",
            "--insecure",
            "site-00",
            "--data",
            f"sim:{config}#site-00",
        ],
    )

    assert result.exit_code == 2
    assert "loopback" in result.output


# --resume: checked before the coordinator listens, so no site connects in vain.


def _resume(tmp_path, value, *, wait_s=0.5, listen="127.0.0.1:0"):
    config = tmp_path / "fed.toml"
    config.write_text(FED + f"[deployment]\nwait_s = {wait_s}\n")
    port_file = tmp_path / "port"
    result = runner.invoke(
        app,
        [
            "coordinator",
            str(config),
            "--listen",
            listen,
            "--insecure",
            "--store",
            f"sqlite:///{tmp_path}/runs.db",
            "--port-file",
            str(port_file),
            "--resume",
            value,
        ],
    )
    return result, port_file.exists()


def _runs(tmp_path, *statuses, seed=None):
    from accord.config import load_config
    from accord.coordinator.runner import create_run

    config = tmp_path / "fed.toml"
    config.write_text(FED + "[deployment]\nwait_s = 0.5\n")
    cfg = load_config(config)
    if seed is not None:
        cfg = load_config(config, federation={"seed": seed})
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        ids = [create_run(store, cfg) for _ in statuses]
        for run_id, status in zip(ids, statuses, strict=True):
            if status != "running":
                store.finish_run(run_id, status=status, summary=None)
    return ids


def test_resume_auto_refuses_to_guess_between_interrupted_runs(tmp_path):
    _runs(tmp_path, "running", "running")

    result, listened = _resume(tmp_path, "auto")

    assert result.exit_code == 2, result.output
    assert "2 runs of 'federation' are marked running" in " ".join(
        result.output.split()
    )
    assert not listened


def test_resume_auto_without_an_interrupted_run_starts_a_new_one(tmp_path):
    (done,) = _runs(tmp_path, "completed")

    # No participant comes: the new run cannot start and is marked aborted.
    result, listened = _resume(tmp_path, "auto")

    assert result.exit_code == 1, result.output
    assert "no interrupted run of 'federation' to resume" in " ".join(
        result.output.split()
    )
    assert listened
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        runs = {r.run_id: r.status for r in store.list_runs()}
    assert len(runs) == 2 and runs.pop(done) == "completed"
    assert list(runs.values()) == ["aborted"]


def test_resume_of_a_completed_run_is_refused_before_listening(tmp_path):
    (done,) = _runs(tmp_path, "completed")

    result, listened = _resume(tmp_path, done)

    assert result.exit_code == 4, result.output
    assert "nothing to resume" in " ".join(result.output.split())
    assert not listened


def test_resume_with_another_configuration_is_refused_before_listening(tmp_path):
    (run_id,) = _runs(tmp_path, "running", seed=99)

    result, listened = _resume(tmp_path, run_id)

    assert result.exit_code == 2, result.output
    assert "federation.seed: run has 99" in " ".join(result.output.split())
    assert not listened


def test_a_resumed_run_whose_sites_do_not_come_back_stays_resumable(tmp_path):
    (run_id,) = _runs(tmp_path, "running")

    result, listened = _resume(tmp_path, "auto")

    assert result.exit_code == 1, result.output
    assert f"resuming run {run_id} after round 0" in " ".join(result.output.split())
    assert listened
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        assert store.get_run(run_id).status == "running"  # --resume auto finds it


# An address the coordinator cannot bind: refused before the store is touched.


@contextmanager
def _taken_port() -> Iterator[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield f"127.0.0.1:{holder.getsockname()[1]}"


def _coordinator_on(tmp_path, listen, *extra):
    config = tmp_path / "fed.toml"
    config.write_text(FED + "[deployment]\nwait_s = 0.5\n")
    return runner.invoke(
        app,
        [
            "coordinator",
            str(config),
            "--listen",
            listen,
            "--insecure",
            "--store",
            f"sqlite:///{tmp_path}/runs.db",
            *extra,
        ],
    )


def test_a_coordinator_that_cannot_listen_creates_no_run(tmp_path):
    with _taken_port() as taken:
        result = _coordinator_on(tmp_path, taken)

    assert result.exit_code == 1, result.output
    assert f"cannot listen on {taken}" in " ".join(result.output.split())
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        assert store.list_runs() == []


def test_a_coordinator_that_cannot_listen_leaves_a_resumed_run_as_it_was(tmp_path):
    (run_id,) = _runs(tmp_path, "running")

    with _taken_port() as taken:
        result, listened = _resume(tmp_path, run_id, listen=taken)

    assert result.exit_code == 1, result.output
    assert f"cannot listen on {taken}" in " ".join(result.output.split())
    assert not listened
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        runs = {r.run_id: r.status for r in store.list_runs()}
    assert runs == {run_id: "running"}


# A run another coordinator serves (holds its lease): refused before anything.


def _state(tmp_path):
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        return {
            r.run_id: (r.status, len(store.rounds(r.run_id)), store.events(r.run_id))
            for r in store.list_runs()
        }


def test_resume_of_a_run_another_process_serves_is_refused_before_binding(
    tmp_path, lease_holder
):
    (run_id,) = _runs(tmp_path, "running")
    holder = lease_holder(f"sqlite:///{tmp_path}/runs.db", run_id)

    # The address is taken too: refused for the lease first, so before binding.
    with _taken_port() as taken:
        result, listened = _resume(tmp_path, run_id, listen=taken)

    output = " ".join(result.output.split())
    assert result.exit_code == 4, result.output
    assert f"run {run_id} is already being served by process {holder.pid} on" in output
    assert "cannot listen" not in output
    assert "resuming run" not in output
    assert not listened
    assert _state(tmp_path) == {run_id: ("running", 0, [])}


def test_resume_auto_does_not_take_the_run_another_process_serves(
    tmp_path, lease_holder
):
    (run_id,) = _runs(tmp_path, "running")
    holder = lease_holder(f"sqlite:///{tmp_path}/runs.db", run_id)

    result, listened = _resume(tmp_path, "auto")

    output = " ".join(result.output.split())
    assert result.exit_code == 4, result.output
    assert "--resume auto found no interrupted run of 'federation'" in output
    assert "leave out --resume to start a new one" in output
    assert f"run {run_id} is already being served by process {holder.pid} on" in output
    assert not listened
    assert _state(tmp_path) == {run_id: ("running", 0, [])}  # and no new run


def test_resume_auto_passes_over_a_served_run_to_the_interrupted_one(
    tmp_path, lease_holder
):
    served, interrupted = _runs(tmp_path, "running", "running")
    lease_holder(f"sqlite:///{tmp_path}/runs.db", served)

    # No participant comes back: the resumed run stays as it was, resumable.
    result, listened = _resume(tmp_path, "auto")

    output = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert f"passing over run {served}: served by process" in output
    assert f"resuming run {interrupted} after round 0" in output
    assert listened
    assert _state(tmp_path) == {
        served: ("running", 0, []),
        interrupted: ("running", 0, []),
    }


# An aborted run (a checkpoint it could not write, sites that never came): --resume
# auto continues it rather than start a new run from round 1 beside it.


def _runs_in_order(tmp_path, *statuses, seed=None):
    """Like ``_runs``, created a minute apart (ids made in one second sort
    randomly), oldest first."""
    from datetime import UTC, datetime, timedelta

    from accord.config import load_config
    from accord.coordinator.runner import create_run

    config = tmp_path / "fed.toml"
    config.write_text(FED + "[deployment]\nwait_s = 0.5\n")
    overrides = {} if seed is None else {"federation": {"seed": seed}}
    cfg = load_config(config, **overrides)
    times = iter(
        datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i) for i in range(99)
    )
    with SqlStore(f"sqlite:///{tmp_path}/runs.db", clock=lambda: next(times)) as store:
        ids = [create_run(store, cfg) for _ in statuses]
        for run_id, status in zip(ids, statuses, strict=True):
            if status != "running":
                store.finish_run(run_id, status=status, summary=None)
    return ids


def test_resume_auto_continues_the_newest_run_when_it_was_aborted(tmp_path):
    _done, aborted = _runs_in_order(tmp_path, "completed", "aborted")

    # No participant comes back: the run stays as it was, for the next try.
    result, listened = _resume(tmp_path, "auto")

    output = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert (
        f"run {aborted} of 'federation' was aborted after 0 recorded round(s); "
        "resuming it" in output
    )
    assert "starting a new one" not in output
    assert listened
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        runs = {r.run_id: r.status for r in store.list_runs()}
    assert len(runs) == 2 and runs[aborted] == "aborted"  # no new run


def test_resume_auto_starts_anew_when_the_newest_run_completed(tmp_path):
    _aborted, done = _runs_in_order(tmp_path, "aborted", "completed")

    result, listened = _resume(tmp_path, "auto")

    assert result.exit_code == 1, result.output
    assert "no interrupted run of 'federation' to resume" in " ".join(
        result.output.split()
    )
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        assert len(store.list_runs()) == 3


def test_resume_auto_of_an_aborted_run_with_another_config_names_it(tmp_path):
    (aborted,) = _runs_in_order(tmp_path, "aborted", seed=99)

    result, listened = _resume(tmp_path, "auto")

    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"run {aborted} was started with another configuration" in output
    assert "federation.seed: run has 99" in output
    assert not listened


# DP's noise is calibrated before the coordinator listens or creates a run.

DP_FED = (
    FED
    + """
[federation]
rounds = {rounds}
[deployment]
wait_s = 60
[privacy]
level = "participant"
target_epsilon = {target}
clip = 1.0
"""
)


def _dp_coordinator(tmp_path, *, rounds, target):
    config = tmp_path / "fed.toml"
    config.write_text(DP_FED.format(rounds=rounds, target=target))
    port_file = tmp_path / "port"
    result = runner.invoke(
        app,
        [
            "coordinator",
            str(config),
            "--listen",
            "127.0.0.1:0",
            "--insecure",
            "--store",
            f"sqlite:///{tmp_path}/runs.db",
            "--port-file",
            str(port_file),
        ],
    )
    return result, port_file


def _sites_in_threads(tmp_path, port_file, background):
    """The three sites of FED as participant runtimes dialing the port file's port."""
    import time

    from accord.config import load_config
    from accord.participant.backoff import Backoff
    from accord.participant.data import LocalData
    from accord.participant.runtime import ParticipantRuntime
    from accord.participant.sitelog import SiteLog
    from accord.simulation.context import build_context
    from accord.transport.client import CoordinatorClient

    ctx = build_context(load_config(tmp_path / "fed.toml"))

    def serve(name: str) -> None:
        def connect() -> CoordinatorClient:
            for _ in range(1200):  # the coordinator writes it once it listens
                if port_file.exists() and port_file.read_text().strip():
                    break
                time.sleep(0.05)
            port = port_file.read_text().strip()
            return CoordinatorClient(
                f"127.0.0.1:{port}", identity=None, insecure_name=name
            )

        site = ctx.site(name)
        runtime = ParticipantRuntime(
            connect,
            ctx.task,
            LocalData(name, ctx.data.info, site.train, site.holdout),
            log=SiteLog(tmp_path / f"{name}.jsonl"),
            backoff=Backoff(initial_s=0.05, maximum_s=0.5),
            give_up_after_s=90,
        )
        try:
            runtime.run()
        finally:
            runtime.log.close()

    for name in ctx.participants:
        background(lambda name=name: serve(name))


def test_an_unreachable_target_epsilon_exits_2_before_listening_and_leaves_no_run(
    tmp_path,
):
    result, port_file = _dp_coordinator(tmp_path, rounds=50, target=1e-3)

    assert result.exit_code == 2, result.output
    assert "raise target_epsilon" in " ".join(result.output.split())
    assert not port_file.exists()  # it never listened
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        assert store.list_runs() == []


def test_a_reachable_target_epsilon_creates_exactly_one_run(tmp_path, background):
    (tmp_path / "fed.toml").write_text(DP_FED.format(rounds=1, target=3.0))
    _sites_in_threads(tmp_path, tmp_path / "port", background)

    result, _ = _dp_coordinator(tmp_path, rounds=1, target=3.0)

    assert result.exit_code == 0, result.output
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        (run,) = store.list_runs()
        (record,) = store.rounds(run.run_id)
    assert run.status == "completed"
    assert record.privacy and 0 < record.privacy[0].epsilon <= 3.0
