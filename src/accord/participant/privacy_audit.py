"""A site's own membership-inference audit of a released model, without the coordinator.

``accord audit privacy RUN`` attacks a simulated run's model at every site from the
coordinator's store. A deployed site's privacy officer has neither the store nor
the other sites' data, and should not need them: what the audit needs is the site's
own. :func:`audit_released_model` runs the same attacks
(:func:`accord.privacy.audit.audit_site`: loss threshold and offline LiRA with
shadow models trained here) on the released model, with

- **members and non-members** from the site's own split: its training rows and its
  holdout rows. For ``sim:`` data that is the simulation's split (deterministic in
  fed.toml's seed); for ``csv:`` data it is the split and the encoding the site
  applied in the run, which the participant keeps in its site log
  (``encoded_data``: the federation's encoder and the split's seed, fraction and
  roster position), checked against the CSV's SHA-256 it logged at start;
- **the shadows' training** as the site trained in the run: epochs, batch size,
  learning rate and options from the site log's ``trained`` entries of the run
  (for ``sim:`` data without a log, fed.toml's ``[train]``), as many passes as the
  rounds it trained (the log, else the privacy ledger, else ``rounds``), and at
  record level the DP-SGD noise multiplier and clip its privacy ledger recorded;
- **the bound**: the epsilon the site's privacy ledger records for the run, at the
  ledger's delta (epsilon infinite when the ledger records none: the site's data
  had no record-level DP it accounted itself).

The run is the one named in the model file (``accord release`` writes the run's
checkpoint, whose metadata names it). The file is read with safetensors only
(never unpickled), refused before it is read when it is larger than the task's
model could make it, and refused when its tensors are not the task's (names,
shapes, dtypes). Nothing is written: the shadows are the auditor's, they never
touch the privacy ledger.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.data.arrays import ArrayData
from accord.errors import ConfigError, DatasetError, StoreError, excerpt
from accord.params import Params, ParamSpec
from accord.participant.data import LocalData
from accord.participant.privacy_ledger import PrivacyLedger
from accord.participant.table import SiteTable
from accord.privacy.audit import DEFAULT_SHADOWS, MIN_ROWS, ShadowTraining, SiteAudit
from accord.privacy.audit import audit_site as attack_site
from accord.privacy.dpsgd import OPTION_KEY
from accord.store.checkpoint import (
    MAX_HEADER_BYTES,
    Checkpoint,
    CheckpointStore,
    checkpoint_origin,
)
from accord.task.protocol import Task

__all__ = [
    "MODEL_SIZE_FACTOR",
    "LocalAudit",
    "RunHistory",
    "TrainSettings",
    "audit_released_model",
    "audited_rows",
    "model_run",
    "read_model",
    "run_history",
]

logger = logging.getLogger(__name__)

#: A released file holds the model and at most the server optimizer's state
#: (Adam: two moments), so it is refused unread beyond this many times the model.
MODEL_SIZE_FACTOR = 4


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """How the site trained in one round: what its shadows repeat."""

    epochs: int
    batch_size: int
    learning_rate: float
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RunHistory:
    """What the site log says of one run: rounds trained, settings, encoding."""

    rounds: frozenset[int]
    settings: TrainSettings | None
    #: The ``encoded_data`` entry's encoding payload (csv: data), and the SHA-256
    #: of the CSV the participant logged before it.
    encoding: bytes | None
    data_sha256: str | None


@dataclass(frozen=True, slots=True)
class LocalAudit:
    """The site's audit of one released model, and where each input came from."""

    run_id: str
    round: int
    audit: SiteAudit
    passes: int
    training: ShadowTraining
    seed: int
    #: Where the epsilon came from (the ledger's path), None without one.
    ledger: str | None


def model_run(path: Path) -> tuple[str, int]:
    """The run and round the model file at ``path`` names (its header only)."""
    try:
        return checkpoint_origin(path)
    except StoreError as exc:
        raise _not_a_model(exc) from None


def audited_rows(
    source: LocalData | SiteTable, history: RunHistory, *, data_sha256: str | None
) -> LocalData:
    """The site's encoded train and holdout rows, as it split them in the run.

    ``sim:`` data is split already; a ``csv:`` table is split and encoded with what
    the site log kept of the run (``history.encoding``), once ``data_sha256`` (the
    CSV's SHA-256 now) is the one the participant logged when it trained.
    """
    if isinstance(source, LocalData):
        return source
    from accord.data.handshake import parse_encoding

    if history.encoding is None:
        raise ConfigError(
            "the site log holds no encoding of this run (its encoded_data entry), "
            "so this site's training rows cannot be rebuilt: pass the site log the "
            "participant kept in the run (--site-log, or --identity)",
            key="--site-log",
        )
    if history.data_sha256 is not None and history.data_sha256 != data_sha256:
        raise DatasetError(
            f"{source.name}'s CSV changed since the run (SHA-256 {data_sha256} now, "
            f"{history.data_sha256} in the site log): its training rows cannot be "
            "told apart; audit with the table the site trained on"
        )
    request, encoder = parse_encoding(history.encoding)
    info, train, holdout = source.encode(encoder, request)
    return LocalData(source.name, info, train, holdout)


def read_model(path: Path, template: Params) -> Checkpoint:
    """The model file at ``path``, checked against ``template``'s tensors.

    :class:`ConfigError` (naming ``--model``) when the file is missing, larger than
    the task's model could make it, not an accord model file, or holds other
    tensors than the task's.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError(
            f"cannot read the model file {path}: {exc.strerror or exc}", key="--model"
        ) from None
    limit = MODEL_SIZE_FACTOR * template.spec.packed_nbytes + MAX_HEADER_BYTES + 8
    if size > limit:
        raise ConfigError(
            f"the model file {path} is {size:,} bytes; the task's model is "
            f"{template.spec.packed_nbytes:,} bytes, so a file of it is at most "
            f"{limit:,}: pass the model the federation released for this task",
            key="--model",
        )
    try:
        checkpoint = CheckpointStore(path.parent).load_checkpoint(path)
    except StoreError as exc:
        raise _not_a_model(exc) from None
    difference = _difference(checkpoint.params.spec, template.spec)
    if difference is not None:
        raise ConfigError(
            f"the model file {path} is not a model of this task: {difference}; pass "
            "the task the federation trained (--task) and its released model",
            key="--model",
        )
    return checkpoint


def _not_a_model(exc: StoreError) -> ConfigError:
    # The checkpoint reader's advice (resume from an earlier round) is for a
    # coordinator; a site auditing a file needs the file the federation released.
    why = str(exc).split("; resume from", 1)[0]
    return ConfigError(
        f"{why}; pass the model file `accord release` wrote", key="--model"
    )


def _difference(found: ParamSpec, expected: ParamSpec) -> str | None:
    if found.names != expected.names:
        return (
            f"its tensors are {excerpt(', '.join(found.names))}, the task's are "
            f"{excerpt(', '.join(expected.names))}"
        )
    for got, want in zip(found.tensors, expected.tensors, strict=True):
        if (got.shape, got.dtype) != (want.shape, want.dtype):
            return (
                f"tensor {got.name!r} is {got.dtype} {list(got.shape)}, the task's "
                f"is {want.dtype} {list(want.shape)}"
            )
    return None


def _of_run(entry: Mapping[str, Any], run_id: str) -> bool:
    """Whether a log entry's wire run id (``RUN.suffix``) names ``run_id``."""
    wire = entry.get("run_id")
    return isinstance(wire, str) and (wire == run_id or wire.startswith(run_id + "."))


def run_history(entries: Sequence[Mapping[str, Any]], run_id: str) -> RunHistory:
    """What the site log ``entries`` say of ``run_id`` (empty if nothing)."""
    rounds: set[int] = set()
    settings: TrainSettings | None = None
    encoding: bytes | None = None
    data_sha: str | None = None
    last_data: str | None = None
    for entry in entries:
        event = entry.get("event")
        if event == "data" and isinstance(entry.get("sha256"), str):
            last_data = entry["sha256"]
        elif event == "encoded_data" and _of_run(entry, run_id):
            if isinstance(entry.get("encoding"), dict):
                encoding = json.dumps(entry["encoding"]).encode("utf-8")
                data_sha = last_data
        elif event == "trained" and _of_run(entry, run_id):
            number, settings = _trained(entry)
            rounds.add(number)
    return RunHistory(frozenset(rounds), settings, encoding, data_sha)


def _trained(entry: Mapping[str, Any]) -> tuple[int, TrainSettings]:
    """A ``trained`` entry's round and settings; ConfigError if it is malformed."""
    try:
        options = entry.get("options") or {}
        settings = TrainSettings(
            epochs=int(entry["epochs"]),
            batch_size=int(entry["batch_size"]),
            learning_rate=float(entry["learning_rate"]),
            options={k: v for k, v in dict(options).items() if k != OPTION_KEY},
        )
        number = int(entry["round"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"a 'trained' entry of the site log is malformed ({excerpt(repr(exc))}); "
            "pass the site log the participant wrote",
            key="--site-log",
        ) from None
    if number < 1 or settings.epochs < 1 or settings.batch_size < 1:
        raise ConfigError(
            f"a 'trained' entry of the site log has round {number}, epochs "
            f"{settings.epochs}, batch size {settings.batch_size}: each must be >= 1",
            key="--site-log",
        )
    return number, settings


def _ledger_dp(
    ledger: PrivacyLedger | None, run_id: str
) -> tuple[float, float, tuple[float, float] | None, int]:
    """(epsilon, delta, DP-SGD (z, clip), rounds) the ledger records for the run."""
    if ledger is None or run_id not in ledger.runs or not ledger.runs[run_id]:
        return math.inf, 0.0, None, 0
    rounds = ledger.runs[run_id]
    last = rounds[max(rounds)]
    mechanism = (last.noise_multiplier, last.clip)
    return ledger.epsilon(run_id), ledger.delta, mechanism, len(rounds)


def audit_released_model(
    task: Task,
    model: Path,
    *,
    site: str,
    members: ArrayData,
    nonmembers: ArrayData,
    history: RunHistory,
    ledger: PrivacyLedger | None,
    fallback: TrainSettings | None = None,
    rounds: int | None = None,
    shadows: int = DEFAULT_SHADOWS,
    seed: int = 0,
) -> LocalAudit:
    """Attack the released ``model`` on the site's ``members`` and ``nonmembers``.

    ``history`` is the site log's account of the model's run (see
    :func:`run_history`; the caller read the log and, for csv: data, encoded the
    rows with it); ``fallback`` the training settings when the log has none;
    ``rounds`` overrides how many rounds the site trained.
    """
    checkpoint = read_model(model, task.init_params(0))
    run_id = checkpoint.run_id
    epsilon, delta, mechanism, ledger_rounds = _ledger_dp(ledger, run_id)
    passes = rounds or len(history.rounds) or ledger_rounds
    if not passes:
        raise ConfigError(
            f"neither the site log nor the privacy ledger says how many rounds this "
            f"site trained in run {run_id}; pass --rounds N",
            key="--rounds",
        )
    settings = history.settings or fallback
    if settings is None:
        raise ConfigError(
            f"the site log has no training of run {run_id}, so the shadows cannot "
            "train as the site did: pass the site log the participant kept "
            "(--site-log, or --identity with its site-log.jsonl)",
            key="--site-log",
        )
    if min(len(members), len(nonmembers)) < MIN_ROWS:
        raise DatasetError(
            f"{site} has {len(members)} training and {len(nonmembers)} holdout rows; "
            f"an audit needs {MIN_ROWS} of each"
        )
    training = ShadowTraining(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        passes=passes,
        options=dict(settings.options),
        dp=mechanism,
    )
    logger.info(
        "auditing run %s round %d at %s: %d passes, DP %s",
        run_id,
        checkpoint.round_number,
        site,
        passes,
        "off" if mechanism is None else f"z={mechanism[0]:g} clip={mechanism[1]:g}",
    )
    audit = attack_site(
        task,
        checkpoint.params,
        site=site,
        members=members,
        nonmembers=nonmembers,
        training=training,
        epsilon=epsilon,
        delta=delta,
        shadows=shadows,
        seed=seed,
    )
    return LocalAudit(
        run_id=run_id,
        round=checkpoint.round_number,
        audit=audit,
        passes=passes,
        training=training,
        seed=seed,
        ledger=None if ledger is None else str(ledger.path),
    )
