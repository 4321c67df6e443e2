"""Simulation workers ignore SIGINT: Ctrl-C is the coordinator's to handle.

A terminal's Ctrl-C reaches every process of the group. The coordinator marks the
run, prints how to resume it and stops its workers; a worker that took the
KeyboardInterrupt itself would exit (or print a traceback) under it. Here SIGINT
is sent to a warm worker alone: it must stay up and train the next job.
"""

from __future__ import annotations

import os
import signal

import pytest

from accord.config import config_from_mapping
from accord.coordinator.executor import TrainDone, TrainJob
from accord.simulation.context import build_context
from accord.simulation.pool import ProcessExecutor
from accord.task.protocol import TrainConfig

pytest.importorskip("sklearn")


def test_a_worker_survives_sigint_and_trains_the_next_job():
    config = config_from_mapping(
        {
            "federation": {"rounds": 1, "seed": 2},
            "data": {"dataset": "wine", "sites": 2},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            "simulation": {"workers": 1},
        }
    )
    ctx = build_context(config)
    initial = ctx.task.init_params(2)
    executor = ProcessExecutor(config, ctx.participants, initial.spec, workers=1)
    try:
        (worker,) = [h.process for h in executor._handles]
        os.kill(worker.pid, signal.SIGINT)
        worker.join(timeout=2)  # a worker that took it would be gone by now
        assert worker.is_alive()

        executor.publish(initial)
        site = ctx.participants[0]
        job = TrainJob(site, TrainConfig(epochs=1, batch_size=16, learning_rate=0.1))
        executor.submit_train(1, [job])
        event = executor.next_event(timeout=120)

        assert isinstance(event, TrainDone), event
        assert event.participant == site
        assert [h.process.pid for h in executor._handles] == [worker.pid]
        executor.release(event)
    finally:
        executor.close()
    assert worker.exitcode == 0  # stopped by the coordinator, not killed
