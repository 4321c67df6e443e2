"""The strategy with the robust rules: options from [strategy], the clipping center
kept in the checkpointed state, FLTrust's root-update source, streaming norm bounds,
and a round with too few updates for its rule failing as a round, not a crash."""

from __future__ import annotations

import numpy as np
import pytest

from accord.aggregation import NormBounding, cap_weights
from accord.config import config_from_mapping
from accord.coordinator.executor import TrainDone
from accord.coordinator.round import Round, RoundPlan
from accord.coordinator.strategy import CENTER, Strategy
from accord.errors import ConfigError, RoundFailed
from accord.params import Params

BASE = {"data": {"dataset": "digits", "sites": 10}, "task": {"factory": "mod:obj"}}


def strategy_config(**keys):
    return config_from_mapping({**BASE, "strategy": keys}).strategy


def update(*values: float) -> Params:
    return Params({"w": np.array(values, np.float32)})


def fold(strategy: Strategy, updates, weights, *, number=1, model=None, state=None):
    model = update(0.0, 0.0) if model is None else model
    if state is None:
        state = strategy.init_state(model)
    strategy.begin_round(number, model, state)
    acc = strategy.accumulator(updates[0].spec)
    for u, w in zip(updates, weights, strict=True):
        acc.add(u, w)
    return acc.result()


def test_centered_clipping_keeps_its_center_in_the_state_across_rounds():
    # Arrange
    strategy = Strategy(strategy_config(aggregation="centered_clip", tau=1.0))
    model = update(0.0, 0.0)
    state = strategy.init_state(model)
    assert f"{CENTER}w" in state and not state[f"{CENTER}w"].any()

    # Act: round 1 clips around 0, the aggregate becomes the center of round 2
    first = fold(strategy, [update(10.0, 0.0)] * 3, [1.0] * 3, state=state)
    model, state = strategy.apply(model, first, state)
    second = fold(strategy, [update(10.0, 0.0)] * 3, [1.0] * 3, state=state)

    # Assert: 3 iterations of at most tau each, from 0 then from 3
    np.testing.assert_allclose(first["w"], [3.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(state[f"{CENTER}w"], first["w"])
    np.testing.assert_allclose(second["w"], [6.0, 0.0], rtol=1e-6)
    assert float(state["step"]) == 1.0  # the optimizer's own state is intact


def test_a_resumed_strategy_clips_around_the_checkpointed_center():
    strategy = Strategy(strategy_config(aggregation="centered_clip", tau=1.0))
    model = update(0.0, 0.0)
    state = strategy.init_state(model)
    delta = fold(strategy, [update(10.0, 0.0)] * 2, [1.0] * 2, state=state)
    _, state = strategy.apply(model, delta, state)

    restored = Strategy(strategy_config(aggregation="centered_clip", tau=1.0))
    got = fold(restored, [update(10.0, 0.0)] * 2, [1.0] * 2, state=state)

    np.testing.assert_allclose(got["w"], [6.0, 0.0], rtol=1e-6)


def test_fltrust_is_refused_without_a_root_update_source():
    with pytest.raises(ConfigError, match="root dataset at the coordinator"):
        Strategy(strategy_config(aggregation="fltrust"))


def test_fltrust_asks_the_root_source_with_the_rounds_model():
    seen: list[Params] = []

    def root_update(global_params: Params, round_number: int) -> Params:
        assert round_number == 3
        seen.append(global_params)
        return update(1.0, 0.0)

    strategy = Strategy(strategy_config(aggregation="fltrust"), root_update=root_update)
    model = update(5.0, 5.0)

    got = fold(
        strategy,
        [update(2.0, 0.0), update(-3.0, 0.0)],
        [1.0, 1.0],
        number=3,
        model=model,
    )

    assert len(seen) == 1 and seen[0] is model
    np.testing.assert_allclose(got["w"], [1.0, 0.0])


def test_norm_bounding_streams_the_same_result_as_the_batch_rule():
    config = strategy_config(aggregation="norm_bounding", norm_bound=2.0)
    updates = [update(3.0, 4.0), update(0.3, 0.4), update(-6.0, 8.0)]
    weights = [100.0, 10.0, 1.0]

    streamed = fold(Strategy(config), updates, weights)

    batch = NormBounding(bound=2.0).aggregate(
        updates, list(cap_weights(weights, config.max_weight_share))
    )
    np.testing.assert_array_equal(streamed["w"], batch["w"])
    assert np.linalg.norm(streamed["w"]) <= 2.0


@pytest.mark.parametrize(
    ("keys", "received"),
    [({"aggregation": "krum", "attackers": 2}, 6), ({"aggregation": "bulyan"}, 2)],
)
def test_a_round_with_too_few_updates_for_its_rule_fails_with_the_reason(
    keys, received
):
    # Arrange: the round's quorum lets it close with fewer updates than the bound
    strategy = Strategy(strategy_config(**keys))
    names = tuple(f"s{i}" for i in range(10))
    strategy.begin_round(4, update(0, 0), strategy.init_state(update(0, 0)))
    spec = update(0, 0).spec
    rnd = Round(RoundPlan(4, names, received), spec, strategy.accumulator(spec))
    for name in names[:received]:
        rnd.receive(
            TrainDone(
                participant=name,
                round=4,
                update=update(1.0, 2.0),
                num_examples=10,
                duration_s=0.1,
            )
        )
    rnd.drain()

    # Act / Assert
    with pytest.raises(RoundFailed) as failed:
        rnd.aggregate()
    assert "round 4 failed" in str(failed.value)
    assert keys["aggregation"] in str(failed.value)
    assert failed.value.received == received


@pytest.mark.parametrize("rule", ["weighted_median"])
def test_a_site_at_the_default_share_cannot_pull_a_median(rule):
    """Capped at exactly half the weight, one site pulled the median halfway."""
    from accord.aggregation import make_rule
    from accord.coordinator.strategy import CollectingAccumulator

    rng = np.random.default_rng(0)
    base = rng.standard_normal(16)
    honest = [
        Params({"w": (base + 0.1 * rng.standard_normal(16)).astype(np.float32)})
        for _ in range(4)
    ]
    acc = CollectingAccumulator(make_rule(rule), 0.5)  # the default share
    for update in honest:
        acc.add(update, 10.0)
    acc.add(Params({"w": np.full(16, 1e30, np.float32)}), 100_000.0)

    out = acc.result()["w"]
    assert np.isfinite(out).all()
    assert float(np.abs(out).max()) <= max(float(np.abs(u["w"]).max()) for u in honest)


def test_held_below_keeps_a_cap_under_the_breakdown_and_leaves_others():
    from accord.coordinator.strategy import held_below

    assert held_below(0.5, 0.5) < 0.5
    assert held_below(0.9, 0.5) < 0.5
    assert held_below(0.3, 0.5) == 0.3
    assert held_below(None, 0.5) is None
    assert held_below(0.5, None) == 0.5
