"""``fed.toml`` to a :class:`~accord.config.FedConfig`: parse, validate, check, explain.

Every validation problem becomes one :class:`~accord.errors.ConfigError` that lists
each bad key and what is allowed there (at most :data:`MAX_LISTED` of them);
reading the file safely is :mod:`accord.config.reading`'s job, and refusing
combinations of valid sections :mod:`accord.config.checks`'.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from accord.config.checks import check_compatibility
from accord.config.reading import read_toml, shown_key
from accord.config.schema import FedConfig
from accord.errors import ConfigError

__all__ = ["MAX_LISTED", "config_from_mapping", "load_config"]

#: How many problems a ConfigError lists before it says how many more there are.
MAX_LISTED = 10


def _format_errors(exc: ValidationError) -> str:
    """Every problem on one line, keys cut to a readable length, at most a few."""
    errors = exc.errors()
    parts = []
    for err in errors[:MAX_LISTED]:
        key = shown_key(".".join(str(p) for p in err["loc"])) or "(top level)"
        parts.append(f"{key}: {err['msg']}")
    if len(errors) > MAX_LISTED:
        parts.append(f"and {len(errors) - MAX_LISTED} more")
    return "invalid configuration: " + "; ".join(parts)


def config_from_mapping(
    raw: Mapping[str, Any], *, base_dir: Path | str = "."
) -> FedConfig:
    """Validate an already-parsed TOML document into a :class:`FedConfig`."""
    try:
        cfg = FedConfig.model_validate({**raw, "base_dir": str(base_dir)})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
    check_compatibility(cfg)
    return cfg


def load_config(path: Path | str, **overrides: Mapping[str, Any]) -> FedConfig:
    """Read and validate ``fed.toml``; ``overrides`` replace keys of whole sections.

    ``load_config("fed.toml", simulation={"workers": 0})`` changes one key of one
    section and keeps the rest of it.
    """
    file = Path(path)
    raw = read_toml(file)
    for section, values in overrides.items():
        current = raw.get(section, {})
        if not isinstance(current, dict):
            continue  # not a table: validation names the key
        merged = dict(current)
        merged.update(values)
        raw[section] = merged
    return config_from_mapping(raw, base_dir=file.resolve().parent)
