"""What the coordinator receives, stores and logs in a secure round.

It receives masked inputs, which pass two uniformity tests (chi-square over bytes,
Kolmogorov-Smirnov over words, at significance 0.001) that reject the same update
unmasked; it stores and logs none of the individual updates: neither their bytes
nor their digests appear in the run store, the checkpoints or the log, and each
outcome carries no example count and the digest of the *masked* input only. The
sites' round secrets come from seeded entropy and the run id (which enters every
site's key derivation) is pinned, so the statistics are deterministic.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cryptography")

from accord.config import config_from_mapping
from accord.coordinator.executor import SecAggReply, TrainDone
from accord.coordinator.runner import Coordinator
from accord.params import Params
from accord.secagg.messages import MaskedInput, Stage
from accord.secagg.session import SecureJob
from accord.simulation.context import build_context
from accord.simulation.inprocess import InProcessExecutor
from accord.store import SqlStore
from accord.store import sql as sql_store
from accord.store.checkpoint import CheckpointStore
from accord.transport.secagg_wire import decode_to_coordinator


def seeded(site: str):
    state = {"counter": 0}

    def entropy(n: int) -> bytes:
        out = b""
        while len(out) < n:
            state["counter"] += 1
            out += hashlib.sha256(f"{site}/{state['counter']}".encode()).digest()
        return out[:n]

    return entropy


def config(tmp_path: Path, mode: str):
    return config_from_mapping(
        {
            "federation": {"rounds": 1, "seed": 5},
            "data": {"dataset": "digits", "partition": "iid", "sites": 4},
            "task": {"factory": "accord.task.numpy_task:mlp"},
            "evaluation": {"federated": False},
            "simulation": {"workers": 0},
            "secure_aggregation": {"mode": mode},
        },
        base_dir=tmp_path,
    )


class Recording(InProcessExecutor):
    """The coordinator's view: every message it was handed."""

    def __init__(self, ctx, **kw):
        super().__init__(ctx, **kw)
        self.received: list[SecAggReply] = []
        self.updates: dict[str, Params] = {}
        self.jobs: list[SecureJob] = []

    def submit_train(self, round_number, jobs):
        self.jobs += [j.secure for j in jobs if j.secure is not None]
        super().submit_train(round_number, jobs)

    def next_event(self, timeout):
        event = super().next_event(timeout)
        if isinstance(event, SecAggReply):
            self.received.append(event)
        if isinstance(event, TrainDone):
            self.updates[event.participant] = event.update.copy()
        return event


def run(tmp_path: Path, mode: str):
    with pytest.MonkeyPatch.context() as patch:
        # Masks derive from the run id; a fresh random id per run would make the
        # uniformity statistics below vary from one test run to the next.
        patch.setattr(sql_store, "new_run_id", lambda now: "20261122-000000-5ec0de")
        return _run(tmp_path, mode)


def _run(tmp_path: Path, mode: str):
    cfg = config(tmp_path, mode)
    ctx = build_context(cfg)
    executor = Recording(ctx, entropy=seeded if mode != "off" else None)
    store = SqlStore(f"sqlite:///{tmp_path}/runs.db")
    try:
        result = Coordinator(
            cfg,
            executor=executor,
            store=store,
            checkpoints=CheckpointStore(tmp_path / "checkpoints"),
        ).run(ctx.task.init_params(cfg.federation.seed))
        records = store.rounds(result.run_id)
    finally:
        store.close()
        executor.close()
    return executor, records


def chi_square_bytes(raw: bytes) -> tuple[float, float]:
    counts = np.bincount(np.frombuffer(raw, dtype=np.uint8), minlength=256)
    expected = len(raw) / 256
    stat = float(((counts - expected) ** 2 / expected).sum())
    dof, z = 255, 3.090232
    return stat, dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


def ks_uniform(words: np.ndarray) -> tuple[float, float]:
    u = np.sort(words.astype(np.float64) / 2**32)
    grid = np.arange(1, u.size + 1) / u.size
    stat = float(max((grid - u).max(), (u - (grid - 1 / u.size)).max()))
    return stat, 1.949 / math.sqrt(u.size)


@pytest.fixture(scope="module")
def rounds(tmp_path_factory):
    plain_dir = tmp_path_factory.mktemp("plain")
    secure_dir = tmp_path_factory.mktemp("secure")
    plain, _ = run(plain_dir, "off")
    logs: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            logs.append(record.getMessage())

    handler = Collect(level=logging.DEBUG)
    root = logging.getLogger("accord")
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        secure, records = run(secure_dir, "masking")
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    return plain.updates, secure, records, secure_dir, "\n".join(logs)


def test_the_coordinator_receives_masked_inputs_that_look_uniform(rounds):
    updates, secure, _, _, _ = rounds
    masked = [
        decode_to_coordinator(e.payload, Stage.MASKED_INPUT)
        for e in secure.received
        if e.stage == "masked_input"
    ]
    assert len(masked) == 4
    for message in masked:
        assert isinstance(message, MaskedInput)
        stat, critical = chi_square_bytes(message.vector)
        assert stat < critical
        d, d_critical = ks_uniform(np.frombuffer(message.vector, "<u4"))
        assert d < d_critical
    # The same tests see through the same update unmasked (they have power).
    (job,) = {j.round_number: j for j in secure.jobs}.values()
    rng = np.random.default_rng(0)
    some = next(iter(updates.values()))
    encoded = job.encoding.encode(some.flatten(), 0.5, rng)
    stat, critical = chi_square_bytes(encoded.tobytes())
    assert stat > critical
    d, d_critical = ks_uniform(encoded)
    assert d > d_critical


def test_no_individual_update_is_stored_or_logged(rounds):
    updates, secure, records, folder, log_text = rounds
    (record,) = records
    assert record.status == "completed"
    assert len(updates) == 4  # the plain run's updates: what must stay hidden
    stored = b"".join(
        p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()
    )
    masked_digests = {
        hashlib.sha256(e.payload).hexdigest()
        for e in secure.received
        if e.stage == "masked_input"
    }
    for outcome in record.outcomes:
        assert outcome.status == "ok"
        assert outcome.num_examples == 0
        assert outcome.metrics == {}
        assert outcome.update_digest in masked_digests
    for site, update in updates.items():
        values = update.flatten(np.float32)
        # Windows of eight values, none zero (digits has blank pixels, whose
        # gradients are exactly zero and would match any run of zero bytes).
        starts = [
            i for i in range(0, values.size - 8, 8) if np.all(values[i : i + 8] != 0)
        ]
        assert len(starts) > 100
        for i in starts[:: max(1, len(starts) // 50)]:
            assert values[i : i + 8].tobytes() not in stored, site
        assert update.digest() not in stored.decode("latin-1")
        assert update.digest() not in log_text
    assert (
        "masked" not in log_text or "update" not in log_text.lower().split("masked")[0]
    )
