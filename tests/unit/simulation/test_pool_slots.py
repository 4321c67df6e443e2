"""Update slots per worker: a budget's worth, or a round's worth where it is held."""

from accord.config import config_from_mapping
from accord.simulation.pool import _holds_round, _slots_for


def _config(**strategy):
    return config_from_mapping(
        {"data": {"dataset": "wine"}, "task": {"factory": "m:f"}, "strategy": strategy}
    )


def test_a_large_model_gets_one_slot_unless_its_rounds_are_held():
    large = 64 * 2**20

    assert _slots_for(large) == 1
    assert _slots_for(large, holds_round=True, sites=7, workers=2) == 4
    assert _slots_for(large, holds_round=True, sites=8, workers=2) == 4
    assert _slots_for(large, holds_round=True, sites=9, workers=2) == 5


def test_a_small_model_keeps_its_budget_of_slots():
    assert _slots_for(1024, holds_round=True, sites=7, workers=2) == 64


def test_plain_rounds_under_the_norm_ratio_are_held():
    assert _holds_round(_config())
    assert not _holds_round(_config(max_norm_ratio=0))
