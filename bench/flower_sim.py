"""What the Flower comparison scripts share (runs in Flower's venv, not accord's).

``bench/flower_robustness.py`` and ``bench/flower_dp.py`` run Flower 1.42 (Message
API, Ray simulation backend) on the federation that ``bench/peer_data.py`` wrote
from accord's own data pipeline: the same rows per site, the same test set, the
same malicious sites and trigger. To train and attack exactly as accord does, they
import accord's numpy-and-torch modules from ``src/`` (the task from the example's
``task.py`` through :func:`accord.task.loading.load_task`, the attacks of
:mod:`accord.attacks.updates`, the seeds of :mod:`accord.coordinator.selection`);
nothing here needs pandas, SQLAlchemy or gRPC from accord. Everything read is
JSON or ``.npz`` loaded with ``allow_pickle=False``.

- :func:`train_reply` is a ClientApp's training step: site ``partition-id``
  trains the task with accord's per-site, per-round seed
  (:func:`~accord.coordinator.selection.derive_seed`), so its local update is the
  one accord's simulation computes for that site and round.
- :class:`Adversary` wraps a Flower strategy (as Flower's DP wrappers do) and
  rewrites the malicious sites' replies before the wrapped rule sees them, with
  accord's attack code and seeds. Omniscient attacks (ALIE, IPM, min-max) need the
  round's honest updates, which no Flower client sees: like accord's simulation
  engine, the adversary sits where every update passes.
- :func:`evaluate` scores a global model on the central test set: accuracy and
  the backdoor's success, as accord's central evaluation computes them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
SRC_DIR = BENCH_DIR.parent / "src"


def setup_paths() -> None:
    """Put accord's ``src/`` and ``bench/`` on the path, here and for Ray's workers."""
    for p in (str(SRC_DIR), str(BENCH_DIR)):
        if p not in sys.path:
            sys.path.insert(0, p)
    parts = [str(SRC_DIR), str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")


setup_paths()

import numpy as np  # noqa: E402
from flwr.app import (  # noqa: E402
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid  # noqa: E402
from flwr.serverapp.strategy import Strategy  # noqa: E402

from accord import ArrayData, DatasetInfo, Params, Task, TrainConfig  # noqa: E402
from accord.attacks.data import Trigger, attack_success_rate  # noqa: E402
from accord.attacks.updates import UpdateAttack  # noqa: E402
from accord.config import AttackConfig  # noqa: E402
from accord.coordinator.selection import derive_seed  # noqa: E402
from accord.evaluation.metrics import accuracy  # noqa: E402
from accord.simulation.adversary import _SALT, update_attack  # noqa: E402
from accord.task.loading import load_task  # noqa: E402
from accord.task.local_strategy import OPTION_KEY, LocalStrategy  # noqa: E402


@cache
def manifest(path: str) -> dict[str, Any]:
    """The manifest ``bench/peer_data.py`` wrote (cached per process)."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    if data.get("schema") != "accord.peer-federation/1":
        raise ValueError(f"{path} is not a manifest of bench/peer_data.py")
    return data


@cache
def arrays(manifest_path: str, variant: str) -> dict[str, np.ndarray]:
    """One data variant's arrays (cached per process)."""
    m = manifest(manifest_path)
    file = Path(manifest_path).parent / m["data"][variant]
    with np.load(file, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@cache
def task(manifest_path: str) -> Task:
    """The federation's task, built as accord builds it."""
    m = manifest(manifest_path)
    info = DatasetInfo(
        m["info"]["name"],
        tuple(m["info"]["feature_shape"]),
        tuple(m["info"]["class_names"]),
    )
    spec = m["task"]
    return load_task(
        spec["factory"], info, options=spec["options"], base_dir=spec["base_dir"]
    )


def to_record(params: Params) -> ArrayRecord:
    """Accord parameters as a Flower ArrayRecord, names and order kept."""
    return ArrayRecord({k: Array(np.asarray(v)) for k, v in params.items()})


def to_params(record: ArrayRecord) -> Params:
    """A Flower ArrayRecord as accord parameters."""
    return Params(
        zip(record.keys(), record.to_numpy_ndarrays(keep_input=True), strict=True)
    )


def initial_record(manifest_path: str) -> ArrayRecord:
    """The initial global model, from the task and the run's seed (as accord)."""
    return to_record(task(manifest_path).init_params(manifest(manifest_path)["seed"]))


def train_reply(msg: Message, partition_id: int) -> Message:
    """Train site ``partition_id`` on the global model of ``msg``; the reply.

    The config record carries ``manifest`` (path), ``data`` (variant) and
    ``uniform`` (1: report weight 1 under ``dp-weight``, for DP-FedAvg's equal
    weights), and from Flower's FedProx ``proximal-mu``: the task then adds
    ``mu (w - w_global)`` to every gradient, declared to it as accord's
    coordinator declares FedProx. The site's seed is accord's for the run seed,
    round and site.
    """
    config = msg.content["config"]
    path = str(config["manifest"])
    m = manifest(path)
    data = arrays(path, str(config["data"]))
    rnd = int(config["server-round"])
    train = m["train"]
    options = dict(train["options"])
    mu = float(config.get("proximal-mu", 0.0))
    if mu > 0:
        options[OPTION_KEY] = LocalStrategy(proximal_mu=mu).to_json()
    settings = TrainConfig(
        epochs=train["epochs"],
        batch_size=train["batch_size"],
        learning_rate=train["learning_rate"],
        seed=derive_seed(m["seed"], rnd, partition_id),
        round=rnd,
        participant=m["sites"][partition_id],
        options=options,
    )
    local = ArrayData(data[f"train_x_{partition_id}"], data[f"train_y_{partition_id}"])
    result = task(path).train(to_params(msg.content["arrays"]), local, settings)
    metrics: dict[str, int | float] = {
        "num-examples": int(result.num_examples),
        "partition-id": partition_id,
        "dp-weight": 1,
    }
    content = RecordDict(
        {"arrays": to_record(result.params), "metrics": MetricRecord(metrics)}
    )
    return Message(content=content, reply_to=msg)


def evaluate(manifest_path: str, attack: str, record: ArrayRecord) -> dict[str, float]:
    """Central test accuracy, and the backdoor's success when the attack has one."""
    m = manifest(manifest_path)
    data = arrays(manifest_path, m["attacks"][attack]["data"])
    t = task(manifest_path)
    params = to_params(record)
    out = {"accuracy": accuracy(data["test_y"], t.predict(params, data["test_x"]))}
    trig = m["attacks"][attack]["trigger"]
    if trig is not None:
        trigger = Trigger(
            tuple(trig["features"]), trig["value"], trig["target"], trig["fraction"]
        )
        test = ArrayData(data["test_x"], data["test_y"])
        out["backdoor_success"] = attack_success_rate(t, params, test, trigger)
    return out


def _pid(reply: Message) -> int:
    return int(reply.content["metrics"]["partition-id"])


class Adversary(Strategy):
    """A Flower strategy whose malicious sites' replies are rewritten by an attack.

    With ``attack`` None (no attack, or a data attack) replies pass unchanged,
    only sorted by site so that every rule sees them in one order. Otherwise the
    malicious sites' updates (reply minus the round's global model) become what
    :class:`accord.attacks.updates.UpdateAttack` crafts from their own updates and
    the honest ones, seeded as accord's simulation seeds them.
    """

    def __init__(
        self,
        inner: Strategy,
        *,
        attack: UpdateAttack | None,
        malicious: Iterable[int],
        seed: int,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.attack = attack
        self.malicious = frozenset(malicious)
        self.seed = seed
        self._global: list[np.ndarray] = []

    @classmethod
    def for_attack(cls, inner: Strategy, manifest_path: str, attack: str) -> Adversary:
        """The adversary of ``attack`` as the manifest describes it."""
        m = manifest(manifest_path)
        a = m["attacks"][attack]
        update = (
            None if a["update"] is None else update_attack(AttackConfig(**a["update"]))
        )
        return cls(inner, attack=update, malicious=a["malicious"], seed=m["seed"])

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Remember the global model the round starts from; delegate."""
        self._global = arrays.to_numpy_ndarrays(keep_input=True)
        return self.inner.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Rewrite the malicious replies, then let the wrapped rule aggregate."""
        ordered = sorted((r for r in replies if r.has_content()), key=lambda r: _pid(r))
        if self.attack is not None and ordered:
            self._rewrite(server_round, ordered)
        return self.inner.aggregate_train(server_round, ordered)

    def _flat_update(self, reply: Message) -> np.ndarray:
        local = reply.content["arrays"].to_numpy_ndarrays(keep_input=True)
        return np.concatenate(
            [(a - g).ravel() for a, g in zip(local, self._global, strict=True)]
        ).astype(np.float64)

    def _rewrite(self, server_round: int, ordered: list[Message]) -> None:
        assert self.attack is not None
        bad = [r for r in ordered if _pid(r) in self.malicious]
        if not bad:
            return
        honest_rows = [
            self._flat_update(r) for r in ordered if _pid(r) not in self.malicious
        ]
        own = np.stack([self._flat_update(r) for r in bad])
        honest = np.stack(honest_rows) if honest_rows else np.zeros((0, own.shape[1]))
        n = len(ordered)
        if self.attack.omniscient:
            rng = np.random.default_rng([self.seed, server_round, _pid(bad[0]), _SALT])
            crafted = self.attack.craft(own, honest, n_round=n, rng=rng)
        else:  # accord crafts these one by one, as each arrives
            crafted = np.concatenate(
                [
                    self.attack.craft(
                        own[i : i + 1],
                        honest,
                        n_round=n,
                        rng=np.random.default_rng(
                            [self.seed, server_round, _pid(r), _SALT]
                        ),
                    )
                    for i, r in enumerate(bad)
                ]
            )
        for reply, vec in zip(bad, crafted, strict=True):
            record = reply.content["arrays"]
            out, at = {}, 0
            for key, g in zip(record.keys(), self._global, strict=True):
                size = g.size
                upd = vec[at : at + size].reshape(g.shape).astype(g.dtype)
                out[key] = Array(np.asarray(g + upd))
                at += size
            reply.content["arrays"] = ArrayRecord(out)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Delegate."""
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Delegate."""
        return self.inner.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        """Delegate."""
        self.inner.summary()
