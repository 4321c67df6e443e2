"""Checkpoints: bit-identical, ordered round trips and detection of damaged files."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors.numpy import save_file

from accord.errors import StoreError
from accord.params import Params
from accord.store import CheckpointStore
from accord.store.checkpoint import (
    MAX_HEADER_BYTES,
    MAX_JSON_DEPTH,
    bounded_json,
    json_depth,
)

RUN = "20261122-163301-ab12cd"


def assert_identical(got: Params, expected: Params) -> None:
    assert list(got) == list(expected)
    for name in expected:
        assert got[name].dtype == expected[name].dtype
        assert got[name].shape == expected[name].shape
        assert got[name].tobytes() == expected[name].tobytes()
    assert got.digest() == expected.digest()


def test_round_trip_is_bit_identical_and_keeps_order(
    tmp_path: Path, params: Params
) -> None:
    store = CheckpointStore(tmp_path)

    path = store.save(RUN, 7, params)
    loaded = store.load(path)

    assert path == tmp_path / RUN / "round-00007.safetensors"
    assert list(params) != sorted(params)  # the fixture really is out of order
    assert_identical(loaded, params)


def test_extra_groups_round_trip_alongside_the_model(
    tmp_path: Path, params: Params
) -> None:
    store = CheckpointStore(tmp_path)
    moments = {"opt": params.scale(0.5), "opt/v": Params({"a.bias": np.ones(5)})}

    path = store.save(RUN, 1, params, extra=moments)
    checkpoint = store.load_checkpoint(path)

    assert (checkpoint.run_id, checkpoint.round_number) == (RUN, 1)
    assert_identical(checkpoint.params, params)
    assert list(checkpoint.extra) == ["opt", "opt/v"]
    for group, expected in moments.items():
        assert_identical(checkpoint.extra[group], expected)


def test_nan_and_infinities_are_kept_bit_for_bit(tmp_path: Path) -> None:
    weird = Params({"w": np.array([np.nan, -np.inf, np.inf, -0.0, 1e-45], np.float32)})
    store = CheckpointStore(tmp_path)

    assert_identical(store.load(store.save(RUN, 1, weird)), weird)


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(
    arrays=st.lists(
        hnp.arrays(
            dtype=st.sampled_from([np.float16, np.float32, np.float64]),
            shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
            elements={"allow_nan": True, "allow_infinity": True},
        ),
        max_size=5,
    ),
    names=st.lists(
        st.text(min_size=1, max_size=12), min_size=5, max_size=5, unique=True
    ),
)
def test_any_params_round_trip(
    tmp_path_factory: pytest.TempPathFactory, arrays: list[np.ndarray], names: list[str]
) -> None:
    params = Params(list(zip(names, arrays, strict=False)))
    store = CheckpointStore(tmp_path_factory.mktemp("ckpt"))

    assert_identical(store.load(store.save(RUN, 0, params)), params)


def test_latest_finds_the_highest_round(tmp_path: Path, params: Params) -> None:
    store = CheckpointStore(tmp_path)
    assert store.latest(RUN) is None
    for n in (2, 10, 3):
        store.save(RUN, n, params)
    store.save("other-run", 99, params)
    (tmp_path / RUN / ".round-00500.safetensors.abc.tmp").write_bytes(b"partial")

    assert store.latest(RUN) == (10, tmp_path / RUN / "round-00010.safetensors")


def test_save_leaves_no_temporary_files(tmp_path: Path, params: Params) -> None:
    store = CheckpointStore(tmp_path)

    store.save(RUN, 1, params)
    store.save(RUN, 1, params.scale(2.0))  # re-saving a round replaces it

    assert sorted(p.name for p in (tmp_path / RUN).iterdir()) == [
        "round-00001.safetensors"
    ]
    assert_identical(
        store.load(tmp_path / RUN / "round-00001.safetensors"), params.scale(2.0)
    )


def test_name_clash_with_extra_group_is_refused(tmp_path: Path, params: Params) -> None:
    store = CheckpointStore(tmp_path)
    clash = {"m": Params({"half": np.zeros(1)})}  # "m/half" is already a model tensor

    with pytest.raises(StoreError, match="used twice"):
        store.save(RUN, 1, params, extra=clash)

    assert store.latest(RUN) is None


def test_crash_during_write_keeps_the_previous_file(
    tmp_path: Path, params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CheckpointStore(tmp_path)
    path = store.save(RUN, 1, params)

    def half_write(tensors: object, filename: Path, metadata: object) -> None:
        Path(filename).write_bytes(b"\x00" * 10)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("accord.store.checkpoint.save_file", half_write)

    with pytest.raises(StoreError, match="No space left on device"):
        store.save(RUN, 1, params.scale(3.0))

    assert [p.name for p in (tmp_path / RUN).iterdir()] == [path.name]
    assert_identical(store.load(path), params)


@pytest.mark.parametrize("run_id", ["../escape", "a/b", "", ".hidden"])
def test_unsafe_run_ids_are_refused(
    tmp_path: Path, params: Params, run_id: str
) -> None:
    with pytest.raises(StoreError, match="cannot name a folder"):
        CheckpointStore(tmp_path).save(run_id, 1, params)


@pytest.fixture
def saved(tmp_path: Path, params: Params) -> Path:
    return CheckpointStore(tmp_path).save(RUN, 1, params, extra={"opt": params})


def _header_size(path: Path) -> int:
    return int(struct.unpack("<Q", path.read_bytes()[:8])[0])


def test_truncated_checkpoint_is_detected(saved: Path) -> None:
    data = saved.read_bytes()
    for cut in (0, 5, 8 + _header_size(saved) // 2, len(data) - 1):
        saved.write_bytes(data[:cut])

        with pytest.raises(StoreError, match="damaged"):
            CheckpointStore(saved.parent).load(saved)


def test_flipped_byte_in_any_tensor_is_detected(saved: Path) -> None:
    original = saved.read_bytes()
    size = _header_size(saved)
    header = json.loads(original[8 : 8 + size])
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    assert len(tensors) == 8
    for name, info in tensors.items():
        data = bytearray(original)
        data[8 + size + info["data_offsets"][0]] ^= 0x01
        saved.write_bytes(bytes(data))

        with pytest.raises(StoreError, match="digest") as caught:
            CheckpointStore(saved.parent).load(saved)
        assert ("extra group" in str(caught.value)) == name.startswith("opt/")


def _edit_metadata(path: Path, key: str, value: str) -> None:
    data = path.read_bytes()
    size = _header_size(path)
    header = json.loads(data[8 : 8 + size])
    header["__metadata__"][key] = value
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + size :])


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("accord.order", json.dumps(["a.bias", "z.weight", "m/half", "one"]), "digest"),
        ("accord.order", "not json", "bad metadata"),
        ("accord.order", json.dumps(["a.bias"]), "digest"),
        ("accord.order", json.dumps(["nope"]), "missing"),
        ("accord.digest", "0" * 64, "digest"),
        ("accord.extra_digests", json.dumps({"opt": "0" * 64}), "extra group 'opt'"),
        ("accord.extra", json.dumps({}), "does not list"),
        ("accord.format", "something-else/9", "no accord metadata"),
    ],
)
def test_edited_metadata_is_detected(
    saved: Path, key: str, value: str, match: str
) -> None:
    _edit_metadata(saved, key, value)

    with pytest.raises(StoreError, match=match):
        CheckpointStore(saved.parent).load(saved)


def test_a_checkpoint_of_an_earlier_version_with_sha256_digests_loads(
    tmp_path: Path, params: Params
) -> None:
    # Earlier versions recorded SHA-256 digests of the model and each extra group.
    store = CheckpointStore(tmp_path)
    moments = params.scale(0.5)
    path = store.save(RUN, 1, params, extra={"opt": moments})
    _edit_metadata(path, "accord.digest", params.legacy_digest())
    _edit_metadata(
        path, "accord.extra_digests", json.dumps({"opt": moments.legacy_digest()})
    )

    checkpoint = store.load_checkpoint(path)

    assert_identical(checkpoint.params, params)
    assert_identical(checkpoint.extra["opt"], moments)
    # ... and a SHA-256 of other values is still refused.
    _edit_metadata(path, "accord.digest", moments.legacy_digest())
    with pytest.raises(StoreError, match="model digest does not match"):
        store.load(path)


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="POSIX only")
def test_a_written_checkpoint_leaves_the_page_cache(
    tmp_path: Path, params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    advised: list[tuple[str, int, int, int]] = []
    fadvise = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        synced = os.fstat(fd).st_size  # the whole file, written before the advice
        advised.append((os.readlink(f"/proc/self/fd/{fd}"), synced, length, advice))
        fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    path = CheckpointStore(tmp_path).save(RUN, 3, params)

    [(name, size, length, advice)] = advised
    assert Path(name).name.startswith(f".{path.name}.")  # the file before its rename
    assert size == path.stat().st_size
    assert (length, advice) == (0, os.POSIX_FADV_DONTNEED)
    assert_identical(CheckpointStore(tmp_path).load(path), params)


def test_foreign_safetensors_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, path)

    with pytest.raises(StoreError, match="not an accord checkpoint"):
        CheckpointStore(tmp_path).load(path)


def test_missing_file_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot read checkpoint"):
        CheckpointStore(tmp_path).load(tmp_path / "nope.safetensors")


def _with_header(path: Path, header: bytes) -> None:
    """Replace the file's header by ``header`` (padded as safetensors pads it)."""
    data = path.read_bytes()
    size = _header_size(path)
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + data[8 + size :])


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_a_deeply_nested_header_is_refused_before_parsing(
    saved: Path, depth: int
) -> None:
    _with_header(saved, b"[" * depth + b"]" * depth)

    with pytest.raises(StoreError, match=f"JSON nested {depth} deep, more than 8"):
        CheckpointStore(saved.parent).load(saved)


def test_deeply_nested_metadata_is_refused_before_parsing(saved: Path) -> None:
    _edit_metadata(saved, "accord.extra", "[" * 50_000 + "]" * 50_000)

    with pytest.raises(StoreError, match="bad metadata: .*JSON nested 50000 deep"):
        CheckpointStore(saved.parent).load(saved)


def test_a_header_longer_than_the_bound_is_refused(saved: Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + data[8:])

    with pytest.raises(StoreError, match="header length 16,777,217 not in"):
        CheckpointStore(saved.parent).load(saved)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b'{"a": [1, {"b": "]]]\\"[[[{{"}]}', 3),
        (b'["\\\\", ["x"]]', 2),
        (b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, MAX_JSON_DEPTH),
    ],
)
def test_json_depth_ignores_brackets_in_strings(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth
    assert bounded_json(text) == json.loads(text)
