"""Optional frameworks stay optional: what each module imports, and without what."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_numpy_tasks_and_metrics_import_neither_torch_nor_sklearn() -> None:
    result = run_python(
        """
        import sys
        import accord.task, accord.task.numpy_task, accord.task.sklearn
        import accord.evaluation.metrics
        loaded = sorted(m for m in ("torch", "sklearn") if m in sys.modules)
        assert not loaded, loaded
        """
    )

    assert result.returncode == 0, result.stderr


def test_torch_adapter_without_torch_names_the_extra() -> None:
    result = run_python(
        """
        import sys
        sys.modules["torch"] = None  # as if torch were not installed
        from accord.errors import MissingExtraError
        try:
            import accord.task.torch
        except MissingExtraError as exc:
            print(exc)
        """
    )

    assert result.returncode == 0, result.stderr
    assert "pip install 'accord[torch]'" in result.stdout
