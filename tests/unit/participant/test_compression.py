"""A deployed site's compression: the declared option, and top-k's residual on disk."""

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
    declared = Declared("topk", 0.1, 7)
    assert Declared.of({OPTION_KEY: declared.to_json()}) == declared
    assert Declared.of({}) is None
    for bad in ("{", '{"method": "q2", "fraction": 0.1, "seed": 1}', "[]"):
        with pytest.raises(ValueError, match=OPTION_KEY):
            Declared.of({OPTION_KEY: bad})
    with pytest.raises(ValueError, match="fraction"):
        Declared.of({OPTION_KEY: '{"method": "topk", "fraction": 0, "seed": 1}'})


@pytest.mark.parametrize("method", ["q8", "q4", "topk"])
def test_a_site_sends_what_a_simulated_site_sends(tmp_path: Path, method: str):
    site = SiteCompression(tmp_path / "state")
    simulated = SiteCompressors(CompressionConfig(method=method, fraction=0.2), 3)
    for round_number in (1, 2, 3):
        out = _update(round_number)
        expected = simulated.compress("site-00", round_number, _update(round_number))
        declared = Declared(method, 0.2, 3)
        payload = site.compress(declared, RUN, "site-00", round_number, out)
        assert payload == expected
        # ``out`` now holds what the coordinator decodes.
        decoded = decode(payload, [30, 4], method=method, fraction=0.2)
        np.testing.assert_array_equal(out.flatten(), decoded.astype(np.float32))


def test_the_topk_residual_survives_a_restart(tmp_path: Path):
    declared = Declared("topk", 0.1, 0)
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
    assert files == ["residual-2.f64", "residual-3.f64"]


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
