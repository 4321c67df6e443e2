"""One site's membership audit against a task: members, shadows, DP mimicry."""

import math

import numpy as np
import pytest

from accord.data.arrays import ArrayData
from accord.params import Params
from accord.privacy.audit import ShadowTraining, audit_site, pooled
from accord.privacy.dpsgd import OPTION_KEY, DpSgdPlan
from accord.task.protocol import TrainResult


class Memorizer:
    """Predicts the label of a row it trained on with 0.99, else uniformly."""

    def __init__(self, n_classes=2):
        self.k = n_classes
        self.trained_with = []

    def init_params(self, seed):
        return Params({"x": np.zeros((0, 3), np.float32), "y": np.zeros(0, np.float32)})

    def train(self, params, data, config):
        self.trained_with.append(config)
        return TrainResult(
            Params({"x": data.x, "y": data.y.astype(np.float32)}), len(data)
        )

    def predict(self, params, x):
        proba = np.full((len(x), self.k), 1.0 / self.k)
        for i, row in enumerate(x):
            hit = np.flatnonzero((params["x"] == row).all(axis=1))
            if hit.size:
                proba[i] = 0.01 / (self.k - 1)
                proba[i, int(params["y"][hit[0]])] = 0.99
        return proba


def _rows(n, seed):
    rng = np.random.default_rng(seed)
    return ArrayData(rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 2, n))


TRAINING = ShadowTraining(epochs=1, batch_size=8, learning_rate=0.1, passes=2)


def test_a_memorizing_model_is_found_out_by_both_attacks():
    task = Memorizer()
    members, nonmembers = _rows(40, 1), _rows(30, 2)
    params = task.train(task.init_params(0), members, None).params

    audit = audit_site(
        task,
        params,
        site="s",
        members=members,
        nonmembers=nonmembers,
        training=TRAINING,
        epsilon=math.inf,
        delta=0.0,
        shadows=4,
    )

    assert (audit.members, audit.nonmembers) == (30, 30)  # balanced: the smaller
    assert audit.attacks["loss"].auc == 1.0
    assert audit.attacks["lira"].auc == 1.0
    assert audit.attacks["lira"].tpr[0.001] == 1.0
    assert audit.auc_bound == 1.0


def test_a_model_that_saw_nothing_gives_auc_one_half():
    task = Memorizer()

    audit = audit_site(
        task,
        task.init_params(0),
        site="s",
        members=_rows(20, 1),
        nonmembers=_rows(20, 2),
        training=TRAINING,
        epsilon=1.0,
        delta=0.0,
        shadows=0,
    )

    assert list(audit.attacks) == ["loss"]
    assert audit.attacks["loss"].auc == 0.5
    assert audit.auc_bound == pytest.approx(math.e / (1 + math.e))
    assert audit.tpr_bound(0.01) == pytest.approx(math.e * 0.01)


def test_shadows_train_on_halves_with_the_sites_dp_sgd_mechanism():
    task = Memorizer()
    training = ShadowTraining(
        epochs=2, batch_size=4, learning_rate=0.1, passes=3, dp=(1.5, 0.7)
    )

    audit_site(
        task,
        task.init_params(0),
        site="s",
        members=_rows(10, 1),
        nonmembers=_rows(10, 2),
        training=training,
        epsilon=2.0,
        delta=1e-5,
        shadows=2,
    )

    assert len(task.trained_with) == 2 * 3  # shadows x passes
    plans = [DpSgdPlan.of(c.options) for c in task.trained_with]
    assert {(p.noise_multiplier, p.clip) for p in plans} == {(1.5, 0.7)}
    # each shadow trains on half of the 20 audited rows: q = 4 / 10, 2 * 3 steps
    assert {(p.sampling_rate, p.steps) for p in plans} == {(0.4, 6)}
    assert {c.participant for c in task.trained_with} == {"s-shadow-0", "s-shadow-1"}
    assert all(OPTION_KEY in c.options for c in task.trained_with)


def test_audit_is_deterministic_in_its_seed():
    def run(seed):
        task = Memorizer()
        members = _rows(30, 1)
        params = task.train(task.init_params(0), members.subset(np.arange(15)), None)
        return audit_site(
            task,
            params.params,
            site="s",
            members=members,
            nonmembers=_rows(20, 2),
            training=TRAINING,
            epsilon=math.inf,
            delta=0.0,
            shadows=2,
            seed=seed,
        ).attacks["loss"]

    assert run(3) == run(3)
    assert run(3).auc != run(4).auc  # another subsample of the members


def test_too_few_rows_or_one_shadow_is_refused_with_the_reason():
    task = Memorizer()
    kwargs = {"site": "s", "training": TRAINING, "epsilon": 1.0, "delta": 0.0}
    with pytest.raises(ValueError, match="at least 2 training and 2 holdout rows"):
        audit_site(
            task,
            task.init_params(0),
            members=_rows(5, 1),
            nonmembers=_rows(1, 2),
            **kwargs,
        )
    with pytest.raises(ValueError, match="at least 2 shadows"):
        audit_site(
            task,
            task.init_params(0),
            members=_rows(5, 1),
            nonmembers=_rows(5, 2),
            shadows=1,
            **kwargs,
        )


def test_pooled_scores_every_sites_records_together():
    task = Memorizer()
    members = _rows(20, 1)
    params = task.train(task.init_params(0), members, None).params
    audits = [
        audit_site(
            task,
            params,
            site=name,
            members=members,
            nonmembers=_rows(20, seed),
            training=TRAINING,
            epsilon=1.0,
            delta=0.0,
            shadows=0,
        )
        for name, seed in (("a", 2), ("b", 3))
    ]

    overall = pooled(audits)

    assert list(overall) == ["loss"]
    assert overall["loss"].auc == 1.0
