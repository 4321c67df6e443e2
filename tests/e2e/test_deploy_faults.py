"""Faults of a real deployment, each with the coordinator and sites as processes.

Every test runs ``accord coordinator`` and three ``accord participant`` processes
on loopback with certificates from ``accord pki`` (the ``deployment`` fixture kills
whatever is left at the end, failed or not). Training goes through a task whose
rounds wait at gates the test opens (``conftest.GATED_TASK``), so that a process
is killed, or a bad message sent, at a known point rather than after a guessed
sleep. Bad messages come from this test's process, with a site's real certificate.

- A coordinator SIGKILLed in the middle of round 2 (two updates received, one in
  training) and started again with ``--resume auto`` finishes the run with the
  same participants, which stayed up and redialled: every round recorded once,
  round 1 as it was, and the model ``accord simulate`` trains, bit for bit. What
  was meant for the dead process (an update trained for its round 2) is refused
  as stale by the new one, whose wire run id differs.
- Bad messages (malformed protobuf, wrong shape, NaN, oversized, duplicate,
  replay, another process's run) each get their status and reason, are in the
  store's events as soon as they are refused, and change nothing: the run ends
  with the simulated model. A single message over 4 MiB is refused unread
  (RESOURCE_EXHAUSTED, with its size) and recorded; only one over 64 MiB is
  refused by gRPC itself, before accord can read or record it.
- Certificates that are expired, self-signed, of another federation or revoked fail
  the TLS handshake: no call is made, nothing of accord's runs for them, and each
  site gives up with a hint that names the likely causes.
"""

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord.errors import SubmissionRefused
from accord.params import Params
from accord.store import SqlStore
from accord.transport import pki
from accord.transport.call_metadata import UploadTag
from accord.transport.client import CoordinatorClient
from accord.transport.messages import PackedHeader, UpdateHeader

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SITES = ("site-00", "site-01", "site-02")


# Speaking to the coordinator as a site, from the test's process.


def _client(deployment, site: str, port: int) -> CoordinatorClient:
    identity = pki.load_identity(deployment.root / site)
    return CoordinatorClient(f"localhost:{port}", identity=identity)


def _update(values: Params, *, run_id: str, round_number: int, base: str):
    spec = values.spec
    header = UpdateHeader(
        run_id=run_id,
        round=round_number,
        base_digest=base,
        params=PackedHeader(spec, spec.packed_nbytes, values.digest()),
        num_examples=10,
        duration_s=1.0,
    )
    return header, spec.pack(values)


def _refused(deployment, port, site, update) -> SubmissionRefused:
    header, buffer = update
    with (
        _client(deployment, site, port) as client,
        pytest.raises(SubmissionRefused) as info,
    ):
        client.submit_update(header, buffer, timeout_s=30)
    return info.value


def _round_model(deployment, port, site: str, round_number: int):
    """The wire run id ``site`` serves, and the model of its round's train task."""
    run_id = deployment.site_events(site, "connected")[-1]["run_id"]
    task = [
        e
        for e in deployment.site_events(site, "received_task")
        if (e["round"], e["kind"], e["run_id"]) == (round_number, "train", run_id)
    ][-1]
    with _client(deployment, site, port) as client:
        header, buffer = client.fetch_model(run_id, task["model_digest"])
    model = header.spec.view(buffer)
    return run_id, Params({n: np.array(a) for n, a in model.items()})


def _round_2_half_way(deployment, sent: int = 1, held: int = 1) -> None:
    """Wait until site-00 and site-01 sent round 2, and site-02 is training it."""
    deployment.wait_until(
        lambda: (
            deployment.held("site-02", 2, held)
            and deployment.sent_updates("site-00", 2) == sent
            and deployment.sent_updates("site-01", 2) == sent
        ),
        "round 2 half-way: two updates in, site-02 training",
    )


def _simulated_digests(deployment) -> list[str]:
    simulated = deployment.simulate()
    with SqlStore(f"sqlite:///{deployment.root}/sim.db") as store:
        digests = [r.global_digest for r in store.rounds(simulated["run_id"])]
    assert digests[-1] == simulated["final_digest"]
    return digests


def test_a_coordinator_killed_mid_round_resumes_with_the_same_participants(
    deployment,
):
    deployment.configure(gated=True)
    deployment.enrol()
    deployment.close_gate("site-02", 2)
    first, port = deployment.coordinator(name="coordinator-1")
    participants = {site: deployment.participant(site, port) for site in SITES}
    _round_2_half_way(deployment)
    dead_wire_id = deployment.site_events("site-02", "connected")[-1]["run_id"]

    deployment.kill(first)  # SIGKILL: two updates of round 2 in, nothing recorded

    with SqlStore(deployment.store_url) as store:
        (killed,) = store.list_runs()
        round_1 = store.rounds(killed.run_id)
    assert killed.status == "running"
    assert [r.number for r in round_1] == [1]
    second, _ = deployment.coordinator(
        "--resume", "auto", name="coordinator-2", listen=f"127.0.0.1:{port}"
    )
    # site-02 finishes the dead process's round 2; its update cannot count (it is
    # refused as stale, or finds no one) and it redials, as the others did.
    deployment.open_gate("site-02", 2, 1)
    _round_2_half_way(deployment, sent=2, held=2)
    wire_id, model = _round_model(deployment, port, "site-02", 2)
    in_flight = _update(model, run_id=dead_wire_id, round_number=2, base=model.digest())
    stale = _refused(deployment, port, "site-02", in_flight)
    deployment.open_gate("site-02", 2, 2)

    out = json.loads(deployment.finish(second, "coordinator-2"))
    for site, process in participants.items():
        deployment.finish(process, site)
    expected = _simulated_digests(deployment)
    assert stale.kind == "stale" and "not the current one" in stale.reason
    assert wire_id != dead_wire_id
    assert wire_id.startswith(killed.run_id) and dead_wire_id.startswith(killed.run_id)
    assert out["run_id"] == killed.run_id
    assert [r["number"] for r in out["rounds"]] == [1, 2, 3]
    assert [r["succeeded"] for r in out["rounds"]] == [3, 3, 3]
    assert out["final_digest"] == expected[-1]
    with SqlStore(deployment.store_url) as store:
        assert [r.run_id for r in store.list_runs()] == [killed.run_id]
        info, rounds = store.get_run(killed.run_id), store.rounds(killed.run_id)
        events = store.events(killed.run_id)
    assert info.status == "completed"
    assert [r.number for r in rounds] == [1, 2, 3]
    assert rounds[0] == round_1[0]  # not run again
    assert [r.status for r in rounds] == ["completed"] * 3
    assert [r.global_digest for r in rounds] == expected
    assert events and {(e.participant, e.round, e.kind) for e in events} == {
        ("site-02", 2, "stale")
    }
    rounds_2 = [
        e["model_digest"]
        for e in deployment.site_events("site-00", "received_task")
        if (e["round"], e["kind"]) == (2, "train")
    ]
    assert len(rounds_2) == 2 and rounds_2[0] == rounds_2[1]  # the same start


def test_bad_messages_are_refused_recorded_at_once_and_change_nothing(deployment):
    deployment.configure(gated=True)
    deployment.enrol()
    deployment.close_gate("site-02", 2)
    coordinator, port = deployment.coordinator()
    participants = {site: deployment.participant(site, port) for site in SITES}
    _round_2_half_way(deployment)
    wire_id, model = _round_model(deployment, port, "site-02", 2)
    base = model.digest()
    with SqlStore(deployment.store_url) as store:
        (run,) = store.list_runs()
        before = store.rounds(run.run_id)

    def update(values, *, round_number=2, run_id=wire_id):
        return _update(values, run_id=run_id, round_number=round_number, base=base)

    name, first = next((n, a) for n, a in model.items() if a.ndim > 1)
    refusals = {
        "wrong-shape": _refused(
            deployment,
            port,
            "site-02",
            update(Params({**model, name: first.reshape(-1)})),
        ),
        "nan": _refused(
            deployment,
            port,
            "site-02",
            update(Params({**model, name: np.full_like(first, np.nan)})),
        ),
        "oversized": _refused(
            deployment,
            port,
            "site-02",
            update(Params({**model, name: np.concatenate([first, first])})),
        ),
        "duplicate": _refused(deployment, port, "site-00", update(model)),
        "replay": _refused(deployment, port, "site-02", update(model, round_number=1)),
        "other-process": _refused(
            deployment, port, "site-02", update(model, run_id=f"{run.run_id}.0")
        ),
    }
    tag = UploadTag(wire_id, 2)  # what accord's client names in the call metadata
    malformed = _raw_call(deployment, port, "site-02", b"\x0a\xff\xff", tag)
    too_big = _raw_call(deployment, port, "site-02", b"\x0a" + bytes(5 * 2**20), tag)
    huge = _raw_call(deployment, port, "site-02", b"\x0a" + bytes(65 * 2**20), tag)
    untagged = _raw_call(deployment, port, "site-02", b"\x0a\xff\xff")
    with SqlStore(deployment.store_url) as store:
        recorded = [(e.participant, e.round, e.kind) for e in store.events(run.run_id)]
        during = store.rounds(run.run_id)
    deployment.open_gate("site-02", 2)

    out = json.loads(deployment.finish(coordinator, "coordinator"))
    for site, process in participants.items():
        deployment.finish(process, site)
    expected = _simulated_digests(deployment)
    assert [r.kind for r in refusals.values()] == [
        "mismatch",
        "mismatch",
        "too_large",
        "duplicate",
        "stale",
        "stale",
    ]
    assert f"tensor {name!r}" in refusals["wrong-shape"].reason
    assert "NaN" in refusals["nan"].reason
    assert "duplicate" in refusals["duplicate"].reason
    assert "replay" in refusals["replay"].reason
    assert malformed.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid UpdatePart" in malformed.details()
    # Over accord's 4 MiB message limit: refused unread, with its size, and recorded.
    assert too_big.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "the limit is 4194304" in too_big.details()
    # Over 64 MiB, gRPC refuses it itself, before accord sees it.
    assert huge.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in huge.details()
    # An upload without the run and round in its call metadata (an older client)
    # is refused before it is read, with what to do.
    assert untagged.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Install the coordinator's accord version" in untagged.details()
    # The first refusal of each (site, method, kind) was in the store while round 2
    # was still open; its repeats were counted, and recorded when the run ended.
    assert recorded[:5] == [
        ("site-02", 2, "mismatch"),
        ("site-02", 2, "too_large"),
        ("site-00", 2, "duplicate"),
        ("site-02", 1, "stale"),
        ("site-02", 2, "malformed"),
    ]
    # gRPC drops the 65 MiB frame and ends the stream: the handler, if it runs at
    # all, sees an update stream without its header.
    with SqlStore(deployment.store_url) as store:
        events = store.events(run.run_id)
    final = [(e.participant, e.round, e.kind) for e in events]
    assert final[:5] == recorded[:5]
    assert set(final[5:]) <= {
        ("site-02", 2, "mismatch"),
        ("site-02", 2, "too_large"),
        ("site-02", 2, "stale"),
        ("site-02", 2, "malformed"),
        ("site-02", None, "malformed"),  # the last of them, untagged: no round
    }
    counts = {(r["participant"], r["kind"]): r["count"] for r in out["rejections"]}
    assert counts[("site-02", "mismatch")] == 2
    assert counts[("site-02", "too_large")] == 2
    assert counts[("site-02", "stale")] == 2
    assert counts[("site-00", "duplicate")] == 1
    assert counts[("site-02", "malformed")] >= 2  # + the untagged (+ the huge one)
    assert any("[2 refusals of this kind" in e.detail for e in events)
    assert during == before and [r.number for r in before] == [1]
    assert [r["succeeded"] for r in out["rounds"]] == [3, 3, 3]
    assert out["final_digest"] == expected[-1]


def _raw_call(
    deployment, port, site, data: bytes, tag: UploadTag | None = None
) -> grpc.RpcError:
    """Send ``data`` as one SubmitUpdate message, bypassing accord's client."""
    folder = deployment.root / site
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(folder / pki.CA_CERT).read_bytes(),
        private_key=(folder / pki.KEY).read_bytes(),
        certificate_chain=(folder / pki.CERT).read_bytes(),
    )
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        call = channel.stream_unary("/accord.v1.Federation/SubmitUpdate")
        with pytest.raises(grpc.RpcError) as info:
            call(iter([data]), timeout=30, metadata=tag.metadata() if tag else None)
    return info.value


# Certificates the coordinator must refuse.


def _expired(deployment, folder: str) -> None:
    """A certificate of this federation's CA that expired a year ago."""
    past = datetime.now(UTC) - timedelta(days=400)
    csr = pki.request(deployment.root / folder, "site-04", role="participant")
    pki.sign(
        deployment.root / "ca",
        csr,
        passphrase=deployment.PASSPHRASE,
        role="participant",
        days=30,
        now=past,
    )


def _other_federation(deployment, folder: str) -> None:
    """site-01's name, signed by another CA (of a federation also named e2e)."""
    other = deployment.root / "other-ca"
    pki.init_ca(other, federation="e2e", passphrase=deployment.PASSPHRASE)
    csr = pki.request(deployment.root / folder, "site-01", role="participant")
    pki.sign(other, csr, passphrase=deployment.PASSPHRASE, role="participant")
    # It trusts the real coordinator: only its own certificate is foreign.
    shutil.copy(deployment.root / "ca" / pki.CA_CERT, deployment.root / folder)


def _self_signed(deployment, folder: str) -> None:
    """site-02's name on a certificate that signs itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "site-02"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "participant"),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    directory = deployment.root / folder
    directory.mkdir()
    pem = serialization.Encoding.PEM
    (directory / pki.KEY).write_bytes(
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (directory / pki.KEY).chmod(0o600)
    (directory / pki.CERT).write_bytes(cert.public_bytes(pem))
    shutil.copy(deployment.root / "ca" / pki.CA_CERT, directory)


def test_refused_certificates_stay_out_and_the_run_goes_on(deployment):
    deployment.configure()
    deployment.enrol(*SITES, "site-03")
    deployment.accord("pki", "revoke", "site-03", "--ca", "ca")
    _expired(deployment, "expired")
    _other_federation(deployment, "other-federation")
    _self_signed(deployment, "self-signed")
    coordinator, port = deployment.coordinator()
    refused = {
        folder: deployment.participant(
            folder, port, "--give-up-after", "2", data="site-00", may_fail=True
        )
        for folder in ("site-03", "expired", "other-federation", "self-signed")
    }
    codes = {}
    for folder, process in refused.items():  # the coordinator is waiting meanwhile
        try:
            codes[folder] = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{folder} did not give up: {deployment.log(folder)[-2000:]}")

    participants = {site: deployment.participant(site, port) for site in SITES}

    out = json.loads(deployment.finish(coordinator, "coordinator"))
    for site, process in participants.items():
        deployment.finish(process, site)
    said = {f: " ".join(deployment.log(f).split()) for f in refused}
    assert all(code != 0 for code in codes.values()), codes
    for folder in refused:
        # The handshake failed every time: the site never got to make a call. The
        # revoked site too: the handshake trusts only the roster's active
        # certificates.
        assert "giving up" in said[folder], said[folder]
        assert "revoked" in said[folder]  # the hint names the likely causes
        tries = deployment.site_events(folder)
        assert tries and {e["event"] for e in tries} == {"disconnected"}
        assert all(e["code"] == "UNAVAILABLE" for e in tries)
        assert not any("Connection refused" in e["reason"] for e in tries)
    assert [r["succeeded"] for r in out["rounds"]] == [3, 3, 3]
    with SqlStore(deployment.store_url) as store:
        events = store.events(out["run_id"])
    # None got as far as a call: nothing of accord's ran for them, nothing recorded.
    assert events == []
