"""A fresh user's first hour as processes: simulate, Ctrl-C, resume, then deploy.

The user builds a pandas table (text columns, missing values, a site column),
exports it to CSV, writes a fed.toml for it and runs ``accord simulate`` with its
default worker processes. They press Ctrl-C during round 3 (SIGINT to the whole
process group, as a terminal sends it), read the resume hint, run ``accord
simulate fed.toml --resume auto`` and ``accord runs show latest``, and then deploy
the same federation, one CSV per clinic, with ``accord pki``, ``accord
coordinator`` and four ``accord participant`` processes. Every step exits 0 but
the interrupted one (130); the resumed run's model equals an uninterrupted
run's, round for round, and the deployed model equals the simulated one.

To press Ctrl-C at a known point, the task (``held.py`` next to fed.toml, the
numpy softmax regression it wraps) holds a site's training of round 3 while a
file ``hold-SITE`` exists and says so with ``held-SITE``; the model is the
wrapped task's (the uninterrupted reference run and the deployed sites use no
hold, and give the same digests).

A coordinator interrupted the same way tells its sites: those waiting for their
next task exit 75 with the reason ("it may resume"). SIGTERM, as a service
manager sends it, ends a coordinator as Ctrl-C does, with exit code 143.
"""

import hashlib
import json
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accord.store import SqlStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

#: Clinics, largest first (the order ``partition = "natural"`` gives them), with
#: their rows and the levels of ``region`` each one has: not the same everywhere.
CLINICS = {
    "clinic-a": (110, ("urban", "rural")),
    "clinic-b": (90, ("urban", "suburb")),
    "clinic-c": (70, ("rural",)),
    "clinic-d": (50, ("suburb", "coast", "urban")),
}
SITE_OPTIONS = ("target=outcome", "categorical=smoker,region")
#: The clinic whose training of round 3 is held while the test presses Ctrl-C.
HELD = "clinic-d"

FED = """
[federation]
name = "clinics"
rounds = 4
seed = 17
[data]
dataset = "csv:patients.csv"
partition = "natural"
sites = 4
test_fraction = 0.0
holdout_fraction = 0.2
min_site_size = 10
[data.options]
target = "outcome"
site_column = "clinic"
categorical = ["smoker", "region"]
[task]
factory = "held:build"
options = {{ folder = "{folder}" }}
[train]
epochs = 2
[evaluation]
central = false
[round]
deadline_s = 120
[deployment]
participants = {participants}
wait_s = 120
"""

HELD_TASK = '''
"""numpy softmax regression; a site's round 3 waits while FOLDER/hold-SITE exists."""

import time
from pathlib import Path

from accord.task.numpy_task import softmax_regression


class Held:
    def __init__(self, task, folder):
        self.task, self.folder = task, Path(folder)

    def init_params(self, seed):
        return self.task.init_params(seed)

    def train(self, params, data, config):
        hold = self.folder / f"hold-{config.participant}"
        if config.round == 3 and hold.exists():
            (self.folder / f"held-{config.participant}").touch()
            while hold.exists():
                time.sleep(0.02)
        return self.task.train(params, data, config)

    def predict(self, params, x):
        return self.task.predict(params, x)


def build(info, folder="."):
    return Held(softmax_regression(info), folder)
'''


def patients(seed: int = 2026) -> pd.DataFrame:
    """The user's table: numbers with gaps, text with gaps, a site column."""
    rng = np.random.default_rng(seed)
    frames = []
    for clinic, (n, regions) in CLINICS.items():
        age = rng.normal(50, 12, n).round(1)
        age[rng.random(n) < 0.1] = np.nan  # not recorded
        bmi = rng.normal(26, 4, n).round(1)
        smoker = rng.choice(np.array(["yes", "no", None], dtype=object), n)
        region = rng.choice(np.array(regions, dtype=object), n)
        risk = 0.04 * (np.nan_to_num(age, nan=50) - 50) + 0.2 * (bmi - 26)
        risk += np.where(smoker == "yes", 0.8, 0.0) + rng.normal(0, 0.7, n)
        outcome = np.where(risk > 0, "sick", "well")
        frames.append(
            pd.DataFrame(
                {
                    "age": age,
                    "bmi": bmi,
                    "smoker": smoker,
                    "region": region,
                    "outcome": outcome,
                    "clinic": clinic,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def write_user_files(root: Path) -> None:
    """patients.csv, one CSV per clinic (no site column), held.py and fed.toml."""
    table = patients()
    assert table["smoker"].isna().any() and table["age"].isna().any()
    table.to_csv(root / "patients.csv", index=False)
    for clinic, rows in table.groupby("clinic"):
        rows.drop(columns="clinic").to_csv(root / f"{clinic}.csv", index=False)
    (root / "held.py").write_text(HELD_TASK)
    roster = json.dumps(list(CLINICS))
    (root / "fed.toml").write_text(FED.format(folder=root, participants=roster))


def digests(out: dict) -> list[str]:
    return [r["global_digest"] for r in out["rounds"]]


def test_a_fresh_user_simulates_interrupts_resumes_and_deploys(deployment):
    root = deployment.root
    write_user_files(root)
    reference = deployment.simulate()  # never interrupted (no hold): the yardstick
    assert [r["status"] for r in reference["rounds"]] == ["completed"] * 4

    # Ctrl-C in round 3: a terminal signals the whole group, workers included.
    (root / f"hold-{HELD}").touch()
    simulation = deployment.spawn("simulate", "simulate", "fed.toml")
    deployment.wait_until(lambda: (root / f"held-{HELD}").exists(), "round 3")
    os.killpg(simulation.pid, signal.SIGINT)
    assert deployment.exit_code(simulation, "simulate") == 130, deployment.log(
        "simulate"
    )
    deployment.may_fail.add(simulation.pid)
    (root / f"hold-{HELD}").unlink()

    said = " ".join(deployment.log("simulate").split())
    with SqlStore(f"sqlite:///{root}/accord-runs/accord.db") as store:
        (run,) = store.list_runs()
        assert run.status == "aborted"
        assert [r.number for r in store.rounds(run.run_id)] == [1, 2]
    assert (
        f"interrupted: run {run.run_id} stopped (2 of 4 rounds recorded, marked "
        f"aborted). Resume it with: accord simulate fed.toml --resume {run.run_id}"
    ) in said
    assert "Traceback" not in said  # neither the coordinator nor a worker

    resumed = deployment.accord("simulate", "fed.toml", "--resume", "auto", "--json")
    out = json.loads(resumed.stdout)
    assert out["run_id"] == run.run_id
    assert [r["number"] for r in out["rounds"]] == [1, 2, 3, 4]
    assert digests(out) == digests(reference)
    assert out["final_digest"] == reference["final_digest"]

    shown = deployment.accord("runs", "show", "latest")
    assert run.run_id in shown.stdout

    deployment.enrol(*CLINICS)
    coordinator, port = deployment.coordinator()
    sites = {
        clinic: deployment.spawn(
            clinic,
            "participant",
            "--coordinator",
            f"localhost:{port}",
            "--identity",
            clinic,
            "--data",
            f"csv:{clinic}.csv",
            *(arg for option in SITE_OPTIONS for arg in ("--data-option", option)),
            "--task",
            "accord.task.numpy_task:softmax_regression",
        )
        for clinic in CLINICS
    }
    deployed = json.loads(deployment.finish(coordinator, "coordinator"))
    for clinic, process in sites.items():
        deployment.finish(process, clinic)  # exit 0: the run finished

    assert [r["status"] for r in deployed["rounds"]] == ["completed"] * 4
    assert deployed["rejections"] == []
    assert digests(deployed) == digests(reference)
    assert deployed["final_digest"] == out["final_digest"]
    for clinic in CLINICS:
        (goodbye,) = deployment.site_events(clinic, "goodbye")
        assert goodbye["reason"] == "run finished"
        (data,) = deployment.site_events(clinic, "data")  # which table it used
        table = (root / f"{clinic}.csv").read_bytes()
        assert data["sha256"] == hashlib.sha256(table).hexdigest()


def test_ctrl_c_at_the_coordinator_tells_the_sites_and_they_exit_75(deployment):
    root = deployment.root
    write_user_files(root)
    (root / f"hold-{HELD}").touch()  # one site's training of round 3 waits
    deployment.enrol(*CLINICS)
    coordinator, port = deployment.coordinator()
    sites = {
        clinic: deployment.spawn(
            clinic,
            "participant",
            "--coordinator",
            f"localhost:{port}",
            "--identity",
            clinic,
            "--data",
            f"csv:{clinic}.csv",
            *(arg for option in SITE_OPTIONS for arg in ("--data-option", option)),
            "--task",
            "held:build",
            may_fail=True,
        )
        for clinic in CLINICS
    }
    idle = [clinic for clinic in CLINICS if clinic != HELD]
    deployment.wait_until(
        lambda: (
            (root / f"held-{HELD}").exists()
            and all(deployment.sent_updates(clinic, 3) for clinic in idle)
        ),
        "round 3: three updates in, one site held",
    )

    os.killpg(coordinator.pid, signal.SIGINT)
    code = deployment.exit_code(coordinator, "coordinator")
    assert code == 130, deployment.log("coordinator")

    interrupted = "run interrupted by the coordinator; it may resume"
    for clinic in idle:  # waiting for their next task: the goodbye reaches them
        assert deployment.exit_code(sites[clinic], clinic) == 75, deployment.log(clinic)
        said = " ".join(deployment.log(clinic).split())
        assert interrupted in said and "Start this participant again" in said
        (goodbye,) = deployment.site_events(clinic, "goodbye")
        assert goodbye["reason"] == interrupted
    with SqlStore(deployment.store_url) as store:
        (run,) = store.list_runs()
        assert run.status == "aborted"
        assert [r.number for r in store.rounds(run.run_id)] == [1, 2]
    # The held site was mid-training: it finds the coordinator gone and redials
    # (a coordinator resumed on the same address would take it back); the
    # fixture stops it.


def test_sigterm_ends_a_coordinator_as_ctrl_c_does_with_143(deployment):
    root = deployment.root
    write_user_files(root)
    port_file = root / "port"
    coordinator = deployment.spawn(
        "coordinator",
        "coordinator",
        "fed.toml",
        "--insecure",
        "--listen",
        "127.0.0.1:0",
        "--port-file",
        port_file.name,
        "--store",
        deployment.store_url,
    )
    deployment.wait_until(port_file.exists, "the coordinator to listen")

    os.killpg(coordinator.pid, signal.SIGTERM)  # waiting for its participants

    code = deployment.exit_code(coordinator, "coordinator")
    assert code == 143, deployment.log("coordinator")
    assert "Traceback" not in deployment.log("coordinator")
    with SqlStore(deployment.store_url) as store:
        (run,) = store.list_runs()
        assert run.status == "aborted"  # recorded as ended, not left running
