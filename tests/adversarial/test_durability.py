"""Durability faults (issue 8): a store or checkpoint folder that fails under the
coordinator must stop it with a reason, and never cost or repeat a round.

Real processes: ``accord simulate`` and ``accord coordinator`` as the operator runs
them, and for the aborted run a three-site deployment with mutual TLS from the
end-to-end suite (``tests/e2e/conftest.py``). A read-only store is made read-only
for real: as root, whom permissions do not stop, the command runs without the
capabilities that bypass them (``setpriv``), so the kernel refuses its writes as it
would an ordinary user's. (A store that lost committed rounds is
``tests/unit/coordinator/test_lost_rounds.py``: its WAL really damaged.)
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from accord.store import SqlStore

from ..e2e.conftest import FED, Deployment, deployment  # noqa: F401

pytestmark = [pytest.mark.timeout(300)]

SITES = Deployment.SITES
_NO_BYPASS = "-dac_override,-dac_read_search,-fowner"


def _unprivileged() -> list[str]:
    """A prefix that runs a command without the right to ignore permissions."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot hold")
    return [setpriv, f"--inh-caps={_NO_BYPASS}", f"--bounding-set={_NO_BYPASS}"]


def _accord(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "0", "COLUMNS": "240"}
    return subprocess.run(
        [*_unprivileged(), sys.executable, "-m", "accord", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _read_only(path: Path) -> None:
    mode = path.stat().st_mode
    path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture
def federation_dir(tmp_path: Path) -> Path:
    """A fed.toml and a store with one completed run, in accord-runs/."""
    text = FED.format(
        factory="accord.task.numpy_task:softmax_regression", options="", grace_s=30
    ).replace("wait_s = 120", "wait_s = 5")
    (tmp_path / "fed.toml").write_text(text)
    done = _accord("simulate", "fed.toml", "--rounds", "1", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path


@pytest.mark.parametrize("command", ["simulate", "coordinator"])
@pytest.mark.parametrize(
    ("target", "named"),
    [
        ("accord-runs", "its folder accord-runs (SQLite creates accord.db-wal"),
        ("accord-runs/accord.db", "accord-runs/accord.db: the file is not writable"),
        (
            "accord-runs/checkpoints",
            "cannot write checkpoints in accord-runs/checkpoints",
        ),
    ],
    ids=["store-folder", "store-file", "checkpoint-folder"],
)
def test_a_read_only_store_stops_with_exit_4_naming_the_path(
    federation_dir: Path, command: str, target: str, named: str
) -> None:
    # Arrange
    args = {
        "simulate": ["simulate", "fed.toml", "--json"],
        "coordinator": [
            "coordinator",
            "fed.toml",
            "--insecure",
            "--listen",
            "127.0.0.1:0",
        ],
    }[command]
    _read_only(federation_dir / target)
    try:
        # Act
        done = _accord(*args, cwd=federation_dir)
    finally:
        (federation_dir / target).chmod(0o755)
    # Assert: exit 4, one readable reason naming the path, no traceback, and
    # the store as it was (one run, no new one begun).
    said = " ".join(done.stderr.split())
    assert done.returncode == 4, done.stderr
    assert said.startswith("error: ") and named in said, said
    assert "Traceback" not in done.stderr and "Fatal Python error" not in done.stderr
    with SqlStore(f"sqlite:///{federation_dir}/accord-runs/accord.db") as store:
        assert [r.status for r in store.list_runs()] == ["completed"]


@pytest.mark.slow
def test_a_checkpoint_write_failure_aborts_and_resume_auto_continues_the_run(
    deployment: Deployment,  # noqa: F811
) -> None:
    # Arrange: round 2 waits at site-00's gate until its checkpoint is made
    # impossible to write (a folder, with a file in it, where the file must go:
    # no rename replaces it, whoever the process runs as). The re-run of round 2
    # passes the gate at once (a new site process finds it open).
    deployment.configure(gated=True)
    deployment.enrol()
    deployment.close_gate("site-00", 2)
    first, port = deployment.coordinator(name="coordinator-1")
    deployment.may_fail.add(first.pid)
    participants = [deployment.participant(site, port) for site in SITES]
    deployment.wait_until(lambda: deployment.held("site-00", 2), "round 2 started")
    with SqlStore(deployment.store_url) as store:
        (run,) = store.list_runs()
    blocker = (
        deployment.root / "accord-runs" / "checkpoints" / run.run_id
    ) / "round-00002.safetensors"
    blocker.mkdir(parents=True)
    (blocker / "keep").touch()

    # Act 1: round 2 trains, then its checkpoint cannot be written.
    deployment.open_gate("site-00", 2, 1)
    code = first.wait(timeout=240)

    # Assert 1: exit 4 with the path; the run aborted with round 1 only.
    said = " ".join(deployment.log("coordinator-1").split())
    assert code == 4, said[-3000:]
    assert f"cannot write checkpoint {blocker.relative_to(deployment.root)}" in said
    with SqlStore(deployment.store_url) as store:
        assert store.get_run(run.run_id).status == "aborted"
        assert [r.number for r in store.rounds(run.run_id)] == [1]

    # The sites were told why the run ended (exit 1: it did not finish); their
    # operators start them again.
    for site, process in zip(SITES, participants, strict=True):
        deployment.may_fail.add(process.pid)
        deployment.finish(process, site, code=1)
        assert "run aborted: cannot write checkpoint" in deployment.log(site)
    assert all(deployment.site_events(site, "goodbye") for site in SITES)

    # Act 2: the folder is fixed; --resume auto takes the aborted run up again.
    shutil.rmtree(blocker)
    second, port = deployment.coordinator("--resume", "auto", name="coordinator-2")
    again = [deployment.participant(s, port, name=f"{s}-again") for s in SITES]
    out = json.loads(deployment.finish(second, "coordinator-2"))
    for site, process in zip(SITES, again, strict=True):
        deployment.finish(process, f"{site}-again")

    # Assert 2: the same run, every round once, and the model accord simulate
    # trains without the fault.
    # (What --resume auto says, quiet under --json, is checked in
    # tests/integration/test_deploy_cli.py.)
    expected = deployment.simulate()
    assert out["run_id"] == run.run_id
    assert [r["number"] for r in out["rounds"]] == [1, 2, 3]
    assert out["final_digest"] == expected["final_digest"]
    with SqlStore(deployment.store_url) as store:
        assert [r.run_id for r in store.list_runs()] == [run.run_id]
        assert store.get_run(run.run_id).status == "completed"
        assert [r.number for r in store.rounds(run.run_id)] == [1, 2, 3]
