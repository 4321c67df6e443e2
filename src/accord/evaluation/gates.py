"""Release gates: does a run's final model meet ``[gates]``? One reason per gate.

:func:`evaluate_gates` is pure: it takes what the store recorded of a run (its
final metrics, per-site metrics, privacy spent, anomaly flags and quarantines:
:class:`GateInputs`) and, where a fairness gate is set, the federation's summed
per-group counts (:mod:`accord.evaluation.fairness`), and returns a
:class:`GateResult` per gate with the figure, the bound and a readable reason.

A bound is met *at* its value: a floor when higher is better (accuracy, AUC), a
ceiling otherwise (loss, spread, gaps, epsilon, counts). A gate whose figure is
missing (no federated evaluation recorded, no DP account, robustness scoring off,
no sensitive group) fails and says what to turn on: a release is never allowed on
a figure nobody measured. The run itself must have completed: an aborted or failed
run's last model is never released.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from accord.config import GatesConfig
from accord.evaluation.fairness import FairnessReport

__all__ = ["GateInputs", "GateResult", "evaluate_gates", "higher_is_better"]


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is the better one (not for the loss)."""
    return metric != "loss"


@dataclass(frozen=True, slots=True)
class GateInputs:
    """What a run recorded that the gates look at (its final round's figures).

    ``epsilon`` is the largest ε spent by any privacy account (the federation's,
    or a site's records), None when the run spent none (no DP). ``scored`` says
    whether the run scored updates (``[robustness]``), without which nobody looked
    for ``flagged`` or ``quarantined`` sites.
    """

    metric: str
    status: str
    central: float | None
    federated: float | None
    sites: Mapping[str, float]
    epsilon: float | None
    scored: bool
    quarantined: tuple[str, ...] = ()
    flagged: tuple[str, ...] = ()
    fairness: FairnessReport | None = None


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's outcome: its name, figure, bound, pass or fail and why."""

    name: str
    passed: bool
    value: float | None
    bound: float | None
    reason: str

    def to_dict(self) -> dict[str, object]:
        """As plain JSON data."""
        value = None if self.value is None or math.isnan(self.value) else self.value
        return {
            "gate": self.name,
            "passed": self.passed,
            "value": value,
            "bound": self.bound,
            "reason": self.reason,
        }


def _missing(name: str, bound: float, why: str) -> GateResult:
    return GateResult(name, False, None, bound, why)


def _compare(
    name: str, value: float, bound: float, *, floor: bool, what: str
) -> GateResult:
    if math.isnan(value):
        return GateResult(name, False, value, bound, f"{what} is undefined (NaN)")
    ok = value >= bound if floor else value <= bound
    sign = (">=" if ok else "<") if floor else ("<=" if ok else ">")
    word = "at least" if floor else "at most"
    reason = f"{what} {value:.6g} {sign} {bound:.6g}"
    if not ok:
        reason += f": it must be {word} {bound:.6g}"
    return GateResult(name, ok, value, bound, reason)


def _metric_gates(gates: GatesConfig, inp: GateInputs) -> list[GateResult]:
    floor = higher_is_better(inp.metric)
    out: list[GateResult] = []
    for name, value, where, fix in (
        ("central_metric", inp.central, "central", "[evaluation] central = true"),
        (
            "federated_metric",
            inp.federated,
            "federated",
            "[evaluation] federated = true",
        ),
    ):
        bound = getattr(gates, name)
        if bound is None:
            continue
        what = f"final {where} {inp.metric}"
        if value is None:
            out.append(_missing(name, bound, f"no {what} was recorded: set {fix}"))
        else:
            out.append(_compare(name, value, bound, floor=floor, what=what))
    return out


def _site_gates(gates: GatesConfig, inp: GateInputs) -> list[GateResult]:
    out: list[GateResult] = []
    wanted = [
        (n, b)
        for n, b in (
            ("worst_site_metric", gates.worst_site_metric),
            ("max_site_spread", gates.max_site_spread),
        )
        if b is not None
    ]
    scores = {s: v for s, v in inp.sites.items() if not math.isnan(v)}
    for name, bound in wanted:
        if not scores:
            out.append(
                _missing(
                    name,
                    bound,
                    f"no site's {inp.metric} was recorded for the final model: set "
                    "[evaluation] federated = true",
                )
            )
            continue
        best, worst = (max, min) if higher_is_better(inp.metric) else (min, max)
        low = worst(scores, key=lambda s: scores[s])
        if name == "worst_site_metric":
            what = f"worst site's {inp.metric} ({low})"
            floor = higher_is_better(inp.metric)
            out.append(_compare(name, scores[low], bound, floor=floor, what=what))
        else:
            high = best(scores, key=lambda s: scores[s])
            spread = abs(scores[high] - scores[low])
            what = f"spread of {inp.metric} across sites ({high} to {low})"
            out.append(_compare(name, spread, bound, floor=False, what=what))
    return out


def _fairness_gates(gates: GatesConfig, inp: GateInputs) -> list[GateResult]:
    out: list[GateResult] = []
    for name, bound, attr, label in (
        (
            "max_demographic_parity_difference",
            gates.max_demographic_parity_difference,
            "demographic_parity_difference",
            "demographic parity difference",
        ),
        (
            "max_equalized_odds_difference",
            gates.max_equalized_odds_difference,
            "equalized_odds_difference",
            "equalized odds difference",
        ),
    ):
        if bound is None:
            continue
        if inp.fairness is None:
            out.append(
                _missing(
                    name,
                    bound,
                    "no per-group counts were computed: declare [evaluation] "
                    "sensitive and release with the federation's fed.toml",
                )
            )
            continue
        value = float(getattr(inp.fairness, attr))
        what = f"{label} across {inp.fairness.column}"
        out.append(_compare(name, value, bound, floor=False, what=what))
    return out


def _privacy_gate(gates: GatesConfig, inp: GateInputs) -> list[GateResult]:
    bound = gates.max_epsilon
    if bound is None:
        return []
    if inp.epsilon is None:
        return [
            _missing(
                "max_epsilon",
                bound,
                "the run spent no differential privacy (its epsilon is unbounded): "
                "set [privacy] level",
            )
        ]
    return [_compare("max_epsilon", inp.epsilon, bound, floor=False, what="epsilon")]


def _robustness_gates(gates: GatesConfig, inp: GateInputs) -> list[GateResult]:
    out: list[GateResult] = []
    for name, bound, sites, label in (
        ("max_quarantined", gates.max_quarantined, inp.quarantined, "quarantined"),
        ("max_flagged", gates.max_flagged, inp.flagged, "flagged"),
    ):
        if bound is None:
            continue
        if not inp.scored:
            out.append(
                _missing(
                    name,
                    bound,
                    "the run scored no update, so nobody looked for anomalous "
                    "sites: set [robustness] scores = true or a flag rule",
                )
            )
            continue
        what = f"sites {label}" + (f" ({', '.join(sites)})" if sites else "")
        out.append(_compare(name, len(sites), bound, floor=False, what=what))
    return out


def evaluate_gates(gates: GatesConfig, inp: GateInputs) -> list[GateResult]:
    """Every gate's outcome, the run's completion first; all pass for a release."""
    done = inp.status == "completed"
    results = [
        GateResult(
            "completed",
            done,
            None,
            None,
            "the run completed"
            if done
            else f"the run is {inp.status}: only a completed run's model is released",
        )
    ]
    results += _metric_gates(gates, inp)
    results += _site_gates(gates, inp)
    results += _fairness_gates(gates, inp)
    results += _privacy_gate(gates, inp)
    results += _robustness_gates(gates, inp)
    return results
