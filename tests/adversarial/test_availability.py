"""Availability: one certificate holder must not freeze a round or flood the record.

Issue 8, "Availability" and the first bullet of "Revocation". Real gRPC, real mutual
TLS, certificates from the federation's CA; the honest sites are participant
runtimes in threads (the integration suite's ``deploy_sites``).
"""

import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest

from accord.config import load_config
from accord.coordinator.runner import Coordinator, RoundSummary
from accord.errors import AuthenticationFailed
from accord.simulation.context import build_context
from accord.simulation.inprocess import InProcessExecutor
from accord.store import MemoryStore
from accord.transport import pki
from accord.transport.call_metadata import UploadTag

SITES = ("site-00", "site-01", "site-02")
FEDERATION = "/accord.v1.Federation/"
SILENT_STREAMS = 200
FLOOD = 1000  # garbage calls before the rounds start (more follow during them)

pytestmark = pytest.mark.timeout(240)

FED = """
[federation]
name = "availability"
rounds = {rounds}
seed = 23
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[simulation]
workers = 0
[round]
deadline_s = 60
"""


def _config(tmp_path: Path, rounds: int):
    path = tmp_path / "fed.toml"
    path.write_text(FED.format(rounds=rounds))
    return load_config(path)


def _simulated(config):
    """The same federation without the attacker, in process."""
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    result = Coordinator(
        config, executor=InProcessExecutor(ctx), store=MemoryStore()
    ).run(initial)
    return initial, result


def _run(deployed, initial, *, observer=None, before_close=lambda: None):
    """Run the rounds over the deployment; ``before_close`` runs before it ends."""
    running = deployed.running
    assert running.executor.wait_for(deployed.sites, 20) == set(deployed.sites)
    try:
        return Coordinator(
            deployed.config,
            executor=running.executor,
            store=MemoryStore(),
            observer=observer,
        ).run(initial)
    finally:
        before_close()
        running.executor.close()  # records the last counts of repeated refusals
        for thread in deployed.threads:
            thread.join(20)


def _channel(federation, name: str, target: str) -> grpc.Channel:
    folder = federation.root / name
    creds = grpc.ssl_channel_credentials(
        root_certificates=(federation.ca / pki.CA_CERT).read_bytes(),
        private_key=(folder / pki.KEY).read_bytes(),
        certificate_chain=(folder / pki.CERT).read_bytes(),
    )
    return grpc.secure_channel(target, creds)


class Attack:
    """A non-member's silent streams and a flood of garbage calls, from threads."""

    def __init__(self, channel: grpc.Channel, run_id: str) -> None:
        self.channel = channel
        self.tag = UploadTag(run_id, 1).metadata()
        self.release = threading.Event()
        self.stop = threading.Event()
        self.codes: Counter[grpc.StatusCode] = Counter()
        self.calls = 0
        self.streams: list = []
        self.flooder: threading.Thread | None = None

    def _silence(self):
        self.release.wait(120)  # never sends a byte until the test ends
        return
        yield  # a generator

    def open_silent_streams(self, count: int) -> None:
        upload = self.channel.stream_unary(FEDERATION + "SubmitUpdate")
        subscribe = self.channel.stream_stream(FEDERATION + "Subscribe")
        for i in range(count):
            if i % 2:
                self.streams.append(upload.future(self._silence(), metadata=self.tag))
            else:
                self.streams.append(subscribe(self._silence()))
        self.calls += count

    def start_flood(self) -> None:
        evaluate = self.channel.unary_unary(FEDERATION + "SubmitEval")
        fetch = self.channel.unary_stream(FEDERATION + "FetchModel")

        def flood() -> None:
            while not self.stop.is_set():
                try:
                    if self.calls % 2:
                        evaluate(b"\xff\x00garbage", timeout=30)
                    else:
                        list(fetch(b"\x0a\x03run", timeout=30))
                except grpc.RpcError as exc:
                    self.codes[exc.code()] += 1
                self.calls += 1

        self.flooder = threading.Thread(target=flood, daemon=True)
        self.flooder.start()

    def end(self) -> None:
        self.stop.set()
        if self.flooder is not None:
            self.flooder.join(30)
        for call in self.streams:
            self.codes[call.code()] += 1  # waits until the call ended
        self.release.set()
        self.channel.close()


def test_silent_streams_and_a_refusal_flood_from_a_non_member_delay_no_round(
    federation, deploy_sites, tmp_path
):
    # Arrange: the reference run without the attacker; then the deployment, an
    # outsider with a valid certificate from the federation's CA (not in the run),
    # and an admin.
    config = _config(tmp_path, rounds=2)
    initial, simulated = _simulated(config)
    federation.enrol("outsider")
    federation.enrol("operator", "admin")
    deployed = deploy_sites(SITES, config)
    running = deployed.running
    attack = Attack(
        _channel(federation, "outsider", running.target), running.executor.run_id
    )

    # Act: 200 silent streams, then a flood of garbage that goes on while the
    # rounds run.
    attack.open_silent_streams(SILENT_STREAMS)
    attack.start_flood()
    flood_t0 = time.monotonic()
    while attack.calls < SILENT_STREAMS + FLOOD and time.monotonic() - flood_t0 < 60:
        time.sleep(0.05)
    flood_rate = (attack.calls - SILENT_STREAMS) / (time.monotonic() - flood_t0)
    t0 = time.monotonic()
    status = running.admin("operator").status()  # the admin is answered meanwhile
    status_s = time.monotonic() - t0
    result = _run(deployed, initial, before_close=attack.end)

    # Assert: the rounds completed with every honest site, well before the
    # deadline, and the model is the one the federation computes without attacker.
    assert [r.status for r in result.rounds] == ["completed"] * 2
    assert [r.succeeded for r in result.rounds] == [3, 3]
    assert all(r.duration_s < config.round.deadline_s / 2 for r in result.rounds)
    assert result.params.digest() == simulated.params.digest()
    assert status.run_id == running.executor.run_id and status_s < 20
    print(
        f"flood: {flood_rate:.0f} refused calls/s; Status answered in {status_s:.3f} s"
    )
    # Every attacking call was refused at once: forbidden, then throttled.
    assert set(attack.codes) <= {
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
    assert attack.codes[grpc.StatusCode.PERMISSION_DENIED] >= 1
    assert attack.codes[grpc.StatusCode.RESOURCE_EXHAUSTED] >= 1
    assert sum(attack.codes.values()) == attack.calls > SILENT_STREAMS
    # Each refusal is counted in memory, in a bounded number of groups ...
    groups = list(running.executor.rejections.snapshot())
    assert {r.participant for r in groups} == {"outsider"}
    assert sum(r.count for r in groups) == attack.calls
    assert len(running.executor.rejections) == attack.calls
    assert len(groups) <= 8  # 4 methods x (forbidden, throttled)
    assert {r.kind for r in groups} == {"forbidden", "throttled"}
    # ... and the store holds a first row and a closing count per group, not a
    # row per call.
    rows = running.events()
    assert {who for who, _, _ in rows} == {"outsider"}
    assert len(rows) <= 2 * len(groups) < attack.calls
    last = {(r.method, r.kind): r.count for r in groups}
    details = [e.detail for e in running.store.events(running.run_id)]
    for (method, kind), count in last.items():
        if count > 1:
            assert any(
                d.startswith(f"{method}: ") and f"[{count} refusals" in d
                for d in details
            ), (method, kind, count)
    # The honest sites were never refused anything.
    assert all(deployed.ended[name] == "run finished" for name in SITES)


def test_a_member_holding_silent_streams_gets_its_share_only_and_is_cut(
    start_coordinator, federation
):
    # Arrange: a run whose member "site-02" turns attacker, with short timeouts.
    from accord.transport.admission import Limits

    running = start_coordinator(
        SITES, limits=Limits(per_peer=4, first_byte_s=1.0, idle_s=1.0)
    )
    running.executor.publish(_simulated_model())
    attack = Attack(
        _channel(federation, "site-02", running.target), running.executor.run_id
    )
    honest = running.client("site-00")

    # Act: 20 silent Subscribe streams from the member.
    subscribe = attack.channel.stream_stream(FEDERATION + "Subscribe")
    calls = [subscribe(attack._silence()) for _ in range(20)]
    codes = Counter(call.code() for call in calls)  # each ends, one way or another
    attack.release.set()

    # Assert: 4 were admitted and cut for silence, 16 refused at once as busy;
    # an honest member's calls still went through meanwhile.
    assert codes == {
        grpc.StatusCode.RESOURCE_EXHAUSTED: 16,
        grpc.StatusCode.DEADLINE_EXCEEDED: 4,
    }
    cut = [c for c in calls if c.code() == grpc.StatusCode.DEADLINE_EXCEEDED]
    # The member reads why (it was a bare CANCELLED before).
    assert {c.details() for c in cut} == {"no first message for 1 s; the call was cut"}
    header, model = honest.fetch_model(
        running.executor.run_id, running.executor._model.header.digest
    )
    assert len(model) == header.total_bytes
    kinds = {(r.kind, r.count) for r in running.executor.rejections.snapshot()}
    assert kinds == {("busy", 16), ("idle", 4)}
    rows = running.events()
    assert rows.count(("site-02", None, "busy")) == 1  # first of 16, at once
    assert rows.count(("site-02", None, "idle")) == 1
    honest.close()
    attack.channel.close()


def _simulated_model():
    import numpy as np

    from accord.params import Params

    return Params({"w": np.zeros((4, 3), np.float32)})


class RevokeAfterFirstRound:
    """An observer that revokes ``name`` once round 1 is recorded, and waits until
    the coordinator has noticed (so that round 2 starts after the revocation)."""

    def __init__(self, federation, running, name: str) -> None:
        self.federation, self.running, self.name = federation, running, name
        self.noticed_s: float | None = None
        self.selected: dict[int, tuple[str, ...]] = {}

    def round_started(self, number, selected) -> None:
        self.selected[number] = tuple(selected)

    def participant_finished(self, number, outcome) -> None:
        pass

    def round_finished(self, summary: RoundSummary) -> None:
        if summary.number != 1:
            return
        t0 = time.monotonic()
        self.federation.revoke(self.name)
        while self.name not in self.running.executor.removed:
            assert time.monotonic() - t0 < 20, "the revocation was not noticed"
            time.sleep(0.05)
        self.noticed_s = time.monotonic() - t0


def test_a_participant_revoked_mid_run_is_cut_off_and_no_round_waits_for_it(
    federation, deploy_sites, tmp_path
):
    # Arrange: three sites, three rounds with a 60 s deadline.
    config = _config(tmp_path, rounds=3)
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    deployed = deploy_sites(SITES, config)
    running = deployed.running
    observer = RevokeAfterFirstRound(federation, running, "site-02")

    # Act: revoke site-02 (accord pki revoke) as soon as round 1 is recorded.
    result = _run(deployed, initial, observer=observer)

    # Assert: noticed within seconds; later rounds neither selected it nor waited.
    assert observer.noticed_s is not None and observer.noticed_s < 20
    assert observer.selected == {
        1: SITES,
        2: ("site-00", "site-01"),
        3: ("site-00", "site-01"),
    }
    assert [r.status for r in result.rounds] == ["completed"] * 3
    assert [r.succeeded for r in result.rounds] == [3, 2, 2]
    assert all(r.duration_s < config.round.deadline_s / 2 for r in result.rounds)
    # No task after round 1 reached it; it stopped on the reason (exit code 5).
    received = [e["round"] for e in deployed.site_log("site-02", "received_task")]
    assert received and max(received) == 1
    ended = deployed.ended["site-02"]
    assert isinstance(ended, AuthenticationFailed) and "revoked" in str(ended)
    # Recorded in the run's events, with the reason.
    (event,) = [e for e in running.store.events(running.run_id) if e.kind == "revoked"]
    assert event.participant == "site-02" and "was revoked on" in event.detail
    assert all(deployed.ended[n] == "run finished" for n in SITES[:2])
