"""Where a run that stopped early picks up again: its next round, model and state.

Every round is recorded, and a completed one checkpointed, before the next begins,
so the store says exactly where a run stopped: it resumes at the round after the last
*recorded* one (a failed round is not run again either), from the model and
server-optimizer state of the last *completed* one. A round that was running when
the process died is not in the store (at most its checkpoint was written, and is
replaced) and runs again from the start; selection and training seeds depend only on
(seed, round, roster), so it runs exactly as it would have.

A run resumes only with the configuration it was started with: everything that
shapes the model must be equal. Only the settings that say how this machine runs it
may differ: the ``[simulation]`` and ``[store]`` sections (except
``simulation.slowdown``, which decides which sites a round closes without), and how
long a coordinator waits for participants (``deployment.wait_s``,
``deployment.grace_s``); the deployment's roster may not, since selection and seeds
follow it.

A run resumes only from a store that still has every round it committed. The
checkpoints on disk are the witness: a round's checkpoint is written just before the
round is committed, so a checkpoint of round ``k`` means rounds ``1 .. k - 1`` were
committed. A store whose last round is ``k - 2`` or earlier has lost committed rounds
(SQLite drops every WAL frame from the first damaged one on, silently; a backup
restored over a newer database; rows deleted by hand), and resuming it would train
those rounds again and record another history over the first.
:func:`check_no_lost_rounds` refuses that before anything else happens. (A checkpoint
of round ``k - 1`` alone is the ordinary trace of a process that died between
writing it and committing the round; that round runs again.)
Pure: no store or file-format imports.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from accord.config import FedConfig, config_from_mapping
from accord.errors import ConfigError, StoreError
from accord.params import Params
from accord.records import LedgerRecord, RoundRecord, RunInfo

if TYPE_CHECKING:
    from accord.store.checkpoint import CheckpointStore
    from accord.store.protocol import RunStore

__all__ = [
    "COMPUTING_KEYS",
    "EXECUTION_KEYS",
    "EXECUTION_SECTIONS",
    "ResumePoint",
    "check_no_lost_rounds",
    "check_resumable",
    "check_same_config",
    "resume_point",
]

logger = logging.getLogger(__name__)

#: Config sections that say how a run is executed, not what it computes.
EXECUTION_SECTIONS = frozenset({"simulation", "store"})
#: Single settings of other sections that say how, not what (dotted keys).
EXECUTION_KEYS = frozenset({"deployment.wait_s", "deployment.grace_s"})
#: Settings of the execution sections that do change what a run computes:
#: ``slowdown`` decides which sites a round closes without (``close_fraction``)
#: and the order in which an asynchronous run folds its updates.
COMPUTING_KEYS = frozenset({"simulation.slowdown"})


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a run continues: ``params``/``state`` are None if no round completed."""

    next_round: int
    params: Params | None
    state: Params | None
    recorded: tuple[RoundRecord, ...]


def _computing(section: str, stored: Any, current: Any) -> list[str]:
    """The differences in an execution section's :data:`COMPUTING_KEYS`."""
    out: list[str] = []
    for dotted in sorted(COMPUTING_KEYS):
        head, _, leaf = dotted.partition(".")
        if head != section:
            continue
        default = _default(section, leaf)
        before = stored.get(leaf, default) if isinstance(stored, dict) else default
        after = current.get(leaf, default) if isinstance(current, dict) else default
        out += _differences(before, after, dotted)
    return out


def _default(section: str, leaf: str) -> Any:
    """A setting's default, as the store keeps it (JSON)."""
    model = FedConfig.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    value = model.model_fields[leaf].get_default(call_default_factory=True)
    return json.loads(json.dumps(value))


def _differences(stored: Any, current: Any, key: str) -> list[str]:
    if isinstance(stored, dict) and isinstance(current, dict):
        out: list[str] = []
        for name in sorted(set(stored) | set(current), key=str):
            sub = f"{key}.{name}" if key else str(name)
            if not key and name in EXECUTION_SECTIONS:
                out += _computing(name, stored.get(name), current.get(name))
            elif sub not in EXECUTION_KEYS:
                out += _differences(stored.get(name), current.get(name), sub)
        return out
    if stored == current:
        return []
    return [f"{key}: run has {json.dumps(stored)}, config has {json.dumps(current)}"]


def check_same_config(
    run_id: str, stored: Mapping[str, Any], current: Mapping[str, Any]
) -> None:
    """Raise :class:`ConfigError` listing what differs, execution sections aside.

    The stored config is read through today's config model first, so a setting added
    since the run started counts as its default rather than as a difference.
    """
    try:
        reference = config_from_mapping(stored).to_json_dict()
    except ConfigError as exc:
        raise ConfigError(
            f"run {run_id} was started with a configuration this accord no longer "
            f"accepts ({exc}); resume it with the accord release that started it"
        ) from exc
    # Compare as the store keeps it: JSON (tuples become lists, and so on).
    normalised = json.loads(json.dumps(dict(current)))
    diffs = _differences(reference, normalised, "")
    if diffs:
        listed = "\n  ".join(diffs)
        raise ConfigError(
            f"run {run_id} was started with another configuration, so resuming it "
            f"with this one would not continue the same training:\n  {listed}\n"
            "Resume with the fed.toml and options the run was started with (only "
            "[simulation] but its slowdown, [store], and deployment.wait_s and "
            "grace_s may differ), or start a new run"
        )


def check_resumable(
    store: RunStore,
    run_id: str,
    config: Mapping[str, Any],
    checkpoints: CheckpointStore | None = None,
) -> RunInfo:
    """``run_id``'s record, if it can resume with ``config``; changes nothing.

    :class:`~accord.errors.RunNotFound` or :class:`StoreError` if there is no such
    run or it completed; :class:`ConfigError` if ``config`` is not the run's own
    (:func:`check_same_config`); :class:`StoreError` if its rounds and ledger
    disagree (:func:`check_ledger_rounds`) or ``checkpoints`` show rounds the store
    lost (:func:`check_no_lost_rounds`). Cheap (no checkpoint is read, only their
    names, and no ledger entry is parsed): a coordinator checks it before it
    listens, so that participants never connect to a run that cannot go on.
    """
    return _resumable(store, run_id, config, checkpoints).info


@dataclass(frozen=True)
class _Resumable:
    """What the checks before a resume read: the run, its rounds, its entries."""

    info: RunInfo
    recorded: tuple[RoundRecord, ...]
    entries: Mapping[int, LedgerRecord]


def _resumable(
    store: RunStore,
    run_id: str,
    config: Mapping[str, Any],
    checkpoints: CheckpointStore | None,
) -> _Resumable:
    info = store.get_run(run_id)
    if info.status == "completed":
        raise StoreError(
            f"run {run_id} completed all its rounds; there is nothing to resume. "
            "Start a new run instead"
        )
    check_same_config(run_id, info.config, config)
    recorded = tuple(store.rounds(run_id))
    entries = check_ledger_rounds(store, info, recorded)
    if checkpoints is not None:
        check_no_lost_rounds(run_id, len(recorded), checkpoints)
    return _Resumable(info, recorded, entries)


def check_ledger_rounds(
    store: RunStore, info: RunInfo, recorded: Sequence[RoundRecord]
) -> dict[int, LedgerRecord]:
    """The run's round entries by round number, if its ledger and store agree.

    A round and its ledger entry are committed in one transaction, the closing
    entry with the run's status: a store that contradicts its ledger was altered
    (rows deleted by hand, a ledger cut short), and a resume would sign a chain
    that no longer records what the run did, or train a recorded round again.
    :class:`StoreError` listing what differs, by the rule ``accord audit export``
    applies (:func:`~accord.ledger.export.disagreements`). A run with no ledger
    passes (``{}``).
    """
    from accord.ledger.export import disagreements

    run_id = info.run_id
    chain = store.ledger(run_id)
    found = disagreements(info, recorded, chain, store.events(run_id))
    if found:
        raise StoreError(
            f"run {run_id} cannot resume: its store contradicts its ledger ("
            + "; ".join(found)
            + "; a round and its entry are committed together, so the store was "
            "altered). Restore the database from a backup, or start a new run"
        )
    return {e.round: e for e in chain if e.kind == "round" and e.round is not None}


def _entry_model(envelope: str, number: int) -> str:
    """The digest a round entry names as the round's model ("" if none)."""
    from accord.errors import LedgerError
    from accord.ledger.dsse import Envelope
    from accord.ledger.statement import parse_statement

    try:
        statement = parse_statement(Envelope.from_json(envelope).payload)
    except LedgerError:
        return ""
    return dict(statement.subjects).get(f"model:round-{number}", "")


def check_no_lost_rounds(
    run_id: str, recorded: int, checkpoints: CheckpointStore
) -> None:
    """:class:`StoreError` if checkpoints exist past round ``recorded + 1``.

    ``recorded`` is how many rounds the store has for ``run_id``. The message names
    the run, the store's last round, the later checkpoints and what to do.
    """
    later = [n for n in checkpoints.rounds(run_id) if n > recorded + 1]
    if not later:
        return
    folder = checkpoints.path(run_id, later[0]).parent
    listed = ", ".join(str(n) for n in later)
    raise StoreError(
        f"run {run_id} cannot resume: the store's last recorded round is "
        f"{recorded}, but {folder} holds checkpoints of later rounds ({listed}), "
        "which are written only after every earlier round was committed. The "
        "store lost rounds it had committed (a damaged or rolled-back database, "
        "e.g. a corrupted SQLite WAL file, or rows deleted by hand), and resuming "
        "would train them again. Restore the database from a backup taken with its "
        f"-wal file; or, to train those rounds again on purpose, move the "
        f"checkpoints of rounds {listed} out of {folder} and resume again"
    )


def resume_point(
    store: RunStore,
    checkpoints: CheckpointStore | None,
    run_id: str,
    config: Mapping[str, Any],
) -> ResumePoint:
    """Where ``run_id`` stopped, with its last completed round's checkpoint loaded.

    ``config`` is the configuration to resume with (as JSON data); it must be the
    run's own (:func:`check_same_config`). :class:`StoreError` if the run completed
    or its records and checkpoints cannot take it further.
    """
    checked = _resumable(store, run_id, config, checkpoints)
    recorded = checked.recorded
    _check_numbering(run_id, [r.number for r in recorded])
    if checkpoints is not None:
        for partial in checkpoints.discard_partial(run_id):
            logger.info(
                "removed %s, a checkpoint a stopped process left unfinished", partial
            )
    completed = [r for r in recorded if r.status == "completed"]
    if not completed:
        return ResumePoint(len(recorded) + 1, None, None, recorded)
    last = completed[-1]
    if checkpoints is None:
        raise StoreError(
            f"run {run_id} cannot resume without its checkpoints; enable "
            "store.checkpoints and point store.directory where the run kept them"
        )
    path = checkpoints.path(run_id, last.number)
    if not path.is_file() and last.checkpoint:
        path = Path(last.checkpoint)  # the run kept them somewhere else
    checkpoint = checkpoints.load_checkpoint(path)
    named = [last.global_digest]
    entry = checked.entries.get(last.number)
    if entry is not None and (signed := _entry_model(entry.envelope, last.number)):
        named.append(signed)  # the signed entry's too, not only the store's row
    if (checkpoint.run_id, checkpoint.round_number) != (run_id, last.number) or (
        not all(checkpoint.params.matches(d) for d in named)
    ):
        raise StoreError(
            f"checkpoint {path} is not the model of round {last.number} of run "
            f"{run_id} that the store recorded; restore that round's checkpoint or "
            "start a new run"
        )
    if "opt" not in checkpoint.extra:
        raise StoreError(
            f"checkpoint {path} holds no server-optimizer state; it cannot resume"
        )
    return ResumePoint(
        len(recorded) + 1, checkpoint.params, checkpoint.extra["opt"], recorded
    )


def _check_numbering(run_id: str, numbers: Sequence[int]) -> None:
    if list(numbers) != list(range(1, len(numbers) + 1)):
        raise StoreError(
            f"run {run_id} has rounds {list(numbers)} recorded, not 1 to "
            f"{len(numbers)} in order; it was not written by accord's round loop "
            "and cannot be resumed"
        )
