"""The pure core imports none of the heavy or I/O dependencies."""

import subprocess
import sys
import types

import pytest

import accord

FORBIDDEN = ("torch", "grpc", "sqlalchemy", "typer", "sklearn", "pandas")


@pytest.mark.parametrize(
    "module",
    [
        "accord",
        "accord.aggregation",
        "accord.coordinator.round",
        "accord.coordinator.runner",
        "accord.params",
        "accord.config",
    ],
)
def test_pure_modules_load_no_heavy_dependency(module):
    code = (
        f"import sys, {module}\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_public_api_matches_all():
    # Subpackages become attributes once imported anywhere; they are not the API.
    exported = {
        name
        for name in dir(accord)
        if not name.startswith("_")
        and not isinstance(getattr(accord, name), types.ModuleType)
    }
    assert exported == set(accord.__all__) - {"__version__"}
