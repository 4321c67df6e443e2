"""A real deployment: coordinator and three participants as separate processes.

Certificates come from ``accord pki`` (a federation CA, one request and one signed
certificate per site), every connection is mutual TLS on loopback, and the
coordinator listens on a port the OS picks. After three rounds the global model
must equal, bit for bit, the one ``accord simulate`` trains from the same fed.toml:
the round loop folds updates in selection order, seeds come from the roster index,
and each participant trains with one BLAS thread as a simulation worker does.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SITES = ("site-00", "site-01", "site-02")
FED = """
[federation]
name = "deployed"
rounds = 3
seed = 21
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[train]
epochs = 2
[simulation]
workers = 0
[round]
deadline_s = 120
[deployment]
participants = ["site-00", "site-01", "site-02"]
wait_s = 120
"""


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONHASHSEED": "0",
        "ACCORD_CA_PASSPHRASE": "e2e passphrase",
    }


def _accord(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "accord", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _spawn(
    *args: str, cwd: Path, log: Path, output: bool = False
) -> subprocess.Popen[str]:
    """Start ``accord ARGS``; stderr goes to ``log``, stdout to a pipe if ``output``."""
    with log.open("w") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "accord", *args],
            cwd=cwd,
            env=_env(),
            stdout=subprocess.PIPE if output else subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )


def _enrol(tmp: Path) -> None:
    _accord("pki", "init", "ca", "--federation", "e2e", cwd=tmp)
    requests = [("coordinator", "coordinator", ["--host", "localhost"])]
    requests += [(site, "participant", []) for site in SITES]
    for name, role, extra in requests:
        _accord("pki", "request", name, "--dir", name, "--role", role, *extra, cwd=tmp)
        _accord(
            "pki", "sign", f"{name}/request.csr", "--ca", "ca", "--role", role, cwd=tmp
        )


def _wait_for_port(path: Path, process: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        assert process.poll() is None, "the coordinator exited before listening"
        time.sleep(0.1)
    raise AssertionError("the coordinator did not start listening")


def test_three_processes_over_mutual_tls_train_the_simulated_model_bit_for_bit(
    tmp_path,
):
    (tmp_path / "fed.toml").write_text(FED)
    _enrol(tmp_path)
    coordinator = _spawn(
        "coordinator",
        "fed.toml",
        "--listen",
        "127.0.0.1:0",
        "--pki",
        "coordinator",
        "--trust",
        "ca",
        "--port-file",
        "port",
        "--json",
        "--store",
        f"sqlite:///{tmp_path}/deployed.db",
        cwd=tmp_path,
        log=tmp_path / "coordinator.log",
        output=True,
    )
    participants = []
    try:
        port = _wait_for_port(tmp_path / "port", coordinator)
        for site in SITES:
            participants.append(
                _spawn(
                    "participant",
                    "--coordinator",
                    f"localhost:{port}",
                    "--identity",
                    site,
                    "--data",
                    f"sim:fed.toml#{site}",
                    cwd=tmp_path,
                    log=tmp_path / f"{site}.log",
                )
            )
        out, _ = coordinator.communicate(timeout=240)
        codes = [p.wait(timeout=60) for p in participants]
    finally:
        for process in [coordinator, *participants]:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert coordinator.returncode == 0, (tmp_path / "coordinator.log").read_text()[
        -3000:
    ]
    assert codes == [0, 0, 0], [
        (tmp_path / f"{s}.log").read_text()[-2000:] for s in SITES
    ]
    deployed = json.loads(out)

    simulated = json.loads(
        _accord(
            "simulate",
            "fed.toml",
            "--json",
            "--store",
            f"sqlite:///{tmp_path}/sim.db",
            cwd=tmp_path,
        ).stdout
    )

    assert [r["status"] for r in deployed["rounds"]] == ["completed"] * 3
    assert deployed["final_digest"] == simulated["final_digest"]
    assert deployed["rejections"] == []
    for site in SITES:
        lines = (tmp_path / site / "site-log.jsonl").read_text().splitlines()
        log = [json.loads(line) for line in lines]
        sent = [e for e in log if e["event"] == "sent_update"]
        assert len(sent) == 3 and all(
            e["bytes"] > 0 and len(e["digest"]) == 64 for e in sent
        )


SLOW_TASK = """
import time

from accord.task.numpy_task import softmax_regression


class Slow:
    def __init__(self, task, delay):
        self.task, self.delay = task, delay

    def init_params(self, seed):
        return self.task.init_params(seed)

    def train(self, params, data, config):
        time.sleep(self.delay)
        return self.task.train(params, data, config)

    def predict(self, params, x):
        return self.task.predict(params, x)


def build(info, delay=0.0):
    return Slow(softmax_regression(info), delay)
"""


def _site_events(tmp_path: Path, site: str) -> list[dict]:
    path = tmp_path / site / "site-log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_a_participant_killed_mid_round_is_a_dropout_and_the_run_goes_on(tmp_path):
    fed = FED.replace(
        'factory = "accord.task.numpy_task:softmax_regression"',
        'factory = "task:build"\noptions = { delay = 1.0 }',
    ).replace("wait_s = 120", "wait_s = 120\ngrace_s = 1")
    (tmp_path / "fed.toml").write_text(fed)
    (tmp_path / "task.py").write_text(SLOW_TASK)
    _enrol(tmp_path)
    coordinator = _spawn(
        "coordinator",
        "fed.toml",
        "--listen",
        "127.0.0.1:0",
        "--pki",
        "coordinator",
        "--trust",
        "ca",
        "--port-file",
        "port",
        "--json",
        "--store",
        f"sqlite:///{tmp_path}/deployed.db",
        cwd=tmp_path,
        log=tmp_path / "coordinator.log",
        output=True,
    )
    participants = {}
    try:
        port = _wait_for_port(tmp_path / "port", coordinator)
        for site in SITES:
            participants[site] = _spawn(
                "participant",
                "--coordinator",
                f"localhost:{port}",
                "--identity",
                site,
                "--data",
                f"sim:fed.toml#{site}",
                cwd=tmp_path,
                log=tmp_path / f"{site}.log",
            )
        deadline = time.monotonic() + 120
        while not any(
            e["event"] == "received_task" and e["round"] == 2 and e["kind"] == "train"
            for e in _site_events(tmp_path, "site-02")
        ):
            assert time.monotonic() < deadline, "site-02 never got round 2"
            time.sleep(0.05)
        participants["site-02"].kill()  # while it trains round 2
        out, _ = coordinator.communicate(timeout=240)
        codes = {s: p.wait(timeout=60) for s, p in participants.items()}
    finally:
        for process in [coordinator, *participants.values()]:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert coordinator.returncode == 0, (tmp_path / "coordinator.log").read_text()[
        -3000:
    ]
    rounds = json.loads(out)["rounds"]

    assert [r["status"] for r in rounds] == ["completed"] * 3
    assert [r["succeeded"] for r in rounds] == [3, 2, 2]
    assert codes["site-00"] == codes["site-01"] == 0
