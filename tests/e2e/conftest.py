import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_accord(
    *args: str, cwd: Path, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [sys.executable, "-m", "accord", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_json(*args: str, cwd: Path) -> dict:
    proc = run_accord(*args, "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def accord_json():
    """Run ``python -m accord ... --json`` and return the parsed output."""
    return run_json


@pytest.fixture
def accord_cli():
    """Run ``python -m accord ...`` and return the completed process."""
    return run_accord


# A deployment as separate processes: coordinator and participants on loopback with
# certificates from `accord pki`, all of them killed at the end of the test.

PASSPHRASE = "e2e passphrase"

FED = """
[federation]
name = "deployed"
rounds = 3
seed = 21
[data]
dataset = "wine"
sites = 3
[task]
factory = "{factory}"{options}
[train]
epochs = 2
[simulation]
workers = 0
[round]
deadline_s = 120
[deployment]
participants = ["site-00", "site-01", "site-02"]
wait_s = 120
grace_s = {grace_s}
"""

GATED_TASK = '''
"""softmax regression whose training waits at gates that a test opens.

A file ``GATES/SITE-rROUND`` makes that site's training of that round stop, each
time it is asked, until the test creates ``SITE-rROUND.open-N`` (N: the how-many-th
time); it says where it stopped with ``SITE-rROUND.held-N``.
"""

import time
from pathlib import Path

from accord.task.numpy_task import softmax_regression


class Gated:
    def __init__(self, task, gates):
        self.task, self.gates, self.calls = task, Path(gates), {}

    def init_params(self, seed):
        return self.task.init_params(seed)

    def train(self, params, data, config):
        name = f"{config.participant}-r{config.round}"
        if (self.gates / name).exists():
            n = self.calls[name] = self.calls.get(name, 0) + 1
            (self.gates / f"{name}.held-{n}").touch()
            while not (self.gates / f"{name}.open-{n}").exists():
                time.sleep(0.02)
        return self.task.train(params, data, config)

    def predict(self, params, x):
        return self.task.predict(params, x)


def build(info, gates="gates"):
    return Gated(softmax_regression(info), gates)
'''


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONHASHSEED": "0",
        "ACCORD_CA_PASSPHRASE": PASSPHRASE,
        "COLUMNS": "240",  # log lines unwrapped, so that a test can find them
    }


class Deployment:
    """A folder with a federation's PKI and fed.toml, and the processes run in it."""

    SITES = ("site-00", "site-01", "site-02")
    PASSPHRASE = PASSPHRASE.encode()  # the CA's, for the PKI's Python API

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gates = root / "gates"
        self.processes: list[subprocess.Popen[str]] = []
        self.may_fail: set[int] = set()  # pids expected to exit with an error

    # Setting up.

    def configure(self, *, gated: bool = False, grace_s: float = 30) -> None:
        """Write fed.toml (and the gated task, whose gates start closed: none)."""
        factory, options = "accord.task.numpy_task:softmax_regression", ""
        if gated:
            (self.root / "gated.py").write_text(GATED_TASK)
            self.gates.mkdir(exist_ok=True)
            factory, options = "gated:build", '\noptions = { gates = "gates" }'
        text = FED.format(factory=factory, options=options, grace_s=grace_s)
        (self.root / "fed.toml").write_text(text)

    def accord(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``accord ARGS`` to the end; it must succeed."""
        done = subprocess.run(
            [sys.executable, "-m", "accord", *args],
            cwd=self.root,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    def enrol(self, *names: str) -> None:
        """The federation's CA, the coordinator's certificate and one per name."""
        self.accord("pki", "init", "ca", "--federation", "e2e")
        requests = [("coordinator", "coordinator", ["--host", "localhost"])]
        requests += [(name, "participant", []) for name in names or self.SITES]
        for name, role, extra in requests:
            self.accord("pki", "request", name, "--dir", name, "--role", role, *extra)
            self.accord(
                "pki", "sign", f"{name}/request.csr", "--ca", "ca", "--role", role
            )

    # Processes.

    def spawn(
        self, name: str, *args: str, may_fail: bool = False
    ) -> subprocess.Popen[str]:
        """Start ``accord ARGS`` in its own process group; output to NAME.out/.log.

        While the test waits for something, a process that exits with an error
        fails it, unless it ``may_fail``.
        """
        with (
            (self.root / f"{name}.out").open("w") as out,
            (self.root / f"{name}.log").open("w") as err,
        ):  # the child keeps its own copies of the descriptors
            process = subprocess.Popen(
                [sys.executable, "-m", "accord", *args],
                cwd=self.root,
                env=_env(),
                stdout=out,
                stderr=err,
                text=True,
                start_new_session=True,
                # A terminal's Ctrl-C, whatever started pytest: a job started with
                # ``&`` by a non-interactive shell ignores SIGINT, and so would its
                # children, which the Ctrl-C tests then wait on forever.
                preexec_fn=_default_sigint,
            )
        self.processes.append(process)
        if may_fail:
            self.may_fail.add(process.pid)
        return process

    def coordinator(
        self, *extra: str, name: str = "coordinator", listen: str = "127.0.0.1:0"
    ) -> tuple[subprocess.Popen[str], int]:
        """Start ``accord coordinator`` (JSON out, store runs.db); wait for its port."""
        port_file = self.root / f"{name}.port"
        process = self.spawn(
            name,
            "coordinator",
            "fed.toml",
            "--listen",
            listen,
            "--pki",
            "coordinator",
            "--trust",
            "ca",
            "--port-file",
            port_file.name,
            "--json",
            "--store",
            self.store_url,
            *extra,
        )
        self.wait_until(
            lambda: port_file.exists() and port_file.read_text().strip() != "",
            f"{name} listening",
        )
        return process, int(port_file.read_text())

    def participant(
        self,
        site: str,
        port: int,
        *extra: str,
        name: str | None = None,
        data: str | None = None,
        may_fail: bool = False,
    ) -> subprocess.Popen[str]:
        """Start ``accord participant`` with identity folder ``site``.

        It trains on the simulated partition of ``data`` (default: ``site``).
        """
        return self.spawn(
            name or site,
            "participant",
            "--coordinator",
            f"localhost:{port}",
            "--identity",
            site,
            "--data",
            f"sim:fed.toml#{data or site}",
            *extra,
            may_fail=may_fail,
        )

    def kill(self, process: subprocess.Popen[str]) -> None:
        """SIGKILL ``process`` and everything it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def finish(
        self, process: subprocess.Popen[str], name: str, *, code: int = 0
    ) -> str:
        """Wait for ``process`` to exit with ``code``; its stdout."""
        try:
            got = process.wait(timeout=240)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} still running: {self.log(name)[-3000:]}")
        assert got == code, f"{name} exited {got}: {self.log(name)[-3000:]}"
        return (self.root / f"{name}.out").read_text()

    def exit_code(
        self, process: subprocess.Popen[str], name: str, timeout: float = 120
    ) -> int:
        """``process``'s exit code; if it is still running after ``timeout``, fail.

        A process still running is sent SIGABRT first: accord's CLI has
        faulthandler on, so its log then ends with every thread's stack, which
        says where it hung.
        """
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            pytest.fail(
                f"{name} still running {timeout:.0f} s on: {self.log(name)[-6000:]}"
            )

    def stop_all(self) -> None:
        """Kill whatever is still running (the test may have failed half-way)."""
        for process in self.processes:
            if process.poll() is None:
                self.kill(process)

    # Looking on.

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.root}/runs.db"

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def site_events(self, site: str, event: str | None = None) -> list[dict]:
        """The site's log entries (of one ``event`` kind), oldest first."""
        path = self.root / site / "site-log.jsonl"
        if not path.exists():
            return []
        entries = []
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a line being written
                entries.append(json.loads(line))
        return [e for e in entries if event is None or e["event"] == event]

    def sent_updates(self, site: str, round_number: int) -> int:
        return sum(
            e["round"] == round_number for e in self.site_events(site, "sent_update")
        )

    def wait_until(
        self, condition: Callable[[], bool], what: str, timeout: float = 120
    ) -> None:
        """Poll ``condition``; fail saying ``what`` if it does not hold in time."""
        deadline = time.monotonic() + timeout
        while not condition():
            for process in self.processes:
                code = process.poll()
                if process.pid in self.may_fail:
                    continue
                if code not in (None, 0, -signal.SIGKILL):
                    pytest.fail(f"waiting for {what}: {process.args} exited {code}")
            if time.monotonic() > deadline:
                pytest.fail(f"waited {timeout:.0f} s for {what}")
            time.sleep(0.05)

    # Gates of the gated task.

    def close_gate(self, site: str, round_number: int) -> None:
        (self.gates / f"{site}-r{round_number}").touch()

    def held(self, site: str, round_number: int, n: int = 1) -> bool:
        return (self.gates / f"{site}-r{round_number}.held-{n}").exists()

    def open_gate(self, site: str, round_number: int, n: int = 1) -> None:
        (self.gates / f"{site}-r{round_number}.open-{n}").touch()

    def simulate(self) -> dict:
        """``accord simulate`` of the same fed.toml, no gate closed; its JSON."""
        if self.gates.exists():
            shutil.rmtree(self.gates)
            self.gates.mkdir()
        out = self.accord(
            "simulate", "fed.toml", "--json", "--store", f"sqlite:///{self.root}/sim.db"
        )
        return json.loads(out.stdout)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A folder to deploy in; every process started through it dies with the test."""
    d = Deployment(tmp_path)
    try:
        yield d
    finally:
        d.stop_all()


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default (Python's Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
