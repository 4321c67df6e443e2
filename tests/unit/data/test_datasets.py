from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from accord.data.catalogue import BUILTIN
from accord.data.datasets import MISSING_LEVEL, installed, list_datasets, load_table
from accord.errors import DatasetError, MissingExtraError

FASHION = pytest.mark.skipif(
    not installed("fashion_mnist"),
    reason="the Debian package dataset-fashion-mnist is not installed "
    "(sudo apt-get install dataset-fashion-mnist)",
)


def test_list_datasets_describes_every_bundled_table() -> None:
    entries = {e.name: e for e in list_datasets()}
    fashion = {"fashion_mnist"} if installed("fashion_mnist") else set()
    assert set(entries) == fashion | {
        "breast_cancer",
        "digits",
        "wine",
        "covid_testing",
        "lending_club",
        "mlc_churn",
        "synthetic",
    }
    rows = {name: e.rows for name, e in entries.items() if name not in fashion}
    assert rows == {
        "breast_cancer": 569,
        "digits": 1797,
        "wine": 178,
        "covid_testing": 15524 - 301,  # invalid tests removed
        "lending_club": 9857,
        "mlc_churn": 5000,
        "synthetic": 1000,
    }
    assert entries["covid_testing"].sites == 88
    assert entries["lending_club"].sites == 50
    assert entries["mlc_churn"].sites == 51
    assert entries["digits"].sites is None
    assert entries["digits"].features == 64
    assert entries["wine"].classes == ("class_0", "class_1", "class_2")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=FASHION) if n == "fashion_mnist" else n
        for n in sorted(BUILTIN)
    ],
)
def test_tables_hold_exactly_the_schema_columns(name: str) -> None:
    table = load_table(name)
    spec = table.spec
    site = {spec.site_column} if spec.site_column else set()
    assert set(table.frame.columns) == {*spec.features, spec.target} | site
    assert set(table.frame[spec.target]) == set(spec.classes)
    assert not {c for c, _ in spec.dropped} & set(table.frame.columns)
    for col in spec.categorical:
        assert table.frame[col].notna().all()
        assert set(table.frame[col]) == set(table.levels[col])


def test_covid_excludes_outcome_and_identity_columns() -> None:
    table = load_table("covid_testing")
    spec = table.spec
    reasons = dict(spec.dropped)
    assert "leak" in reasons["ct_result"]
    for col in ("ct_result", "rownames", "subject_id", "fake_first_name"):
        assert col not in spec.features and col not in table.frame.columns
    assert spec.site_column == "clinic_name" and "clinic_name" not in spec.features
    assert spec.positive == "positive"
    assert "invalid" not in set(table.frame["result"])
    assert MISSING_LEVEL in table.levels["payor_group"]


def test_binary_tasks_put_the_positive_class_last() -> None:
    assert BUILTIN["breast_cancer"].positive == "malignant"
    assert BUILTIN["lending_club"].positive == "bad"
    assert BUILTIN["mlc_churn"].positive == "yes"
    assert BUILTIN["digits"].positive is None


def test_load_table_returns_an_independent_copy() -> None:
    first = load_table("wine")
    first.frame.loc[0, "alcohol"] = -1.0
    assert float(load_table("wine").frame["alcohol"].iloc[0]) > 0


def test_unknown_dataset_and_stray_options_are_refused() -> None:
    with pytest.raises(DatasetError, match="choose one of"):
        load_table("mnist")
    with pytest.raises(DatasetError, match="takes no options"):
        load_table("wine", target="x")


def test_csv_loads_with_list_or_text_options(
    csv_path: Path, csv_options: dict[str, Any]
) -> None:
    table = load_table(f"csv:{csv_path}", **csv_options)
    spec = table.spec
    assert spec.numeric == ("a", "b") and spec.categorical == ("colour",)
    assert spec.classes == ("no", "yes") and spec.site_column == "hospital"
    assert spec.name == "toy"
    assert table.levels["colour"] == ("blue", "green", MISSING_LEVEL, "red")
    text = load_table(
        f"csv:{csv_path}", target="label", categorical="colour, hospital", drop="id"
    )
    assert text.spec.categorical == ("colour", "hospital")


def test_csv_integer_targets_become_class_names(tmp_path: Path) -> None:
    path = tmp_path / "ints.csv"
    path.write_text("x,y\n1.5,0\n2.5,1\n3.5,1\n4.5,\n")
    table = load_table(f"csv:{path}", target="y")
    assert table.spec.classes == ("0", "1")
    assert list(table.frame["y"]) == ["0", "1", "1", None]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs target=COLUMN"),
        ({"target": "label", "colour": 1}, "unknown csv options"),
        ({"target": "label", "drop": ["nope"]}, r"no columns \['nope'\]"),
        ({"target": "label", "drop": ["id"]}, "list it in categorical=, drop= it"),
        ({"target": "label", "max_levels": 0}, "max_levels must be a positive"),
    ],
)
def test_csv_errors_say_what_to_do(
    csv_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        load_table(f"csv:{csv_path}", **options)


def test_csv_missing_file_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="absent.csv' does not exist"):
        load_table(f"csv:{tmp_path / 'absent.csv'}", target="y")


def test_missing_extra_names_the_install_command(
    csv_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'accord\[datasets\]'"):
        load_table(f"csv:{csv_path}", target="label")


@pytest.mark.parametrize("name", ["digits", "wine", "breast_cancer"])
def test_sklearn_tables_read_without_sklearn_equal_sklearns(name: str) -> None:
    """The bundled scikit-learn CSVs are parsed directly (importing scikit-learn
    costs a second per process); the result is what load_NAME gives."""
    from accord.data import datasets

    spec = BUILTIN[name]
    path = datasets._sklearn_data_file(name)
    assert path is not None
    direct = datasets._read_sklearn_file(path, spec)
    monkey = pytest.MonkeyPatch()
    monkey.setattr(datasets, "_sklearn_data_file", lambda locator: None)
    try:
        via_sklearn = datasets._read_sklearn(name, spec)
    finally:
        monkey.undo()
    assert list(direct.columns) == list(via_sklearn.columns)
    assert direct.drop(columns="target").to_numpy().tobytes() == (
        via_sklearn.drop(columns="target").to_numpy(dtype=float).tobytes()
    )
    assert list(direct["target"]) == list(via_sklearn["target"])
