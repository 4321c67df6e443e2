"""A spooled update's L2 norm comes from the pass that checks it as it streams in.

The round then needs no value of the update before folding it; the norm must be the
one the round would compute, however the stream is cut (a chunk may end inside a
value), and a bad value is still refused on arrival.
"""

from __future__ import annotations

import numpy as np
import pytest

from accord.aggregation.integrity import l2_norm
from accord.errors import SubmissionRefused
from accord.params import Params
from accord.transport.spool import SpooledUpdate


def _update() -> Params:
    rng = np.random.default_rng(3)
    return Params(
        {
            "a": rng.standard_normal(70_001).astype(np.float32),
            "b": rng.standard_normal((13, 17)),  # float64
            "c": rng.standard_normal(9).astype(np.float16),
        }
    )


def _stream(tmp_path, update: Params, cut: int) -> SpooledUpdate:
    spec = update.spec
    packed = bytes(spec.pack(update))
    spooled = SpooledUpdate(tmp_path, spec, digest=update.digest())
    try:
        for offset in range(0, len(packed), cut):
            spooled.write(offset, packed[offset : offset + cut])
    except BaseException:
        spooled.discard()  # as the executor does with a refused stream
        raise
    return spooled


@pytest.mark.parametrize("cut", [7, 4096, 65_537, 1 << 20])
def test_the_spooled_norm_is_the_updates_norm_however_the_stream_is_cut(tmp_path, cut):
    update = _update()
    spooled = _stream(tmp_path, update, cut)

    view = spooled.finish()

    assert spooled.norm == pytest.approx(l2_norm(update), rel=1e-12)
    assert spooled.norm == pytest.approx(l2_norm(view), rel=1e-12)
    spooled.discard()


def test_a_nan_is_still_refused_as_it_streams_in(tmp_path):
    update = _update()
    update["b"][4, 2] = np.nan

    with pytest.raises(SubmissionRefused, match="'b' contains NaN"):
        _stream(tmp_path, update, 4096)
    assert list(tmp_path.iterdir()) == []  # nothing of it is kept
