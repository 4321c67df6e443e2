"""What every section of ``fed.toml`` shares: strict, frozen, no unknown keys.

Values are checked as TOML types them: a number is never a bool (``grace_s = false``
is an error, not 0), a float never an integer, and no setting is infinite or NaN.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["MAX_SECONDS", "Section"]

#: The longest duration a setting may name (a year): past it, a deadline means
#: "never", and waits that long overflow the platform's timeouts.
MAX_SECONDS = 365 * 24 * 3600.0


class Section(BaseModel):
    """A section of ``fed.toml``: frozen, strict, unknown keys refused."""

    # strict: TOML gives exact types, so a bool is not taken for a number nor a
    # float for an integer; allow_inf_nan: no setting means inf or nan.
    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, allow_inf_nan=False
    )
