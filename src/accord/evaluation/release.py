"""Releasing a run's final model: gather its figures, judge the gates, record it.

:func:`gate_inputs` reads what a run recorded (pure over the store's records): the
final round's central, federated and per-site metrics, the largest ε spent by any
privacy account, the sites flagged or quarantined by the robustness scores.
:func:`release_model` judges ``[gates]`` on them
(:func:`~accord.evaluation.gates.evaluate_gates`), records the decision as a run
event and, when the run keeps a ledger, as a signed ``release`` entry chained after
the run's closing entry; then, only if every gate passed, writes the final model
(its checkpoint file, byte for byte). A refused release writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.config import GatesConfig
from accord.errors import StoreError
from accord.evaluation.fairness import FairnessReport
from accord.evaluation.gates import GateInputs, GateResult, evaluate_gates
from accord.ledger.writer import LedgerSigner, LedgerWriter, site_metrics
from accord.records import RoundRecord, RunInfo
from accord.store.protocol import RunStore

__all__ = ["ReleaseDecision", "gate_inputs", "release_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReleaseDecision:
    """What ``accord release`` decided, and the file it wrote (if it passed)."""

    run_id: str
    model: str
    results: tuple[GateResult, ...]
    fairness: FairnessReport | None
    output: Path | None
    output_sha256: str | None

    @property
    def passed(self) -> bool:
        """Whether every gate passed (the model was written)."""
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, object]:
        """As plain JSON data."""
        return {
            "run": self.run_id,
            "passed": self.passed,
            "model": self.model,
            "gates": [r.to_dict() for r in self.results],
            "fairness": None if self.fairness is None else self.fairness.to_dict(),
            "output": None if self.output is None else str(self.output),
            "outputSha256": self.output_sha256,
        }


def gate_inputs(
    run: RunInfo,
    rounds: Sequence[RoundRecord],
    *,
    metric: str,
    fairness: FairnessReport | None = None,
) -> GateInputs:
    """The figures the gates judge, from a run's recorded rounds."""
    done = [r for r in rounds if r.status == "completed"]
    last = done[-1] if done else None
    central = federated = None
    sites: dict[str, float] = {}
    for m in () if last is None else last.metrics:
        if m.name != metric:
            continue
        if m.scope == "central" and m.participant is None:
            central = m.value
        elif m.scope == "federated" and m.participant is None:
            federated = m.value
        elif m.scope == "site" and m.participant is not None:
            sites[m.participant] = m.value
    spent: dict[tuple[str, str | None], float] = {}
    for r in rounds:
        for p in r.privacy:
            spent[(p.level, p.participant)] = p.epsilon  # cumulative: keep the last
    quarantined = {
        o.participant for r in rounds for o in r.outcomes if o.status == "quarantined"
    } | {s.participant for r in rounds for s in r.scores if s.excluded}
    flagged = {s.participant for r in rounds for s in r.scores if s.flagged}
    return GateInputs(
        metric=metric,
        status=run.status,
        central=central,
        federated=federated,
        sites=sites,
        epsilon=max(spent.values()) if spent else None,
        scored=any(r.scores for r in rounds),
        quarantined=tuple(sorted(quarantined)),
        flagged=tuple(sorted(flagged)),
        fairness=fairness,
    )


def _stage(checkpoint: Path, output: Path) -> tuple[Path, str]:
    """Copy the final checkpoint beside ``output``; the copy and its SHA-256.

    The released file is the checkpoint itself, byte for byte (the tensors in
    order, the model digest in its metadata): ``accord audit verify --model``
    matches it against the run's closing entry.
    """
    tmp = output.with_name(f".{output.name}.partial")
    try:
        data = checkpoint.read_bytes()
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(
            f"cannot write the released model to {output}: {exc.strerror or exc}; "
            "choose a writable path with -o"
        ) from exc
    return tmp, hashlib.sha256(data).hexdigest()


def unsigned_figures(
    store: RunStore, run_id: str, rounds: Sequence[RoundRecord]
) -> str | None:
    """Which recorded figure differs from the round's signed ledger entry, if any.

    The gates read the store's rows (metrics, privacy spent), which anyone with
    write access to the database can edit; each round's ledger entry signed the
    federation-level metrics and the privacy spent as they were recorded, and
    (entries written since they held them) each site's metrics and its update's
    flags. A run without a ledger has nothing to compare (None).
    """
    from accord.ledger.dsse import Envelope
    from accord.ledger.statement import parse_statement

    signed = {
        e.round: parse_statement(Envelope.from_json(e.envelope).payload).predicate
        for e in store.ledger(run_id)
        if e.kind == "round"
    }
    for record in rounds:
        predicate = signed.get(record.number)
        if predicate is None:
            continue
        rows = {
            f"{m.scope}.{m.name}": m.value
            for m in record.metrics
            if m.participant is None
        }
        differs = _metric_differs(record.number, rows, predicate.get("metrics"))
        if differs is not None:
            return differs
        differs = _unsigned_site_figures(record, predicate)
        if differs is not None:
            return differs
        spent = [(p.level, p.participant, p.epsilon) for p in record.privacy]
        listed = predicate.get("privacy")
        entries = [
            (p.get("level"), p.get("participant"), p.get("epsilon"))
            for p in (listed if isinstance(listed, list) else [])
            if isinstance(p, dict)
        ]
        same = len(spent) == len(entries) and all(
            a[:2] == b[:2] and _same(a[2], b[2])
            for a, b in zip(spent, entries, strict=True)
        )
        if not same:
            return (
                f"round {record.number}'s privacy spent differs from its signed entry"
            )
    return None


def _unsigned_site_figures(
    record: RoundRecord, predicate: Mapping[str, Any]
) -> str | None:
    """Which site metric or update flag differs from the signed entry, if any.

    Entries written before they held them (no ``siteMetrics``, no ``scores``)
    have nothing to compare.
    """
    entry = predicate.get("siteMetrics")
    if isinstance(entry, dict):
        rows = site_metrics(record.metrics)
        for site in sorted(set(rows) | set(entry)):
            mine = rows.get(site, {})
            differs = _metric_differs(record.number, mine, entry.get(site), site)
            if differs is not None:
                return differs
    listed = predicate.get("scores")
    if isinstance(listed, list):
        stored = [(s.participant, list(s.flags), s.excluded) for s in record.scores]
        signed_scores = [
            (s.get("participant"), s.get("flags"), s.get("excluded"))
            for s in listed
            if isinstance(s, dict)
        ]
        if stored != signed_scores:
            return (
                f"round {record.number}'s update flags (flagged, excluded sites) "
                "differ from its signed entry"
            )
    return None


def _metric_differs(
    number: int,
    stored: Mapping[str, float],
    signed: object,
    site: str | None = None,
) -> str | None:
    """The first metric (by name) whose stored value is not the signed one."""
    entry = signed if isinstance(signed, dict) else {}
    whose = "" if site is None else f" of site {site}"
    for name in sorted(set(stored) | set(entry)):
        if not _same(stored.get(name), entry.get(name)):
            return (
                f"round {number} metric {name}{whose} is {stored.get(name)!r} in "
                f"the store, {entry.get(name)!r} in the round's signed entry"
            )
    return None


def _same(a: object, b: object) -> bool:
    """Equal figures, NaN (an undefined metric) equal to itself and to null."""
    undefined = (None, "NaN")
    a_nan = a in undefined or (isinstance(a, float) and a != a)
    b_nan = b in undefined or (isinstance(b, float) and b != b)
    if a_nan or b_nan:
        return a_nan and b_nan
    return a == b


def release_model(
    store: RunStore,
    run_id: str,
    *,
    checkpoint: Path,
    model: str,
    gates: GatesConfig,
    metric: str,
    output: Path,
    signer: LedgerSigner | None,
    fairness: FairnessReport | None = None,
) -> ReleaseDecision:
    """Judge the gates on the run's final model, record the decision, then write.

    ``checkpoint`` is the final round's checkpoint file and ``model`` its model
    digest. The decision is recorded (event, ledger entry) before the file
    appears at ``output``: a model is never out without its record. When a gate
    fails nothing is written (``decision.passed`` is False; the CLI then raises
    :class:`~accord.errors.ReleaseRefused`).
    """
    run = store.get_run(run_id)
    rounds = store.rounds(run_id)
    problem = unsigned_figures(store, run_id, rounds)
    if problem is not None:
        raise StoreError(
            f"run {run_id}'s {problem}: the store was altered after the round was "
            "signed, so no gate is judged on it; restore the database, or audit it "
            "with `accord audit export` and `accord audit verify`"
        )
    inputs = gate_inputs(run, rounds, metric=metric, fairness=fairness)
    results = tuple(evaluate_gates(gates, inputs))
    failed = [r for r in results if not r.passed]
    staged, sha = _stage(checkpoint, output) if not failed else (None, None)
    try:
        _record(store, run_id, signer, model, gates, results, fairness, sha)
        if staged is not None:
            staged.replace(output)
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)
    if failed:
        logger.warning("run %s's model failed %d gate(s)", run_id, len(failed))
        return ReleaseDecision(run_id, model, results, fairness, None, None)
    logger.info("released run %s's model to %s", run_id, output)
    return ReleaseDecision(run_id, model, results, fairness, output, sha)


def _record(
    store: RunStore,
    run_id: str,
    signer: LedgerSigner | None,
    model: str,
    gates: GatesConfig,
    results: tuple[GateResult, ...],
    fairness: FairnessReport | None,
    sha: str | None,
) -> None:
    """The decision as a run event and, if the run keeps a ledger, an entry."""
    passed = all(r.passed for r in results)
    head = store.ledger(run_id)
    if signer is not None and head:
        entry = LedgerWriter(signer, run_id, head=head).release(
            model=model,
            passed=passed,
            gates=gates.model_dump(mode="json"),
            results=[r.to_dict() for r in results],
            fairness=None if fairness is None else fairness.to_dict(),
            output=sha,
        )
        store.append_ledger(entry)
    detail = json.dumps(
        {
            "passed": passed,
            "failed": [r.name for r in results if not r.passed],
            "model": model,
            "file": sha,
        }
    )
    store.record_event(
        run_id, round=None, participant=None, kind="release", detail=detail
    )
