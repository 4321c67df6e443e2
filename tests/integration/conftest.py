"""Real gRPC servers on loopback port 0, with certificates from a real federation CA."""

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord.config import FedConfig
from accord.coordinator.lineage import LedgerSetup
from accord.coordinator.runner import Coordinator, RunResult
from accord.params import Params
from accord.participant.backoff import Backoff
from accord.participant.data import LocalData, build_task, load_local_data
from accord.participant.policy import SitePolicy
from accord.participant.runtime import ParticipantRuntime
from accord.participant.sitelog import SiteLog
from accord.simulation.context import build_context
from accord.store import MemoryStore, SqlStore
from accord.transport import pki
from accord.transport.client import AdminClient, CoordinatorClient
from accord.transport.executor import GrpcExecutor, wire_run_id
from accord.transport.identity import load_signing_identity
from accord.transport.jobs import STAGES
from accord.transport.messages import Receipt
from accord.transport.rejections import event_recorder
from accord.transport.server import CoordinatorServer, serve
from accord.transport.trust import TrustStore

PASS = b"integration passphrase"
SITES = ("site-00", "site-01", "site-02")


@dataclass
class Federation:
    """A CA directory and enrolled identity folders by name."""

    ca: Path
    root: Path

    def enrol(
        self,
        name: str,
        role: pki.Role = "participant",
        *,
        days: int = 365,
        now: datetime | None = None,
    ) -> Path:
        """Issue ``name`` a certificate; ``now`` in the past makes an expired one."""
        site = self.root / name
        hosts = ["localhost", "127.0.0.1"] if role == "coordinator" else []
        csr = pki.request(site, name, role=role, hosts=hosts)
        pki.sign(self.ca, csr, passphrase=PASS, role=role, days=days, now=now)
        return site

    def revoke(self, name: str) -> None:
        pki.revoke(self.ca, name, passphrase=PASS)


@pytest.fixture
def federation(tmp_path: Path) -> Federation:
    ca = tmp_path / "ca"
    pki.init_ca(ca, federation="integration", passphrase=PASS)
    fed = Federation(ca, tmp_path)
    fed.enrol("coordinator", "coordinator")
    for name in SITES:
        fed.enrol(name)
    return fed


@dataclass
class Running:
    executor: GrpcExecutor
    server: CoordinatorServer
    federation: Federation
    store: SqlStore
    run_id: str  # the store's; the executor's run_id is the wire's

    def events(self) -> list[tuple[str | None, int | None, str]]:
        """(participant, round, kind) of each refusal the store has recorded."""
        return [
            (e.participant, e.round, e.kind) for e in self.store.events(self.run_id)
        ]

    @property
    def target(self) -> str:
        return f"localhost:{self.server.port}"

    def client(self, name: str, *, folder: Path | None = None) -> CoordinatorClient:
        """A site's client, presenting its identity certificate when it has one."""
        folder = folder or self.federation.root / name
        signing = load_signing_identity(folder)
        return CoordinatorClient(
            self.target,
            identity=pki.load_identity(folder),
            identity_certificate=signing.certificate if signing else b"",
        )

    def admin(self, name: str) -> AdminClient:
        identity = pki.load_identity(self.federation.root / name)
        return AdminClient(self.target, identity=identity)


def _serve(
    federation: Federation, directory: Path, sites: tuple[str, ...], **options
) -> Running:
    directory.mkdir(exist_ok=True)
    store = SqlStore(f"sqlite:///{directory}/runs.db")
    run_id = store.create_run(name="integration", config={}, seed=0, rounds_planned=3)
    limits = options.pop("limits", None)  # the server's (admission.Limits)
    executor = GrpcExecutor(
        sites,
        run_id=wire_run_id(run_id),
        spool_dir=directory,
        grace_s=30.0,  # a site slow to reconnect under load keeps its job
        on_reject=event_recorder(store, run_id),
        **options,
    )
    server = serve(
        executor,
        listen="127.0.0.1:0",
        identity=pki.load_identity(federation.root / "coordinator"),
        trust=TrustStore.load(federation.ca),
        limits=limits,
    )
    return Running(executor, server, federation, store, run_id)


def _shut(running: Running) -> None:
    running.executor.close()
    running.server.stop(0.5)
    running.store.close()


@pytest.fixture
def coordinator(federation: Federation, tmp_path: Path) -> Iterator[Running]:
    """A GrpcExecutor for SITES behind a mutual-TLS server on a free port.

    Refusals go to a SQLite run store as they are made, as in ``accord
    coordinator``; the wire names the run as a coordinator process would.
    """
    running = _serve(federation, tmp_path, SITES)
    try:
        yield running
    finally:
        _shut(running)


@pytest.fixture
def start_coordinator(
    federation: Federation, tmp_path: Path
) -> Iterator[Callable[..., Running]]:
    """Start coordinators like ``coordinator`` for other rosters; all stop at the end.

    ``start(sites, **options)``: ``options`` go to the GrpcExecutor, but ``limits``
    to the server. The sites of a
    roster must be enrolled (``federation.enrol``) before they dial.
    """
    started: list[Running] = []

    def start(sites: tuple[str, ...], **options) -> Running:
        directory = tmp_path / f"coordinator-{len(started)}"
        running = _serve(federation, directory, sites, **options)
        started.append(running)
        return running

    yield start
    for running in started:
        _shut(running)


class SilenceClock:
    """Real time that skips an hour ahead whenever only silent sites owe an answer.

    For the coordinator and its executor (``clock=``) in tests where some sites go
    silent (``silent[site] = stage``: from that stage of a secure round on, its
    train job answering the first): the round never waits out a deadline for
    them in real time, yet an honest site is never late however loaded the
    machine is, because time skips only when every job still open is one a
    silent site will not answer and every answer that came has been taken
    (:meth:`GrpcExecutor.owing`). Only the thread that made the clock (the one
    that runs the rounds) skips it; others just read it. Give ``executor`` once
    the coordinator is started.
    """

    def __init__(self, silent: Mapping[str, str]) -> None:
        self.silent = dict(silent)
        self.executor: GrpcExecutor | None = None
        self.offset = 0.0
        self._owner = threading.current_thread()

    def _never_answered(self, job: tuple[str, str]) -> bool:
        site, what = job
        stage = STAGES[0] if what == "train" else what
        cut = self.silent.get(site)
        return (
            cut is not None
            and stage in STAGES
            and (STAGES.index(stage) >= STAGES.index(cut))
        )

    def __call__(self) -> float:
        ex = self.executor
        if ex is not None and threading.current_thread() is self._owner:
            owing, queued = ex.owing()
            if owing and queued == 0 and all(map(self._never_answered, owing)):
                self.offset += 3600.0
        return time.monotonic() + self.offset


class Silent:
    """A site's connection that sends nothing of a secure round from ``stage`` on."""

    def __init__(self, client, stage: str) -> None:
        self.client = client
        self.cut = STAGES.index(stage)

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    def submit_secagg(self, header, payload, **kw):
        if STAGES.index(header.stage) >= self.cut:
            return Receipt(header.run_id, header.round, "", "", 0)  # lost on the way
        return self.client.submit_secagg(header, payload, **kw)


class Deployed:
    """Participant runtimes for ``sites`` against one coordinator, in threads.

    ``ckks_public`` is the key holder's public context the coordinator gets (CKKS
    rounds).
    """

    def __init__(
        self,
        running: Running,
        config: FedConfig,
        logs: Path,
        sites: tuple[str, ...],
        *,
        ckks_public: bytes | None = None,
    ) -> None:
        self.running = running
        self.config = config
        self.logs = logs
        self.sites = sites
        self.ckks_public = ckks_public
        self.threads: list[threading.Thread] = []
        self.ended: dict[str, object] = {}
        self.clock: Callable[[], float] | None = None  # the coordinator's, if set
        self.accept_noise_seed = False

    def start(
        self,
        *,
        silent: Mapping[str, str] | None = None,
        policies: Mapping[str, SitePolicy] | None = None,
        folders: Mapping[str, Path] | None = None,
        ckks: Mapping[str, bytes] | None = None,
        accept_noise_seed: bool = False,
    ) -> None:
        """Start every site; ``silent[site] = stage``: it goes quiet from there.

        ``ckks[site]`` is the secret CKKS context the site holds (none if absent);
        ``accept_noise_seed`` lets the sites take a seeded DP noise share.
        """
        self.accept_noise_seed = accept_noise_seed
        for name in self.sites:
            folder = (folders or {}).get(name, self.running.federation.root / name)
            self._start(
                name,
                folder,
                stage=(silent or {}).get(name),
                policy=(policies or {}).get(name),
                ckks=(ckks or {}).get(name),
            )

    def _start(self, name, folder, *, stage, policy, ckks) -> None:
        ctx = build_context(self.config)  # each site its own data and task
        site = ctx.site(name)
        data = LocalData(name, ctx.data.info, site.train, site.holdout)

        def connect():
            client = self.running.client(name, folder=folder)
            return Silent(client, stage) if stage else client

        runtime = ParticipantRuntime(
            connect,
            ctx.task,
            data,
            log=SiteLog(self.logs / f"{name}.jsonl"),
            backoff=Backoff(initial_s=0.05, maximum_s=0.5),
            signing=load_signing_identity(folder),
            ca_pem=pki.load_identity(folder).ca_pem,
            policy=policy,
            ckks_context=ckks,
            accept_noise_seed=self.accept_noise_seed,
        )

        def serve():
            try:
                self.ended[name] = runtime.run()
            except Exception as exc:  # the test looks at it
                self.ended[name] = exc
            finally:
                runtime.log.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        self.threads.append(thread)

    def run(
        self,
        initial: Params,
        *,
        clock: Callable[[], float] | None = None,
        ledger: LedgerSetup | None = None,
        in_store: bool = False,
    ) -> tuple[RunResult, MemoryStore | SqlStore]:
        """Wait for every site, run the rounds, end the run.

        ``clock`` is the coordinator's (give the executor the same one, a
        :class:`SilenceClock` where sites go silent); ``deploy_sites`` sets one.
        ``ledger``: the run keeps a signed ledger. ``in_store``: the run is the one
        the coordinator's store holds and the wire names (as in ``accord
        coordinator``), not a new one in memory.
        """
        clock = clock or self.clock
        connected = self.running.executor.wait_for(self.sites, 60)
        assert connected == set(self.sites), self.ended
        store: MemoryStore | SqlStore = (
            self.running.store if in_store else MemoryStore()
        )
        run_id = self.running.run_id if in_store else None
        try:
            result = Coordinator(
                self.config,
                executor=self.running.executor,
                store=store,
                ckks_public_context=self.ckks_public,
                ledger=ledger,
                **({"clock": clock} if clock is not None else {}),
            ).run(initial, run_id=run_id)
        finally:
            self.running.executor.close()
            for thread in self.threads:
                thread.join(10)
        return result, store

    def site_log(self, name: str, event: str | None = None) -> list[dict]:
        entries = SiteLog.read(self.logs / f"{name}.jsonl")
        return [e for e in entries if event is None or e["event"] == event]


@pytest.fixture
def deploy_sites(federation, start_coordinator, tmp_path):
    """``deploy_sites(sites, config, **start)``: a coordinator and sites ready to run.

    Sites not enrolled yet are enrolled first. ``executor`` (a dict) goes to the
    GrpcExecutor, ``ckks_public`` to the Coordinator, the rest to
    :meth:`Deployed.start`. With ``silent`` sites, the coordinator and its
    executor run on a :class:`SilenceClock`: nobody waits out a deadline for
    them, and no deadline makes an honest site late.
    """
    count = [0]

    def make(
        sites: tuple[str, ...],
        config: FedConfig,
        *,
        executor: Mapping[str, object] | None = None,
        ckks_public: bytes | None = None,
        **start,
    ) -> Deployed:
        for name in sites:
            if not (federation.root / name).exists():
                federation.enrol(name)
        count[0] += 1
        logs = tmp_path / f"logs-{count[0]}"
        logs.mkdir()
        clock = SilenceClock(start["silent"]) if start.get("silent") else None
        options = {"clock": clock, **(executor or {})} if clock else executor
        running = start_coordinator(sites, **(options or {}))
        deployed = Deployed(running, config, logs, sites, ckks_public=ckks_public)
        if clock is not None:
            clock.executor = running.executor
            deployed.clock = clock
        deployed.start(**start)
        return deployed

    return make


@pytest.fixture
def background() -> Iterator[Callable[[Callable[[], object]], threading.Thread]]:
    """Start daemon threads; join them (bounded) at the end of the test."""
    threads: list[threading.Thread] = []

    def start(fn: Callable[[], object]) -> threading.Thread:
        thread = threading.Thread(target=fn, daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.join(10)


class SimSites:
    """Participant runtimes on a fed.toml's simulated partitions, in threads."""

    def __init__(self, running: Running, sites: tuple[str, ...]) -> None:
        self.running = running
        self.sites = sites
        self.threads: list[threading.Thread] = []
        #: What each site's ``run()`` returned: the coordinator's goodbye.
        self.goodbyes: dict[str, str] = {}

    def run(
        self,
        config: FedConfig,
        initial: Params,
        *,
        store: MemoryStore | None = None,
        close: bool = True,
        **coordinator: object,
    ) -> RunResult:
        """Wait for every site, run the rounds (``coordinator``: more Coordinator
        arguments), end the run and wait for the sites to leave.

        ``close=False`` leaves the executor open (its spool folder with it) for
        the test to look at; the test then calls :meth:`close`.
        """
        connected = self.running.executor.wait_for(self.sites, 20)
        assert connected == set(self.sites)
        ran = False
        try:
            result = Coordinator(
                config,
                executor=self.running.executor,
                store=MemoryStore() if store is None else store,
                **coordinator,
            ).run(initial)
            ran = True
            return result
        finally:
            if close or not ran:
                self.close()

    def close(self) -> None:
        """End the run at the executor; wait for the sites to leave."""
        self.running.executor.close()
        for thread in self.threads:
            thread.join(10)


@pytest.fixture
def sim_sites(background):
    """``sim_sites(running, fed_toml, sites, logs, **options)``: sites started.

    Each site trains on ``sim:FED_TOML#SITE`` with the task the fed.toml names
    (``fed_toml`` may be a function of the site's name too), logs to
    ``logs/SITE.jsonl`` and keeps its state in ``logs/state/SITE``. ``options`` go
    to each
    :class:`ParticipantRuntime`: a value, or a function of the site's name that
    gives it (``state_dir=lambda name: ...``).
    """

    def start(
        running: Running,
        fed_toml: Path | Callable[[str], Path],
        sites: tuple[str, ...],
        logs: Path,
        **options: object,
    ) -> SimSites:
        started = SimSites(running, sites)
        options.setdefault("state_dir", lambda name: logs / "state" / name)
        for name in sites:
            toml = fed_toml(name) if callable(fed_toml) else fed_toml
            data = load_local_data(f"sim:{toml}#{name}")
            runtime = ParticipantRuntime(
                lambda n=name: running.client(n),
                build_task(data, None),
                data,
                log=SiteLog(logs / f"{name}.jsonl"),
                backoff=Backoff(initial_s=0.05, maximum_s=0.5),
                **{k: v(name) if callable(v) else v for k, v in options.items()},
            )

            def serve(r: ParticipantRuntime = runtime, n: str = name) -> None:
                try:
                    started.goodbyes[n] = r.run()
                finally:
                    r.log.close()

            started.threads.append(background(serve))
        return started

    return start


def _ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Another CA")])
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _builder(subject, issuer, public_key) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
    )


@pytest.fixture
def forge(tmp_path: Path) -> Callable[..., Path]:
    """A participant folder whose certificate is self-signed or from another CA."""

    def make(name: str, *, other_ca: bool = False) -> Path:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, name),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "participant"),
            ]
        )
        issuer, signer = _ca() if other_ca else (None, key)
        cert = (
            _builder(subject, issuer.subject if issuer else subject, key.public_key())
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(signer, hashes.SHA256())
        )
        directory = tmp_path / f"forged-{name}-{other_ca}"
        directory.mkdir()
        pem = serialization.Encoding.PEM
        (directory / pki.KEY).write_bytes(
            key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (directory / pki.CERT).write_bytes(cert.public_bytes(pem))
        return directory

    return make


@pytest.fixture
def raw_channel(coordinator: Running) -> Callable[[str | None], object]:
    """A bare gRPC channel to the coordinator with a site's certificate (or none).

    ``who`` is an enrolled site's name, a folder holding key.pem and cert.pem, or
    None for no client certificate at all.
    """
    import grpc

    ca_pem = (coordinator.federation.ca / pki.CA_CERT).read_bytes()

    def open_channel(who: str | Path | None):
        if who is None:
            creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
        else:
            site = who if isinstance(who, Path) else coordinator.federation.root / who
            creds = grpc.ssl_channel_credentials(
                root_certificates=ca_pem,
                private_key=(site / pki.KEY).read_bytes(),
                certificate_chain=(site / pki.CERT).read_bytes(),
            )
        return grpc.secure_channel(coordinator.target, creds)

    return open_channel


def _listen(running: Running, name: str, stop: threading.Event) -> queue.Queue:
    """Hold a task stream open for ``name``; what arrives (or fails) goes to a queue."""
    received: queue.Queue = queue.Queue()

    def run() -> None:
        client = running.client(name)
        try:
            for message in client.subscribe():
                received.put(message)
                if stop.is_set():
                    break
        except Exception as exc:
            received.put(exc)
        finally:
            client.close()

    threading.Thread(target=run, daemon=True).start()
    return received


@pytest.fixture
def listen() -> Callable[[Running, str, threading.Event], queue.Queue]:
    """``listen(coordinator, name, stop)``: a site's task stream, as a queue."""
    return _listen
