"""accord.threads: native pools limited inside the block, restored after it."""

from __future__ import annotations

import sys
import threading
import types

import numpy as np  # noqa: F401  (loads the BLAS whose pool is limited)
import pytest
from threadpoolctl import threadpool_info

from accord import threads


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_the_blas_pool_is_limited_inside_and_restored_after() -> None:
    before = _blas_threads()
    if not before:
        pytest.skip("numpy's BLAS does not expose a thread pool here")
    with threads.limited(1):
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before


def test_only_the_named_api_is_limited() -> None:
    with threads.limited(1, "openmp"):
        openmp_free_blas = _blas_threads()
    with threads.limited(1, "blas"):
        assert set(_blas_threads()) <= {1}
    assert openmp_free_blas == _blas_threads()  # the BLAS pool was left alone


def test_the_libraries_are_found_once_until_an_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with threads.limited(1):
        pass
    first = threads._controller
    with threads.limited(1):
        pass
    assert threads._controller is first  # no second walk of the loaded libraries
    monkeypatch.setitem(sys.modules, "accord_test_new_module", types.ModuleType("m"))
    with threads.limited(1):
        pass
    assert threads._controller is not first  # a new import: looked for again


def test_work_in_the_background_runs_beside_the_caller_and_returns() -> None:
    started = threading.Event()
    go_on = threading.Event()

    def work() -> str:
        started.set()
        assert go_on.wait(10)  # the caller goes on meanwhile
        return "done"

    wait = threads.in_background(work)
    assert started.wait(10)
    go_on.set()

    assert wait() == "done"


def test_what_the_background_work_raised_is_raised_to_the_caller() -> None:
    def work() -> None:
        raise ValueError("bad input")

    wait = threads.in_background(work)

    with pytest.raises(ValueError, match="bad input"):
        wait()
