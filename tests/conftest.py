"""Settings and fixtures for the whole suite."""

import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

# Property tests are deterministic (the same examples every run) and carry no time
# limit per example: CI machines are shared and slow at times.
settings.register_profile(
    "accord",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("accord")


# A run's lease held by another process, as a second coordinator would meet it.
_HOLD_LEASE = """
import sys, time
from accord.store import SqlStore
with SqlStore(sys.argv[1]) as store, store.lease_run(sys.argv[2]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def lease_holder() -> Iterator[Callable[[str, str], subprocess.Popen[str]]]:
    """Start a process that holds the lease of run ``run_id`` in the store at ``url``.

    Returns once the lease is held; the process sleeps until killed (SIGKILL), which
    the test may do itself, and is otherwise at the end of the test.
    """
    started: list[subprocess.Popen[str]] = []

    def start(url: str, run_id: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLD_LEASE, url, run_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "held":
            _, err = proc.communicate(timeout=30)
            raise AssertionError(f"the lease holder did not start:\n{err}")
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
