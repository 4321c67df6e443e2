"""grpc stays inside accord.transport's server and client modules."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "accord.coordinator.round",
        "accord.coordinator.runner",
        "accord.cli.main",
        "accord.participant.runtime",
        "accord.transport.executor",
        "accord.transport.jobs",
        "accord.transport.admission",
        "accord.transport.watchdog",
        "accord.transport.call_metadata",
        "accord.transport.revocation",
    ],
)
def test_module_does_not_load_grpc(module):
    code = f"import sys, {module}\nprint('grpc' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "module",
    [
        "accord.transport.executor",
        "accord.transport.rejections",
        "accord.transport.server",
        "accord.transport.gate",
    ],
)
def test_the_coordinators_transport_does_not_load_sqlalchemy(module):
    # Refusals reach the store through an injected callable (event_recorder).
    code = f"import sys, {module}\nprint('sqlalchemy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
