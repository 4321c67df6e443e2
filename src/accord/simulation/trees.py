"""``accord simulate`` for gradient-boosted trees: grow, score, record, compare.

A ``[model] kind = "gbdt"`` federation has no task and no rounds of local
training: the coordinator grows one tree per round from the sites' summed
histograms (:func:`accord.trees.boost`), plainly or, with ``[secure_aggregation]
mode = "masking"``, under the SecAgg masking protocol (only sums reach it). Each
tree is recorded in the store as a round, like any run's: every site's outcome
(the rows it summed over), the central test metrics and each site's holdout
metrics. The final model is written as XGBoost JSON beside the store's
checkpoints (``{store directory}/checkpoints/{run}/model.json``) and named by the
run's summary (``model``), so ``accord runs`` lists the run and
``xgboost.Booster(model_file=...)`` loads the model. The rounds name no
checkpoint: a checkpoint is a safetensors file of parameters, which commands
such as ``accord release`` load; they refuse a gbdt run instead.

With ``[evaluation] baselines`` the run is compared with XGBoost on the pooled
training rows (same depth, trees, learning rate, bins and regularisation; the
``trees`` extra) and with each site boosting alone on its own rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.config import FedConfig
from accord.coordinator.lineage import LedgerSetup, file_digest
from accord.data.arrays import ArrayData
from accord.data.federation import FederatedData
from accord.errors import ConfigError
from accord.evaluation.metrics import accuracy, log_loss, roc_auc
from accord.records import MetricValue, ParticipantOutcome, RoundRecord
from accord.simulation.baselines import Comparison
from accord.simulation.context import build_data
from accord.simulation.trees_ledger import TreesLedger
from accord.store.protocol import FinalStatus, RunStore, utc_now
from accord.trees import (
    Booster,
    MaskedSum,
    PlainSum,
    Summer,
    TreeParams,
    TreeSite,
    boost,
    to_xgboost_json,
)

__all__ = ["TreesRun", "pooled_xgboost", "score", "simulate_trees", "tree_params"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TreesRun:
    """A finished gradient-boosted run: its id, model, file and comparison."""

    run_id: str
    booster: Booster
    model_path: Path
    central: Mapping[str, float]
    comparison: Comparison | None
    secure_sums: int


def tree_params(config: FedConfig) -> TreeParams:
    """The boosting settings of ``[trees]`` (trees default to the rounds)."""
    t = config.trees_settings
    return TreeParams(
        trees=t.trees if t.trees is not None else config.federation.rounds,
        max_depth=t.depth,
        learning_rate=t.learning_rate,
        bins=t.bins,
        reg_lambda=t.reg_lambda,
        gamma=t.gamma,
        min_child_weight=t.min_child_weight,
        sketch_cells=t.sketch_cells,
        sketch_range=t.sketch_range,
    )


def score(proba: npt.NDArray[np.float64], data: ArrayData) -> dict[str, float]:
    """AUC, accuracy and log loss of ``P(y = 1)`` on ``data``."""
    if len(data) == 0:
        return {"auc": math.nan, "accuracy": math.nan, "loss": math.nan}
    two = np.column_stack([1.0 - proba, proba])
    return {
        "auc": roc_auc(data.y, two),
        "accuracy": accuracy(data.y, two),
        "loss": log_loss(data.y, two),
    }


def _sites(data: FederatedData) -> list[TreeSite]:
    if len(data.info.class_names) != 2:
        raise ConfigError(
            f"gradient-boosted trees fit two classes; {data.info.name} has "
            f"{len(data.info.class_names)}",
            key="model.kind",
        )
    return [TreeSite(s.name, s.train.x, s.train.y) for s in data.sites]


def _summer(config: FedConfig, names: tuple[str, ...]) -> Summer:
    settings = config.secure_aggregation
    if settings.mode == "masking":
        return MaskedSum(names, threshold=settings.threshold, degree=settings.degree)
    return PlainSum()


def simulate_trees(
    config: FedConfig,
    store: RunStore,
    *,
    model_dir: Path,
    on_tree: Callable[[int, Mapping[str, float]], None] | None = None,
    on_baseline: Callable[[str], None] | None = None,
    on_run: Callable[[str], None] | None = None,
    ledger: LedgerSetup | None = None,
) -> TreesRun:
    """Grow, score and record the federation's trees; the run.

    ``model_dir`` is the folder the run's ``{run}/model.json`` goes to;
    ``on_run`` gets the run's id once it exists; ``ledger``: sign the run's
    entries (:mod:`accord.simulation.trees_ledger`; None: keep none). Ctrl-C
    marks the run aborted (a gbdt run cannot resume yet) and propagates.
    """
    params = tree_params(config)
    data = build_data(config)
    sites = _sites(data)
    summer = _summer(config, tuple(s.name for s in sites))
    run_id = store.create_run(
        name=config.federation.name,
        config=config.to_json_dict(),
        seed=config.federation.seed,
        rounds_planned=params.trees,
    )
    if on_run is not None:
        on_run(run_id)
    signed = None
    if ledger is not None:
        signed = TreesLedger(
            ledger,
            store,
            run_id,
            config=config.to_json_dict(),
            sites=[s.name for s in sites],
            masked=isinstance(summer, MaskedSum),
        )
    recorder = _Recorder(config, store, run_id, data, sites, on_tree, model_dir)
    recorder.ledger = signed
    try:
        booster = boost(sites, params, summer, on_tree=recorder.tree_done)
        path = recorder.model_path
        if path is None:  # written with the last tree, which boost always grows
            raise RuntimeError("the boosting loop ended before its last tree")
    except KeyboardInterrupt:  # Ctrl-C: recorded trees stay, the run is aborted
        logger.warning("run %s interrupted after %d tree(s)", run_id, recorder.done)
        recorder.finish("aborted", {"kind": "gbdt"}, reason="interrupted")
        raise
    except BaseException as exc:
        recorder.finish("failed", {"kind": "gbdt"}, reason=type(exc).__name__)
        raise
    comparison = None
    if config.evaluation.baselines:
        comparison = compare_trees(
            data, params, recorder.central, config.evaluation.metric, on_baseline
        )
    summary: dict[str, Any] = {
        "kind": "gbdt",
        "model": str(path),
        "trees": len(booster.trees),
        "secure_aggregation": config.secure_aggregation.mode,
        "final": {f"central.{k}": v for k, v in recorder.central.items()},
    }
    if comparison is not None:
        summary["comparison"] = _finite(comparison.to_dict())
    recorder.finish("completed", summary, reason=None)
    sums = summer.rounds if isinstance(summer, MaskedSum) else 0
    return TreesRun(run_id, booster, path, recorder.central, comparison, sums)


class _Recorder:
    """Scores each new tree and records it as the run's next round."""

    def __init__(
        self,
        config: FedConfig,
        store: RunStore,
        run_id: str,
        data: FederatedData,
        sites: list[TreeSite],
        on_tree: Callable[[int, Mapping[str, float]], None] | None,
        model_dir: Path,
    ) -> None:
        self._config, self._store, self._run = config, store, run_id
        self._data, self._sites, self._on_tree = data, sites, on_tree
        self._model_dir = model_dir
        self.model_path: Path | None = None
        self.ledger: TreesLedger | None = None
        self._chain = hashlib.sha256(b"").hexdigest()  # no tree yet
        self._file_digest: str | None = None
        self._started = utc_now()
        self._clock = time.perf_counter()
        self.done = 0
        self.central: dict[str, float] = {}

    def tree_done(self, number: int, booster: Booster) -> None:
        every = self._config.evaluation.every
        evaluate = number % every == 0 or number == booster.params.trees
        metrics: list[MetricValue] = []
        if evaluate and self._config.evaluation.central:
            self.central = score(
                booster.predict_proba(self._data.test.x), self._data.test
            )
            metrics += [
                MetricValue("central", None, k, v) for k, v in self.central.items()
            ]
        if evaluate and self._config.evaluation.federated:
            for s in self._data.sites:
                found = score(booster.predict_proba(s.holdout.x), s.holdout)
                metrics += [MetricValue("site", s.name, k, v) for k, v in found.items()]
        if number == booster.params.trees:  # the model, before its round is stored
            folder = self._model_dir / self._run
            self.model_path = _write_model(booster, self._data, folder)
            self._file_digest = file_digest(self.model_path)
        self._record(number, booster, tuple(metrics))
        if self._on_tree is not None:
            self._on_tree(number, self.central)

    def _record(
        self,
        number: int,
        booster: Booster,
        metrics: tuple[MetricValue, ...],
    ) -> None:
        now = utc_now()
        spent = time.perf_counter() - self._clock
        # Each round's model digest chains the last one with the new tree's arrays:
        # hashing the whole ensemble every round would cost O(trees^2).
        tree = json.dumps(asdict(booster.trees[-1]), sort_keys=True).encode()
        self._chain = hashlib.sha256(self._chain.encode() + tree).hexdigest()
        outcomes = tuple(
            ParticipantOutcome(s.name, "ok", None, s.rows, None, spent)
            for s in self._sites
        )
        record = RoundRecord(
            run_id=self._run,
            number=number,
            started_at=self._started,
            finished_at=now,
            status="completed",
            global_digest=self._chain,
            selected=tuple(s.name for s in self._sites),
            outcomes=outcomes,
            metrics=metrics,
            checkpoint=None,  # a round's checkpoint is safetensors; see summary
        )
        if self.ledger is not None:
            self.ledger.record_round(record)
        else:
            self._store.record_round(record)
        self._started, self._clock = now, time.perf_counter()
        self.done = number

    def finish(
        self, status: FinalStatus, summary: dict[str, Any], *, reason: str | None
    ) -> None:
        """End the run, with its closing ledger entry when it keeps a ledger."""
        if self.ledger is None:
            self._store.finish_run(self._run, status=status, summary=summary)
            return
        path = None if self.model_path is None else str(self.model_path)
        self.ledger.finish(
            status=status,
            model=self._file_digest or self._chain,
            path=path,
            rounds=self.done,
            summary=summary,
            reason=reason,
        )


def _write_model(booster: Booster, data: FederatedData, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.json"
    document = to_xgboost_json(booster, feature_names=data.info.feature_names)
    path.write_text(json.dumps(document), encoding="utf-8")
    logger.info("wrote the XGBoost JSON model to %s", path)
    return path


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def pooled_xgboost(data: FederatedData, params: TreeParams) -> npt.NDArray[np.float64]:
    """``P(y = 1)`` on the test set of XGBoost trained on the pooled training rows.

    The same depth, trees, learning rate, bins and regularisation, histogram
    method, one thread (deterministic). Raises
    :class:`~accord.errors.MissingExtraError` without the ``trees`` extra.
    """
    from accord.errors import MissingExtraError

    try:
        import xgboost as xgb
    except ImportError:
        raise MissingExtraError(
            extra="trees", package="xgboost", feature="the pooled XGBoost baseline"
        ) from None
    pooled = data.pooled_train()
    booster = xgb.train(
        {
            "objective": "binary:logistic",
            "tree_method": "hist",
            "max_depth": params.max_depth,
            "eta": params.learning_rate,
            "max_bin": params.bins,
            "lambda": params.reg_lambda,
            "gamma": params.gamma,
            "min_child_weight": params.min_child_weight,
            "nthread": 1,
            "seed": 0,
        },
        xgb.DMatrix(pooled.x, label=pooled.y),
        num_boost_round=params.trees,
    )
    return np.asarray(booster.predict(xgb.DMatrix(data.test.x)), dtype=np.float64)


def compare_trees(
    data: FederatedData,
    params: TreeParams,
    federated: Mapping[str, float],
    metric: str,
    on_step: Callable[[str], None] | None = None,
) -> Comparison:
    """Federated trees beside pooled XGBoost and each site boosting alone."""
    failed: dict[str, str] = {}
    nan = {"auc": math.nan, "accuracy": math.nan, "loss": math.nan}
    try:
        pooled = score(pooled_xgboost(data, params), data.test)
    except ImportError as exc:
        failed["pooled"] = str(exc)
        pooled = dict(nan)
    if on_step is not None:
        on_step("pooled")
    alone: dict[str, dict[str, float]] = {}
    for s in data.sites:
        try:
            own = boost([TreeSite(s.name, s.train.x, s.train.y)], params, PlainSum())
            alone[s.name] = score(own.predict_proba(data.test.x), data.test)
        except ValueError as exc:  # a site too small or single-class to bin
            failed[s.name] = str(exc)[:300]
            alone[s.name] = dict(nan)
        if on_step is not None:
            on_step(s.name)
    return Comparison(metric, dict(federated), pooled, alone, failed)
