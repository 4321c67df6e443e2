"""The secure sum of a simulated federation's fairness counts: only totals leave.

Under secure aggregation the federation chose that no site's figures reach the
coordinator one by one, and a site's per-group confusion counts are such figures
(they show how the model treats each group at that site). ``accord release``
therefore sums them with the masking protocol, as a deployment sums its
preprocessing statistics (:mod:`accord.coordinator.statistics`):

1. every site counts on its own holdout, per declared group of the sensitive
   column (:func:`~accord.simulation.holdouts.site_counts`), lays the counts out
   over the declared groups (:func:`~accord.evaluation.group_sums.counts_vector`)
   and encodes them *exactly* (:class:`~accord.secagg.exact.ExactEncoding`);
2. the SecAgg protocol runs among the sites and a :class:`~accord.secagg.server.
   SecAggServer` (:func:`~accord.secagg.local.run_local_round`: the protocol's
   own messages, in one process), with the sites' own Ed25519 identity keys, the
   run's threshold and neighbour degree; the server unmasks only the sum;
3. the sum decodes to the federation's counts per group
   (:func:`~accord.evaluation.group_sums.counts_from_sum`), the same integers as
   the plain sum of every site's counts, so the rates and gaps are exact.

CKKS runs sum their counts this way too (masking needs only identity keys). Every
site must contribute: the counts of a subset are not the federation's, so a
dropout refuses the sum rather than report partial figures.
"""

from __future__ import annotations

import logging
import uuid

from accord.config import FedConfig
from accord.errors import ConfigError, DatasetError, SecAggAborted
from accord.evaluation.fairness import GroupCounts
from accord.evaluation.group_sums import counts_from_sum, counts_length, counts_vector
from accord.params import Params
from accord.secagg.config import SecAggConfig
from accord.secagg.exact import ExactEncoding
from accord.secagg.local import run_local_round
from accord.secagg.mask import RingVector
from accord.simulation.context import build_context
from accord.simulation.holdouts import check_fairness, sensitive_values, site_counts
from accord.simulation.secure import identity_keys, load_identity, public_key

__all__ = ["secure_group_counts"]

logger = logging.getLogger(__name__)


def secure_group_counts(config: FedConfig, params: Params) -> dict[str, GroupCounts]:
    """The federation's per-group counts of ``params``, summed securely.

    Raises :class:`ConfigError` when fairness is undefined for the federation or
    the sum cannot be set up, :class:`~accord.errors.DatasetError` when a site
    cannot lay its counts out or the sum is one no holdouts give, and
    :class:`SecAggAborted` when a site dropped out of the sum.
    """
    ctx = build_context(config)
    column = check_fairness(config, ctx.data.info.class_names)
    values, groups = sensitive_values(config, column)
    encoding = ExactEncoding(counts_length(len(groups)))
    threshold = config.evaluation.decision_threshold
    inputs: dict[str, RingVector] = {}
    for name in ctx.participants:  # what each site does on its own
        counts = site_counts(ctx, params, name, values[name], threshold=threshold)
        try:
            inputs[name] = encoding.encode(counts_vector(counts, groups))
        except DatasetError as exc:
            raise DatasetError(f"site {name!r}: {exc}") from None
    secret = identity_keys(sorted(inputs))
    settings = config.secure_aggregation
    try:
        secagg = SecAggConfig.create(
            run_id=f"fairness-{uuid.uuid4().hex}",
            round_number=0,
            identities={p: public_key(raw) for p, raw in secret.items()},
            vector_size=encoding.words,
            threshold=settings.threshold,
            degree=settings.degree,
        )
    except ValueError as exc:  # ConfigError is one
        raise ConfigError(
            f"the secure sum of the fairness counts cannot start: {exc}; check "
            "[secure_aggregation] threshold and degree against the number of sites"
        ) from None
    run = run_local_round(
        secagg, {p: load_identity(raw) for p, raw in secret.items()}, inputs
    )
    if run.result.dropped:
        raise SecAggAborted(
            f"{', '.join(run.result.dropped)} dropped out of the secure sum of the "
            "fairness counts; the counts of the others are not the federation's",
            stage="unmask",
        )
    try:
        total = encoding.decode(run.result.total, len(run.result.contributors))
    except ValueError as exc:
        raise DatasetError(
            f"the securely summed group counts are impossible ({exc}); secure "
            "aggregation hides which site sent it: check the sites' accord versions"
        ) from None
    rows = sum(len(ctx.site(p).holdout) for p in ctx.participants)
    summed = counts_from_sum(total, groups, max_rows=rows)
    logger.info(
        "summed the fairness counts of %d site(s) securely over %d declared group(s)",
        len(inputs),
        len(groups),
    )
    return summed
