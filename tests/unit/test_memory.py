"""accord.memory: freed model-sized blocks stay in the heap for the next round."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from accord.memory import keep_freed_memory

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="mallopt and mallinfo2 are glibc's",
)

# Run in a fresh interpreter: the settings are the whole process's.
_PROBE = """
import ctypes, json, sys
import numpy as np
from accord.memory import keep_freed_memory

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    ).split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
mode = sys.argv[1]
limit = 0 if mode == "none" else 1 << 30
kept = None if mode == "default" else keep_freed_memory(limit)
size = int(sys.argv[2])
a = np.ones(size // 4, np.float32)
mapped = libc.mallinfo2().hblkhd
del a
free = libc.mallinfo2().fordblks
print(json.dumps({"kept": kept, "mapped": mapped, "free": free}))
"""


def _probe(mode: str, size: int) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, str(size)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, int] = json.loads(out.stdout)
    return result


@glibc
def test_a_freed_block_of_16_mib_stays_in_the_heap() -> None:
    size = 16 << 20
    default, kept = _probe("default", size), _probe("keep", size)
    # By default glibc maps a block this size of its own and unmaps it when freed.
    assert default["mapped"] >= size
    assert default["free"] < size
    # Kept: it comes from the heap and is still there, free, once the array is gone.
    assert kept["kept"] is True
    assert kept["mapped"] < size
    assert kept["free"] >= size


@glibc
def test_blocks_from_32_mib_are_still_mapped_and_returned() -> None:
    size = 32 << 20
    kept = _probe("keep", size)
    assert kept["mapped"] >= size
    assert kept["free"] < size


@glibc
def test_the_limit_bounds_what_is_kept() -> None:
    size = 16 << 20
    nothing = _probe("none", size)  # limit 0: from the heap, trimmed when freed
    assert nothing["kept"] is True
    assert nothing["mapped"] < size
    assert nothing["free"] < size


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        keep_freed_memory(-1)
