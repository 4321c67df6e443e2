"""The one exception tree of accord.

Every error accord raises on purpose derives from :class:`AccordError`. Where an error
resembles a builtin it also subclasses it, so ``except ValueError`` keeps working for
callers that do not know accord. Messages say what went wrong *and* what to do next.
A message that quotes what it was given (a key, a column name, a cell) quotes it
through :func:`excerpt`, so a 4 MB header or a control character never reaches a
terminal or a log whole.

::

    AccordError
    ├── ConfigError (ValueError)            fed.toml or an option is invalid
    ├── MissingExtraError (ImportError)     an optional extra is not installed
    ├── DatasetError (ValueError)           a dataset or partition cannot be built
    │   ├── SchemaMismatch                  a site's table does not fit the
    │   │                                   federation's columns; names both
    │   └── DriftRefused                    ``[profile] refuse``: sites' data
    │                                       differs sharply (``flags``)
    ├── TaskError (RuntimeError)            the user's task failed or misbehaved
    ├── TaskRefused (PermissionError)       a site's own policy refuses a task
    ├── UpdateRejected (ValueError)         an update failed validation
    │   └── SubmissionRefused               a message was refused on arrival
    ├── RoundFailed (RuntimeError)          a round could not reach its quorum, or
    │                                       its rule had too few updates
    ├── TooFewUpdates (ValueError)          a robust rule got fewer updates than
    │                                       its bound on attackers needs
    ├── AggregateRejected (ArithmeticError) a round's aggregate or new model failed
    │                                       an integrity check (finite, norm bound)
    ├── RunAborted (RuntimeError)           a run stopped before its last round
    │   ├── RunInterrupted                  the coordinator was interrupted (Ctrl-C,
    │   │                                   SIGTERM); the run may resume
    │   └── PreparationFailed               before round 1: ``site`` could not take
    │                                       part in the preprocessing fit
    ├── PrivacyBudgetExhausted (RuntimeError)  one more DP step would spend more
    │                                       epsilon than the budget (``spent``,
    │                                       ``limit``, ``next``)
    ├── PrivacyLedgerError (RuntimeError)   a site's privacy ledger is unreadable or
    │                                       corrupt (``path``); never reset silently
    ├── StoreError (RuntimeError)           the store cannot read or write
    │   ├── RunNotFound (LookupError)       no run with that id
    │   └── RunBusy                         another process is serving that run
    ├── PkiError (ValueError)               a CA, CSR, key or trust file is unusable
    ├── ContributionUnavailable (ValueError)  a run kept no updates to score
    │                                       contributions from, or hid them (secure
    │                                       aggregation); says what can be computed
    ├── LedgerError (ValueError)            a ledger entry, export or key is unusable
    │   └── LedgerInvalid                   a ledger failed verification; ``problems``
    │                                       names each entry it breaks
    ├── ReleaseRefused (RuntimeError)      ``accord release``: a gate failed; the
    │                                       model was not written (``failed``)
    ├── AuthenticationFailed (PermissionError)  a peer's certificate was refused
    ├── TransportError (ConnectionError)    the coordinator is unreachable or refused us
    └── SecAggAborted (RuntimeError)        a secure-aggregation round stopped, no sum
        ├── ShareRejected                   a share failed to decrypt or to rebuild;
        │                                   ``offender`` names who is to blame
        └── EquivocationDetected            the coordinator showed different survivor
                                            sets to different participants
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "AccordError",
    "AggregateRejected",
    "AuthenticationFailed",
    "ConfigError",
    "ContributionUnavailable",
    "DatasetError",
    "DriftRefused",
    "EquivocationDetected",
    "LedgerError",
    "LedgerInvalid",
    "MissingExtraError",
    "PkiError",
    "PreparationFailed",
    "PrivacyBudgetExhausted",
    "PrivacyLedgerError",
    "RefusalKind",
    "ReleaseRefused",
    "RoundFailed",
    "RunAborted",
    "RunBusy",
    "RunInterrupted",
    "RunNotFound",
    "SchemaMismatch",
    "SecAggAborted",
    "ShareRejected",
    "StoreError",
    "SubmissionRefused",
    "TaskError",
    "TaskRefused",
    "TooFewUpdates",
    "TransportError",
    "UpdateRejected",
    "excerpt",
]


#: How many characters of a quoted input a message shows.
EXCERPT_CHARS = 80


def excerpt(value: object, *, limit: int = EXCERPT_CHARS) -> str:
    """``value`` quoted for a message: its repr, cut to ``limit`` characters.

    A longer text shows its first ``limit`` characters and its length, so that the
    reader can tell which input it was without getting all of it. repr escapes
    newlines and control characters: the quote stays on one line. Other values
    (a list of column names) are quoted by their repr, cut the same way.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value):,} characters)"
    text = repr(value)  # a list of names, a number: its repr is its quote
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


class AccordError(Exception):
    """Root of every error accord raises on purpose."""


class ConfigError(AccordError, ValueError):
    """A configuration value is invalid; ``key`` names where it is."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class MissingExtraError(AccordError, ImportError):
    """An optional dependency is missing; the message names the install command."""

    def __init__(self, *, extra: str, package: str, feature: str) -> None:
        self.extra = extra
        self.package = package
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed. "
            f"Install it with: pip install 'accord[{extra}]'"
        )


class DatasetError(AccordError, ValueError):
    """A dataset cannot be loaded, or a partition cannot be built from it."""


class SchemaMismatch(DatasetError):
    """A site's table does not fit the federation's: ``site`` and ``column`` say where.

    Raised before round 1, when the deployment's preprocessing is fitted: a
    missing or extra column, a column numeric at one site and categorical at
    another, other classes, or a level outside the declared ones.
    """

    def __init__(
        self, message: str, *, site: str | None = None, column: str | None = None
    ) -> None:
        super().__init__(message)
        self.site = site
        self.column = column


class DriftRefused(DatasetError):
    """Sites' data profiles differ sharply and ``[profile] refuse`` is set.

    ``flags`` holds each flag's text (site, column, measure, value, threshold).
    Raised before round 1; without ``refuse`` the same flags are warnings.
    """

    def __init__(self, message: str, *, flags: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.flags = flags


class TaskError(AccordError, RuntimeError):
    """The user's task raised or returned something accord cannot use."""


class TaskRefused(AccordError, PermissionError):
    """A site's own policy refuses a task; ``reason`` says which rule and why.

    The round goes on without the site; the refusal is recorded with the round.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class UpdateRejected(AccordError, ValueError):
    """An update failed validation; ``reason`` is short and safe to show its sender."""

    def __init__(self, reason: str, *, participant: str | None = None) -> None:
        self.reason = reason
        self.participant = participant
        who = f"update from {participant!r}" if participant else "update"
        super().__init__(f"{who} rejected: {reason}")


#: Why :class:`SubmissionRefused` refused a message; the transport maps each kind to
#: one gRPC status code.
RefusalKind = Literal[
    "malformed",
    "mismatch",
    "duplicate",
    "stale",
    "too_large",
    "corrupt",
    "forbidden",
    "busy",
    "throttled",
    "out_of_bounds",
]


class SubmissionRefused(UpdateRejected):
    """A participant's message was refused before it reached the round.

    ``kind`` classifies the refusal (``duplicate``, ``stale`` for a replay or a late
    message, ``too_large``, ``busy`` for a caller over its share of open calls,
    ``throttled`` for one refused too often, ``out_of_bounds`` for a claim beyond
    the federation's bounds, such as more examples than ``max_examples``, ...);
    ``reason`` is readable and safe to send back.
    """

    def __init__(
        self, kind: RefusalKind, reason: str, *, participant: str | None = None
    ) -> None:
        self.kind: RefusalKind = kind
        super().__init__(reason, participant=participant)


class RoundFailed(AccordError, RuntimeError):
    """A round ended without enough valid updates; the global model is unchanged."""

    def __init__(
        self,
        *,
        round_number: int,
        received: int,
        required: int,
        detail: str | None = None,
    ) -> None:
        self.round_number = round_number
        self.received = received
        self.required = required
        if detail is not None:  # the aggregation rule refused (TooFewUpdates)
            super().__init__(
                f"round {round_number} failed: {detail}; the global model was left "
                "unchanged"
            )
            return
        super().__init__(
            f"round {round_number} got {received} valid update(s) but needs "
            f"{required}; the global model was left unchanged. Raise the deadline, "
            "lower the quorum, or look at the participants' recorded failures."
        )


class TooFewUpdates(AccordError, ValueError):
    """A robust rule got ``received`` updates; its bound on attackers needs more.

    ``rule`` names the rule and ``bound`` the inequality it needs (``n > 2f + 2``).
    A round that meets it fails as :class:`RoundFailed`, the model unchanged.
    """

    def __init__(self, *, rule: str, received: int, required: int, bound: str) -> None:
        self.rule = rule
        self.received = received
        self.required = required
        self.bound = bound
        super().__init__(
            f"{rule} needs {bound}, so at least {required} updates, but got "
            f"{received}; lower [strategy] attackers, raise the round's quorum, or "
            "use median or weighted_trimmed_mean, which work for any number"
        )


class AggregateRejected(AccordError, ArithmeticError):
    """A round's aggregate, new model or optimizer state failed an integrity check.

    ``check`` names the check (``finite``, ``norm``), ``what`` the value checked
    (``aggregate``, ``model``, ``optimizer state``) and ``tensor`` the first tensor
    at fault (None for a bound on the whole). The round fails; the global model and
    the optimizer state stay as they were.
    """

    def __init__(
        self, reason: str, *, check: str, what: str, tensor: str | None = None
    ) -> None:
        self.reason = reason
        self.check = check
        self.what = what
        self.tensor = tensor
        super().__init__(
            f"the round's {what} failed the {check} check: {reason}; the global "
            "model was left unchanged. Look at the round's updates "
            "(`accord runs show`), and bound them with [strategy] max_update_norm"
        )


class RunAborted(AccordError, RuntimeError):
    """A run stopped early; completed rounds stay in the store."""


class RunInterrupted(RunAborted):
    """The coordinator was interrupted (Ctrl-C, SIGTERM); it may resume the run.

    What a participant raises when the coordinator's goodbye says so: the site's
    operator starts it again once the coordinator resumes (``--resume``).
    """


class PreparationFailed(RunAborted):
    """A site refused, failed or garbled the preprocessing fit before round 1."""

    def __init__(self, site: str, message: str) -> None:
        super().__init__(message)
        self.site = site


class PrivacyBudgetExhausted(AccordError, RuntimeError):
    """One more DP step would take epsilon past the budget; it was not run.

    ``spent`` is the epsilon spent so far, ``limit`` the budget, ``next`` what the
    step would have made it. A run that meets it stops cleanly with ``spent``
    recorded: the model trained so far is kept.
    """

    def __init__(self, *, spent: float, limit: float, next: float) -> None:
        self.spent = spent
        self.limit = limit
        self.next = next
        #: The message without its "privacy budget exhausted" head.
        self.detail = (
            f"epsilon spent {spent:.4g}, one more round would make it {next:.4g}, "
            f"above the budget of {limit:.4g}. The model so far is kept; to train "
            "longer, raise [privacy] budget_epsilon (less privacy) or the noise "
            "multiplier (less accuracy per round)"
        )
        super().__init__(f"privacy budget exhausted: {self.detail}")


class PrivacyLedgerError(AccordError, RuntimeError):
    """A site's privacy ledger cannot be read or written, or is corrupt.

    The ledger is what the site has spent; a corrupt one is never reset (that would
    forget the epsilon spent), so the site refuses to train until its operator
    restores the file from a backup or moves it aside knowingly.
    """

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(message)


class StoreError(AccordError, RuntimeError):
    """The store cannot be read or written."""


class RunNotFound(StoreError, LookupError):
    """No run with the given id exists in the store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id!r} in the store; `accord runs` lists them")


class RunBusy(StoreError):
    """Another process (or thread) holds the run's lease: it is serving the run.

    ``holder`` says who, readably (process, host, since when), when the store
    knows; ``context`` says what was being attempted. See :mod:`accord.store.lease`.
    """

    def __init__(
        self, run_id: str, *, holder: str | None = None, context: str | None = None
    ) -> None:
        self.run_id = run_id
        self.holder = holder
        by = f" by {holder}" if holder else ""
        prefix = f"{context}: " if context else ""
        super().__init__(
            f"{prefix}run {run_id} is already being served{by}; a run is served by "
            "one process at a time. Let that one finish, or stop it (a killed "
            "process frees the run at once), then try again"
        )


class PkiError(AccordError, ValueError):
    """A PKI operation cannot proceed: bad name, wrong passphrase, unusable file."""


class ContributionUnavailable(AccordError, ValueError):
    """Contributions cannot be computed for ``run_id``; the message says why."""

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class LedgerError(AccordError, ValueError):
    """A ledger entry, an export or a signing key cannot be read or used."""


class LedgerInvalid(LedgerError):
    """``accord audit verify`` found the ledger edited, cut, reordered or re-signed.

    ``problems`` holds one readable line per broken entry, each naming the entry
    (position, type, round).
    """

    def __init__(self, problems: tuple[str, ...]) -> None:
        self.problems = problems
        super().__init__(
            f"the ledger does not verify ({len(problems)} problem(s)): "
            + "; ".join(problems[:3])
            + ("; ..." if len(problems) > 3 else "")
        )


class ReleaseRefused(AccordError, RuntimeError):
    """A run's model failed its release gates; nothing was written.

    ``failed`` holds one readable line per failed gate (``gate: reason``).
    """

    def __init__(self, run_id: str, failed: tuple[str, ...]) -> None:
        self.run_id = run_id
        self.failed = failed
        super().__init__(
            f"run {run_id} is not released: {len(failed)} gate(s) failed: "
            + "; ".join(failed)
            + ". The decision is recorded; fix the run (or, with the federation's "
            "agreement, its [gates]) and release again"
        )


class AuthenticationFailed(AccordError, PermissionError):
    """A peer's certificate was refused; ``reason`` is readable and safe to log.

    ``name`` is the common name the certificate claims (unverified) when it has one.
    """

    def __init__(self, reason: str, *, name: str | None = None) -> None:
        self.reason = reason
        self.name = name
        super().__init__(reason)


class TransportError(AccordError, ConnectionError):
    """The coordinator cannot be reached, or it refused this site for good.

    ``code`` is the gRPC status name when the coordinator answered (for example
    ``UNAUTHENTICATED`` for a revoked certificate), None when it never did.
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)


class SecAggAborted(AccordError, RuntimeError):
    """A secure-aggregation round stopped before its end and produced no output.

    ``stage`` names the protocol stage (``advertise``, ``share_keys``,
    ``masked_input``, ``consistency``, ``unmask``); ``reason`` is readable and safe
    to record. Nothing of the round's sum is released: the global model is unchanged.
    """

    def __init__(self, reason: str, *, stage: str | None = None) -> None:
        self.reason = reason
        self.stage = stage
        where = f" at stage {stage!r}" if stage else ""
        super().__init__(f"secure aggregation aborted{where}: {reason}")


class ShareRejected(SecAggAborted):
    """A secret share failed authentication or did not reconstruct what was committed.

    ``offender`` is the participant held responsible (the dealer of a share that does
    not decrypt or does not match its commitment, or a holder that revealed a share
    the dealer never signed); ``detected_by`` is who noticed (a participant id, or
    None for the coordinator). Exclude the offender before the next round.
    """

    def __init__(
        self,
        reason: str,
        *,
        offender: str,
        stage: str | None = None,
        detected_by: str | None = None,
    ) -> None:
        self.offender = offender
        self.detected_by = detected_by
        super().__init__(f"{reason} (offender: {offender!r})", stage=stage)


class EquivocationDetected(SecAggAborted):
    """The coordinator showed different participants different survivor sets.

    Raised by a participant whose view of the round disagrees with the signatures the
    coordinator relays; ``signers`` lists the participants whose signatures did not
    cover this participant's view. The participant reveals no share: a coordinator
    that equivocates learns nothing beyond what it would learn from an aborted round.
    """

    def __init__(
        self, reason: str, *, stage: str | None = None, signers: tuple[str, ...] = ()
    ) -> None:
        self.signers = signers
        super().__init__(reason, stage=stage)
