"""Agree on the data contract before round 1: record it, warn of drift, or refuse.

A simulation (:mod:`accord.simulation.profiling`) and a deployment
(:func:`accord.coordinator.preparation.prepare_data`) both end their preparation
with each site's guarded data profile; :func:`settle` turns them into the
:class:`~accord.data.contract.DataContract`, records it with the run
(:func:`record_contract`: the contract and the profiles behind it, as one JSON
document of kind ``data_contract``, and one ``profile_flag`` event per flag),
logs each flag as a warning and, with ``[profile] refuse``, stops the run before
round 1 with :class:`~accord.errors.DriftRefused` naming them. The run's ledger
then gets its ``data-contract`` entry from the recorded document
(:meth:`accord.coordinator.lineage.Lineage.start`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from accord.config import FedConfig, ProfileConfig
from accord.coordinator.documents import record_document, recorded_document
from accord.data.contract import DataContract, agree, profile_document
from accord.data.drift import DriftThresholds
from accord.data.preprocess import Encoder
from accord.data.summary import Guard, SiteSummary
from accord.errors import DriftRefused, StoreError

if TYPE_CHECKING:
    from accord.store.protocol import RunStore

__all__ = [
    "EVENT_KIND",
    "FLAG_KIND",
    "guard_of",
    "record_contract",
    "recorded_contract",
    "refuse_if_flagged",
    "settle",
    "thresholds_of",
]

logger = logging.getLogger(__name__)

#: The kind of the store events that hold the contract and its profiles.
EVENT_KIND = "data_contract"
#: The kind of the store event of one drift flag.
FLAG_KIND = "profile_flag"


def guard_of(config: ProfileConfig) -> Guard:
    """The guard ``[profile]`` asks every site's profile to be made under."""
    return Guard(
        min_count=config.min_count,
        noise=config.noise,
        epsilon=config.epsilon,
        delta=config.delta if config.noise == "gaussian" else None,
    )


def thresholds_of(config: ProfileConfig) -> DriftThresholds:
    """The drift thresholds of ``[profile]``."""
    return DriftThresholds(
        max_smd=config.max_smd,
        max_ks=config.max_ks,
        max_tvd=config.max_tvd,
        max_label_diff=config.max_label_diff,
        max_missing_diff=config.max_missing_diff,
        significance=config.significance,
    )


def settle(
    config: FedConfig,
    encoder: Encoder,
    classes: Sequence[str],
    summaries: Sequence[tuple[str, SiteSummary]],
    *,
    warn: bool = True,
) -> DataContract:
    """The contract of ``summaries``, with its drift flags.

    :func:`refuse_if_flagged` then applies ``[profile] refuse``.

    The flags are logged (one warning, each at info; ``warn=False``: at info
    only, for a caller that shows them itself); record the contract with
    :func:`record_contract` (before raising, where the run exists).
    """
    profile = config.profile
    contract = agree(
        encoder,
        classes,
        summaries,
        guard=guard_of(profile) if summaries else None,
        thresholds=thresholds_of(profile),
    )
    if warn and contract.flags:
        sites = len({f.site for f in contract.flags})
        shown = "; ".join(str(f) for f in contract.flags[:3])
        more = len(contract.flags) - 3
        logger.warning(
            "data drift: %d flag(s) at %d site(s): %s%s (`accord profile` lists "
            "them; recorded with the run)",
            len(contract.flags),
            sites,
            shown,
            f"; and {more} more" if more > 0 else "",
        )
    for flag in contract.flags:
        logger.info("data drift: %s", flag)
    return contract


def refuse_if_flagged(config: FedConfig, contract: DataContract) -> None:
    """With ``[profile] refuse``, :class:`DriftRefused` naming every flag."""
    if not (config.profile.refuse and contract.flags):
        return
    texts = tuple(str(f) for f in contract.flags)
    shown = "; ".join(texts[:10])
    more = f" and {len(texts) - 10} more" if len(texts) > 10 else ""
    raise DriftRefused(
        f"the run stops before round 1: {len(texts)} drift flag(s) ({shown}{more}) "
        "and [profile] refuse = true; fix or leave out the flagged site(s), raise "
        "the thresholds in [profile], or set refuse = false to train with warnings",
        flags=texts,
    )


def record_contract(store: RunStore, run_id: str, contract: DataContract) -> str:
    """Record the contract and its profiles with the run; return the contract digest.

    A run that holds this very contract already (resumed, its sites unchanged)
    records nothing again.
    """
    found = recorded_contract(store, run_id)
    if found is not None and found[0] == contract.digest:
        return contract.digest
    doc = {
        "digest": contract.digest,
        "contract": contract.to_dict(),
        "profile": profile_document(contract),
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
    record_document(store, run_id, EVENT_KIND, text)
    for flag in contract.flags:
        store.record_event(
            run_id,
            round=0,
            participant=flag.site,
            kind=FLAG_KIND,
            detail=str(flag),
        )
    return contract.digest


def recorded_contract(
    store: RunStore, run_id: str
) -> tuple[str, Mapping[str, Any], Mapping[str, Any]] | None:
    """(digest, contract, profile) last recorded with ``run_id``; None if none."""
    data = recorded_document(store, run_id, EVENT_KIND)
    if data is None:
        return None
    try:
        doc = json.loads(data)
        digest, contract, profile = doc["digest"], doc["contract"], doc["profile"]
    except (ValueError, KeyError, TypeError):
        raise StoreError(
            f"the data contract recorded with run {run_id} is unreadable"
        ) from None
    if not (isinstance(contract, dict) and isinstance(profile, dict)):
        raise StoreError(f"the data contract recorded with run {run_id} is unreadable")
    return str(digest), contract, profile
