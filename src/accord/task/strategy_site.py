"""A site's part of the round's strategy, as a wrapper around any task.

:class:`StrategySite` wraps the user's task at the site (in every simulation process
and in ``accord participant``) and does what the declared
:class:`~accord.task.local_strategy.LocalStrategy` asks beyond the adapter's own
gradient terms:

* **q-FedAvg**: before training, the loss of the global model on the site's
  training rows (log loss of the task's predictions, accord's own metric) is
  reported with the update as ``initial_loss``;
* **SCAFFOLD**: the published model carries the coordinator's ``c``
  (:func:`~accord.aggregation.scaffold.split_control`). The site loads its own
  ``c_i`` (zero at first), hands ``c - c_i`` to the adapter, and after training
  computes option II's ``c_i+`` and ``delta_c``
  (:func:`~accord.aggregation.scaffold.site_control_step`) with ``K`` the local
  steps the adapter took (``epochs * ceil(rows / batch_size)``, or the DP-SGD
  plan's steps). It keeps ``c_i+`` and returns ``c + delta_c`` as the control part
  of its new parameters, so that the update (new minus published) carries
  ``delta_c`` (rounded once to the tensor's dtype). ``c_i`` itself never leaves.

``c_i`` is kept in :class:`ControlStore` files, one per round the site trained
(``<dir>/<run>/<site>/round-NNNNN.safetensors``, written atomically; ``<site>``
is :func:`~accord.task.site_folder.site_folder` of the name). A round loads
the newest file of an *earlier* round, so a round that is trained again after the
coordinator was interrupted (it was never recorded) starts from the same ``c_i`` as
the first time: a resumed run matches an uninterrupted one. Older files are pruned.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file, save_file

from accord.aggregation.qfedavg import LOSS_METRIC
from accord.aggregation.scaffold import site_control_step, split_control, with_control
from accord.data.arrays import ArrayData
from accord.errors import ConfigError, StoreError
from accord.evaluation.metrics import log_loss
from accord.params import Params
from accord.privacy.dpsgd import DpSgdPlan
from accord.task.local_strategy import CORRECTION_KEY, LocalStrategy
from accord.task.protocol import Task, TrainConfig, TrainResult
from accord.task.site_folder import site_folder

__all__ = ["ControlStore", "StrategySite", "local_steps"]

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_FILE = re.compile(r"^round-(\d{5,})\.safetensors$")


def _safe(name: str, what: str) -> str:
    if not _SAFE.match(name):
        raise ConfigError(
            f"{what} {name!r} cannot name a folder (letters, digits, '.', '_', '-')"
        )
    return name


def local_steps(config: TrainConfig, rows: int) -> int:
    """The gradient steps a round of local training takes (SCAFFOLD's ``K``)."""
    plan = DpSgdPlan.of(config.options)
    if plan is not None:
        return plan.steps
    return config.epochs * math.ceil(rows / config.batch_size)


class ControlStore:
    """A site's SCAFFOLD control variates, one file per round it trained."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _folder(self, run: str, site: str) -> Path:
        return self.directory / _safe(run, "run id") / site_folder(site)

    def _rounds(self, folder: Path) -> list[int]:
        if not folder.is_dir():
            return []
        return sorted(
            int(m.group(1)) for p in folder.iterdir() if (m := _FILE.match(p.name))
        )

    def load(self, run: str, site: str, *, before: int, like: Params) -> Params:
        """``c_i`` as of the newest round before ``before`` (zero if none)."""
        folder = self._folder(run, site)
        earlier = [r for r in self._rounds(folder) if r < before]
        if not earlier:
            return Params({n: np.zeros_like(a) for n, a in like.items()})
        path = folder / f"round-{earlier[-1]:05d}.safetensors"
        try:
            raw = load_file(path)
            out = Params({n: raw[n] for n in like})
            like.spec.check(out)
        except Exception as exc:  # a torn or foreign file: say which
            raise StoreError(
                f"the SCAFFOLD control variate {path} is unreadable or does not fit "
                f"the model ({exc}); delete the folder {folder} to start the site "
                "from c_i = 0 (its next updates are then less corrected)"
            ) from exc
        return out

    def save(self, run: str, site: str, round_number: int, c_i: Params) -> None:
        """Keep ``c_i`` as of ``round_number``; prune all but the two newest."""
        folder = self._folder(run, site)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"round-{round_number:05d}.safetensors"
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        os.close(fd)
        try:
            save_file({n: np.ascontiguousarray(a) for n, a in c_i.items()}, tmp)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        kept = [r for r in self._rounds(folder) if r <= round_number][-2:]
        for r in self._rounds(folder):
            if r < round_number and r not in kept:
                (folder / f"round-{r:05d}.safetensors").unlink(missing_ok=True)


class StrategySite:
    """``task``, doing the site's part of q-FedAvg and SCAFFOLD (module doc)."""

    def __init__(self, task: Task, *, state_dir: Path | None) -> None:
        self.task = task
        self.controls = None if state_dir is None else ControlStore(state_dir)
        for flag in (
            "supports_dp_sgd",
            "supports_proximal",
            "supports_scaffold",
        ):
            setattr(self, flag, getattr(task, flag, False) is True)

    def init_params(self, seed: int) -> Params:
        """The wrapped task's initial parameters."""
        return self.task.init_params(seed)

    def predict(self, params: Params, x: npt.NDArray[np.float32]) -> Any:
        """The wrapped task's predictions, from the model part of ``params``."""
        return self.task.predict(split_control(params)[0], x)

    def train(
        self, params: Params, data: ArrayData, config: TrainConfig
    ) -> TrainResult:
        """Train as declared; see the module docstring."""
        declared = LocalStrategy.of(config.options)
        model, c = split_control(params)
        extra: dict[str, float] = {}
        if declared.report_loss:
            extra[LOSS_METRIC] = (
                log_loss(data.y, self.task.predict(model, data.x)) if len(data) else 0.0
            )
        if not declared.scaffold:
            if c is not None:
                raise ConfigError(
                    "the published model carries a control variate but the task does "
                    "not declare SCAFFOLD; the coordinator and this site disagree "
                    "on the strategy (update one of them)"
                )
            result = self.task.train(model, data, config)
            return dataclasses.replace(result, metrics={**result.metrics, **extra})
        return self._scaffold(model, c, data, config, declared, extra)

    def _scaffold(
        self,
        model: Params,
        c: Params | None,
        data: ArrayData,
        config: TrainConfig,
        declared: LocalStrategy,
        extra: dict[str, float],
    ) -> TrainResult:
        if c is None or self.controls is None:
            raise ConfigError(
                "SCAFFOLD was declared but "
                + (
                    "the published model has no control variate c"
                    if c is None
                    else "this site has no folder to keep its c_i in"
                ),
                key="strategy.scaffold",
            )
        run, site = declared.run, config.participant
        c_i = self.controls.load(run, site, before=config.round, like=model)
        correction = Params({n: (c[n] - c_i[n]).astype(a.dtype) for n, a in c.items()})
        options = {**config.options, CORRECTION_KEY: correction}
        result = self.task.train(
            model, data, dataclasses.replace(config, options=options)
        )
        model.spec.check(result.params)
        steps = local_steps(config, len(data))
        if steps < 1:  # nothing trained: nothing to learn about c_i
            control = c
        else:
            update = Params(
                {
                    n: result.params[n].astype(np.float64) - a.astype(np.float64)
                    for n, a in model.items()
                }
            )
            new_c_i, delta_c = site_control_step(
                c_i, c, update, steps=steps, lr=config.learning_rate
            )
            self.controls.save(run, site, config.round, new_c_i)
            control = Params(
                {
                    n: (a.astype(np.float64) + delta_c[n]).astype(a.dtype)
                    for n, a in c.items()
                }
            )
        return TrainResult(
            with_control(result.params, control),
            num_examples=result.num_examples,
            metrics={**result.metrics, **extra, "local_steps": float(steps)},
        )
