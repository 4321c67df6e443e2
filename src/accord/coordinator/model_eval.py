"""How a round's new model is measured before the round is recorded.

Every ``[evaluation] every`` rounds (and always after the last), a completed
round's model is evaluated centrally (on the coordinator's own holdout, in a
simulation) and by the sites (:mod:`accord.coordinator.federated_eval`), whose
reports are held to the federation's bounds: a refused report is recorded as an
``eval_refused`` run event, never averaged in. A deployed secure run with
declared fairness groups also sums the sites' per-group counts securely
(:mod:`accord.coordinator.group_sum`) and records who took part. The metrics go
into the round's record with the training metrics; :class:`Coordinator` calls
:meth:`ModelEvaluation.run` while the round's checkpoint is being written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from accord.config import FedConfig
from accord.coordinator.executor import EvalDone, Executor, JobFailed
from accord.coordinator.federated_eval import federated_eval
from accord.coordinator.integrity import ExampleBounds
from accord.params import Params
from accord.records import MetricValue

if TYPE_CHECKING:  # the store's implementations pull in SQLAlchemy
    from accord.store.protocol import RunStore

__all__ = ["CentralEval", "ModelEvaluation"]

#: The coordinator's own evaluation of a model: metric name to value.
CentralEval = Callable[[Params], Mapping[str, float]]


class ModelEvaluation:
    """The ``[evaluation]`` of a run's models, with what it records on the way."""

    def __init__(
        self,
        config: FedConfig,
        *,
        executor: Executor,
        store: RunStore,
        clock: Callable[[], float],
        bounds: ExampleBounds,
        central_eval: CentralEval | None = None,
        fairness_groups: Sequence[str] | None = None,
    ) -> None:
        self._config = config
        self._executor = executor
        self._store = store
        self._clock = clock
        self._bounds = bounds
        self._central = central_eval
        #: The declared groups of a deployed secure run's fairness sum (None: no
        #: secure sum of the counts).
        self._groups = (
            tuple(fairness_groups)
            if fairness_groups and config.secure_aggregation.mode != "off"
            else None
        )

    def due(self, number: int) -> bool:
        """Whether round ``number``'s model is evaluated (every n-th, and the last)."""
        every = self._config.evaluation.every
        return number % every == 0 or number == self._config.federation.rounds

    def run(
        self, run_id: str, number: int, params: Params, t0: float, *, published: str
    ) -> list[MetricValue]:
        """Evaluate round ``number``'s model ``params``, published as ``published``.

        ``t0`` is when the round started: the sites' reports are awaited until
        twice the round's deadline from then.
        """
        out: list[MetricValue] = []
        ev = self._config.evaluation
        if ev.central and self._central is not None:
            for name, value in self._central(params).items():
                out.append(MetricValue("central", None, name, float(value)))
        if ev.federated:
            out += self._federated(run_id, number, t0)
            if self._groups is not None:
                out += self._fairness_sum(run_id, number, published)
        return out

    def _fairness_sum(
        self, run_id: str, number: int, published: str
    ) -> list[MetricValue]:
        """The round's per-group counts, summed securely; who is in them, recorded."""
        from accord.coordinator.group_sum import EVENT_KIND, secure_group_sum

        assert self._groups is not None
        wire = getattr(self._executor, "run_id", run_id)
        done = secure_group_sum(
            self._executor,
            round_number=number,
            model_digest=published,
            groups=self._groups,
            settings=self._config.secure_aggregation,
            bounds=self._bounds,
            clock=self._clock,
            run_id=wire if isinstance(wire, str) else run_id,
        )
        self._store.record_event(
            run_id,
            round=number,
            participant=None,
            kind=EVENT_KIND,
            detail=done.detail(),
        )
        return done.metrics()

    def _federated(self, run_id: str, number: int, t0: float) -> list[MetricValue]:
        def refused(done: EvalDone | JobFailed, reason: str) -> None:
            self._store.record_event(
                run_id,
                round=done.round,
                participant=done.participant,
                kind="eval_refused",
                detail=reason,
            )

        return federated_eval(
            self._executor,
            number=number,
            deadline=t0 + 2 * self._config.round.deadline_s,
            clock=self._clock,
            bounds=self._bounds,
            refused=refused,
        )
