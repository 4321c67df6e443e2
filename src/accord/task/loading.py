"""Finding the user's task from a ``module:object`` reference in ``fed.toml``.

The module is looked up first next to ``fed.toml`` (so ``task:build`` means ``task.py``
beside the config), then on the normal import path. A file beside ``fed.toml`` is
loaded from its path under a name of its own (derived from that path), not as plain
``task``: one process may hold several federations (``accord evaluate``, tests), each
with its own ``task.py``, and Python's module cache would otherwise hand every one
the first file imported. The object is either a ready
:class:`~accord.task.protocol.Task` or a factory called as ``factory(info, **options)``.
A factory declares the options it takes by its signature; an option it does not name
(a typo in ``[task] options``) is refused before the call, naming the option and the
ones the factory accepts. A factory with ``**kwargs`` accepts anything and is trusted
to check its own.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accord.data.arrays import DatasetInfo
from accord.errors import ConfigError, TaskError
from accord.task.protocol import Task

__all__ = ["load_task", "resolve_object"]


def resolve_object(reference: str, *, base_dir: Path | str = ".") -> Any:
    """Import ``module:object`` (dots allowed in both parts)."""
    module_name, _, attr = reference.partition(":")
    base = str(Path(base_dir).resolve())
    if base not in sys.path:
        sys.path.insert(0, base)  # the task file's own sibling imports
    try:
        module = _beside(module_name, Path(base)) or importlib.import_module(
            module_name
        )
    except ImportError as exc:
        raise ConfigError(
            f"cannot import module {module_name!r} ({exc}); it must be importable or "
            f"a file next to fed.toml in {base}",
            key="task.factory",
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"module {module_name!r} has no attribute {attr!r}", key="task.factory"
            ) from None
    return obj


def _beside(module_name: str, base: Path) -> Any:
    """The module ``base/module_name.py`` under a name unique to its path, or None."""
    if "." in module_name:
        return None
    path = base / f"{module_name}.py"
    if not path.is_file():
        return None
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    unique = f"_accord_task_{digest}_{module_name}"
    if (cached := sys.modules.get(unique)) is not None:
        return cached
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module  # before running it: dataclasses look it up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique]
        raise
    return module


def load_task(
    reference: str,
    info: DatasetInfo,
    *,
    options: Mapping[str, Any] | None = None,
    base_dir: Path | str = ".",
) -> Task:
    """Build the task that ``reference`` names for a dataset described by ``info``."""
    obj = resolve_object(reference, base_dir=base_dir)
    if isinstance(obj, Task) and not isinstance(obj, type):
        if options:
            raise ConfigError(
                f"{reference} is a task instance and takes no options; remove "
                "[task.options] or point at a factory",
                key="task.options",
            )
        return obj
    if not callable(obj):
        raise ConfigError(f"{reference} is neither a Task nor a factory", key="task")
    _check_options(obj, reference, options or {})
    try:
        task = obj(info, **dict(options or {}))
    except TypeError as exc:
        raise ConfigError(
            f"calling {reference}(info, **options) failed: {exc}"
        ) from exc
    if not isinstance(task, Task):
        raise TaskError(
            f"{reference} returned {type(task).__name__}, which lacks init_params, "
            "train or predict"
        )
    return task


def _check_options(factory: Any, reference: str, options: Mapping[str, Any]) -> None:
    """Refuse options that ``factory``'s signature does not name."""
    try:
        params = list(inspect.signature(factory).parameters.values())[1:]  # info
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    accepted = [
        p.name
        for p in params
        if p.kind
        in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        names = ", ".join(repr(u) for u in unknown)
        offered = ", ".join(accepted) if accepted else "no options"
        raise ConfigError(
            f"{names} {'is not an option' if len(unknown) == 1 else 'are not options'}"
            f" of {reference}, which accepts {offered}; check the spelling",
            key="task.options",
        )
