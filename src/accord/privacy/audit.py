"""The empirical privacy audit of one site: membership inference against a model.

:func:`audit_site` runs the two attacks of :mod:`accord.privacy.membership` on a
balanced set of one site's records: its training rows (members) and its holdout
rows (non-members, never trained on), as many of each (the larger group is
subsampled, seeded). The loss attack needs only the audited model; LiRA trains
``shadows`` shadow models with the site's own task and training settings, each on a
random half of the audited records (every record is in about half of them, out of
the others), so that the shadows see the data the way the audited model did. At
record level the shadows train with the same DP-SGD (noise multiplier and clip) as
the site, at the sampling rate of their own half: an attacker mimics the training
it attacks. Their noise is seeded: shadows are the auditor's, not released.

Each attack reports AUC and TPR at FPRs of 0.1 % and 1 %, next to what the
site's (ε, δ) allows any test (:func:`~accord.privacy.membership.dp_tpr_bound`,
:func:`~accord.privacy.membership.dp_auc_bound`). With fewer than ``1 / FPR``
non-members a TPR at that FPR is the TPR at no false positive at all.

Pure: numpy and the task interface; the caller provides the data and the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.data.arrays import ArrayData
from accord.params import Params
from accord.privacy.dpsgd import OPTION_KEY, DpSgdPlan
from accord.privacy.membership import (
    attack_auc,
    dp_auc_bound,
    dp_tpr_bound,
    lira_offline_scores,
    logit_confidence,
    loss_scores,
    tpr_at_fpr,
)
from accord.task.protocol import Task, TrainConfig

__all__ = [
    "ATTACKS",
    "DEFAULT_SHADOWS",
    "FPRS",
    "MIN_ROWS",
    "AttackResult",
    "ShadowTraining",
    "SiteAudit",
    "audit_site",
    "pooled",
    "score_attack",
]

#: The false-positive rates each attack's TPR is reported at.
FPRS = (0.001, 0.01)
#: The attacks, in the order they are reported.
ATTACKS = ("loss", "lira")
#: How many shadow models LiRA trains per site unless told otherwise.
DEFAULT_SHADOWS = 8
#: The fewest members (and non-members) a site needs to be audited.
MIN_ROWS = 2


@dataclass(frozen=True, slots=True)
class ShadowTraining:
    """How the site trained, for the shadows to do the same.

    ``passes`` calls of ``task.train`` of ``epochs`` each (a site trains once per
    round); ``dp`` is the site's DP-SGD ``(noise_multiplier, clip)``, None without.
    """

    epochs: int
    batch_size: int
    learning_rate: float
    passes: int
    options: Mapping[str, Any] = field(default_factory=dict)
    dp: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class AttackResult:
    """One attack's power: AUC and TPR at each of :data:`FPRS`."""

    auc: float
    tpr: Mapping[float, float]


@dataclass(frozen=True, slots=True)
class SiteAudit:
    """What the attacks achieved at one site, and what its (ε, δ) allows."""

    site: str
    members: int
    nonmembers: int
    epsilon: float
    delta: float
    attacks: Mapping[str, AttackResult]
    #: Each attack's scores and the membership labels, for pooling across sites.
    scores: Mapping[str, npt.NDArray[np.float64]]
    member: npt.NDArray[np.bool_]
    shadows: int

    @property
    def auc_bound(self) -> float:
        """The largest AUC any membership test can reach under (ε, δ)."""
        return dp_auc_bound(self.epsilon, self.delta)

    def tpr_bound(self, fpr: float) -> float:
        """The largest TPR any membership test can reach at ``fpr``."""
        return dp_tpr_bound(self.epsilon, self.delta, fpr)


def score_attack(scores: npt.ArrayLike, member: npt.ArrayLike) -> AttackResult:
    """AUC and TPR at :data:`FPRS` of one attack's scores."""
    return AttackResult(
        auc=attack_auc(scores, member),
        tpr={f: tpr_at_fpr(scores, member, f) for f in FPRS},
    )


def _balanced(
    members: ArrayData, nonmembers: ArrayData, rng: np.random.Generator
) -> tuple[ArrayData, npt.NDArray[np.bool_]]:
    n = min(len(members), len(nonmembers))
    if n < MIN_ROWS:
        raise ValueError(
            f"a membership audit needs at least 2 training and 2 holdout rows, got "
            f"{len(members)} and {len(nonmembers)}; raise data.holdout_fraction "
            "or leave the site out"
        )
    picked = [
        part.subset(np.sort(rng.choice(len(part), size=n, replace=False)))
        for part in (members, nonmembers)
    ]
    member = np.r_[np.ones(n, dtype=bool), np.zeros(n, dtype=bool)]
    return ArrayData.concat(picked), member


def _train_shadow(
    task: Task, data: ArrayData, training: ShadowTraining, *, seed: int, name: str
) -> Params:
    rng = np.random.default_rng(seed)
    params = task.init_params(int(rng.integers(2**31)))
    for step in range(training.passes):
        options = dict(training.options)
        if training.dp is not None:
            z, clip = training.dp
            options[OPTION_KEY] = DpSgdPlan(
                run=f"audit-{name}",
                noise_multiplier=z,
                clip=clip,
                sampling_rate=min(1.0, training.batch_size / len(data)),
                steps=training.epochs * math.ceil(len(data) / training.batch_size),
                delta=1e-5,
                noise_seed=int(rng.integers(2**62)),
            ).to_json()
        config = TrainConfig(
            epochs=training.epochs,
            batch_size=training.batch_size,
            learning_rate=training.learning_rate,
            seed=int(rng.integers(2**31)),
            round=step + 1,
            participant=name,
            options=options,
        )
        params = task.train(params, data, config).params
    return params


def _lira(
    task: Task,
    target: npt.NDArray[np.float64],
    data: ArrayData,
    training: ShadowTraining,
    *,
    shadows: int,
    rng: np.random.Generator,
    site: str,
) -> npt.NDArray[np.float64]:
    n = len(data)
    inside = np.zeros((shadows, n), dtype=bool)
    conf = np.empty((shadows, n), dtype=np.float64)
    for k in range(shadows):
        half = rng.permutation(n)[: n // 2]
        inside[k, half] = True
        params = _train_shadow(
            task,
            data.subset(np.sort(half)),
            training,
            seed=int(rng.integers(2**62)),
            name=f"{site}-shadow-{k}",
        )
        conf[k] = logit_confidence(task.predict(params, data.x), data.y)
    return lira_offline_scores(target, conf, inside)


def audit_site(
    task: Task,
    params: Params,
    *,
    site: str,
    members: ArrayData,
    nonmembers: ArrayData,
    training: ShadowTraining,
    epsilon: float,
    delta: float,
    shadows: int = DEFAULT_SHADOWS,
    seed: int = 0,
) -> SiteAudit:
    """Attack ``params`` on ``site``'s records; ``ValueError`` if too few rows.

    ``shadows = 0`` runs the loss attack only.
    """
    if shadows < 0 or shadows == 1:
        raise ValueError(f"LiRA needs 0 (off) or at least 2 shadows, got {shadows}")
    rng = np.random.default_rng(seed)
    data, member = _balanced(members, nonmembers, rng)
    proba = task.predict(params, data.x)
    scores: dict[str, npt.NDArray[np.float64]] = {"loss": loss_scores(proba, data.y)}
    if shadows:
        target = logit_confidence(proba, data.y)
        scores["lira"] = _lira(
            task, target, data, training, shadows=shadows, rng=rng, site=site
        )
    return SiteAudit(
        site=site,
        members=int(member.sum()),
        nonmembers=int((~member).sum()),
        epsilon=epsilon,
        delta=delta,
        attacks={name: score_attack(s, member) for name, s in scores.items()},
        scores=scores,
        member=member,
        shadows=shadows,
    )


def pooled(audits: Sequence[SiteAudit]) -> dict[str, AttackResult]:
    """Each attack over every site's records at once (one threshold for all)."""
    member = np.concatenate([a.member for a in audits])
    names = [n for n in ATTACKS if all(n in a.scores for a in audits)]
    return {
        name: score_attack(np.concatenate([a.scores[name] for a in audits]), member)
        for name in names
    }
