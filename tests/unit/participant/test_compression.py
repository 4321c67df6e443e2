"""A deployed site's compression: the declared option, and top-k's residual on disk."""

import json
from pathlib import Path

import numpy as np
import pytest

from accord.config import CompressionConfig
from accord.errors import ConfigError
from accord.params import Params
from accord.participant.compression import SiteCompression
from accord.simulation.compression import SiteCompressors
from accord.transforms.compression import OPTION_KEY, Declared, decode

RUN = "20261206-120000-abcdef.0123abcd"  # a wire run id


def _update(seed: int) -> Params:
    rng = np.random.default_rng(seed)
    return Params(
        {
            "w": rng.normal(size=(6, 5)).astype(np.float32),
            "b": rng.normal(size=4).astype(np.float32),
        }
    )


def test_the_option_round_trips_and_bad_ones_are_refused():
    declared = Declared("topk", 0.1, 7, warmup_rounds=3, momentum=0.5, masking=True)
    assert Declared.of({OPTION_KEY: declared.to_json()}) == declared
    assert Declared.of({}) is None
    for bad in ("{", '{"method": "q2", "fraction": 0.1, "seed": 1}', "[]"):
        with pytest.raises(ValueError, match=OPTION_KEY):
            Declared.of({OPTION_KEY: bad})
    good = {
        "method": "topk",
        "fraction": 0.1,
        "seed": 1,
        "warmup_rounds": 3,
        "momentum": 0.5,
        "masking": False,
    }
    for key, value in (
        ("fraction", 0),
        ("warmup_rounds", -1),
        ("warmup_rounds", 1001),
        ("warmup_rounds", True),
        ("momentum", 1.0),
        ("momentum", -0.1),
        ("masking", 1),
    ):
        with pytest.raises(ValueError, match=key):
            Declared.of({OPTION_KEY: json.dumps({**good, key: value})})
    Declared.of({OPTION_KEY: json.dumps({**good, "warmup_rounds": 1000})})


def test_a_warm_up_rounds_density_is_declared_by_the_round():
    declared = Declared("topk", 0.01, 0, warmup_rounds=3)
    assert [declared.round_fraction(r) for r in (1, 2, 3, 4)] == [
        0.25,
        0.0625,
        0.015625,
        0.01,
    ]
    assert Declared("q8", 0.01, 0, warmup_rounds=3).round_fraction(1) == 0.01


@pytest.mark.parametrize("method", ["q8", "q4", "topk"])
@pytest.mark.parametrize("masking", [False, True])
def test_a_site_sends_what_a_simulated_site_sends(
    tmp_path: Path, method: str, masking: bool
):
    # The defaults: top-k with a 3-round warm-up and momentum correction.
    config = CompressionConfig(method=method, fraction=0.1, momentum_masking=masking)
    site = SiteCompression(tmp_path / "state")
    simulated = SiteCompressors(config, 3)
    declared = Declared(
        method,
        0.1,
        3,
        warmup_rounds=config.warmup_rounds,
        momentum=config.momentum,
        masking=config.momentum_masking,
    )
    for round_number in (1, 2, 3, 4, 5):
        out = _update(round_number)
        expected = simulated.compress("site-00", round_number, _update(round_number))
        payload = site.compress(declared, RUN, "site-00", round_number, out)
        assert payload == expected
        # ``out`` now holds what the coordinator decodes, at the round's density.
        fraction = declared.round_fraction(round_number)
        decoded = decode(payload, [30, 4], method=method, fraction=fraction)
        np.testing.assert_array_equal(out.flatten(), decoded.astype(np.float32))


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_the_topk_residual_survives_a_restart(tmp_path: Path, momentum: float):
    declared = Declared("topk", 0.1, 0, warmup_rounds=1, momentum=momentum)
    uninterrupted = SiteCompression(None)  # residual in memory
    restarted = tmp_path / "state"
    sent = []
    for round_number in (1, 2, 3):
        # A new SiteCompression each round: a participant restarted in between.
        a = uninterrupted.compress(
            declared, RUN, "s", round_number, _update(round_number)
        )
        b = SiteCompression(restarted).compress(
            declared, RUN, "s", round_number, _update(round_number)
        )
        assert a == b
        sent.append(b)
    # The residual did matter: without it round 2 sends something else.
    fresh = SiteCompression(tmp_path / "other").compress(
        declared, RUN, "s", 2, _update(2)
    )
    assert fresh != sent[1]
    files = sorted(p.name for p in restarted.rglob("*.f64"))
    velocity = ["velocity-2.f64", "velocity-3.f64"] if momentum else []
    assert files == ["residual-2.f64", "residual-3.f64", *velocity]


def test_a_retried_round_starts_from_the_residual_before_it(tmp_path: Path):
    declared = Declared("topk", 0.1, 0)
    site = SiteCompression(tmp_path)
    site.compress(declared, RUN, "s", 1, _update(1))
    first = site.compress(declared, RUN, "s", 2, _update(2))
    again = SiteCompression(tmp_path).compress(declared, RUN, "s", 2, _update(2))
    assert first == again


def test_a_residual_of_another_model_is_refused_with_its_path(tmp_path: Path):
    declared = Declared("topk", 0.1, 0)
    SiteCompression(tmp_path).compress(declared, RUN, "s", 1, _update(1))
    small = Params({"w": np.ones(3, np.float32)})
    with pytest.raises(ConfigError, match="residual-1.f64 holds 34 values"):
        SiteCompression(tmp_path).compress(declared, RUN, "s", 2, small)
