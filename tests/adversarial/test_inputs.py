"""Local inputs an operator may get wrong (issue 8): one clear line, never a traceback.

Each test runs the real ``accord`` command in its own process on the bad input of
the issue and asserts the refusal (exit code, one ``error:`` line naming the cause,
no traceback, in bounded time), its record (the store is left as it was: no run
created, or the run unchanged), and where the input touches the model (a damaged
checkpoint on ``--resume``), that the model trained once the input is fixed is the
one the same federation trains without the damage.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from accord.config import load_config
from accord.coordinator.runner import RoundSummary
from accord.records import ParticipantOutcome
from accord.simulation.engine import simulate
from accord.store import MemoryStore, SqlStore

pytestmark = pytest.mark.timeout(300)

SRC = Path(__file__).parents[2] / "src"
#: Refusing an input takes a fraction of a second; only a hang gets near this.
WITHIN_S = 60.0

FED = """[federation]
name = "inputs"
rounds = 2
seed = 11
[data]
dataset = "synthetic"
sites = 3
options = {{ rows = 150 }}
[task]
factory = "accord.task.numpy_task:softmax_regression"
[evaluation]
federated = false
[simulation]
workers = 0
[store]
directory = "{runs}"
"""


def accord(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run ``python -m accord ARGS``: exit code, stdout, stderr; bounded in time."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "accord", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=240,
    )
    assert time.monotonic() - start < WITHIN_S, f"accord {args[0]} hung"
    return proc.returncode, proc.stdout, proc.stderr


def one_error_line(stderr: str) -> str:
    """The single ``error:`` line a refused input prints (and nothing else)."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[:2000]
    assert lines[0].isprintable() and len(lines[0]) < 600, lines[0][:600]
    return lines[0]


def write_fed(tmp_path: Path, extra: str = "", *, raw: bytes | None = None) -> Path:
    path = tmp_path / "fed.toml"
    text = FED.format(runs=tmp_path / "runs") + extra
    path.write_bytes(raw if raw is not None else text.encode())
    return path


def no_run_recorded(tmp_path: Path) -> bool:
    db = tmp_path / "runs" / "accord.db"
    if not db.exists():
        return True
    with SqlStore(f"sqlite:///{db}") as store:
        return store.list_runs() == []


@pytest.mark.parametrize(
    ("damage", "cause"),
    [
        (lambda text: text.replace(b'"inputs"', b'"\xff\xfe"'), "is not UTF-8 text"),
        (
            lambda text: text.replace(
                b"[evaluation]",
                b"options = "
                + b"{a = " * 1000
                + b"1"
                + b"}" * 1000
                + b"\n[evaluation]",
            ),
            "nests tables or arrays far deeper than the 32 levels",
        ),
        (
            lambda text: text + b"[train]\nlearning_rate = inf\n",
            "train.learning_rate: is inf; settings must be finite numbers",
        ),
    ],
    ids=["non-utf8", "nested-1000-deep", "learning-rate-inf"],
)
def test_a_broken_fed_toml_is_refused_in_one_line_and_creates_no_run(
    tmp_path: Path, damage, cause: str
) -> None:
    good = write_fed(tmp_path).read_bytes()
    config = write_fed(tmp_path, raw=damage(good))

    code, _, stderr = accord("simulate", str(config), cwd=tmp_path)

    assert code == 2
    assert cause in one_error_line(stderr)
    assert no_run_recorded(tmp_path)


def test_grace_s_false_is_refused_before_the_coordinator_listens(
    tmp_path: Path,
) -> None:
    config = write_fed(tmp_path, "[deployment]\ngrace_s = false\n")
    port_file = tmp_path / "port"

    code, _, stderr = accord(
        "coordinator",
        str(config),
        "--listen",
        "127.0.0.1:0",
        "--insecure",
        "--port-file",
        str(port_file),
        cwd=tmp_path,
    )

    assert code == 2
    assert "deployment.grace_s: Input should be a valid number" in one_error_line(
        stderr
    )
    assert not port_file.exists() and no_run_recorded(tmp_path)


def participant(data: str, cwd: Path) -> tuple[int, str, str]:
    # Nothing listens on port 1: a participant that got past its data would fail
    # (or retry) there, with another message and exit code.
    return accord(
        "participant",
        "--coordinator",
        "127.0.0.1:1",
        "--insecure",
        "site-1",
        "--task",
        "accord.task.numpy_task:softmax_regression",
        "--data",
        data,
        "--data-option",
        "target=y",
        "--give-up-after",
        "1",
        cwd=cwd,
    )


def test_a_4_mb_csv_header_is_quoted_as_an_excerpt(tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_text("x," + "c" * (4 << 20) + "\n1,2\n")

    code, _, stderr = participant(f"csv:{wide}", tmp_path)

    assert code == 2
    line = one_error_line(stderr)
    assert "the header line is longer than 1,048,576 bytes" in line
    assert len(stderr) < 600


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_csv_at_a_fifo_or_a_device_is_refused_at_once(
    tmp_path: Path, kind: str
) -> None:
    if kind == "fifo":
        source = tmp_path / "site.csv"
        os.mkfifo(source)
        what = "is a FIFO (named pipe), not a regular file"
    else:
        source = Path("/dev/zero")
        if not source.exists():
            pytest.skip("needs /dev/zero")
        what = "is a character device, not a regular file"

    code, _, stderr = participant(f"csv:{source}", tmp_path)
    assert code == 2 and what in one_error_line(stderr)

    config = write_fed(tmp_path)
    config.write_text(
        config.read_text()
        .replace('dataset = "synthetic"', f'dataset = "csv:{source}"')
        .replace("options = { rows = 150 }", 'options = { target = "y" }')
    )
    code, _, stderr = accord("simulate", str(config), cwd=tmp_path)
    assert code == 2 and what in one_error_line(stderr)
    assert no_run_recorded(tmp_path)


class StopAtRound2:
    """Interrupts the loop like Ctrl-C as round 2 starts: round 1 is checkpointed."""

    def round_started(self, number: int, selected: Sequence[str]) -> None:
        if number == 2:
            raise KeyboardInterrupt

    def participant_finished(self, number: int, outcome: ParticipantOutcome) -> None:
        pass

    def round_finished(self, summary: RoundSummary) -> None:
        pass


def test_a_checkpoint_with_a_deeply_nested_header_is_refused_on_resume(
    tmp_path: Path,
) -> None:
    config_path = write_fed(tmp_path)
    config = load_config(config_path)
    runs = tmp_path / "runs"
    runs.mkdir()
    with SqlStore(f"sqlite:///{runs / 'accord.db'}") as store:
        with pytest.raises(KeyboardInterrupt):
            simulate(
                config,
                store=store,
                checkpoint_dir=runs / "checkpoints",
                observer=StopAtRound2(),
            )
        (run,) = store.list_runs()
    checkpoint = runs / "checkpoints" / run.run_id / "round-00001.safetensors"
    kept = tmp_path / "round-00001.kept"
    shutil.copyfile(checkpoint, kept)
    deep = b"[" * 100_000 + b"]" * 100_000
    checkpoint.write_bytes(struct.pack("<Q", len(deep)) + deep)

    code, _, stderr = accord(
        "simulate", str(config_path), "--resume", run.run_id, "--json", cwd=tmp_path
    )

    assert code == 4  # the store is unusable as it is: README's exit code 4
    line = one_error_line(stderr)
    assert "is damaged or not an accord checkpoint" in line
    assert "JSON nested 100000 deep, more than 8" in line
    with SqlStore(f"sqlite:///{runs / 'accord.db'}") as store:
        assert store.get_run(run.run_id).status == "aborted"
        assert [r.number for r in store.rounds(run.run_id)] == [1]

    # With the checkpoint restored, the resumed run ends with the model of the same
    # federation run without interruption.
    shutil.copyfile(kept, checkpoint)
    code, stdout, stderr = accord(
        "simulate", str(config_path), "--resume", run.run_id, "--json", cwd=tmp_path
    )
    assert code == 0, stderr
    with MemoryStore() as store:
        reference = simulate(config, store=store).run.params.digest()
    assert json.loads(stdout)["final_digest"] == reference


TASK = """
from accord.task.numpy_task import SoftmaxRegression


class Diverges(SoftmaxRegression):
    def train(self, params, data, config):
        raise FloatingPointError("the loss is inf: lower the learning rate")


def build(info):
    return Diverges(info)
"""


def test_a_run_whose_every_round_failed_ends_failed_not_completed(
    tmp_path: Path,
) -> None:
    (tmp_path / "diverging_task.py").write_text(TASK)
    config = write_fed(tmp_path)
    config.write_text(
        config.read_text().replace(
            "accord.task.numpy_task:softmax_regression", "diverging_task:build"
        )
    )

    code, _, stderr = accord("simulate", str(config), "--json", cwd=tmp_path)

    assert code == 1
    assert "failed: none of its 2 round(s) completed" in one_error_line(stderr)
    with SqlStore(f"sqlite:///{tmp_path / 'runs' / 'accord.db'}") as store:
        (run,) = store.list_runs()
        rounds = store.rounds(run.run_id)
    assert run.status == "failed" and "none of its 2" in run.summary["reason"]
    assert [r.status for r in rounds] == ["failed", "failed"]
    assert all(
        "the loss is inf" in (o.reason or "") for r in rounds for o in r.outcomes
    )
