"""What a round's strategy asks of local training, as declared in the task's options.

The coordinator declares it with each train task under :data:`OPTION_KEY` (JSON,
validated here on arrival, like the DP-SGD plan):

* ``proximal_mu`` (FedProx, Li et al. 2020): minimise the local loss plus
  ``mu/2 ||w - w_global||^2``, i.e. add ``mu (w - w_global)`` to every gradient;
* ``scaffold`` (Karimireddy et al. 2020): correct every gradient step by
  ``c - c_i`` and return ``delta_c`` with the update; ``run`` names the run, under
  which the site keeps its ``c_i`` (:mod:`accord.task.strategy_site`);
* ``report_loss`` (q-FedAvg): report the loss of the global model on the training
  data before training.

The adapters that can (:mod:`accord.task.numpy_task`, :mod:`accord.task.torch`) say
so with ``supports_proximal`` and ``supports_scaffold`` and read the two gradient
terms with :func:`gradient_terms`; a task without them is refused when the run
starts (:func:`check_task`) and again by the site. SCAFFOLD's correction
``c - c_i`` is made at the site and handed to the adapter in the options under
:data:`CORRECTION_KEY` (never sent: it is built where it is used). Ditto's personal
model is regularised toward the global model, not toward where its own training
starts: the site hands that anchor under :data:`ANCHOR_KEY`
(:mod:`accord.task.ditto`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from accord.errors import ConfigError
from accord.params import Params, ParamSpec

__all__ = [
    "ANCHOR_KEY",
    "CORRECTION_KEY",
    "OPTION_KEY",
    "GradientTerms",
    "LocalStrategy",
    "check_task",
    "gradient_terms",
]

#: The key of a train task's options that carries the declaration.
OPTION_KEY = "accord.strategy"
#: The key under which the site hands SCAFFOLD's ``c - c_i`` to the adapter.
CORRECTION_KEY = "accord.scaffold_correction"
#: The key under which a site hands the proximal term's anchor (Ditto's global
#: model) to the adapter; absent, the anchor is where training starts (FedProx).
ANCHOR_KEY = "accord.proximal_anchor"


@dataclass(frozen=True, slots=True)
class LocalStrategy:
    """One round's local-training requirements, as the coordinator declares them."""

    proximal_mu: float = 0.0
    scaffold: bool = False
    report_loss: bool = False
    run: str = ""

    def __post_init__(self) -> None:
        mu = self.proximal_mu
        if isinstance(mu, bool) or not isinstance(mu, float | int):
            raise ConfigError(f"must be a number, got {mu!r}", key="proximal_mu")
        if not (math.isfinite(mu) and mu >= 0):
            raise ConfigError(
                f"must be a finite number >= 0, got {mu!r}", key="proximal_mu"
            )
        for key in ("scaffold", "report_loss"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError("must be true or false", key=key)
        if not isinstance(self.run, str) or len(self.run) > 200:
            raise ConfigError("must be a run id (text)", key="run")
        if self.scaffold and not self.run:
            raise ConfigError("SCAFFOLD needs the run's id to keep c_i", key="run")

    @property
    def active(self) -> bool:
        """True if it asks anything of local training."""
        return self.proximal_mu > 0 or self.scaffold or self.report_loss

    def to_json(self) -> dict[str, Any]:
        """The declaration as JSON-ready values (what travels in the options)."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: object) -> LocalStrategy:
        """Parse a declaration; :class:`ConfigError` naming what is wrong."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"the strategy declaration is not an object: {raw!r}")
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(
                f"the strategy declaration has unknown keys {unknown}; is this site "
                "running an older accord than the coordinator?"
            )
        return cls(**{str(k): v for k, v in raw.items()})

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> LocalStrategy:
        """The declaration in a train task's ``options`` (none: plain local SGD)."""
        raw = options.get(OPTION_KEY)
        return cls() if raw is None else cls.from_json(raw)


@dataclass(frozen=True, slots=True)
class GradientTerms:
    """What an adapter adds to each gradient: ``mu (w - anchor) + correction``."""

    mu: float
    anchor: Params | None
    correction: Params | None

    @property
    def active(self) -> bool:
        """True if anything is added."""
        return self.mu > 0 or self.correction is not None


def gradient_terms(
    options: Mapping[str, Any], start: Params, spec: ParamSpec
) -> GradientTerms:
    """The terms declared in ``options`` for training that starts from ``start``.

    ``start`` is the global model (FedProx's anchor) unless the site gave another
    anchor under :data:`ANCHOR_KEY`. :class:`ConfigError` if the site's SCAFFOLD
    correction or that anchor is missing or does not fit the model.
    """
    declared = LocalStrategy.of(options)
    correction = options.get(CORRECTION_KEY)
    if declared.scaffold:
        if not isinstance(correction, Params):
            raise ConfigError(
                "SCAFFOLD was declared but the site gave no correction c - c_i: "
                "train through accord.task.strategy_site.StrategySite",
                key="scaffold",
            )
        spec.check(correction)
    mu = float(declared.proximal_mu)
    anchor = options.get(ANCHOR_KEY, start)
    if anchor is not start:
        if not isinstance(anchor, Params):
            raise ConfigError(
                "the proximal anchor the site gave is not a model", key="proximal_mu"
            )
        spec.check(anchor)
    return GradientTerms(
        mu=mu,
        anchor=anchor if mu > 0 else None,
        correction=correction if declared.scaffold else None,
    )


def check_task(task: object, *, proximal: bool, scaffold: bool, name: str) -> None:
    """Refuse at run start a task that cannot do what the strategy asks.

    A task may say why in a ``strategy_refusal`` attribute (the scikit-learn
    adapter does); the message carries it.
    """
    why = getattr(task, "strategy_refusal", None)
    for wanted, flag, what, key in (
        (proximal, "supports_proximal", "FedProx's proximal term", "proximal_mu"),
        (scaffold, "supports_scaffold", "SCAFFOLD's correction", "scaffold"),
    ):
        if wanted and getattr(task, flag, False) is not True:
            raise ConfigError(
                f"the task {name} ({type(task).__name__}) cannot add {what} to its "
                "gradient steps"
                + (
                    f": {why}"
                    if isinstance(why, str)
                    else "; use accord.task.torch or the numpy tasks "
                    "(accord.task.numpy_task:softmax_regression / :mlp), or turn "
                    "it off"
                ),
                key=f"strategy.{key}",
            )
