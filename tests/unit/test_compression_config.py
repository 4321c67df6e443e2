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
@pytest.mark.parametrize("mode", ["masking", "ckks"])
def test_quantization_with_secure_aggregation_is_refused_with_the_reason(method, mode):
    with pytest.raises(ConfigError, match="already sends each value as a fixed-point"):
        load(secure_aggregation=mode, compression={"method": method})


@pytest.mark.parametrize("method", ["q8", "q4", "topk"])
def test_compression_without_secure_aggregation_loads(method):
    assert load(compression={"method": method}).compression.method == method
