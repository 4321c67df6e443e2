"""The participant runtime against a scripted coordinator (no sockets)."""

import dataclasses
import threading

import numpy as np
import pytest

from accord.data.arrays import ArrayData, DatasetInfo
from accord.errors import AuthenticationFailed, SubmissionRefused, TransportError
from accord.params import Params
from accord.participant.backoff import Backoff
from accord.participant.data import LocalData
from accord.participant.runtime import ParticipantRuntime
from accord.participant.sitelog import SiteLog
from accord.task.protocol import TrainConfig, TrainResult
from accord.transport.messages import Goodbye, PackedHeader, TaskOrder, Welcome

GLOBAL = Params({"w": np.array([1.0, 2.0], np.float32)})
DIGEST = GLOBAL.digest()
DATA = LocalData(
    "site-00",
    DatasetInfo("toy", (2,), ("a", "b")),
    ArrayData(np.ones((4, 2), np.float32), np.array([0, 1, 0, 1])),
    ArrayData(np.ones((2, 2), np.float32), np.array([0, 1])),
)


class AddOne:
    """Training adds 1 to every weight; predictions are uniform."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def init_params(self, seed):
        return GLOBAL

    def train(self, params, data, config):
        if self.fail:
            raise RuntimeError("out of memory")
        return TrainResult(
            Params({"w": params["w"] + 1}), len(data), {"loss": 0.5, "bad": np.nan}
        )

    def predict(self, params, x):
        return np.full((len(x), 2), 0.5)


class Script:
    """A fake CoordinatorClient: each connection plays the next list of messages."""

    def __init__(self, *sessions, model=GLOBAL, refuse_update=None, models=()):
        self.sessions = list(sessions)
        self.model = model
        self.models = {m.digest(): m for m in models}  # by digest, else ``model``
        self.received_into: list = []  # the buffer each fetch was offered
        self.refuse_update = refuse_update
        self.updates, self.evals, self.failures, self.secagg = [], [], [], []
        self.connections = 0

    def connect(self):
        self.connections += 1
        return self

    def subscribe(self):
        session = self.sessions.pop(0)
        for item in session:
            if isinstance(item, Exception):
                raise item
            yield item

    def fetch_model(self, run_id, digest, into=None):
        m = self.models.get(digest, self.model)
        # What was offered, without keeping it (a reference would stop its reuse).
        self.received_into.append(None if into is None else (id(into), bytes(into)))
        packed = m.spec.pack(m)
        if into is not None and len(into) == len(packed):  # as the real client does
            into[:] = packed
            packed = into
        return PackedHeader(m.spec, m.spec.packed_nbytes, m.digest()), packed

    def submit_update(self, header, buffer):
        if self.refuse_update is not None:
            raise self.refuse_update
        self.updates.append((header, bytes(buffer)))
        from accord.transport.messages import Receipt

        return Receipt(header.run_id, header.round, "site-00", header.params.digest, 8)

    def submit_eval(self, report):
        self.evals.append(report)

    def report_failure(self, report):
        self.failures.append(report)

    def submit_secagg(self, header, payload):
        from accord.transport.messages import Receipt

        self.secagg.append((header, bytes(payload)))
        return Receipt(header.run_id, header.round, "site-00", "", len(payload))

    def close(self):
        pass


def train_order(round=1, digest=DIGEST):
    return TaskOrder("run", round, "train", digest, TrainConfig(round=round, seed=3))


def runtime(script, task=None, tmp_path=None):
    log = SiteLog(tmp_path / "site.jsonl") if tmp_path else None
    return ParticipantRuntime(
        script.connect,
        task or AddOne(),
        DATA,
        log=log,
        backoff=Backoff(initial_s=0.001, maximum_s=0.002),
    )


def test_a_train_task_sends_local_minus_global_and_logs_it(tmp_path):
    script = Script([Welcome("run", 0), train_order(), Goodbye("run", "done")])
    r = runtime(script, tmp_path=tmp_path)

    assert r.run() == "done"
    r.log.close()

    header, buffer = script.updates[0]
    update = header.params.spec.view(buffer)
    np.testing.assert_array_equal(update["w"], [1.0, 1.0])
    assert header.base_digest == DIGEST and header.num_examples == 4
    assert header.metrics == {"loss": 0.5}  # the NaN metric stays home
    entries = SiteLog.read(tmp_path / "site.jsonl")
    events = [e["event"] for e in entries]
    assert events == [
        "connected",
        "received_task",
        "fetched_model",
        "trained",
        "sending_update",
        "sent_update",
        "goodbye",
    ]
    # How it trained, for the site's own privacy audit to repeat it.
    trained = entries[3]
    assert (trained["run_id"], trained["round"]) == ("run", 1)
    assert (trained["epochs"], trained["batch_size"]) == (1, 32)
    assert (trained["learning_rate"], trained["options"]) == (0.05, {})


class InterruptedUpload(Script):
    """The coordinator receives the whole update, then the site is Ctrl-C'd."""

    def submit_update(self, header, buffer):
        self.updates.append((header, bytes(buffer)))
        raise KeyboardInterrupt


def test_an_update_interrupted_mid_upload_is_in_the_site_log(tmp_path):
    script = InterruptedUpload([Welcome("run", 0), train_order()])
    r = runtime(script, tmp_path=tmp_path)

    with pytest.raises(KeyboardInterrupt):
        r.run()
    r.log.close()

    ((header, _),), log = script.updates, SiteLog.read(tmp_path / "site.jsonl")
    sending = [e for e in log if e["event"] == "sending_update"]
    assert [e["digest"] for e in sending] == [header.params.digest]
    assert log[-1]["event"] == "upload_interrupted"
    assert log[-1]["digest"] == header.params.digest


def test_an_eval_task_reports_scores_of_the_named_model():
    order = TaskOrder("run", 2, "eval", DIGEST)
    script = Script([order, Goodbye("run", "done")])

    runtime(script).run()

    (report,) = script.evals
    assert report.model_digest == DIGEST and report.num_examples == 2
    assert "accuracy" in report.metrics


def test_a_model_that_is_not_the_named_one_is_refused_and_reported():
    script = Script([train_order(digest="0" * 64), Goodbye("run", "done")])

    runtime(script).run()

    assert script.updates == []
    (failure,) = script.failures
    assert failure.refused and "unusable" in failure.reason


def test_a_task_that_raises_is_reported_as_failed():
    script = Script([train_order(), Goodbye("run", "done")])

    runtime(script, task=AddOne(fail=True)).run()

    (failure,) = script.failures
    assert not failure.refused and "out of memory" in failure.reason


def test_an_update_the_coordinator_refuses_is_reported_so_the_round_moves_on():
    refusal = SubmissionRefused("mismatch", "'w' contains NaN or infinite values")
    script = Script([train_order(), Goodbye("run", "done")], refuse_update=refusal)

    runtime(script).run()

    (failure,) = script.failures
    assert failure.refused and "NaN" in failure.reason


def test_a_duplicate_refusal_is_not_reported():
    refusal = SubmissionRefused("duplicate", "already has a result")
    script = Script([train_order(), Goodbye("run", "done")], refuse_update=refusal)

    runtime(script).run()

    assert script.failures == []


def test_a_task_sent_again_after_it_was_answered_is_ignored():
    script = Script([train_order(), train_order(), Goodbye("run", "done")])

    runtime(script).run()

    assert len(script.updates) == 1


def test_a_broken_stream_is_redialled_and_the_job_still_done():
    lost = TransportError("UNAVAILABLE: connection reset", code="UNAVAILABLE")
    script = Script([Welcome("run", 0), lost], [train_order(), Goodbye("run", "done")])

    assert runtime(script).run() == "done"

    assert script.connections == 2 and len(script.updates) == 1


def test_a_refused_certificate_stops_the_runtime():
    refused = TransportError("UNAUTHENTICATED: revoked", code="UNAUTHENTICATED")
    script = Script([refused], [Goodbye("run", "never reached")])

    with pytest.raises(AuthenticationFailed, match="UNAUTHENTICATED: revoked"):
        runtime(script).run()


def test_a_refused_subscription_stops_the_runtime():
    script = Script([SubmissionRefused("forbidden", "not a participant of this run")])

    with pytest.raises(TransportError, match="not a participant"):
        runtime(script).run()


def test_a_stop_request_ends_the_reconnect_loop():
    lost = TransportError("UNAVAILABLE", code="UNAVAILABLE")
    script = Script(*([lost] for _ in range(1000)))
    stop = threading.Event()
    stop.set()

    assert runtime(script).run(stop) == "stopped"


def test_it_gives_up_after_a_long_silence():
    lost = TransportError("UNAVAILABLE", code="UNAVAILABLE")
    script = Script(*([lost] for _ in range(1000)))
    r = ParticipantRuntime(
        script.connect, AddOne(), DATA, backoff=Backoff(0.001, 0.001), give_up_after_s=0
    )

    with pytest.raises(TransportError, match="giving up"):
        r.run()


@pytest.mark.parametrize(
    ("error", "hint", "not_hint"),
    [
        (
            "failed to connect to all addresses; last error: UNKNOWN: "
            "ipv4:127.0.0.1:9: Failed to connect to remote host: Connection refused",
            "Nothing is listening",
            "TLS handshake",
        ),
        (
            "Ssl handshake failed: SSL_ERROR_SSL",
            "TLS handshake",
            "Nothing is listening",
        ),
    ],
)
def test_giving_up_hints_at_the_cause_the_last_error_shows(error, hint, not_hint):
    lost = TransportError(error, code="UNAVAILABLE")
    script = Script(*([lost] for _ in range(1000)))
    r = ParticipantRuntime(
        script.connect, AddOne(), DATA, backoff=Backoff(0.001, 0.001), give_up_after_s=0
    )

    with pytest.raises(TransportError, match="giving up") as info:
        r.run()

    assert hint in str(info.value)
    assert not_hint not in str(info.value)


class AddRound:
    """Training adds the round number, so that each round's update differs."""

    def init_params(self, seed):
        return GLOBAL

    def train(self, params, data, config):
        return TrainResult(Params({"w": params["w"] + config.round}), len(data))

    def predict(self, params, x):
        return np.full((len(x), 2), 0.5)


def test_each_round_sends_its_own_update_when_the_buffer_is_reused():
    script = Script(
        [train_order(round=1), train_order(round=2), Goodbye("run", "done")]
    )

    assert runtime(script, task=AddRound()).run() == "done"

    sent = [h.params.spec.view(b)["w"].tolist() for h, b in script.updates]
    assert sent == [[1.0, 1.0], [2.0, 2.0]]
    assert [h.params.digest for h, _ in script.updates] == [
        Params({"w": np.full(2, r, np.float32)}).digest() for r in (1, 2)
    ]


class Keeper(AddOne):
    """Keeps every global model it trained from (as a task with history might)."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list = []

    def train(self, params, data, config):
        self.kept.append(params["w"])
        return super().train(params, data, config)


MODELS = [Params({"w": np.full(2, 10.0 * r, np.float32)}) for r in (1, 2, 3)]


def three_rounds(task):
    orders = [train_order(r, MODELS[r - 1].digest()) for r in (1, 2, 3)]
    script = Script([*orders, Goodbye("run", "done")], models=MODELS)
    assert runtime(script, task=task).run() == "done"
    return script


def test_each_round_receives_its_model_into_the_last_ones_buffer():
    script = three_rounds(AddOne())

    first, second, third = script.received_into
    assert first is None  # nothing to reuse yet
    packed = [bytes(m.spec.pack(m)) for m in MODELS]
    assert second is not None and third is not None
    assert (second[1], third[1]) == (packed[0], packed[1])  # the last model's bytes
    assert third[0] == second[0]  # in one buffer, round after round
    sent = [h.params.spec.view(b)["w"].tolist() for h, b in script.updates]
    assert sent == [[1.0, 1.0]] * 3  # each round's update from its own model
    bases = [h.base_digest for h, _ in script.updates]
    assert bases == [m.digest() for m in MODELS]


def test_a_model_a_task_still_holds_is_not_overwritten_by_the_next_one():
    task = Keeper()
    script = three_rounds(task)

    assert script.received_into == [None, None, None]  # every buffer still read
    assert [w.tolist() for w in task.kept] == [[10.0, 10.0], [20.0, 20.0], [30.0, 30.0]]


# Secure rounds and the site's policy.


def test_a_plain_task_is_refused_before_any_model_is_fetched_when_policy_says_so(
    tmp_path,
):
    from accord.participant.policy import SitePolicy

    script = Script([train_order(), Goodbye("run", "done")])
    script.fetch_model = None  # fetching would raise: the site must not try
    r = ParticipantRuntime(
        script.connect,
        AddOne(),
        DATA,
        log=SiteLog(tmp_path / "site.jsonl"),
        policy=SitePolicy(require_secure_aggregation=True),
    )

    r.run()
    r.log.close()

    (failure,) = script.failures
    assert failure.refused and failure.kind == "train"
    assert "site policy" in failure.reason
    assert not script.updates
    events = [e["event"] for e in SiteLog.read(tmp_path / "site.jsonl")]
    assert "refused_task" in events and "fetched_model" not in events


def test_a_secure_task_at_a_site_without_identity_key_is_refused():
    order = TaskOrder(
        "run", 1, "train", DIGEST, TrainConfig(round=1, seed=3), secure_json="{}"
    )
    script = Script([order, Goodbye("run", "done")])

    runtime(script).run()

    (failure,) = script.failures
    assert failure.refused and "no identity key" in failure.reason


def test_a_ckks_task_at_a_site_without_a_context_is_refused(tmp_path):
    order = TaskOrder(
        "run",
        1,
        "train",
        DIGEST,
        TrainConfig(round=1, seed=3),
        secure_json='{"mode": "ckks"}',
    )
    script = Script([order, Goodbye("run", "done")])
    script.fetch_model = None  # refused before any model is fetched
    r = runtime(script, tmp_path=tmp_path)

    r.run()
    r.log.close()

    (failure,) = script.failures
    assert failure.refused and "no CKKS context" in failure.reason
    assert "--ckks-context" in failure.reason and not script.secagg


def test_a_stage_without_an_open_session_reports_a_secagg_failure(tmp_path):
    order = TaskOrder("run", 4, "secagg", "", stage="share_keys", payload=b"x")
    script = Script([order, Goodbye("run", "done")])
    r = runtime(script, tmp_path=tmp_path)

    r.run()
    r.log.close()

    (failure,) = script.failures
    assert failure.kind == "secagg" and failure.round == 4
    assert "no secure session open for round 4" in failure.reason
    (received,) = [
        e
        for e in SiteLog.read(tmp_path / "site.jsonl")
        if e["event"] == "received_task"
    ]
    assert received["kind"] == "secagg" and received["stage"] == "share_keys"


def test_a_ckks_round_sends_only_ciphertext_and_decrypts_the_sum_once(tmp_path):
    pytest.importorskip("tenseal")
    from accord.secagg.ckks import CkksAggregator
    from accord.secagg.ckks_keys import KeyHolder
    from accord.secagg.ckks_session import CkksJob, decode_sum

    holder = KeyHolder.create()
    job = CkksJob("run", 1, values=GLOBAL.size, clip=0.5, max_examples=8)
    order = TaskOrder(
        "run", 1, "train", DIGEST, TrainConfig(round=1, seed=3), job.to_json()
    )

    class Decrypting(Script):
        """Answers the upload with a decryption task of the sum, twice, then r2."""

        def submit_secagg(self, header, payload):
            receipt = super().submit_secagg(header, payload)
            if header.stage == "ckks_upload":
                total = CkksAggregator(holder.public_context, GLOBAL.size)
                total.add("site-00", payload)
                task = TaskOrder(
                    "run", 1, "secagg", "", stage="ckks_decrypt", payload=total.result()
                )
                session[1:1] = [task, task, dataclasses.replace(task, round=2)]
            return receipt

    session = [order, Goodbye("run", "done")]
    script = Decrypting(session)
    r = ParticipantRuntime(
        script.connect, AddOne(), DATA, ckks_context=holder.secret_context
    )

    r.run()

    (upload, decrypt) = script.secagg
    assert upload[0].stage == "ckks_upload" and decrypt[0].stage == "ckks_decrypt"
    assert not script.updates  # nothing in the clear
    weighted, weight = decode_sum(decrypt[1], GLOBAL.size)
    assert weight == pytest.approx(4 / 8, abs=1e-6)  # four examples over the cap
    np.testing.assert_allclose(weighted, [0.25, 0.25], atol=1e-6)  # clipped, weighted
    (failure,) = script.failures  # round 2: it encrypted nothing for it
    assert failure.kind == "secagg" and failure.round == 2
    assert "decrypts only the sum of a round it encrypted for" in failure.reason
