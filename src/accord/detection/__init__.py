"""Detection of anomalous updates: per-update scores and the quarantine policy.

Pure numpy (no grpc, SQLAlchemy, typer or torch). :func:`score_round` scores every
update of a plain round against the others and the aggregate;
:class:`QuarantineState` counts each site's flags and says who is excluded from
aggregation. The coordinator only calls them (:mod:`accord.coordinator.runner`).
"""

from accord.detection.policy import QuarantineState, replay
from accord.detection.scores import FlagRules, UpdateMatrix, score_round

__all__ = ["FlagRules", "QuarantineState", "UpdateMatrix", "replay", "score_round"]
