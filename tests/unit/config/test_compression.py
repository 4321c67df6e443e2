"""``[compression]`` is validated at load, and refused where it cannot compose."""

import pytest

from accord.config import config_from_mapping
from accord.errors import ConfigError

BASE = {
    "data": {"dataset": "digits", "sites": 10},
    "task": {"factory": "accord.task.numpy_task:softmax_regression"},
}


def load(**sections):
    return config_from_mapping({**BASE, **sections})


def test_off_by_default():
    cfg = load()
    assert (cfg.compression.method, cfg.compression.fraction) == ("none", 0.01)


@pytest.mark.parametrize("fraction", [0.0, -0.01, 1.0001])
def test_fraction_out_of_range_is_refused(fraction):
    with pytest.raises(ConfigError, match="compression.fraction"):
        load(compression={"method": "topk", "fraction": fraction})


@pytest.mark.parametrize("fraction", [1e-6, 1.0])
def test_fraction_at_the_bounds_loads(fraction):
    assert load(compression={"method": "topk", "fraction": fraction})


def test_unknown_method_is_refused():
    with pytest.raises(ConfigError, match="compression.method"):
        load(compression={"method": "q2"})


def test_topk_with_secure_aggregation_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="masked sum needs every site's dense"):
        load(secure_aggregation="masking", compression={"method": "topk"})


@pytest.mark.parametrize("method", ["q8", "q4"])
def test_quantization_with_ckks_is_refused_with_the_reason(method):
    with pytest.raises(ConfigError, match="does not compose with CKKS"):
        load(secure_aggregation="ckks", compression={"method": method})


@pytest.mark.parametrize(("method", "sites"), [("q8", 10), ("q8", 127), ("q4", 7)])
def test_quantization_with_masking_loads_where_the_sum_fits(method, sites):
    cfg = load(
        data={"dataset": "digits", "sites": sites},
        secure_aggregation="masking",
        compression={"method": method},
    )
    assert (cfg.compression.method, cfg.secure_aggregation.mode) == (method, "masking")


@pytest.mark.parametrize(
    ("method", "sites", "most"), [("q8", 128, 127), ("q4", 10, 7), ("q4", 8, 7)]
)
def test_quantization_with_masking_refuses_a_sum_that_would_overflow(
    method, sites, most
):
    with pytest.raises(ConfigError, match=f"sums at most {most} sites per round"):
        load(
            data={"dataset": "digits", "sites": sites},
            secure_aggregation="masking",
            compression={"method": method},
        )


def test_quantization_with_masking_counts_the_sites_selected_per_round():
    cfg = load(
        data={"dataset": "digits", "sites": 10},
        selection={"count": 5},
        secure_aggregation="masking",
        compression={"method": "q4"},
    )
    assert cfg.selection.count == 5


def test_quantization_with_masking_and_distributed_noise_is_refused():
    with pytest.raises(ConfigError, match="does not carry distributed DP noise"):
        load(
            secure_aggregation="masking",
            compression={"method": "q8"},
            privacy={"level": "participant", "noise_multiplier": 1.0, "clip": 1.0},
        )


@pytest.mark.parametrize("method", ["q8", "q4", "topk"])
def test_compression_without_secure_aggregation_loads(method):
    assert load(compression={"method": method}).compression.method == method


def test_topk_warm_up_and_momentum_defaults_and_bounds():
    c = load(compression={"method": "topk"}).compression
    assert (c.warmup_rounds, c.momentum, c.momentum_masking) == (3, 0.5, False)
    with pytest.raises(ConfigError, match="compression.momentum"):
        load(compression={"method": "topk", "momentum": 1.0})
    with pytest.raises(ConfigError, match="compression.warmup_rounds"):
        load(compression={"method": "topk", "warmup_rounds": -1})
