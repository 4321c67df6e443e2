"""A gRPC server that will not stop does not hold the coordinator forever."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from accord.transport.server import CoordinatorServer


class _Grpc:
    """gRPC's server as stop() sees it: an event set when it has stopped."""

    def __init__(self, stops: bool) -> None:
        self.stops = stops
        self.grace: list[float | None] = []

    def stop(self, grace: float | None) -> threading.Event:
        self.grace.append(grace)
        done = threading.Event()
        if self.stops:
            done.set()
        return done


def test_a_server_that_stops_is_waited_for_and_nothing_is_logged(caplog) -> None:
    grpc_server = _Grpc(stops=True)
    server = CoordinatorServer(grpc_server, 1, "127.0.0.1:1")

    with caplog.at_level(logging.WARNING, logger="accord.transport.server"):
        server.stop(5.0, wait_s=0.05)

    assert grpc_server.grace == [5.0]
    assert caplog.records == []


def test_a_server_that_hangs_is_left_after_the_wait_with_every_stack_logged(
    caplog,
) -> None:
    grpc_server = _Grpc(stops=False)
    server = CoordinatorServer(grpc_server, 1, "127.0.0.1:1")

    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="accord.transport.server"):
        server.stop(0.05, wait_s=0.1)
    waited = time.monotonic() - t0

    assert 0.15 <= waited < 5  # the grace and the wait, then it went on
    said = [r.getMessage() for r in caplog.records]
    assert "had not stopped 0 s after its calls were cancelled" in said[0]
    assert any(m.startswith("thread MainThread:") for m in said[1:])
    assert any("test_a_server_that_hangs" in m for m in said[1:])  # this stack


@pytest.mark.parametrize("grace", [None, 0.0])
def test_without_a_grace_only_the_wait_bounds_it(grace) -> None:
    server = CoordinatorServer(_Grpc(stops=False), 1, "127.0.0.1:1")

    t0 = time.monotonic()
    server.stop(grace, wait_s=0.05)

    assert time.monotonic() - t0 < 5
