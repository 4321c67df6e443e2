from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("torch", "grpc", "sqlalchemy", "typer", "sklearn", "pandas")


def test_importing_aggregation_loads_no_heavy_dependency():
    # Arrange: a fresh interpreter, so that nothing imported by other tests counts
    code = (
        "import json, sys\n"
        "import accord.aggregation\n"
        f"roots = {FORBIDDEN!r}\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in roots]\n"
        "print(json.dumps(sorted(loaded)))\n"
    )
    # Act
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    # Assert
    assert json.loads(done.stdout) == []
