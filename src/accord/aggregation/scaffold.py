"""SCAFFOLD's control variates (Karimireddy et al., ICML 2020), as pure functions.

SCAFFOLD corrects client drift on skewed data: each site ``i`` keeps a control
variate ``c_i`` (its estimate of its own gradient) and the coordinator keeps ``c``
(their mean). Every local gradient step adds ``c - c_i``, so a site's steps follow
the federation's direction rather than its own data's. After ``K`` local steps at
learning rate ``lr`` from the global model ``x`` to ``y_i``, option II of the paper
updates the site's variate without an extra pass over the data::

    c_i+ = c_i - c + (x - y_i) / (K lr)      delta_c = c_i+ - c_i

and the coordinator, given the round's updates ``delta_y`` and ``delta_c`` from the
set ``S`` of sites that answered out of ``N``, steps the model with its server
optimizer on the mean ``delta_y`` and moves ``c += |S| / N * mean(delta_c)``.

Both means are the round's mean (example-weighted, as FedAvg's): with every site
answering this keeps ``c`` equal to the example-weighted mean of the ``c_i``, the
same weighting as the model's objective. (The paper averages uniformly; it weighs
sites equally in the objective too.)

To travel through the round's existing channels, ``c`` rides with the published
model and ``delta_c`` with the update, as extra tensors named ``scaffold.c/<name>``
(:func:`with_control`, :func:`split_control`): one vector per site, validated,
norm-checked and averaged like any update.
"""

from __future__ import annotations

import math

import numpy as np

from accord.params import Params

__all__ = [
    "CONTROL",
    "control_step",
    "site_control_step",
    "split_control",
    "with_control",
    "zero_control",
]

#: Prefix of the control variate's tensors in a published model and an update.
CONTROL = "scaffold.c/"


def zero_control(params: Params) -> Params:
    """A zero control variate shaped like ``params`` (the paper's start)."""
    return Params({n: np.zeros_like(a) for n, a in params.items()})


def with_control(params: Params, control: Params) -> Params:
    """``params`` followed by ``control``'s tensors under :data:`CONTROL` names."""
    params.spec.check(control)
    return Params([*params.items(), *((CONTROL + n, a) for n, a in control.items())])


def split_control(extended: Params) -> tuple[Params, Params | None]:
    """The model part and the control part (None if there is none) of ``extended``."""
    model = {n: a for n, a in extended.items() if not n.startswith(CONTROL)}
    control = {
        n[len(CONTROL) :]: a for n, a in extended.items() if n.startswith(CONTROL)
    }
    if not control:
        return Params(model), None
    out = Params(model)
    out.spec.check(control)
    return out, Params(control)


def site_control_step(
    c_i: Params, c: Params, update: Params, *, steps: int, lr: float
) -> tuple[Params, Params]:
    """Option II: the site's new ``c_i`` and ``delta_c`` after ``steps`` local steps.

    ``update`` is ``y_i - x`` (local minus global), so ``(x - y_i) / (K lr)`` is
    ``-update / (K lr)``. Computed in float64, returned in each tensor's dtype.
    """
    if steps < 1:
        raise ValueError(f"SCAFFOLD needs at least one local step, got {steps}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"the local learning rate must be positive, got {lr!r}")
    scale = 1.0 / (steps * lr)
    new: dict[str, np.ndarray] = {}
    delta: dict[str, np.ndarray] = {}
    for name, ci in c_i.items():
        wide = (
            ci.astype(np.float64)
            - c[name].astype(np.float64)
            - update[name].astype(np.float64) * scale
        )
        new[name] = wide.astype(ci.dtype)
        delta[name] = (wide - ci.astype(np.float64)).astype(ci.dtype)
    return Params(new), Params(delta)


def control_step(c: Params, mean_delta_c: Params, *, fraction: float) -> Params:
    """The coordinator's new ``c``: ``c + fraction * mean_delta_c``, ``|S|/N``."""
    if not 0 < fraction <= 1:
        raise ValueError(f"the answering share |S|/N must be in (0, 1], got {fraction}")
    c.spec.check(mean_delta_c)
    return Params(
        {
            n: (a.astype(np.float64) + fraction * mean_delta_c[n]).astype(a.dtype)
            for n, a in c.items()
        }
    )
