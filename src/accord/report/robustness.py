"""The robustness matrix as a figure: the score and backdoor success per cell.

Two panels of grouped bars, one group per attack and one bar per defence: the final
central score in the federation's metric (a dashed line per defence marks its
attack-free score) and,
when a backdoor was among the attacks, its success rate. Written with matplotlib's
Agg backend (no display needed); matplotlib comes with the ``report`` extra.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accord.errors import MissingExtraError
from accord.simulation.robustness import NO_ATTACK, Cell

__all__ = ["plot_matrix"]


def _pyplot() -> Any:  # matplotlib.pyplot, imported only when drawing
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingExtraError(
            extra="report", package="matplotlib", feature="the robustness plot"
        ) from exc
    return plt


def _floor(cells: Sequence[Cell]) -> float:
    """A y axis start that shows differences of a point or two: 5 points below."""
    values = [c.score for c in cells if not math.isnan(c.score)]
    return max(0.0, math.floor((min(values, default=0.0) - 0.05) * 10) / 10)


def plot_matrix(cells: Sequence[Cell], path: Path, *, title: str) -> Path:
    """Draw ``cells`` to ``path`` (PNG, SVG or PDF by its suffix); return it."""
    plt = _pyplot()
    attacks = list(dict.fromkeys(c.attack for c in cells))
    defences = list(dict.fromkeys(c.defence for c in cells))
    by = {(c.attack, c.defence): c for c in cells}
    metric = cells[0].metric if cells else "accuracy"
    backdoor = any(not math.isnan(c.backdoor_success) for c in cells)
    panels = 2 if backdoor else 1
    fig, axes = plt.subplots(
        panels,
        1,
        figsize=(max(6.0, 1.4 * len(attacks) * len(defences) ** 0.5), 3.6 * panels),
        squeeze=False,
    )
    width = 0.8 / max(len(defences), 1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for panel, (field, label) in enumerate(
        [("score", f"final {metric}"), ("backdoor_success", "backdoor success")][
            :panels
        ]
    ):
        ax = axes[panel][0]
        for j, defence in enumerate(defences):
            values = [getattr(by[(a, defence)], field) for a in attacks]
            xs = [
                i + (j - (len(defences) - 1) / 2) * width for i in range(len(attacks))
            ]
            colour = colours[j % len(colours)]
            ax.bar(xs, values, width, label=defence, color=colour)
            clean = by.get((NO_ATTACK, defence))
            if field == "score" and clean is not None and not math.isnan(clean.score):
                ax.axhline(clean.score, color=colour, linestyle="--", linewidth=0.8)
        ax.set_xticks(range(len(attacks)), attacks)
        ax.set_xlim(-0.5, len(attacks) - 0.5)
        if field == "backdoor_success":
            ax.set_ylim(0.0, 1.0)
        elif metric != "loss":  # accuracy and AUC lie in [0, 1]
            ax.set_ylim(_floor(cells), 1.0)
        ax.set_ylabel(label)
    axes[0][0].set_title(title)
    axes[0][0].legend(
        title="defence", fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1)
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
