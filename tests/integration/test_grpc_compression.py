"""``[compression]`` in a deployment over gRPC with mutual TLS.

Deployed participant runtimes (threads, ``sim:`` data) compress their updates
before sending them: q8 and top-k runs end with the simulation's model bit for
bit (same seed), and the coordinator records the bytes it received per site and
round, the simulation's figures. Top-k's residual goes through each site's state
folder between rounds (the runtime reloads it from disk every round), so the
top-k run equals the simulation only if the residual survives there. A
malformed compressed update is refused with its reason, recorded, and the round
gets nothing from it.
"""

import json
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from accord.config import config_from_mapping, load_config
from accord.coordinator.executor import TrainDone, TrainJob
from accord.coordinator.runner import Coordinator
from accord.coordinator.transfers import EVENT_KIND
from accord.errors import SubmissionRefused
from accord.params import Params
from accord.simulation.context import build_context
from accord.simulation.inprocess import InProcessExecutor
from accord.store.memory import MemoryStore
from accord.task.protocol import TrainConfig
from accord.transforms.compression import encode
from accord.transport.messages import PackedHeader, UpdateHeader

SITES = ("site-00", "site-01", "site-02")

pytestmark = pytest.mark.timeout(180)

FED = """
[federation]
name = "grpc-compression"
rounds = 3
seed = 11
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[simulation]
workers = 0
[round]
deadline_s = 60
[store]
directory = "{store}"
[compression]
method = "{method}"
fraction = 0.1
"""


def _bytes(store: MemoryStore, run_id: str) -> dict[tuple[int, str], int]:
    return {
        (e.round or 0, e.participant or ""): json.loads(e.detail)["bytes"]
        for e in store.events(run_id)
        if e.kind == EVENT_KIND
    }


@pytest.mark.parametrize("method", ["q8", "topk"])
def test_a_deployed_compressed_run_gives_the_simulations_model_and_bytes(
    start_coordinator, tmp_path: Path, sim_sites, method: str
):
    fed_toml = tmp_path / "fed.toml"
    fed_toml.write_text(FED.format(store=tmp_path / "sim", method=method))
    config = load_config(fed_toml)
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    sim_store = MemoryStore()
    executor = InProcessExecutor(
        ctx, compression=config.compression, seed=config.federation.seed
    )
    simulated = Coordinator(config, executor=executor, store=sim_store).run(initial)

    # The defaults: top-k's 3 warm-up rounds (25 %, 6.25 %, then 10 %) and its
    # momentum correction, the velocity kept beside the residual.
    coordinator = start_coordinator(
        SITES,
        compression=(method, 0.1),
        compression_warmup=config.compression.warmup_rounds,
    )
    store = MemoryStore()
    sites = sim_sites(coordinator, fed_toml, SITES, tmp_path)
    deployed = sites.run(config, initial, store=store)

    assert [r.status for r in deployed.rounds] == ["completed"] * 3
    assert deployed.params.digest() == simulated.params.digest()
    received = _bytes(store, deployed.run_id)
    assert received == _bytes(sim_store, simulated.run_id)
    assert set(received) == {(r, s) for r in (1, 2, 3) for s in SITES}
    dense = initial.spec.packed_nbytes
    assert all(0 < n < dense / 2 for n in received.values())
    if method == "topk":
        for name in SITES:
            files = list((tmp_path / "state" / name / "compression").rglob("*.f64"))
            assert sorted(f.name for f in files) == [
                "residual-2.f64",
                "residual-3.f64",
                "velocity-2.f64",
                "velocity-3.f64",
            ]


MODEL = Params({"w": np.zeros((3, 40), np.float32), "b": np.zeros(3, np.float32)})
SIZES = [120, 3]


@pytest.fixture
def q8_round(start_coordinator, listen):
    """A q8 coordinator with round 1 open for every site, all connected."""
    coordinator = start_coordinator(SITES, compression=("q8", 0.01))
    stop = threading.Event()
    for name in SITES:
        listen(coordinator, name, stop)
    assert coordinator.executor.wait_for(SITES, 60) == set(SITES)
    coordinator.executor.publish(MODEL)
    jobs = [TrainJob(n, TrainConfig(round=1, participant=n)) for n in SITES]
    coordinator.executor.submit_train(1, jobs)
    yield coordinator
    stop.set()


def _header(coordinator, nbytes: int, digest: str) -> UpdateHeader:
    return UpdateHeader(
        run_id=coordinator.executor.run_id,
        round=1,
        base_digest=MODEL.digest(),
        params=PackedHeader(MODEL.spec, nbytes, digest),
        num_examples=10,
        duration_s=0.5,
    )


def _q8(update: np.ndarray) -> tuple[bytes, Params]:
    payload, decoded = encode(
        update, SIZES, method="q8", fraction=0.01, rng=np.random.default_rng(0)
    )
    values = Params(
        {
            "w": decoded[:120].reshape(3, 40).astype(np.float32),
            "b": decoded[120:].astype(np.float32),
        }
    )
    return payload, values


def _submit(coordinator, name: str, header: UpdateHeader, payload: bytes):
    with coordinator.client(name) as client:
        return client.submit_update(header, payload, timeout_s=10)


def test_a_good_q8_update_is_decoded_and_its_bytes_counted(q8_round):
    payload, values = _q8(np.linspace(-1.0, 1.0, 123))

    receipt = _submit(
        q8_round, "site-00", _header(q8_round, len(payload), values.digest()), payload
    )
    event = q8_round.executor.next_event(5)

    assert receipt.digest == values.digest()
    assert isinstance(event, TrainDone) and event.bytes_sent == len(payload)
    assert event.update.digest() == values.digest()
    q8_round.executor.release(event)


def _nan_scale(payload: bytes) -> bytes:
    body = bytearray(zlib.decompress(payload))
    body[4:8] = np.array([np.nan], dtype="<f4").tobytes()  # tensor 0's step
    return zlib.compress(bytes(body))


@pytest.mark.parametrize(
    ("damage", "kind", "reason"),
    [
        (_nan_scale, "malformed", "invalid scale"),
        (lambda p: zlib.compress(zlib.decompress(p)[:-5]), "malformed", "wrong length"),
        (lambda p: b"not deflate" + p[11:], "malformed", "not valid deflate"),
        (lambda p: p + b"\0" * 2000, "too_large", "at most"),
    ],
    ids=["nan-scale", "short-body", "garbage", "oversized"],
)
def test_a_malformed_compressed_update_is_refused_with_its_reason(
    q8_round, damage, kind, reason
):
    payload, values = _q8(np.linspace(-1.0, 1.0, 123))
    bad = damage(payload)

    with pytest.raises(SubmissionRefused) as info:
        _submit(q8_round, "site-01", _header(q8_round, len(bad), values.digest()), bad)

    assert info.value.kind == kind
    assert reason in info.value.reason
    assert q8_round.executor.next_event(0.3) is None  # the round got nothing
    assert q8_round.events() == [("site-01", 1, kind)]  # recorded at once
    # The job is still open: the site may send a good update.
    _submit(
        q8_round, "site-01", _header(q8_round, len(payload), values.digest()), payload
    )
    event = q8_round.executor.next_event(5)
    assert isinstance(event, TrainDone) and event.update.digest() == values.digest()
    q8_round.executor.release(event)


def test_a_compressed_update_of_the_wrong_shape_is_refused(q8_round):
    other = Params({"w": np.zeros((4, 30), np.float32), "b": np.zeros(3, np.float32)})
    payload, _ = _q8(np.linspace(-1.0, 1.0, 123))
    header = UpdateHeader(
        run_id=q8_round.executor.run_id,
        round=1,
        base_digest=MODEL.digest(),
        params=PackedHeader(other.spec, len(payload), other.digest()),
        num_examples=10,
        duration_s=0.5,
    )

    with pytest.raises(SubmissionRefused) as info:
        _submit(q8_round, "site-02", header, payload)

    assert info.value.kind == "mismatch"
    assert "structure" in info.value.reason
    assert q8_round.events() == [("site-02", 1, "mismatch")]


@pytest.mark.parametrize("method", ["q8", "q4"])
def test_deployed_quantized_masking_gives_the_simulations_model_and_bytes(
    deploy_sites, tmp_path: Path, method: str
):
    raw: dict = {
        "federation": {"name": "grpc-q8-masking", "rounds": 2, "seed": 11},
        "data": {"dataset": "wine", "sites": len(SITES)},
        "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        "round": {"deadline_s": 120, "quorum": 0.5},
        "evaluation": {"federated": False},
        "simulation": {"workers": 0},
        "secure_aggregation": {"mode": "masking", "stage_timeout_s": 60},
        "compression": {"method": method},
    }
    config = config_from_mapping(raw, base_dir=tmp_path)
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    sim_store = MemoryStore()
    executor = InProcessExecutor(ctx)
    try:
        simulated = Coordinator(config, executor=executor, store=sim_store).run(initial)
    finally:
        executor.close()

    deployed = deploy_sites(SITES, config)
    run, store = deployed.run(initial)

    assert [r.succeeded for r in run.rounds] == [3, 3]
    assert run.params.digest() == simulated.params.digest()
    received = _bytes(store, run.run_id)
    assert set(received) == {(r, s) for r in (1, 2) for s in SITES}
    assert received == _bytes(sim_store, simulated.run_id)
    assert not deployed.site_log("site-01", "sent_update")  # nothing in the clear
