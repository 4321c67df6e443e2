"""Data-level poisoning as dataset transforms, and the backdoor's success metric.

- **label flipping**: every training label ``y`` of a malicious site becomes
  ``k - 1 - y`` (``k`` classes), the classic all-labels flip.
- **backdoor trigger**: on a ``fraction`` of a malicious site's training rows
  (drawn with the run's seed) the trigger features are set to the trigger value
  and the label to ``target``. Its success metric, :func:`attack_success_rate`, is
  the share of triggered test rows whose true label is not the target that the
  model classifies as the target.

Only the malicious sites' *training* rows change: their holdouts, which score the
global model in federated evaluation, and the central test set stay clean.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from accord.attacks.sites import malicious_sites
from accord.config import AttackConfig, BackdoorConfig
from accord.data.arrays import ArrayData
from accord.data.federation import FederatedData
from accord.errors import ConfigError
from accord.params import Params
from accord.task.protocol import Task

__all__ = [
    "Poisoned",
    "Trigger",
    "attack_success_rate",
    "flip_labels",
    "make_trigger",
    "poison_federation",
]

#: Trigger features when ``[attack.backdoor] features`` is empty: the last ones.
_DEFAULT_TRIGGER_SIZE = 4


@dataclass(frozen=True, slots=True)
class Trigger:
    """Feature indices (flattened) set to ``value``, and the label they should give."""

    features: tuple[int, ...]
    value: float
    target: int
    fraction: float

    def apply(self, x: np.ndarray) -> np.ndarray:
        """A copy of ``x`` with the trigger stamped on every row."""
        out = np.array(x, copy=True)
        flat = out.reshape(len(out), -1)
        flat[:, list(self.features)] = self.value
        return out

    def poison(self, data: ArrayData, rng: np.random.Generator) -> ArrayData:
        """``data`` with the trigger and the target label on ``fraction`` of rows."""
        n = len(data)
        k = min(n, max(1, round(self.fraction * n))) if n else 0
        rows = np.sort(rng.choice(n, size=k, replace=False)) if k else np.zeros(0, int)
        x = np.array(data.x, copy=True)
        y = np.array(data.y, copy=True)
        x[rows] = self.apply(x[rows])
        y[rows] = self.target
        return ArrayData(x, y)


def make_trigger(
    config: BackdoorConfig, *, pooled_train: ArrayData, n_classes: int
) -> Trigger:
    """The trigger of ``config``, its defaults filled from the federation's data."""
    d = int(np.prod(pooled_train.x.shape[1:]))
    if config.target >= n_classes:
        raise ConfigError(
            f"backdoor target {config.target} is not a class; the data has "
            f"{n_classes} classes (0..{n_classes - 1})",
            key="attack.backdoor.target",
        )
    features = tuple(config.features) or tuple(
        range(max(d - _DEFAULT_TRIGGER_SIZE, 0), d)
    )
    bad = [f for f in features if not 0 <= f < d]
    if bad:
        raise ConfigError(
            f"trigger features {bad} are outside the data's {d} features (0..{d - 1})",
            key="attack.backdoor.features",
        )
    value = config.value
    if value is None:
        flat = pooled_train.x.reshape(len(pooled_train), -1)
        value = float(flat[:, list(features)].max()) if len(flat) else 1.0
    return Trigger(features, float(value), config.target, config.fraction)


def flip_labels(data: ArrayData, n_classes: int) -> ArrayData:
    """``y -> n_classes - 1 - y`` on every row."""
    return ArrayData(
        np.array(data.x, copy=True), (n_classes - 1 - data.y).astype(np.int64)
    )


def attack_success_rate(
    task: Task, params: Params, test: ArrayData, trigger: Trigger
) -> float:
    """Share of triggered test rows, true label not the target, predicted as target.

    NaN when the test set has no row of another class.
    """
    keep = test.y != trigger.target
    if not keep.any():
        return float("nan")
    x = trigger.apply(test.x[keep])
    proba = np.asarray(task.predict(params, x))
    return float(np.mean(proba.argmax(axis=1) == trigger.target))


@dataclass(frozen=True, slots=True)
class Poisoned:
    """The federation as the attack left it, who is malicious, and the trigger."""

    data: FederatedData
    malicious: tuple[str, ...]
    trigger: Trigger | None


def poison_federation(
    data: FederatedData, attack: AttackConfig, *, seed: int
) -> Poisoned:
    """Apply ``attack``'s data transforms to its malicious sites' training rows.

    Deterministic in ``seed``: every worker process that rebuilds the federation
    poisons exactly the same rows.
    """
    names = tuple(s.name for s in data.sites)
    bad = malicious_sites(attack, names, seed)
    trigger = (
        None
        if attack.backdoor is None
        else make_trigger(
            attack.backdoor,
            pooled_train=data.pooled_train(),
            n_classes=data.info.n_classes,
        )
    )
    sites = []
    for index, site in enumerate(data.sites):
        train = site.train
        if site.name in bad:
            if attack.kind == "label_flip":
                train = flip_labels(train, data.info.n_classes)
            if trigger is not None:
                train = trigger.poison(train, np.random.default_rng([seed, index]))
        sites.append(replace(site, train=train) if train is not site.train else site)
    return Poisoned(replace(data, sites=tuple(sites)), bad, trigger)
