"""``accord participant``: serve a site's tasks from a coordinator until its run ends.

The site dials out to the coordinator (mutual TLS with the certificate of its
``--identity`` folder, or plaintext on loopback with ``--insecure NAME``), runs each
task on its own data (:mod:`accord.participant.data`) and keeps a site log. It
presents the identity certificate of its folder, if it has one, so that it can take
part in masking rounds, and with ``--ckks-context`` the key holder's secret context
(``ckks-secret.bin`` from ``accord ckks keys``, checked at start: a public context
is refused) for CKKS rounds. It enforces its own policy
(``--require-secure-aggregation``, ``--min-threshold``, and for differential
privacy ``--require-dp``, ``--max-epsilon`` and ``--delta`` over its privacy ledger
in ``--identity``: :mod:`accord.participant.policy`), whatever the federation's
configuration says.
With a ``coordinator.pem`` in ``--identity`` (``accord pki sign`` writes it) the
site trusts only that pinned coordinator certificate, checks the CRL the
coordinator sends and refuses a revoked coordinator
(:mod:`accord.transport.coordinator_pin`); without one it trusts any certificate
of its CA and warns. gRPC is imported only when the command runs.

How the run ended decides the exit code: 0 when the coordinator's goodbye says the
run finished; 75 when the coordinator was interrupted (Ctrl-C, SIGTERM) and may
resume the run (start the participant again); 1 when the run was aborted, with the
coordinator's reason. The reason is printed and kept in the site log
(``goodbye``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console

from accord.cli.ckks import read_context
from accord.cli.errors import reported
from accord.errors import ConfigError, RunAborted, RunInterrupted

if TYPE_CHECKING:
    from accord.participant.policy import SitePolicy
    from accord.participant.privacy_ledger import PrivacyLedger
    from accord.task.personal_method import PersonalMethod
    from accord.task.personalization import FineTune
    from accord.task.protocol import Task
    from accord.transport.coordinator_pin import CoordinatorPin
    from accord.transport.identity import SigningIdentity

__all__ = ["register"]

logger = logging.getLogger(__name__)


def participant_command(
    ctx: typer.Context,
    coordinator: Annotated[
        str | None,
        typer.Option("--coordinator", help="HOST:PORT of the coordinator."),
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", help="csv:PATH or sim:FED.TOML#SITE.")
    ] = None,
    identity: Annotated[
        Path | None,
        typer.Option("--identity", help="This site's key.pem, cert.pem, ca.pem."),
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="module:object of the task.")
    ] = None,
    data_option: Annotated[
        list[str] | None,
        typer.Option("--data-option", help="KEY=VALUE for csv data, e.g. target=y."),
    ] = None,
    site_log: Annotated[
        Path | None,
        typer.Option("--site-log", help="JSON-lines log (default: in --identity)."),
    ] = None,
    server_name: Annotated[
        str | None,
        typer.Option("--server-name", help="Name in the coordinator's certificate."),
    ] = None,
    insecure_name: Annotated[
        str | None,
        typer.Option("--insecure", help="Plaintext on loopback, as this name."),
    ] = None,
    threads: Annotated[
        int, typer.Option("--threads", help="BLAS/torch threads for training.")
    ] = 1,
    give_up_after: Annotated[
        float | None,
        typer.Option("--give-up-after", help="Seconds without contact before exit."),
    ] = None,
    require_secure: Annotated[
        bool,
        typer.Option(
            "--require-secure-aggregation",
            help="Refuse train tasks that would send the update in the clear.",
        ),
    ] = False,
    min_threshold: Annotated[
        int | None,
        typer.Option(
            "--min-threshold",
            help="Take part only in masking rounds with at least this threshold "
            "(implies --require-secure-aggregation; refuses CKKS rounds).",
        ),
    ] = None,
    max_epsilon: Annotated[
        float | None,
        typer.Option(
            "--max-epsilon",
            help="Train only while this site's epsilon, every run together (its "
            "privacy ledger), stays at most this; refuses tasks without DP.",
        ),
    ] = None,
    dp_delta: Annotated[
        float,
        typer.Option("--delta", help="The delta this site accounts epsilon at."),
    ] = 1e-5,
    require_dp: Annotated[
        str | None,
        typer.Option(
            "--require-dp",
            help="'record': train only tasks that declare record-level DP-SGD.",
        ),
    ] = None,
    privacy_ledger: Annotated[
        Path | None,
        typer.Option(
            "--privacy-ledger",
            help="This site's privacy ledger (default: privacy-ledger.json in "
            "--identity).",
        ),
    ] = None,
    min_profile_count: Annotated[
        int | None,
        typer.Option(
            "--min-profile-count",
            help="Suppress every count under this in the data profile this site "
            "sends before round 1, whatever the run's [profile] min_count.",
        ),
    ] = None,
    ckks_context: Annotated[
        Path | None,
        typer.Option(
            "--ckks-context",
            help="The key holder's ckks-secret.bin, for CKKS rounds (it decrypts "
            "every update: keep it at the site, mode 0600).",
        ),
    ] = None,
    finetune_epochs: Annotated[
        int,
        typer.Option(
            "--finetune-epochs",
            min=0,
            max=1000,
            help="Personalization: at each evaluation also fine-tune a copy of the "
            "global model on this site's training rows for this many epochs and "
            "report its scores beside the global model's (0: off).",
        ),
    ] = 0,
    finetune_lr: Annotated[
        float,
        typer.Option(
            "--finetune-lr", min=1e-12, help="Learning rate of that fine-tuning."
        ),
    ] = 0.05,
    personalize: Annotated[
        str,
        typer.Option(
            "--personalize",
            help="Personalization kept at this site: fedper (the --private tensors "
            "are trained here and never sent) or ditto (a personal model pulled "
            "toward the global one by --ditto-lambda); kept in the identity "
            "folder's state/personal. A sim: site follows its fed.toml. off: none.",
        ),
    ] = "off",
    private: Annotated[
        list[str] | None,
        typer.Option(
            "--private",
            help="FedPer: a glob of the parameter names that stay here (the head, "
            "e.g. 'fc2.*'); repeat for more.",
        ),
    ] = None,
    ditto_lambda: Annotated[
        float,
        typer.Option(
            "--ditto-lambda", min=0.0, max=1e6, help="Ditto's proximal strength."
        ),
    ] = 0.1,
) -> None:
    """Serve this site's tasks from a coordinator until its run ends.

    Exit codes: 0 the run finished; 1 the coordinator aborted the run (its reason
    is printed); 75 the coordinator was interrupted and may resume the run: start
    the participant again; 2 bad options or data; 5 a certificate was refused.
    ``accord participant audit-privacy``: this site's own privacy audit of a
    released model.
    """
    if ctx.invoked_subcommand is not None:
        return  # the subcommand takes its own options
    with reported():
        if coordinator is None or data is None:
            missing = "--coordinator" if coordinator is None else "--data"
            raise ConfigError(
                "a participant needs --coordinator HOST:PORT and --data (csv:PATH "
                "or sim:FED.TOML#SITE)",
                key=missing,
            )
        from accord.data.digest import file_sha256
        from accord.participant.data import LocalData, build_task, load_local_data
        from accord.participant.policy import SitePolicy
        from accord.participant.runtime import ParticipantRuntime
        from accord.participant.sitelog import SiteLog
        from accord.transport.client import CoordinatorClient
        from accord.transport.enrolment import load_identity

        if identity is None and insecure_name is None:
            raise ConfigError(
                "pass --identity DIR (this site's certificate), or --insecure NAME "
                "on loopback",
                key="--identity",
            )
        policy = SitePolicy(
            require_secure_aggregation=require_secure,
            min_threshold=min_threshold,
            require_dp=_dp_level(require_dp),
            max_epsilon=max_epsilon,
            dp_delta=dp_delta,
            min_profile_count=min_profile_count,
        )
        ledger = _ledger(privacy_ledger, identity, policy)
        ckks = _ckks_secret(ckks_context)
        files = load_identity(identity) if identity is not None else None
        signing = _signing_identity(identity, files)
        pin = _coordinator_pin(identity)
        local = load_local_data(data, options=parse_options(data_option or []))
        personal = _personal(personalize, private or [], ditto_lambda)
        site_task, builder = None, None
        if isinstance(local, LocalData):
            site_task = build_task(local, task)
            if personal is not None:  # refuse bad patterns before dialling out
                _check_personal(personal, site_task)
        elif task is None:
            raise ConfigError("name the task: --task module:object", key="--task")
        else:
            reference = task

            def builder(encoded: LocalData) -> Task:
                # csv: data: the features are known once the coordinator ships
                # the federation's preprocessing (before round 1).
                return build_task(encoded, reference)

        log_path = site_log or (identity / "site-log.jsonl" if identity else None)
        log = SiteLog(log_path)
        if data.startswith("csv:"):  # which table this site trains on, for audits
            path = Path(data.removeprefix("csv:"))
            log.record("data", path=str(path.resolve()), sha256=file_sha256(path))

        def connect() -> CoordinatorClient:
            from accord.transport.coordinator_pin import pinned_identity

            return CoordinatorClient(
                coordinator,
                identity=pinned_identity(files, pin) if files and pin else files,
                insecure_name=insecure_name,
                server_name=server_name,
                identity_certificate=signing.certificate if signing else b"",
            )

        try:
            reason = ParticipantRuntime(
                connect,
                site_task,
                local,
                builder=builder,
                log=log,
                threads=threads,
                give_up_after_s=give_up_after,
                signing=signing,
                ca_pem=files.ca_pem if files is not None else None,
                policy=policy,
                ckks_context=ckks,
                pin=pin,
                ledger=ledger,
                # SCAFFOLD's c_i: in the identity folder, beside the ledger.
                state_dir=identity / "state" if identity is not None else None,
                finetune=_finetune(finetune_epochs, finetune_lr),
                personal=personal,
                name=_site_name(files, insecure_name),
            ).run()
        finally:
            log.close()
        _ended(reason)


def _site_name(files: Any, insecure_name: str | None) -> str | None:
    """The name the coordinator knows this site by (its certificate's, --insecure's)."""
    if files is None:
        return insecure_name
    from cryptography import x509

    from accord.transport.roster import certificate_name

    return certificate_name(x509.load_pem_x509_certificate(files.cert_pem))


def _finetune(epochs: int, learning_rate: float) -> FineTune | None:
    """The site's own fine-tuning setting (``--finetune-epochs``); None: off."""
    from accord.task.personalization import FineTune

    if epochs == 0:
        return None
    return FineTune(epochs=epochs, batch_size=32, learning_rate=learning_rate, seed=0)


def _personal(method: str, private: list[str], lam: float) -> PersonalMethod | None:
    """The site's FedPer or Ditto setting (``--personalize``); None: off."""
    from accord.task.personal_method import PersonalMethod

    if method not in ("off", "fedper", "ditto"):
        raise ConfigError(
            f"unknown personalization {method!r}: use off, fedper or ditto",
            key="--personalize",
        )
    if private and method != "fedper":
        raise ConfigError(
            "--private names FedPer's private tensors: add --personalize fedper",
            key="--private",
        )
    if method == "off":
        return None
    if method == "fedper" and not private:
        raise ConfigError(
            "--personalize fedper needs --private GLOB: the tensors that stay here "
            "(the head)",
            key="--private",
        )
    chosen: Literal["fedper", "ditto"] = "fedper" if method == "fedper" else "ditto"
    return PersonalMethod(method=chosen, private=tuple(private), lam=lam)


def _check_personal(personal: PersonalMethod, task: Task) -> None:
    """Refuse ``--personalize`` that the task cannot do, or that its fed.toml sets."""
    from accord.task.personal_state import find_personal

    if find_personal(task) is not None:
        raise ConfigError(
            "this sim: site's fed.toml already sets [personalization] (FedPer or "
            "Ditto), which the site follows: drop --personalize",
            key="--personalize",
        )
    personal.check(task)


def _ended(reason: str) -> None:
    """Say how the coordinator ended the run; raise unless it ran to its end."""
    from accord.transport.messages import (
        RUN_ABORTED_PREFIX,
        RUN_FINISHED,
        RUN_INTERRUPTED,
    )

    if reason == RUN_FINISHED:
        Console(stderr=True).print(f"the coordinator ended the run: {reason}")
        return
    if reason == RUN_INTERRUPTED:
        raise RunInterrupted(
            f"the coordinator ended the run early: {reason}. Start this participant "
            "again (same command) to take part when the coordinator resumes it "
            "(`accord coordinator --resume auto`)"
        )
    if reason.startswith(RUN_ABORTED_PREFIX):
        raise RunAborted(
            f"the coordinator ended the run early: {reason}. The coordinator's "
            "operator has the details (`accord runs show latest`)"
        )
    raise RunAborted(  # a newer connection took over, or an older coordinator
        f"the coordinator closed this site's task stream before the run's end: {reason}"
    )


def _dp_level(value: str | None) -> Literal["record"] | None:
    if value is None:
        return None
    if value == "record":
        return "record"
    raise ConfigError(
        f"unknown DP level {value!r}; a site can require 'record'", key="--require-dp"
    )


def _ledger(
    path: Path | None, identity: Path | None, policy: SitePolicy
) -> PrivacyLedger | None:
    """The site's privacy ledger: ``--privacy-ledger``, else in ``--identity``."""
    from accord.participant.privacy_ledger import LEDGER_FILE, PrivacyLedger

    where = path or (identity / LEDGER_FILE if identity is not None else None)
    if where is None:
        if policy.max_epsilon is not None:
            raise ConfigError(
                "--max-epsilon needs a privacy ledger to count what this site "
                "spends across runs: pass --identity DIR or --privacy-ledger PATH",
                key="--max-epsilon",
            )
        return None
    return PrivacyLedger(where, delta=policy.dp_delta)


def _ckks_secret(path: Path | None) -> bytes | None:
    """The key holder's secret context, checked; a warning if others may read it."""
    if path is None:
        return None
    blob = read_context(path, secret=True, option="--ckks-context")
    if path.stat().st_mode & 0o077:
        logger.warning(
            "%s decrypts every site's update but others may read it; chmod 600 it",
            path,
        )
    return blob


def _coordinator_pin(identity: Path | None) -> CoordinatorPin | None:
    """The coordinator certificate(s) the site pins, if its folder holds them."""
    if identity is None:
        return None
    from accord.transport.coordinator_pin import PIN, CoordinatorPin

    pin = CoordinatorPin.load(identity)
    if pin is None:
        logger.warning(
            "%s holds no %s: this site trusts any coordinator certificate of its CA "
            "and cannot refuse a revoked one; pin the coordinator (accord pki pin)",
            identity,
            PIN,
        )
    return pin


def _signing_identity(identity: Path | None, files: Any) -> SigningIdentity | None:
    """The site's identity key and certificate, if its folder holds them."""
    if identity is None:
        return None
    from accord.transport.identity import load_signing_identity

    signing = load_signing_identity(identity, tls_cert_pem=files.cert_pem)
    if signing is None:
        logger.warning(
            "%s holds no identity key and certificate: this site takes part in "
            "plain rounds only, not in secure ones",
            identity,
        )
    return signing


def parse_options(pairs: list[str]) -> dict[str, str]:
    """``--data-option KEY=VALUE`` pairs as a mapping."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"{pair!r} is not KEY=VALUE", key="--data-option")
        out[name.strip()] = value.strip()
    return out


def register(app: typer.Typer) -> None:
    """Add ``accord participant`` (and its ``audit-privacy``) to the application."""
    from accord.cli.participant_audit import audit_privacy_command

    group = typer.Typer(pretty_exceptions_enable=False)
    group.callback(invoke_without_command=True)(participant_command)
    group.command("audit-privacy")(audit_privacy_command)
    app.add_typer(group, name="participant")
