import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from accord.errors import UpdateRejected
from accord.params import Params, ParamSpec

DTYPES = st.sampled_from([np.float16, np.float32, np.float64])


@st.composite
def params(draw):
    n = draw(st.integers(1, 5))
    arrays = {}
    for i in range(n):
        dtype = draw(DTYPES)
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
        arrays[f"t{i}"] = draw(
            hnp.arrays(dtype, shape, elements=st.floats(-1e3, 1e3, width=16))
        )
    return Params(arrays)


@settings(max_examples=60, deadline=None)
@given(params())
def test_pack_then_view_round_trips_bit_for_bit(p):
    buffer = p.spec.pack(p)
    assert len(buffer) == p.spec.packed_nbytes
    view = p.spec.view(buffer)
    assert list(view) == list(p)
    for name in p:
        assert view[name].dtype == p[name].dtype
        assert view[name].shape == p[name].shape
        assert view[name].tobytes() == p[name].tobytes()
    assert view.digest() == p.digest()


@settings(max_examples=60, deadline=None)
@given(params())
def test_flatten_unflatten_and_json_spec_round_trip(p):
    again = Params.unflatten(p.spec, p.flatten())
    assert again.digest() == p.digest()
    assert ParamSpec.from_json(p.spec.to_json()) == p.spec


def test_view_is_zero_copy_and_read_only_by_default():
    p = Params({"a": np.arange(6, dtype=np.float32).reshape(2, 3)})
    buffer = p.spec.pack(p)
    view = p.spec.view(buffer)
    with pytest.raises(ValueError):
        view["a"][0, 0] = 9
    writable = p.spec.view(buffer, writable=True)
    writable["a"][0, 0] = 9
    assert view["a"][0, 0] == 9  # same memory


def test_offsets_are_64_byte_aligned():
    p = Params(
        {
            "a": np.zeros(3, np.float32),
            "b": np.zeros(5, np.float64),
            "c": np.zeros(1, np.float16),
        }
    )
    assert all(off % 64 == 0 for off in p.spec.offsets())


def test_digest_changes_with_values_names_and_order():
    a = Params({"x": np.zeros(3, np.float32), "y": np.ones(2, np.float32)})
    assert (
        a.digest()
        != Params(
            {"x": np.zeros(3, np.float32), "y": np.full(2, 2, np.float32)}
        ).digest()
    )
    assert (
        a.digest()
        != Params({"y": np.ones(2, np.float32), "x": np.zeros(3, np.float32)}).digest()
    )
    assert (
        a.digest()
        != Params({"z": np.zeros(3, np.float32), "y": np.ones(2, np.float32)}).digest()
    )


def test_the_digest_is_blake3_of_the_structure_then_each_tensors_bytes():
    import blake3

    a = Params({"x": np.arange(3, dtype=np.float32), "e": np.zeros(0, np.float64)})
    expected = blake3.blake3(a.spec.to_json().encode())
    expected.update(np.arange(3, dtype=np.float32).tobytes())
    assert a.digest() == expected.hexdigest()
    assert len(a.digest()) == 64


def test_matches_takes_the_digest_or_the_sha256_earlier_versions_recorded():
    import hashlib

    a = Params({"x": np.arange(3, dtype=np.float32)})
    legacy = hashlib.sha256(a.spec.to_json().encode())
    legacy.update(np.arange(3, dtype=np.float32).tobytes())
    assert a.legacy_digest() == legacy.hexdigest() != a.digest()
    assert a.matches(a.digest())
    assert a.matches(legacy.hexdigest())
    other = Params({"x": np.arange(1, 4, dtype=np.float32)})
    assert not a.matches(other.digest())
    assert not a.matches(other.legacy_digest())
    assert not a.matches("")


@pytest.mark.parametrize(
    ("other", "reason"),
    [
        ({"w": np.zeros((3, 2), np.float32)}, "shape"),
        ({"w": np.zeros((2, 3), np.float64)}, "dtype"),
        ({"v": np.zeros((2, 3), np.float32)}, "names differ"),
        (
            {"w": np.zeros((2, 3), np.float32), "b": np.zeros(1, np.float32)},
            "names differ",
        ),
    ],
)
def test_check_explains_mismatch(other, reason):
    spec = Params({"w": np.zeros((2, 3), np.float32)}).spec
    with pytest.raises(UpdateRejected, match=reason):
        spec.check(Params(other))


def test_malformed_header_and_short_buffer_are_rejected():
    with pytest.raises(UpdateRejected, match="malformed"):
        ParamSpec.from_json(b"[[1, 2]")
    with pytest.raises(UpdateRejected, match="float16/32/64"):
        ParamSpec.from_json('[["w", "<i8", [2]]]')
    spec = Params({"w": np.zeros(100, np.float32)}).spec
    with pytest.raises(UpdateRejected, match="needs"):
        spec.view(bytes(10))


def test_non_float_input_becomes_float32_and_big_endian_little():
    p = Params({"i": np.arange(3), "b": np.arange(3, dtype=">f8")})
    assert p["i"].dtype == np.float32
    assert p.spec.tensors[1].dtype == "<f8"
    assert p.all_finite()
    assert not Params({"n": np.array([np.nan], np.float32)}).all_finite()
