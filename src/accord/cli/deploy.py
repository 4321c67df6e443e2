"""``accord coordinator``: a federation for real, on gRPC.

The coordinator listens (mutual TLS unless ``--insecure``), waits for the roster of
``[deployment]`` to connect, then runs the same round loop as ``accord simulate``:
only the executor differs. Each site runs ``accord participant``
(:mod:`accord.cli.participant`), which dials out to the coordinator and serves its
tasks on local data until the run ends. gRPC and the PKI are imported only when the
command runs, so the rest of the CLI works without the ``deploy`` extra.

Durability. The coordinator first calibrates the run's DP noise (a target epsilon
the planned rounds cannot reach stops it with exit 2, before it listens and with
no run created), then claims its address (one it cannot bind leaves the store
untouched), then creates the run in the store before it serves, and
every message it refuses is recorded there as an event when it is refused. A
coordinator that died (killed, crashed, machine lost) is started again with
``--resume RUN_ID``, or ``--resume auto`` (the one run of this federation that the
store still marks ``running``, i.e. whose coordinator died without recording an
end; else the federation's newest run if it was ``aborted``, e.g. by Ctrl-C or a
checkpoint it could not write; a new run if there is neither; an error if several
runs are interrupted: :mod:`accord.coordinator.resumable`, the rule ``accord
simulate --resume auto`` follows too). It listens on the
same address, the participants, which redial with backoff, connect again, and the
run goes on after its last recorded round, from that round's checkpoint
(:meth:`~accord.coordinator.runner.Coordinator.resume`): a round the dead process
had not recorded runs again from its start, with the same selection and seeds.

Each coordinator process names the run on the wire with a fresh id, the store's run
id plus a random suffix (:func:`~accord.transport.executor.wire_run_id`). So the
resumed process refuses as ``stale`` any update, report or model request still
addressed to the process that died (an update a site finishes training after the
crash, say), and a site that already answered the dead process's round does not
mistake the resumed round of the same number for a repeat. A stable wire id would
get both wrong.

One coordinator serves a run at a time: the process holds the run's lease
(:mod:`accord.store.lease`) from the moment it knows the run's id until it ends,
and the operating system or the database frees it when the process dies, however
it dies. A run to resume is leased before the address is claimed, so a second
coordinator given the run another one serves stops at once with
:class:`~accord.errors.RunBusy` (exit code 4, naming the other process), with no
port taken and nothing recorded; ``--resume auto`` passes over the runs of the
federation that are in use. A new run is leased as soon as it is created.

Secure aggregation: ``[secure_aggregation] mode = "masking"`` needs mutual TLS,
since the sites' identity certificates travel, and are checked, only there.
``mode = "ckks"`` needs the key holder's public context (``--ckks-public``, from
``accord ckks keys``; a secret context is refused: the coordinator must never hold
the key) and no identity certificate, so it also runs with ``--insecure`` on
loopback, for trying it out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from accord.cli.ckks import coordinator_public_context, public_params
from accord.cli.errors import reported
from accord.cli.ledger_setup import deployment_ledger
from accord.cli.output import dumps, run_json
from accord.cli.progress import ProgressObserver
from accord.cli.text import shown
from accord.config import FedConfig, load_config, refuse_attack, refuse_trees
from accord.errors import ConfigError, RunAborted

if TYPE_CHECKING:
    from accord.coordinator.lineage import LedgerSetup
    from accord.coordinator.runner import RunResult
    from accord.data.handshake import FairnessAsk
    from accord.params import Params
    from accord.simulation.context import SimContext
    from accord.store import CheckpointStore, RunStore
    from accord.transport.executor import GrpcExecutor

__all__ = ["register"]

logger = logging.getLogger(__name__)


def _security(
    *,
    insecure: bool,
    pki: Path | None,
    trust: Path | None,
    cert: Path | None,
    key: Path | None,
    ca: Path | None,
    crl: Path | None,
    allowed: Path | None,
) -> tuple[Any, Any]:
    """The coordinator's identity files and trust store (None, None if insecure)."""
    if insecure:
        return None, None
    from accord.transport.enrolment import IdentityFiles, load_identity
    from accord.transport.trust import TrustStore

    if pki is not None:
        return load_identity(pki), TrustStore.load(trust or pki)
    if cert is None or key is None or ca is None:
        raise ConfigError(
            "the coordinator needs its certificate: --pki DIR (key.pem, cert.pem, "
            "ca.pem, crl.pem, roster.json) or --cert, --key and --ca; --insecure "
            "serves plaintext on loopback only",
            key="--pki",
        )
    identity = IdentityFiles(key.read_bytes(), cert.read_bytes(), ca.read_bytes())
    if trust is not None:
        return identity, TrustStore.load(trust)
    return identity, TrustStore.from_files(ca_cert=ca, crl=crl, allowed_names=allowed)


def coordinator_command(
    config: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="fed.toml")
    ],
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to listen on (port 0: any).")
    ] = "127.0.0.1:50051",
    pki: Annotated[
        Path | None,
        typer.Option(
            "--pki",
            help="Folder with the coordinator's key.pem, cert.pem, ca.pem "
            "and the CA's crl.pem and roster.json.",
        ),
    ] = None,
    trust: Annotated[
        Path | None,
        typer.Option("--trust", help="Folder with ca.pem, crl.pem, roster.json."),
    ] = None,
    cert: Annotated[Path | None, typer.Option("--cert")] = None,
    key: Annotated[Path | None, typer.Option("--key")] = None,
    ca: Annotated[Path | None, typer.Option("--ca", help="Trusted CA bundle.")] = None,
    crl: Annotated[Path | None, typer.Option("--crl")] = None,
    allowed: Annotated[
        Path | None, typer.Option("--allowed-names", help="One name a line.")
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="SQLAlchemy URL of the store.")
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Plaintext, loopback only.")
    ] = False,
    rounds: Annotated[int | None, typer.Option("--rounds", "-r")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    port_file: Annotated[
        Path | None, typer.Option("--port-file", help="Write the bound port here.")
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            metavar="RUN_ID|auto",
            help="Continue this run after its last recorded round (same fed.toml "
            "and options); auto: this federation's interrupted run (left running, "
            "else its newest if aborted), else a new run.",
        ),
    ] = None,
    ckks_public: Annotated[
        Path | None,
        typer.Option(
            "--ckks-public",
            help='The key holder\'s ckks-public.bin (mode = "ckks"); never the '
            "secret context.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON.")] = False,
) -> None:
    """Coordinate a federation whose participants connect over gRPC."""
    with reported():
        overrides: dict[str, dict[str, Any]] = {}
        if rounds is not None or seed is not None:
            overrides["federation"] = {
                k: v for k, v in (("rounds", rounds), ("seed", seed)) if v is not None
            }
        if store is not None:
            overrides["store"] = {"url": store}
        cfg = load_config(config, **overrides)
        refuse_trees(cfg, "accord coordinator")
        refuse_attack(cfg, "accord coordinator")
        if cfg.round.mode == "async" and cfg.evaluation.federated:
            raise ConfigError(
                'a deployed round.mode = "async" run has no federated evaluation: '
                "each site is always training (a new job as soon as it reports), so "
                "an evaluation job would wait behind the slowest site's training; "
                "set [evaluation] federated = false (central evaluation still runs "
                "where the coordinator has data; docs/strategies.md)",
                key="evaluation.federated",
            )
        public = coordinator_public_context(cfg, ckks_public)
        if cfg.secure_aggregation.mode == "masking" and insecure:
            raise ConfigError(
                "masking needs the sites' identity certificates, which only mutual "
                "TLS can carry; drop --insecure (see `accord pki`)",
                key="secure_aggregation.mode",
            )
        from accord.coordinator.strategy import check_root_source

        check_root_source(cfg.strategy, has_root=False)  # before anyone connects
        if insecure:
            from accord.transport.security import check_insecure_host

            check_insecure_host(listen)
        identity, trust_store = _security(
            insecure=insecure,
            pki=pki,
            trust=trust,
            cert=cert,
            key=key,
            ca=ca,
            crl=crl,
            allowed=allowed,
        )
        result, rejections = _coordinate(
            cfg,
            ledger=deployment_ledger(cfg, identity, trust or pki),
            listen=listen,
            identity=identity,
            trust=trust_store,
            insecure=insecure,
            port_file=port_file,
            resume=resume,
            quiet=as_json,
            ckks_public=public,
        )
        if as_json:
            typer.echo(dumps(_as_json(result, rejections)))
        from accord.coordinator.summary import untrained

        if (reason := untrained(result)) is not None:
            raise RunAborted(f"run {result.run_id} failed: {reason}")


def _coordinate(
    cfg: FedConfig,
    *,
    ledger: LedgerSetup,
    listen: str,
    identity: Any,
    trust: Any,
    insecure: bool,
    port_file: Path | None,
    resume: str | None,
    quiet: bool,
    ckks_public: bytes | None,
) -> tuple[RunResult, list[dict[str, object]]]:
    from accord.coordinator.runner import calibrate_privacy
    from accord.simulation.context import build_context
    from accord.store import open_store
    from accord.transport.admission import Limits
    from accord.transport.executor import GrpcExecutor, wire_run_id
    from accord.transport.heap import limit_malloc_arenas
    from accord.transport.rejections import event_recorder
    from accord.transport.server import bind

    # Before any gRPC thread allocates: one heap arena for all the upload handlers,
    # so memory does not grow with the number of participants (see heap.py).
    limit_malloc_arenas(1)
    console = Console(stderr=True, quiet=quiet)
    run_store = open_store(cfg.store.url, default_dir=Path(cfg.store.directory))
    try:
        with ExitStack() as lease:  # the run's, held until this process is done
            ckks_params = public_params(ckks_public)
            # A run to resume is leased and checked before anything else: one that
            # another coordinator serves, or that cannot go on, costs no data
            # loading and takes no port.
            if cfg.store.checkpoints:  # a folder it cannot write: stop now, exit 4
                _checkpoints(cfg).check_writable()
            to_resume = _run_to_resume(run_store, cfg, resume, console, lease)
            ctx = build_context(cfg)  # the initial model needs the task and data
            if cfg.privacy.level == "record":  # refused before a port or a run
                from accord.coordinator.record_privacy import check_task, site_rows

                check_task(cfg, ctx.task, cfg.task_settings.factory)
                site_rows(cfg, None)
            participants = cfg.deployment.participants or list(ctx.participants)
            # DP's noise is calibrated for the roster before a port or a run: a
            # target epsilon the planned rounds cannot reach leaves no run behind.
            calibrate_privacy(cfg, participants=len(participants))
            # Then claim the address: a coordinator that cannot listen leaves the
            # store as it found it, with no run created or marked aborted in vain.
            dep = cfg.deployment
            server = bind(
                listen=listen,
                identity=identity,
                trust=trust,
                insecure=insecure,
                participants=len(participants),
                limits=Limits(
                    per_peer=dep.calls_per_peer,
                    first_byte_s=dep.first_byte_s,
                    idle_s=dep.idle_s,
                    refusals_per_s=dep.refusals_per_s,
                    refusal_burst=dep.refusal_burst,
                ),
            )
            try:
                run_id = to_resume or _new_run(run_store, cfg, lease)
                executor = GrpcExecutor(
                    participants,
                    run_id=wire_run_id(run_id),
                    grace_s=cfg.deployment.grace_s,
                    spool_memory=cfg.deployment.spool_memory_mib * 2**20,
                    on_reject=event_recorder(run_store, run_id),
                    ckks_params=ckks_params,
                    # Plain rounds only: a masked round's quantized words travel in
                    # the secure job's packed encoding (bits), not as a payload.
                    compression=None
                    if cfg.compression.method == "none"
                    or cfg.secure_aggregation.mode != "off"
                    else (cfg.compression.method, cfg.compression.fraction),
                    compression_warmup=cfg.compression.warmup_rounds,
                    # Async mode: earlier versions stay served to the jobs given them.
                    versions=cfg.round.mode == "async",
                )
            except BaseException:
                server.stop(None)
                raise
            resumed = to_resume is not None
            try:
                with (
                    executor.ending(),  # tells the sites how the run ended
                    _aborted_unless_resumed(run_store, run_id, resumed),
                ):
                    server.start(executor)
                    if port_file is not None:
                        port_file.write_text(f"{server.port}\n", encoding="utf-8")
                    mode = "plaintext" if insecure else "mutual TLS"
                    console.print(f"listening on {shown(server.address)} ({mode})")
                    connected = _wait(executor, participants, cfg, console)
                    if cfg.data.dataset.startswith("csv:"):
                        ctx = _prepare(cfg, executor, connected, run_store, run_id)
                    result = _train(
                        cfg,
                        ctx,
                        executor,
                        run_store,
                        run_id,
                        resumed,
                        console,
                        public=ckks_public,
                        ledger=ledger,
                    )
            finally:
                server.stop(5.0)
        refused = executor.rejections.snapshot()  # already in the store, one by one
        console.print(
            f"run {result.run_id}: final model {result.params.digest()[:16]}; "
            f"{len(refused)} message(s) refused"
        )
        if result.stopped is not None:  # exit 0: the budget did its job
            console.print(f"stopped: {shown(result.stopped)}", highlight=False)
        return result, [r.to_json() for r in refused]
    finally:
        run_store.close()


def _run_to_resume(
    store: RunStore,
    cfg: FedConfig,
    resume: str | None,
    console: Console,
    lease: ExitStack,
) -> str | None:
    """The store's id of the run to resume, leased into ``lease`` and checked.

    None for a new run (no ``--resume``, or ``auto`` found no interrupted run). The
    run is leased first (:class:`RunBusy` if another coordinator serves it), then
    checked (it exists, did not complete, has this configuration) before the
    coordinator listens, so that participants never connect to a run that cannot
    go on; it is reopened only once they have.
    """
    from accord.coordinator.resumable import interrupted_run
    from accord.coordinator.resume import check_resumable

    if resume is None:
        return None
    if resume == "auto":
        found = interrupted_run(
            store, cfg.federation.name, lease, lambda said: console.print(shown(said))
        )
        if found is None:
            console.print(
                f"no interrupted run of {shown(repr(cfg.federation.name))} to resume; "
                "starting a new one"
            )
            return None
        resume = found
    else:
        lease.enter_context(store.lease_run(resume))
    checkpoints = _checkpoints(cfg) if cfg.store.checkpoints else None
    check_resumable(store, resume, cfg.to_json_dict(), checkpoints)
    done = len(store.rounds(resume))
    console.print(f"resuming run {resume} after round {done}")
    return resume


def _checkpoints(cfg: FedConfig) -> CheckpointStore:
    from accord.store import CheckpointStore

    return CheckpointStore(Path(cfg.store.directory) / "checkpoints")


def _new_run(store: RunStore, cfg: FedConfig, lease: ExitStack) -> str:
    """Create the run at once, leased into ``lease``.

    At once, so that refusals made while participants connect are recorded under
    it. Between its creation and its lease another coordinator's ``--resume auto``
    could take it for interrupted; this one then stops with :class:`RunBusy`.
    """
    from accord.coordinator.runner import create_run

    run_id = create_run(store, cfg)
    lease.enter_context(store.lease_run(run_id))
    return run_id


@contextmanager
def _aborted_unless_resumed(
    store: RunStore, run_id: str, resumed: bool
) -> Iterator[None]:
    """Mark a new run aborted if it fails, even before its first round.

    (Once the round loop runs, it does so itself.) A run being resumed stays as it
    was, ``running`` after a crash, so that the next ``--resume auto`` still finds
    it when its participants did not come back in time.
    """
    try:
        yield
    except BaseException:
        if not resumed:
            try:
                store.finish_run(run_id, status="aborted", summary=None)
            except Exception:  # the store is why it failed, maybe: say the first
                logger.exception("could not mark run %s aborted", run_id)
        raise


def _train(
    cfg: FedConfig,
    ctx: SimContext,
    executor: GrpcExecutor,
    store: RunStore,
    run_id: str,
    resumed: bool,
    console: Console,
    *,
    public: bytes | None,
    ledger: LedgerSetup,
) -> RunResult:
    """Run (or resume) the rounds of ``run_id`` over the connected participants."""
    from accord.coordinator.runner import Coordinator
    from accord.evaluation.metrics import evaluate

    def central(params: Params) -> Mapping[str, float]:
        return evaluate(ctx.task, params, ctx.data.test)

    checkpoints = _checkpoints(cfg) if cfg.store.checkpoints else None
    initial = ctx.task.init_params(cfg.federation.seed)
    done = len(store.rounds(run_id)) if resumed else 0
    groups = _fairness_groups(cfg, store, run_id)
    with ProgressObserver(
        console,
        rounds=max(cfg.federation.rounds - done, 0),
        metric=cfg.evaluation.metric,
    ) as observer:
        coordinator = Coordinator(
            cfg,
            executor=executor,
            store=store,
            checkpoints=checkpoints,
            central_eval=central if len(ctx.data.test) else None,
            observer=observer,
            ckks_public_context=public,
            ledger=ledger,
            fairness_groups=groups,
        )
        if resumed:
            return coordinator.resume(run_id, initial)
        return coordinator.run(initial, run_id=run_id)


def _fairness_groups(
    cfg: FedConfig, store: RunStore, run_id: str
) -> tuple[str, ...] | None:
    """The declared groups of the run's secure fairness sums (None: none)."""
    if cfg.evaluation.sensitive is None or cfg.secure_aggregation.mode == "off":
        return None
    from accord.coordinator.group_sum import run_groups
    from accord.coordinator.preparation import recorded_encoder

    return run_groups(cfg, recorded_encoder(store, run_id))


def _fairness_ask(cfg: FedConfig) -> FairnessAsk | None:
    """The per-group counts each site reports (a declared sensitive column)."""
    from accord.data.handshake import FairnessAsk

    column = cfg.evaluation.sensitive
    if column is None:
        return None
    return FairnessAsk(column, cfg.evaluation.decision_threshold)


def _prepare(
    cfg: FedConfig,
    executor: GrpcExecutor,
    connected: list[str],
    store: RunStore,
    run_id: str,
) -> SimContext:
    """Fit the sites' preprocessing (csv: data), record it; the context it gives.

    A new run records the fit; a resumed one checks that it is unchanged. With
    ``[profile] enabled`` (and no secure aggregation) each site also sends its
    guarded data profile: the data contract and its drift flags are recorded
    with the run (the ledger's ``data-contract`` entry follows from it), and
    ``[profile] refuse`` stops a flagged run here, before round 1.
    """
    from accord.coordinator.contract import (
        guard_of,
        record_contract,
        refuse_if_flagged,
        settle,
    )
    from accord.coordinator.preparation import (
        REFUSED_KIND,
        check_recorded,
        prepare_data,
    )
    from accord.errors import DriftRefused
    from accord.simulation.context import build_context, federation_schema

    def record(site: str | None, detail: str) -> None:
        store.record_event(
            run_id, round=0, participant=site, kind=REFUSED_KIND, detail=detail
        )

    schema = federation_schema(cfg)
    prepared = prepare_data(
        executor,
        connected,
        schema,
        seed=cfg.federation.seed,
        holdout_fraction=cfg.data.holdout_fraction,
        secure_aggregation=cfg.secure_aggregation.mode,
        deadline_s=cfg.round.deadline_s,
        record=record,
        settings=cfg.secure_aggregation,
        run_id=executor.run_id,
        guard=guard_of(cfg.profile) if cfg.profile.enabled else None,
        fairness=_fairness_ask(cfg),
    )
    encoder = prepared.encoder
    check_recorded(store, run_id, encoder)
    if cfg.profile.enabled:  # the data contract: recorded, then the ledger's
        contract = settle(cfg, encoder, schema.classes, prepared.summaries)
        record_contract(store, run_id, contract)
        try:
            refuse_if_flagged(cfg, contract)
        except DriftRefused as exc:
            record(None, str(exc))
            raise
    return build_context(cfg, encoder=encoder)


def _wait(
    executor: GrpcExecutor, participants: list[str], cfg: FedConfig, console: Console
) -> list[str]:
    """The participants connected within ``wait_s``, in roster order."""
    console.print(f"waiting for {len(participants)} participant(s)")
    connected = executor.wait_for(participants, cfg.deployment.wait_s)
    missing = sorted(set(participants) - connected)
    if not missing:
        return list(participants)
    if len(connected) < cfg.selection.min_participants:
        raise RunAborted(
            f"only {len(connected)} of {len(participants)} participants connected "
            f"within {cfg.deployment.wait_s:.0f} s (missing: {', '.join(missing)}); "
            "check their logs, or raise [deployment] wait_s"
        )
    logger.warning("starting without %s: not connected", ", ".join(missing))
    return [p for p in participants if p in connected]


def _as_json(result: RunResult, rejections: list[dict[str, object]]) -> dict[str, Any]:
    return {**run_json(result), "rejections": rejections}


def register(app: typer.Typer) -> None:
    """Add ``accord coordinator`` to the application."""
    app.command("coordinator")(coordinator_command)
