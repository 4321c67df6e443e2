"""Shared fixtures for the data tests: a small synthetic CSV with every column kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest


def write_csv(path: Path, *, rows: int = 300, seed: int = 0) -> Path:
    """Numeric ``a``, ``b`` (with gaps), categorical ``colour`` (with gaps), an id,
    a site column ``hospital`` and a text target ``label`` (no/yes)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(5.0, 2.0, rows)
    b = rng.normal(-1.0, 0.5, rows)
    b[rng.random(rows) < 0.1] = np.nan
    colours = np.array(["red", "green", "blue"])[rng.integers(0, 3, rows)]
    hospitals = np.array(["north", "south", "east", "west"])[
        rng.choice(4, rows, p=[0.4, 0.3, 0.2, 0.1])
    ]
    label = np.where(a + rng.normal(0, 1, rows) > 5.5, "yes", "no")
    lines = ["id,a,b,colour,hospital,label"]
    for i in range(rows):
        colour = "" if i % 17 == 0 else colours[i]
        b_text = "" if np.isnan(b[i]) else f"{b[i]:.6f}"
        lines.append(f"{i},{a[i]:.6f},{b_text},{colour},{hospitals[i]},{label[i]}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def csv_options() -> dict[str, Any]:
    """Options that load the CSV of :func:`csv_path` with its site column."""
    return {
        "target": "label",
        "site_column": "hospital",
        "categorical": ["colour"],
        "drop": ["id"],
    }


@pytest.fixture
def csv_path(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "toy.csv")
