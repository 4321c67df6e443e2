"""Who may call the coordinator: certificates checked at the handshake and per call.

A certificate that is self-signed, from another federation's CA, expired or revoked
fails the TLS handshake itself: the handshake trusts exactly the roster's active
certificates (``TrustStore.handshake_roots``), asked again before each new
connection, and the call never reaches accord (so there is nothing to record). A
connection already open when its certificate is revoked is refused with
UNAUTHENTICATED on its next call by the server's per-call check (``Authenticator``
in ``accord.transport.security``), which records the refusal.
"""

import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from accord.errors import (
    AuthenticationFailed,
    RunAborted,
    SubmissionRefused,
    TransportError,
)
from accord.participant.backoff import Backoff
from accord.participant.runtime import ParticipantRuntime
from accord.transport import pki
from accord.transport.messages import PROTOCOL_VERSION
from accord.transport.proto import accord_pb2 as pb

pytestmark = pytest.mark.timeout(120)

SUBMIT_EVAL = "/accord.v1.Federation/SubmitEval"


def _call(channel) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(SUBMIT_EVAL)(b"", timeout=30)
    return info.value


def test_a_client_without_a_certificate_fails_the_handshake(coordinator, raw_channel):
    with raw_channel(None) as channel:
        error = _call(channel)

    assert error.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("other_ca", [False, True], ids=["self-signed", "other-ca"])
def test_a_certificate_not_from_the_federation_fails_the_handshake(
    coordinator, raw_channel, forge, other_ca
):
    with raw_channel(forge("site-00", other_ca=other_ca)) as channel:
        error = _call(channel)

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert coordinator.executor.next_event(0.1) is None
    # Refused by TLS before any of accord's code runs: nothing to record.
    assert coordinator.events() == []


def test_an_expired_certificate_of_the_federation_fails_the_handshake(
    coordinator, raw_channel
):
    past = datetime.now(UTC) - timedelta(days=400)
    coordinator.federation.enrol("site-old", days=30, now=past)

    with raw_channel("site-old") as channel:
        error = _call(channel)

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert coordinator.events() == []


def test_an_enrolled_site_gets_past_authentication(coordinator, raw_channel):
    with raw_channel("site-00") as channel:
        error = _call(channel)

    # Authenticated: the empty report is judged on its content, not refused at the door.
    assert error.code() != grpc.StatusCode.UNAUTHENTICATED
    assert "not the current one" in error.details()


def test_a_revoked_certificate_is_refused_on_its_next_call(coordinator):
    client = coordinator.client("site-01")
    try:
        with pytest.raises(SubmissionRefused):  # accepted at the door, no job
            client.submit_eval(_eval(coordinator))
        coordinator.federation.revoke("site-01")

        with pytest.raises(TransportError) as info:
            client.submit_eval(_eval(coordinator))
    finally:
        client.close()

    assert info.value.code == "UNAUTHENTICATED"
    assert "revoked" in str(info.value)
    logged = coordinator.executor.rejections.snapshot()[-1]
    assert (logged.participant, logged.kind) == ("site-01", "unauthenticated")
    (event,) = coordinator.store.events(coordinator.run_id)[-1:]
    assert (event.participant, event.kind) == ("site-01", "unauthenticated")
    assert "revoked" in event.detail


def test_a_federation_member_outside_this_run_is_denied(coordinator):
    coordinator.federation.enrol("site-99")
    with (
        coordinator.client("site-99") as client,
        pytest.raises(SubmissionRefused) as info,
    ):
        next(client.subscribe())

    assert info.value.kind == "forbidden"
    assert "not a participant of this run" in info.value.reason
    assert coordinator.events() == [("site-99", None, "forbidden")]


def test_admin_operations_need_an_admin_certificate(coordinator):
    coordinator.federation.enrol("operator", "admin")

    with (
        coordinator.admin("site-00") as participant,
        pytest.raises(SubmissionRefused) as denied,
    ):
        participant.status()
    with coordinator.admin("operator") as admin:
        status = admin.status()
        accepted = admin.stop("maintenance")

    assert denied.value.kind == "forbidden"
    assert "needs admin" in denied.value.reason
    assert status.run_id == coordinator.executor.run_id
    assert [p.name for p in status.participants] == ["site-00", "site-01", "site-02"]
    assert accepted
    with pytest.raises(RunAborted, match="maintenance"):
        coordinator.executor.next_event(1)


def test_a_revoked_certificate_fails_the_handshake(coordinator, raw_channel):
    coordinator.federation.revoke("site-02")

    with raw_channel("site-02") as channel:
        error = _call(channel)

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert coordinator.events() == []  # it never reached accord's code


def test_with_an_older_roster_a_revoked_one_is_refused_at_its_first_call(
    coordinator, raw_channel
):
    _older_roster(coordinator)
    coordinator.federation.revoke("site-02")

    with raw_channel("site-02") as channel:
        error = _call(channel)

    # The handshake trusts the CA then; the per-call check refuses and records it.
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in error.details()
    assert coordinator.events() == [("site-02", None, "unauthenticated")]


def test_a_runtime_refused_at_a_call_stops_instead_of_retrying(coordinator):
    _older_roster(coordinator)
    coordinator.federation.revoke("site-02")
    runtime = ParticipantRuntime(
        lambda: coordinator.client("site-02"),
        task=None,  # never reached
        data=None,
        backoff=Backoff(initial_s=0.01, maximum_s=0.05),
    )

    with pytest.raises(AuthenticationFailed) as info:  # exit code 5, no retry
        runtime.run()

    assert "UNAUTHENTICATED" in str(info.value)
    assert "revoked" in str(info.value)


def test_a_site_enrolled_after_the_start_passes_the_next_handshake(
    coordinator, raw_channel
):
    coordinator.federation.enrol("site-new")

    with raw_channel("site-new") as channel:
        error = _call(channel)

    # Past the handshake and authenticated (then denied: not in this run).
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_participant_revoked_before_it_connects_gives_up_with_a_hint(coordinator):
    coordinator.federation.revoke("site-02")
    runtime = ParticipantRuntime(
        lambda: coordinator.client("site-02"),
        task=None,  # never reached
        data=None,
        backoff=Backoff(initial_s=0.01, maximum_s=0.05),
        give_up_after_s=0.5,
    )

    with pytest.raises(TransportError) as info:
        runtime.run()

    assert "giving up" in str(info.value)
    assert "revoked" in str(info.value)  # the hint names the likely causes
    assert coordinator.events() == []


def _older_roster(coordinator) -> None:
    """Drop the certificates from the roster, as accord wrote it before it kept them."""
    roster = coordinator.federation.ca / pki.ROSTER
    doc = json.loads(roster.read_text())
    for entry in doc["certificates"]:
        del entry["certificate"]
    roster.write_text(json.dumps(doc))


def _eval(coordinator):
    from accord.transport.messages import EvalReport

    return EvalReport(coordinator.executor.run_id, 1, "x" * 64, {"auc": 0.5}, 3, 0.1)


@pytest.mark.parametrize("spoken", [PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1])
def test_a_member_speaking_another_protocol_is_told_both_versions(
    coordinator, raw_channel, spoken
):
    # Protocol 1 hashed models and updates with SHA-256: a member of that version
    # would find every model corrupt. It is refused at its Hello, by name.
    hello = pb.Hello(protocol=spoken, software="accord 0.0.1")
    with raw_channel("site-00") as channel:
        subscribe = channel.stream_stream(
            "/accord.v1.Federation/Subscribe",
            request_serializer=pb.Hello.SerializeToString,
        )
        with pytest.raises(grpc.RpcError) as info:
            next(subscribe(iter([hello]), timeout=30))

    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        f"this coordinator speaks protocol {PROTOCOL_VERSION}, the participant "
        f"{spoken}" in str(info.value.details())
    )
