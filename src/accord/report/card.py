"""A run's model card: one pure function from its stored records to a document.

:func:`build_card` reads :class:`~accord.report.inputs.CardInputs` (the run, its
rounds, events and ledger as stored) and returns a
:class:`~accord.report.document.ModelCard` of ten sections: the run's identity,
the federation, rounds and outcome, strategy, privacy, release gates, metrics,
robustness, contributions, and the ledger with the final model. This module builds
the sections about how the run was set up and recorded;
:mod:`accord.report.federation`, :mod:`accord.report.governance` and
:mod:`accord.report.measures` the others. A figure the run
did not record is a :func:`~accord.report.document.not_recorded` note saying why
and how to record it, never a section left out.

The run's configuration is read as the mapping the store kept, not validated
again: a card must be readable for a run recorded by an older accord.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from accord.ledger.writer import config_digest
from accord.report.document import (
    Block,
    Facts,
    ModelCard,
    Section,
    Table,
    not_recorded,
)
from accord.report.federation import federation_section
from accord.report.governance import (
    contributions_section,
    gates_section,
    privacy_section,
)
from accord.report.inputs import CardInputs
from accord.report.measures import metrics_section, robustness_section
from accord.report.text import count, setting

__all__ = ["RECORD_EVENTS", "build_card"]

#: Store events that record what a run used or decided, rather than a message
#: refused: the data's digest, the preprocessing fit, the data contract and its
#: drift flags, release decisions.
RECORD_EVENTS = (
    "data_digest",
    "preprocessing",
    "data_contract",
    "profile_flag",
    "release",
)


def build_card(inputs: CardInputs) -> ModelCard:
    """The model card of ``inputs.run`` (see the module's docstring)."""
    run = inputs.run
    return ModelCard(
        run_id=run.run_id,
        title=f"Model card: run {run.run_id} ({run.name})",
        sections=(
            _identity(inputs),
            federation_section(inputs),
            _rounds(inputs),
            _strategy(inputs),
            privacy_section(inputs),
            gates_section(inputs),
            metrics_section(inputs),
            robustness_section(inputs),
            contributions_section(inputs),
            _ledger(inputs),
        ),
    )


def _data_digest(inputs: CardInputs) -> str:
    event = next((e for e in inputs.events if e.kind == "data_digest"), None)
    if event is None:
        return (
            "not recorded (a deployment's sites keep their data; a simulation "
            "recorded before data digests were kept has none)"
        )
    try:
        detail = json.loads(event.detail)
    except ValueError:
        return event.detail
    if not isinstance(detail, dict):
        return event.detail
    return ", ".join(f"{k} {v}" for k, v in detail.items())


def _identity(inputs: CardInputs) -> Section:
    run = inputs.run
    opened = inputs.first("run-opened")
    predicate = opened.predicate if opened is not None else {}
    no_ledger = "not recorded (the run kept no ledger)"
    if isinstance(predicate.get("config"), str):
        digest = str(predicate["config"])
    else:
        digest = (
            f"{config_digest(run.config)} (computed from the stored configuration: "
            "the run kept no ledger that records it)"
        )
    code = predicate.get("code")
    if isinstance(code, Mapping) and code:
        code_text = ", ".join(f"{k} {v}" for k, v in code.items())
    elif opened is not None:
        code_text = (
            "none recorded (the task comes from an installed package, whose "
            "version is the accord version's; only a task.py beside fed.toml is "
            "digested)"
        )
    else:
        code_text = no_ledger
    reason = (run.summary or {}).get("reason")
    status = run.status + (f" ({reason})" if reason else "")
    task = inputs.config("task")
    items = [
        ("run id", run.run_id),
        ("name", run.name),
        ("status", status),
        ("created (UTC)", run.created_at.strftime("%Y-%m-%d %H:%M:%S")),
        (
            "finished (UTC)",
            "not finished"
            if run.finished_at is None
            else run.finished_at.strftime("%Y-%m-%d %H:%M:%S"),
        ),
        ("seed", str(run.seed)),
        ("accord version", str(predicate.get("accord") or no_ledger)),
        ("configuration digest (SHA-256)", digest),
        ("task", str(task.get("factory", "not recorded"))),
        ("code digests", code_text),
        ("data", _data_digest(inputs)),
    ]
    return Section("run", "Run", (Facts(tuple(items)),))


def _rounds(inputs: CardInputs) -> Section:
    run, rounds = inputs.run, inputs.rounds
    done = sum(1 for r in rounds if r.status == "completed")
    refused = [e for e in inputs.events if e.kind not in RECORD_EVENTS]
    facts = Facts(
        (
            ("rounds planned", str(run.rounds_planned)),
            ("rounds completed", str(done)),
            ("rounds failed", str(len(rounds) - done)),
            ("outcome", run.status),
            ("messages refused", count(len(refused), "message")),
        )
    )
    if not rounds:
        return Section(
            "rounds",
            "Rounds and outcome",
            (facts, not_recorded("the run recorded no round")),
        )
    rows = []
    for r in rounds:
        ok = sum(1 for o in r.outcomes if o.status == "ok")
        bad = "; ".join(
            f"{o.participant} {o.status}" + (f": {o.reason}" if o.reason else "")
            for o in r.outcomes
            if o.status != "ok"
        )
        rows.append(
            (
                str(r.number),
                r.status,
                f"{ok}/{len(r.selected)}",
                bad or "none",
                r.global_digest[:16],
            )
        )
    table = Table(
        ("round", "status", "accepted", "not accepted (why)", "model digest"),
        tuple(rows),
    )
    return Section("rounds", "Rounds and outcome", (facts, table))


_RULE_KEYS = (
    "trim",
    "attackers",
    "select",
    "tau",
    "iterations",
    "tolerance",
    "smoothing",
    "norm_bound",
    "root_examples",
)


def _strategy(inputs: CardInputs) -> Section:
    config = inputs.run.config
    strategy = inputs.config("strategy")
    robust = inputs.config("robustness")
    rule = str(strategy.get("aggregation", "not recorded"))
    keys = [k for k in _RULE_KEYS if k != "trim" or "trim" in rule]
    rules = [
        f"{k} {robust[k]}"
        for k in ("max_norm_z", "min_cosine", "max_distance_z", "min_nearest_ratio")
        if robust.get(k) is not None
    ]
    scored = bool(robust.get("scores")) or bool(rules)
    quarantined = sorted(
        {
            o.participant
            for r in inputs.rounds
            for o in r.outcomes
            if o.status == "quarantined"
        }
    )
    after = robust.get("quarantine_after")
    attack = config.get("attack")
    items = [
        ("aggregation", setting(strategy, "aggregation", *keys)),
        (
            "server optimizer",
            setting(strategy, "server_optimizer", "server_lr", "server_momentum"),
        ),
        (
            "update bounds",
            setting(
                strategy,
                None,
                "max_examples",
                "max_weight_share",
                "max_update_norm",
                "max_norm_ratio",
            ),
        ),
        (
            "anomaly scores",
            ("on" + (f"; flag rules {', '.join(rules)}" if rules else "; no flag rule"))
            if scored
            else "off ([robustness] scores = false)",
        ),
        (
            "quarantine",
            "off"
            if after is None
            else f"after {after} flagged round(s); quarantined: "
            + (", ".join(quarantined) or "none"),
        ),
        (
            "selection",
            setting(inputs.config("selection"), None, "fraction", "min_participants"),
        ),
    ]
    if isinstance(attack, Mapping):
        items.append(
            (
                "simulated attack",
                setting(attack, "kind", "sites", "count", "fraction", "scale"),
            )
        )
    return Section("strategy", "Strategy", (Facts(tuple(items)),))


def _ledger(inputs: CardInputs) -> Section:
    blocks: list[Block] = []
    closed = inputs.last("run-closed")
    done = [r for r in inputs.rounds if r.status == "completed"]
    if closed is not None and isinstance(closed.predicate.get("model"), str):
        model = str(closed.predicate["model"])
        source = f"the run-closed entry {closed.sequence}"
    elif done:
        model = done[-1].global_digest
        source = f"round {done[-1].number} (no closing entry names it)"
    else:
        model, source = "none (no round completed)", "the rounds"
    released = inputs.last("release")
    file_sha = released.predicate.get("modelFile") if released is not None else None
    items = [
        ("final model digest", model),
        ("from", source),
        (
            "final checkpoint",
            str(done[-1].checkpoint) if done and done[-1].checkpoint else "not kept",
        ),
        (
            "released file (SHA-256)",
            str(file_sha) if file_sha else "none (`accord release` wrote no file)",
        ),
    ]
    if not inputs.ledger:
        blocks.append(Facts(tuple(items)))
        blocks.append(
            not_recorded(
                "the run kept no ledger: it was recorded by an accord that kept none, "
                "or without the cryptography package"
            )
        )
        return Section("ledger", "Ledger and final model", tuple(blocks))
    head = inputs.ledger[-1]
    check = inputs.check
    if check is None:
        verdict = "not checked"
    elif check.verified is None:
        verdict = f"not checked: {check.how}"
    elif check.verified:
        verdict = f"yes: {check.how}"
    else:
        verdict = f"NO: {count(len(check.problems), 'problem')} (below)"
    items = [
        ("ledger entries", str(len(inputs.ledger))),
        ("head digest (SHA-256)", head.digest),
        ("head entry", f"{head.sequence} ({head.kind})"),
        ("chain verifies", verdict),
        ("site receipts", "0" if check is None else str(check.receipts)),
        *items,
    ]
    blocks.append(Facts(tuple(items)))
    if check is not None and check.problems:
        blocks.append(
            Table(("problem",), tuple((p,) for p in check.problems), "broken entries")
        )
    return Section("ledger", "Ledger and final model", tuple(blocks))
