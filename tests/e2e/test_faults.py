"""Participants that raise, hang, die or send bad updates are dropped with a reason.

Sites live in two worker processes (site i on worker i mod 2, jobs in site order), so
the hanging and dying sites are the last on their workers and block no one else.
The round deadline is long (no honest site is late however loaded the machine) and
is read from a :class:`HangClock`, which skips it once only the hanging site owes an
answer: the test never waits it out.
"""

import threading
import time

import numpy as np
import pytest

from accord.config import config_from_mapping
from accord.simulation.engine import simulate
from accord.store import SqlStore

FAULTY_TASK = """
import os, time
import numpy as np
from accord import Params, TrainResult
from accord.task.numpy_task import softmax_regression


class Faulty:
    def __init__(self, info):
        self.inner = softmax_regression(info)

    def init_params(self, seed):
        return self.inner.init_params(seed)

    def predict(self, params, x):
        return self.inner.predict(params, x)

    def train(self, params, data, config):
        site = config.participant
        if site == "site-02":
            raise RuntimeError("disk full at site-02")
        if site == "site-06":
            time.sleep(120)
        if site == "site-05":
            os._exit(3)
        result = self.inner.train(params, data, config)
        if site == "site-04":
            bad = {n: np.full_like(a, np.nan) for n, a in result.params.items()}
            return TrainResult(Params(bad), result.num_examples)
        if site == "site-03":
            bad = {n: np.zeros(a.shape + (2,), a.dtype)
                   for n, a in result.params.items()}
            return TrainResult(Params(bad), result.num_examples)
        return result


def build(info):
    return Faulty(info)
"""


class HangClock:
    """Real time that skips an hour ahead whenever only ``hung`` owes an answer."""

    def __init__(self, hung: str) -> None:
        self.hung = hung
        self.offset = 0.0
        self.skips = 0
        self._owner = threading.current_thread()
        self._executor = None

    def __call__(self) -> float:
        ex = self._executor
        if ex is not None and threading.current_thread() is self._owner:
            owing, queued = ex.owing()
            if owing and queued == 0 and {p for p, _ in owing} == {self.hung}:
                self.offset += 3600.0
                self.skips += 1
        return time.monotonic() + self.offset


@pytest.fixture
def hang_clock(monkeypatch):
    """A :class:`HangClock` for site-06, given the pool the engine starts."""
    from accord.simulation import engine

    clock = HangClock("site-06")
    real = engine.ProcessExecutor

    def pool(*args, **kwargs):
        clock._executor = real(*args, **kwargs)
        return clock._executor

    monkeypatch.setattr(engine, "ProcessExecutor", pool)
    return clock


@pytest.fixture
def faulty_config(tmp_path):
    (tmp_path / "faulty_task.py").write_text(FAULTY_TASK)
    return config_from_mapping(
        {
            "federation": {"rounds": 2, "seed": 4},
            "data": {"dataset": "digits", "partition": "iid", "sites": 7},
            "task": {"factory": "faulty_task:build"},
            "round": {"deadline_s": 300, "quorum": 0.25},
            "evaluation": {"federated": False},
            "simulation": {"workers": 2},
        },
        base_dir=tmp_path,
    )


def test_faulty_participants_are_dropped_with_reasons(
    faulty_config, tmp_path, hang_clock
):
    store = SqlStore(f"sqlite:///{tmp_path}/runs.db")
    try:
        result = simulate(faulty_config, store=store, clock=hang_clock)
        rounds = store.rounds(result.run.run_id)
    finally:
        store.close()

    assert [r.status for r in rounds] == ["completed", "completed"]
    for record in rounds:
        by_site = {o.participant: o for o in record.outcomes}
        assert {p: o.status for p, o in by_site.items()} == {
            "site-00": "ok",
            "site-01": "ok",
            "site-02": "failed",
            "site-03": "rejected",
            "site-04": "rejected",
            "site-05": "failed",
            "site-06": "timeout",
        }
        assert "disk full at site-02" in by_site["site-02"].reason
        assert "shape" in by_site["site-03"].reason
        assert "NaN" in by_site["site-04"].reason
        assert "exit code 3" in by_site["site-05"].reason
        assert "deadline" in by_site["site-06"].reason
        assert all(o.update_digest is None for o in record.outcomes if o.status != "ok")
    assert rounds[0].global_digest != rounds[1].global_digest
    assert all(np.isfinite(a).all() for a in result.run.params.values())
    assert hang_clock.skips >= 2  # site-06's deadline, skipped each round


def test_round_without_quorum_leaves_model_unchanged(
    faulty_config, tmp_path, hang_clock
):
    cfg = faulty_config.model_copy(
        update={"round": faulty_config.round.model_copy(update={"quorum": 0.5})}
    )
    store = SqlStore(f"sqlite:///{tmp_path}/runs.db")
    try:
        with pytest.raises(Exception, match="rounds in a row failed"):
            simulate(
                cfg.model_copy(
                    update={
                        "round": cfg.round.model_copy(update={"max_failed_rounds": 2})
                    }
                ),
                store=store,
                clock=hang_clock,
            )
        run = store.list_runs()[0]
        rounds = store.rounds(run.run_id)
    finally:
        store.close()
    assert run.status == "aborted"
    assert [r.status for r in rounds] == ["failed", "failed"]
    assert rounds[0].global_digest == rounds[1].global_digest
