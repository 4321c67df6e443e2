import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_accord(
    *args: str, cwd: Path, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [sys.executable, "-m", "accord", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_json(*args: str, cwd: Path) -> dict:
    proc = run_accord(*args, "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def accord_json():
    """Run ``python -m accord ... --json`` and return the parsed output."""
    return run_json


@pytest.fixture
def accord_cli():
    """Run ``python -m accord ...`` and return the completed process."""
    return run_accord
