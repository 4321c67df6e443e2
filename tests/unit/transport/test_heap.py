"""Capping glibc's malloc arenas: the coordinator's heap does not grow per sender."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="malloc arenas are glibc's"
)

SCRIPT = textwrap.dedent(
    """
    import ctypes, sys, threading
    from accord.transport.heap import limit_malloc_arenas
    if sys.argv[1] == "cap":
        assert limit_malloc_arenas(1)
    ready = threading.Barrier(8)
    done = threading.Barrier(8)

    def upload():
        ready.wait()  # all alive at once: none can reuse another's arena
        chunks = [bytearray(1 << 20) for _ in range(4)]
        del chunks
        done.wait()

    threads = [threading.Thread(target=upload) for _ in range(7)]
    for t in threads:
        t.start()
    upload()
    for t in threads:
        t.join()
    ctypes.CDLL(None).malloc_stats()
    """
)


def _arenas(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return sum(line.startswith("Arena ") for line in out.stderr.splitlines())


def test_threads_share_one_arena_once_capped():
    assert _arenas("default") > 1  # the problem: an arena per concurrent thread
    assert _arenas("cap") == 1
