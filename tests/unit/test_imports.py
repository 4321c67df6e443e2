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
        "accord.contribution",
        "accord.attacks.updates",
        "accord.detection",
        "accord.coordinator.round",
        "accord.coordinator.runner",
        "accord.params",
        "accord.config",
        "accord.evaluation.gates",
        "accord.evaluation.fairness",
        "accord.trees",
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


def test_ledger_loads_no_grpc_sql_cli_or_store():
    # Arrange: every module of the ledger's pure core, in a fresh interpreter
    import pkgutil

    import accord.ledger

    names = [m.name for m in pkgutil.iter_modules(accord.ledger.__path__)]
    assert {"dsse", "statement", "writer", "verify", "receipt", "export"} <= set(names)
    code = (
        "import sys\n"
        + "".join(f"import accord.ledger.{m}\n" for m in names)
        + "print(','.join(sorted(m for m in sys.modules if m in "
        f"{FORBIDDEN!r} or m.startswith(('grpc.', 'sqlalchemy.', 'accord.store', "
        "'accord.cli', 'google.protobuf')))))\n"
    )

    # Act
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    # Assert
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


def test_secagg_loads_no_grpc_protobuf_or_transport():
    # Arrange: every module of the pure secure-aggregation package, in a fresh
    # interpreter (its wire form lives in accord.transport.secagg_wire instead).
    import pkgutil

    import accord.secagg

    names = [m.name for m in pkgutil.iter_modules(accord.secagg.__path__)]
    assert {"session", "participant", "server", "messages"} <= set(names)
    assert "wire" not in names
    code = (
        "import sys\n"
        + "".join(f"import accord.secagg.{m}\n" for m in names)
        + "print(','.join(sorted(m for m in sys.modules if m == 'grpc' "
        "or m.startswith(('grpc.', 'google.protobuf', 'accord.transport')) "
        "or m.endswith('_pb2'))))\n"
    )

    # Act
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    # Assert
    assert out.stdout.strip() == ""


def test_privacy_loads_no_heavy_dependency_and_accounts_only_on_demand():
    # Arrange: every module of the privacy package, in a fresh interpreter
    import pkgutil

    import accord.privacy

    names = [m.name for m in pkgutil.iter_modules(accord.privacy.__path__)]
    assert {"accountant", "calibration", "clipping", "events", "noise"} <= set(names)
    code = (
        "import sys\n"
        "import accord.privacy\n"
        "light = 'dp_accounting' in sys.modules\n"
        + "".join(f"import accord.privacy.{m}\n" for m in names)
        + f"roots = {FORBIDDEN!r}\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in roots)\n"
        "print(light, ','.join(heavy))\n"
    )

    # Act
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    # Assert: the package alone needs no dp-accounting; all of it needs no torch,
    # grpc, SQL, typer, scikit-learn or pandas
    assert out.stdout.split() == ["False"]
