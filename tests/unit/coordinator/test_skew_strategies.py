"""The strategy's side of FedYogi/FedAdagrad, FedProx, SCAFFOLD and q-FedAvg.

Selection from ``[strategy]``, what each train task declares, what is published,
SCAFFOLD's c stepping by |S|/N of the mean delta_c in the checkpointed state,
q-FedAvg's reports refused as the update arrives, and the combinations refused
when the configuration is loaded, each with its reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from accord.aggregation import ServerAdagrad, ServerAdam, ServerSGD, ServerYogi
from accord.aggregation.qfedavg import LOSS_METRIC
from accord.aggregation.scaffold import CONTROL, with_control
from accord.config import config_from_mapping
from accord.coordinator.executor import TrainDone
from accord.coordinator.round import Round, RoundPlan
from accord.coordinator.strategy import Strategy, published_spec, server_optimizer
from accord.errors import ConfigError
from accord.params import Params
from accord.task.local_strategy import OPTION_KEY

BASE: dict[str, Any] = {
    "data": {"dataset": "digits", "sites": 10},
    "task": {"factory": "mod:obj"},
}


def config(**sections: Any):
    return config_from_mapping({**BASE, **sections})


def strategy_config(**keys: Any):
    return config(strategy=keys).strategy


def p(*values: float) -> Params:
    return Params({"w": np.array(values, np.float32)})


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("sgd", ServerSGD),
        ("adam", ServerAdam),
        ("yogi", ServerYogi),
        ("adagrad", ServerAdagrad),
    ],
)
def test_server_optimizer_is_chosen_by_name_at_server_lr(name, cls):
    opt = server_optimizer(strategy_config(server_optimizer=name, server_lr=0.3))

    assert isinstance(opt, cls)
    assert opt.lr == 0.3


def test_an_unknown_optimizer_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="server_optimizer"):
        strategy_config(server_optimizer="yogi2")


def test_each_task_declares_what_local_training_must_do():
    plain = Strategy(strategy_config())
    prox = Strategy(strategy_config(proximal_mu=0.01))
    scaffold = Strategy(strategy_config(scaffold=True))
    fair = Strategy(strategy_config(aggregation="qfedavg"))

    assert plain.options("run-1") == {}
    assert prox.options("run-1")[OPTION_KEY]["proximal_mu"] == 0.01
    assert scaffold.options("run-1")[OPTION_KEY]["run"] == "run-1"
    assert fair.options("run-1")[OPTION_KEY]["report_loss"] is True


def test_scaffold_publishes_c_and_steps_it_by_the_answering_share():
    strategy = Strategy(strategy_config(scaffold=True))
    model = p(1.0, 2.0)
    state = strategy.init_state(model)
    spec = published_spec(strategy.config, model.spec)
    # Mean of the round: delta_y = [0.5, 0], delta_c = [2, -4]; 5 of 10 answered.
    delta = with_control(p(0.5, 0.0), p(2.0, -4.0))

    new, new_state = strategy.apply(model, delta, state, fraction=0.5)
    published = strategy.published(new, new_state)

    assert list(spec.names) == ["w", CONTROL + "w"]
    assert published.spec == spec
    np.testing.assert_allclose(new["w"], [1.5, 2.0])  # FedAvg on delta_y only
    np.testing.assert_allclose(published[CONTROL + "w"], [1.0, -2.0])  # 0 + 0.5 * dc
    packed = new_state.spec.view(new_state.spec.pack(new_state))  # as checkpointed
    again, later = strategy.apply(new, delta, packed, fraction=1.0)
    np.testing.assert_allclose(strategy.published(again, later)[CONTROL + "w"], [3, -6])


def test_without_scaffold_the_published_model_is_the_model():
    strategy = Strategy(strategy_config(server_optimizer="yogi"))
    model = p(1.0)

    assert strategy.published(model, strategy.init_state(model)) is model
    assert published_spec(strategy.config, model.spec) == model.spec


def _done(who: str, metrics: dict[str, float]) -> TrainDone:
    return TrainDone(who, 1, p(0.1, -0.1), 10, 0.0, metrics=metrics)


def test_q_fedavg_refuses_an_update_without_a_good_loss_and_folds_the_rest():
    strategy = Strategy(
        strategy_config(aggregation="qfedavg", q=1.0), learning_rate=0.1
    )
    model = p(0.0, 0.0)
    strategy.begin_round(1, model, strategy.init_state(model))
    rnd = Round(
        RoundPlan(1, ("a", "b", "c"), 1),
        model.spec,
        strategy.accumulator(model.spec),
    )

    outcomes = [
        rnd.receive(_done("a", {LOSS_METRIC: 1.0})),
        rnd.receive(_done("b", {LOSS_METRIC: -1.0})),
        rnd.receive(_done("c", {})),
    ]
    rnd.drain()
    step = rnd.aggregate()

    assert [o.status for o in outcomes] == ["ok", "rejected", "rejected"]
    assert "finite and >= 0" in (outcomes[1].reason or "")
    assert "loss before training" in (outcomes[2].reason or "")
    # One site, L = 10, F = 1: h = ||10 u||^2 + 10 = 2 + 10, step = 10 u / 12.
    np.testing.assert_allclose(step["w"], [1 / 12, -1 / 12], rtol=1e-6)


@pytest.mark.parametrize(
    ("sections", "match"),
    [
        (
            {"strategy": {"scaffold": True, "aggregation": "median"}},
            "out of step with the c_i",
        ),
        (
            {"strategy": {"scaffold": True}, "secure_aggregation": {"mode": "masking"}},
            "delta_c would have to travel beside it in the clear",
        ),
        (
            {
                "strategy": {"scaffold": True},
                "privacy": {"level": "participant", "noise_multiplier": 1.0, "clip": 1},
            },
            "delta_c",
        ),
        (
            {"strategy": {"aggregation": "qfedavg"}, "secure_aggregation": "masking"},
            "q-FedAvg weighs each site's update by its own loss",
        ),
        ({"strategy": {"q": 1.0}}, "applies to aggregation = 'qfedavg'"),
        ({"strategy": {"proximal_mu": -0.01}}, "proximal_mu"),
        ({"strategy": {"q": -0.1, "aggregation": "qfedavg"}}, "strategy.q"),
    ],
)
def test_combinations_that_cannot_work_are_refused_with_the_reason(sections, match):
    with pytest.raises(ConfigError, match=match):
        config(**sections)


def test_the_values_at_the_bounds_are_accepted():
    cfg = config(strategy={"proximal_mu": 0.0, "aggregation": "qfedavg", "q": 0.0})

    assert cfg.strategy.q == 0.0
    assert config(strategy={"proximal_mu": 1e6, "scaffold": True}).strategy.scaffold
