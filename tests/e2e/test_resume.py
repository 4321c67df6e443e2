"""A simulation killed with SIGKILL resumes from its last recorded round.

The killed run is a real ``accord simulate`` process group, killed with SIGKILL. A
round of the covid example takes tens of milliseconds, too short to kill at a known
point by polling the store, so the child wraps ``SqlStore.record_round`` to stop, for
good, at the chosen point and say so in a file; the test then kills the group. Two
points: just after round 2 is committed, and in round 3 after its checkpoint was
written but before the store has the round (the resumed run must run round 3 again
and replace that checkpoint). The resumed run must end with the model of a run that
was never interrupted, round for round.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from accord.store import SqlStore

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONHASHSEED": "0"}

CHILD = """
import sys, time
from pathlib import Path
from accord.store.sql import SqlStore

marker, number, when = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
record_round = SqlStore.record_round

def stop():
    marker.write_text("stopped")
    time.sleep(600)  # until SIGKILL

def stopping_record_round(self, record, **kwargs):
    if (record.number, when) == (number, "before"):
        stop()
    record_round(self, record, **kwargs)
    if (record.number, when) == (number, "after"):
        stop()

SqlStore.record_round = stopping_record_round
sys.argv = ["accord", *sys.argv[4:]]
from accord.cli.main import main
main()
"""


def said(proc: subprocess.CompletedProcess[str]) -> str:
    """The process's stderr with line wrapping undone."""
    return " ".join(proc.stderr.split())


def simulate_args(repo: Path, url: str, *extra: str) -> list[str]:
    config = repo / "examples" / "covid" / "fed.toml"
    return ["simulate", str(config), "--rounds", "4", "--store", url, *extra]


def run_killed(args: list[str], *, cwd: Path, stop_at: tuple[int, str]) -> None:
    """Run ``accord *args`` until it stops at ``stop_at``, then SIGKILL its group."""
    marker, log = cwd / "stopped", cwd / "killed-stderr.txt"
    number, when = stop_at
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(marker), str(number), when, *args],
            cwd=cwd,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # its own process group: workers die with it
        )
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"accord ended before round {number}: {log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"accord did not reach round {number} in 180 s")
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@dataclass(frozen=True)
class Reference:
    """An uninterrupted 4-round run: its store, id and each round's global digest."""

    url: str
    folder: Path
    run_id: str
    digests: list[str]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    folder = tmp_path_factory.mktemp("reference")
    url = f"sqlite:///{folder}/runs.db"
    # Module-scoped, so it cannot use the function-scoped ``accord_json`` fixture.
    proc = subprocess.run(
        [sys.executable, "-m", "accord"]
        + simulate_args(REPO, url, "--workers", "0", "--json"),
        cwd=folder,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    with SqlStore(url) as store:
        digests = [r.global_digest for r in store.rounds(out["run_id"])]
    assert digests[-1] == out["final_digest"]
    return Reference(url, folder, out["run_id"], digests)


@pytest.mark.parametrize(
    "stop_at",
    [(2, "after"), (3, "before")],
    ids=["after-round-2-committed", "in-round-3-after-its-checkpoint"],
)
def test_killed_run_resumes_to_the_uninterrupted_model(
    repo, tmp_path, accord_json, reference, stop_at
):
    url = f"sqlite:///{tmp_path}/runs.db"
    run_killed(
        simulate_args(repo, url, "--workers", "2"), cwd=tmp_path, stop_at=stop_at
    )
    with SqlStore(url) as store:
        (killed,) = store.list_runs()
        assert killed.status == "running"
        assert [r.number for r in store.rounds(killed.run_id)] == [1, 2]
    run_id = killed.run_id
    checkpoints = tmp_path / "accord-runs" / "checkpoints" / run_id
    assert (checkpoints / "round-00003.safetensors").exists() == (stop_at[0] == 3)

    out = accord_json(
        *simulate_args(repo, url, "--workers", "0", "--resume", run_id),
        cwd=tmp_path,
    )

    assert out["run_id"] == run_id
    assert out["final_digest"] == reference.digests[-1]
    assert [r["number"] for r in out["rounds"]] == [1, 2, 3, 4]
    with SqlStore(url) as store:
        rounds = store.rounds(run_id)
        info = store.get_run(run_id)
        assert [r.number for r in rounds] == [1, 2, 3, 4]
        assert [r.status for r in rounds] == ["completed"] * 4
        assert [r.global_digest for r in rounds] == reference.digests
        assert info.status == "completed"
        assert info.rounds_completed == 4
        assert info.summary is not None and "comparison" in info.summary
        assert [r.run_id for r in store.list_runs()] == [run_id]  # no new run


def test_resume_refuses_another_config_and_changes_nothing(repo, tmp_path, accord_cli):
    url = f"sqlite:///{tmp_path}/runs.db"
    run_killed(
        simulate_args(repo, url, "--workers", "0"), cwd=tmp_path, stop_at=(1, "after")
    )
    with SqlStore(url) as store:
        (killed,) = store.list_runs()

    args = simulate_args(repo, url, "--resume", killed.run_id)
    args[args.index("4")] = "5"
    proc = accord_cli(*args, cwd=tmp_path)

    assert proc.returncode == 2, proc.stderr
    assert "federation.rounds: run has 4, config has 5" in said(proc)
    with SqlStore(url) as store:
        assert store.get_run(killed.run_id) == killed
        assert [r.number for r in store.rounds(killed.run_id)] == [1]


def test_resume_refuses_a_completed_or_unknown_run(repo, reference, accord_cli):
    url, folder = reference.url, reference.folder

    again = accord_cli(
        *simulate_args(repo, url, "--resume", reference.run_id), cwd=folder
    )
    unknown = accord_cli(
        *simulate_args(repo, url, "--resume", "20000101-000000-000000"), cwd=folder
    )

    assert again.returncode == 4
    assert "nothing to resume" in said(again)
    assert unknown.returncode == 2  # a typo in a run id is the user's to fix
    assert "no run '20000101-000000-000000'" in said(unknown)
    with SqlStore(url) as store:
        assert [r.run_id for r in store.list_runs()] == [reference.run_id]
        assert store.get_run(reference.run_id).status == "completed"
