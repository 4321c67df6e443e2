"""csv:PATH as the operator may point it: at a FIFO, a device, a huge or odd file.

Each gets one DatasetError that names the cause and quotes at most an excerpt of
what it read; files just inside each bound load.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from accord.data import datasets
from accord.data.datasets import CSV_MAX_HEADER_BYTES, load_table
from accord.errors import DatasetError
from accord.participant.data import load_local_data

ROWS = "".join(f"{i},{i % 2}\n" for i in range(20))


def small_csv(tmp_path: Path, header: str = "x,y") -> Path:
    path = tmp_path / "site.csv"
    path.write_text(f"{header}\n{ROWS}")
    return path


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "site.csv"
    os.mkfifo(fifo)

    with pytest.raises(DatasetError, match=r"is a FIFO \(named pipe\)"):
        load_table(f"csv:{fifo}", target="y")
    # The participant's --data csv: goes the same way.
    with pytest.raises(DatasetError, match=r"is a FIFO \(named pipe\)"):
        load_local_data(f"csv:{fifo}", options={"target": "y"})


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_device_is_refused_before_reading() -> None:
    with pytest.raises(DatasetError, match="is a character device"):
        load_table("csv:/dev/zero", target="y")
    with pytest.raises(DatasetError, match="is a character device"):
        load_local_data("csv:/dev/zero", options={"target": "y"})


def test_max_bytes_bounds_the_file_exactly(tmp_path: Path) -> None:
    path = small_csv(tmp_path)
    size = path.stat().st_size

    assert len(load_table(f"csv:{path}", target="y", max_bytes=size).frame) == 20
    # As --data-option gives it: text.
    assert len(load_table(f"csv:{path}", target="y", max_bytes=str(size)).frame) == 20
    with pytest.raises(DatasetError, match=f"holds {size:,} bytes, more than the"):
        load_table(f"csv:{path}", target="y", max_bytes=size - 1)


@pytest.mark.parametrize("value", [0, -1, True, "ten", 1.5])
def test_max_bytes_must_be_a_positive_integer(tmp_path: Path, value: object) -> None:
    path = small_csv(tmp_path)

    with pytest.raises(DatasetError, match="max_bytes must be a positive integer"):
        load_table(f"csv:{path}", target="y", max_bytes=value)


def test_the_default_size_bound_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = small_csv(tmp_path)
    monkeypatch.setattr(datasets, "CSV_MAX_BYTES", path.stat().st_size - 1)

    with pytest.raises(DatasetError, match="more than the"):
        load_table(f"csv:{path}", target="y")


@pytest.mark.parametrize("extra", [0, 1])
def test_the_header_line_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: int
) -> None:
    monkeypatch.setattr(datasets, "CSV_MAX_HEADER_BYTES", 64)
    # x,y plus a long column name: 64 bytes with its newline, or one more.
    header = "x,y," + "c" * (64 - 5 + extra)
    path = tmp_path / "site.csv"
    path.write_text(f"{header}\n" + "".join(f"{i},{i % 2},0\n" for i in range(20)))

    if extra == 0:
        assert len(load_table(f"csv:{path}", target="y").frame) == 20
    else:
        with pytest.raises(DatasetError, match="header line is longer than 64 bytes"):
            load_table(f"csv:{path}", target="y")


def test_a_4_mb_header_gets_a_short_message(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("x," + "c" * (4 << 20) + "\n1,2\n")

    with pytest.raises(DatasetError) as caught:
        load_table(f"csv:{path}", target="y")

    text = str(caught.value)
    assert f"longer than {CSV_MAX_HEADER_BYTES:,} bytes" in text
    assert len(text) < 500 and "\n" not in text


def test_a_wide_header_inside_the_bound_is_quoted_as_an_excerpt(
    tmp_path: Path,
) -> None:
    names = [f"column_{i:06d}" for i in range(50_000)]  # ~700 kB of header
    path = tmp_path / "wide.csv"
    path.write_text(",".join(names) + "\n" + ",".join("1" * 50_000) + "\n")

    with pytest.raises(DatasetError) as caught:
        load_table(f"csv:{path}", target="y")

    text = str(caught.value)
    assert "no columns ['y']; it has 50000 columns: 'column_000000, column_0" in text
    assert len(text) < 500


def test_a_huge_cell_is_quoted_as_an_excerpt(tmp_path: Path) -> None:
    path = tmp_path / "cell.csv"
    path.write_text("x,y\n" + "v" * 1_000_000 + ",1\n2,0\n")

    with pytest.raises(DatasetError) as caught:
        load_table(f"csv:{path}", target="y")

    text = str(caught.value)
    assert "such as 'vvvv" in text and "(1,000,000 characters)" in text
    assert len(text) < 500


def test_binary_garbage_is_a_dataset_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.csv"
    path.write_bytes(b"x,y\n\xff\xfe\x00\x81,\x9c\n" * 10)

    with pytest.raises(DatasetError, match="cannot read csv:"):
        load_table(f"csv:{path}", target="y")


@pytest.mark.parametrize(
    ("cell", "ok"),
    [
        ("inf", False),
        ("-inf", False),
        ("1e100", True),
        ("-1e100", True),
        ("1.1e100", False),
    ],
)
def test_numeric_cells_are_finite_and_bounded(
    tmp_path: Path, cell: str, ok: bool
) -> None:
    path = tmp_path / "site.csv"
    path.write_text(
        "x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(5)) + f"{cell},1\n"
    )

    if ok:
        assert load_table(f"csv:{path}", target="y").frame["x"].iloc[5] == float(cell)
    else:
        with pytest.raises(
            DatasetError,
            match=r"column 'x' has .* \(line 7\)",
        ):
            load_table(f"csv:{path}", target="y")
