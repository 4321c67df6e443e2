from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import types

import accord.secagg

FORBIDDEN = ("torch", "grpc", "sqlalchemy", "typer", "sklearn", "pandas")


def test_importing_secagg_loads_no_heavy_dependency():
    # Arrange: a fresh interpreter, importing every secagg module
    names = [m.name for m in pkgutil.iter_modules(accord.secagg.__path__)]
    assert {"crypto", "mask", "shamir", "server", "participant"} <= set(names)
    code = (
        "import json, sys\n"
        + "".join(f"import accord.secagg.{m}\n" for m in names)
        + f"roots = {FORBIDDEN!r}\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in roots]\n"
        "print(json.dumps(sorted(loaded)))\n"
    )
    # Act
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    # Assert
    assert json.loads(done.stdout) == []


def test_public_api_matches_all():
    exported = {
        name
        for name in dir(accord.secagg)
        if not name.startswith("_")
        and not isinstance(getattr(accord.secagg, name), types.ModuleType)
    }
    assert exported == set(accord.secagg.__all__)
