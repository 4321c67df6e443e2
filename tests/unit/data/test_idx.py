"""The IDX reader and the Fashion-MNIST dataset (the Debian package, when installed)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from accord.data import datasets, idx
from accord.data.catalogue import FASHION_MNIST_CLASSES
from accord.data.idx import fashion_mnist_arrays, fashion_mnist_installed, read_idx
from accord.errors import DatasetError

FASHION = pytest.mark.skipif(
    not fashion_mnist_installed(),
    reason="the Debian package dataset-fashion-mnist is not installed "
    "(sudo apt-get install dataset-fashion-mnist)",
)


def _write_idx(path: Path, values: np.ndarray, *, type_code: int = 0x08) -> Path:
    header = bytes([0, 0, type_code, values.ndim])
    header += struct.pack(f">{values.ndim}I", *values.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + values.astype(np.uint8).tobytes())
    return path


def _fake_package(folder: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    return folder


def test_read_idx_returns_the_values_in_c_order(tmp_path: Path) -> None:
    values = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = _write_idx(tmp_path / "x.gz", values)

    got = read_idx(path, ndim=3)

    assert got.shape == (2, 3, 4) and got.dtype == np.uint8
    assert np.array_equal(got, values)


def test_read_idx_refuses_a_truncated_file_naming_it(tmp_path: Path) -> None:
    path = _write_idx(tmp_path / "x.gz", np.zeros((2, 3, 4)))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-1]))  # one byte short

    with pytest.raises(DatasetError, match=r"x\.gz: 23 bytes of values .* needs 24"):
        read_idx(path, ndim=3)


def test_read_idx_refuses_a_byte_too_many(tmp_path: Path) -> None:
    path = _write_idx(tmp_path / "x.gz", np.zeros(5))
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()) + b"\0"))

    with pytest.raises(DatasetError, match="6 bytes of values where .* needs 5"):
        read_idx(path, ndim=1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04" + bytes(20), "is not an IDX file"),
        (b"\0\0", "is not an IDX file"),
        (b"\0\0\x0d\x01" + struct.pack(">I", 1) + bytes(4), r"IDX type 0x0d"),
        (b"\0\0\x08\x02" + struct.pack(">II", 1, 1) + bytes(1), "with 2 dimensions"),
    ],
)
def test_read_idx_refuses_foreign_headers(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(content))

    with pytest.raises(DatasetError, match=message):
        read_idx(path, ndim=1)


def test_read_idx_refuses_a_file_that_is_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "plain.gz"
    path.write_bytes(b"not gzip at all")

    with pytest.raises(DatasetError, match="cannot read IDX file .*plain.gz"):
        read_idx(path, ndim=1)


def test_absent_package_is_named_with_the_install_command(tmp_path: Path) -> None:
    assert not fashion_mnist_installed(tmp_path)
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist_arrays(tmp_path)


def test_absent_package_leaves_the_dataset_unlisted_and_unloadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idx, "FASHION_MNIST_DIR", tmp_path)
    monkeypatch.setattr(
        datasets, "fashion_mnist_installed", lambda: fashion_mnist_installed(tmp_path)
    )
    monkeypatch.setattr(
        datasets, "fashion_mnist_arrays", lambda: fashion_mnist_arrays(tmp_path)
    )
    datasets._builtin_table.cache_clear()
    try:
        names = {e.name for e in datasets.list_datasets()}
        with pytest.raises(DatasetError, match="needs the Debian package"):
            datasets.load_table("fashion_mnist")
    finally:
        datasets._builtin_table.cache_clear()
    assert "fashion_mnist" not in names and "digits" in names


def test_images_and_labels_must_agree(tmp_path: Path) -> None:
    folder = _fake_package(tmp_path, np.zeros((3, 28, 28)), np.zeros(2))
    with pytest.raises(DatasetError, match=r"\(3, 28, 28\) images for 2 labels"):
        fashion_mnist_arrays(folder)
    small = _fake_package(tmp_path / "s", np.zeros((2, 27, 28)), np.zeros(2))
    with pytest.raises(DatasetError, match="n x 28 x 28"):
        fashion_mnist_arrays(small)


def test_labels_past_nine_are_refused(tmp_path: Path) -> None:
    ok = _fake_package(tmp_path / "ok", np.zeros((2, 28, 28)), np.array([0, 9]))
    bad = _fake_package(tmp_path / "bad", np.zeros((2, 28, 28)), np.array([0, 10]))

    images, labels = fashion_mnist_arrays(ok)

    assert images.shape == (2, 28, 28) and list(labels) == [0, 9]
    with pytest.raises(DatasetError, match="label 10 outside 0-9"):
        fashion_mnist_arrays(bad)


@FASHION
def test_fashion_mnist_is_the_balanced_t10k_set() -> None:
    table = datasets.load_table("fashion_mnist")
    frame, spec = table.frame, table.spec

    assert frame.shape == (10_000, 28 * 28 + 1)
    assert spec.classes == FASHION_MNIST_CLASSES
    counts = frame[spec.target].value_counts()
    assert set(counts) == {1000} and set(counts.index) == set(FASHION_MNIST_CLASSES)
    pixels = frame[list(spec.numeric)].to_numpy()
    assert pixels.min() == 0.0 and pixels.max() == 255.0
    # the first t10k image is an ankle boot (label 9), as in Zalando's README
    assert frame[spec.target].iloc[0] == "Ankle boot"
