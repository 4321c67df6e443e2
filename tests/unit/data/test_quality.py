"""A user's table is checked before training: every problem at once, by column."""

import logging
from pathlib import Path

import pytest

from accord.data.datasets import load_table
from accord.data.quality import MAX_ABS
from accord.errors import DatasetError

pytest.importorskip("pandas")


def _csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "table.csv"
    path.write_text(text)
    return f"csv:{path}"


def test_an_infinite_feature_is_refused_naming_column_and_line(tmp_path):
    source = _csv(tmp_path, "x,z,y\n1,2,a\n2,inf,b\n3,4,a\n")

    with pytest.raises(DatasetError) as err:
        load_table(source, target="y")

    assert "column 'z' has 1 infinite value(s) such as 'inf' (line 3)" in str(err.value)


@pytest.mark.parametrize(
    ("value", "refused"), [(MAX_ABS, False), (MAX_ABS * 1.000001, True), (1e200, True)]
)
def test_values_beyond_what_scaling_holds_are_refused(tmp_path, value, refused):
    source = _csv(tmp_path, f"x,y\n1,a\n{value!r},b\n3,a\n")

    if not refused:
        assert load_table(source, target="y").frame["x"].max() == value
        return
    with pytest.raises(DatasetError, match=r"column 'x' has values as large as"):
        load_table(source, target="y")


def test_every_non_numeric_column_is_reported_with_an_offending_value(tmp_path):
    # Row 1 of each column is a number: the example must be the offending value.
    source = _csv(tmp_path, "a,b,c,y\n1,2,3,u\n2,unknown,4,v\n3,5,?,u\n")

    with pytest.raises(DatasetError) as err:
        load_table(source, target="y")

    message = str(err.value)
    assert "(2 problem(s))" in message
    assert "column 'b' is not numeric: 1 value(s) such as 'unknown' (line 3)" in message
    assert "column 'c' is not numeric: 1 value(s) such as '?' (line 4)" in message
    assert "column 'a'" not in message


def test_a_missing_marker_named_in_missing_is_a_missing_value(tmp_path):
    source = _csv(tmp_path, "a,y\n1,u\n.,v\n3,u\n")

    table = load_table(source, target="y", missing=["."])

    assert table.frame["a"].isna().tolist() == [False, True, False]


def test_whitespace_around_a_label_does_not_make_a_class(tmp_path):
    source = _csv(tmp_path, 'x,y\n1,yes\n2," yes"\n3,no\n4,"  "\n')

    table = load_table(source, target="y")

    assert table.spec.classes == ("no", "yes")
    assert list(table.frame["y"]) == ["yes", "yes", "no", None]  # blank: missing


def test_rows_without_a_site_are_left_out_with_a_warning(tmp_path, caplog):
    source = _csv(tmp_path, "x,site,y\n1,a,u\n2,,v\n3,b,u\n4,a,v\n")

    with caplog.at_level(logging.WARNING, logger="accord.data.quality"):
        table = load_table(source, target="y", site_column="site")

    assert sorted(set(table.frame["site"])) == ["a", "b"]  # no site "missing"
    assert len(table.frame) == 3
    assert "1 row(s) have no value in the site column 'site'" in caplog.text


def test_a_numeric_column_declared_categorical_with_many_values_is_refused(tmp_path):
    rows = "\n".join(f"{i * 1.5},{'u' if i % 2 else 'v'}" for i in range(30))
    source = _csv(tmp_path, f"amount,y\n{rows}\n.,u\n")

    with pytest.raises(DatasetError) as err:
        load_table(source, target="y", categorical=["amount"], max_levels=20)

    message = str(err.value)
    assert "column 'amount' is categorical with 31 distinct values" in message
    assert "more than max_levels=20" in message
    assert "leave it numeric (not categorical=) and name '.' in missing=" in message


@pytest.mark.parametrize(("levels", "refused"), [(20, False), (21, True)])
def test_max_levels_is_the_most_a_categorical_column_may_have(
    tmp_path, levels, refused
):
    rows = "\n".join(f"c{i},{'u' if i % 2 else 'v'}" for i in range(levels))
    source = _csv(tmp_path, f"kind,y\n{rows}\n")

    if not refused:
        table = load_table(source, target="y", categorical="kind", max_levels=20)
        assert len(table.levels["kind"]) == levels
        return
    with pytest.raises(DatasetError, match="each level becomes a model input"):
        load_table(source, target="y", categorical="kind", max_levels=20)


def test_a_long_list_of_problems_stays_one_bounded_line_and_counts_the_rest() -> None:
    from accord.data.quality import QualityReport

    long = [f"column 'c{i}' has a problem: " + "x" * 150 for i in range(11)]
    report = QualityReport(
        source="csv:site.csv", rows=3, columns=(), problems=tuple(long), notes=()
    )

    with pytest.raises(DatasetError) as err:
        report.raise_for_problems()

    message = str(err.value)
    assert "\n" not in message and len(message) < 1200
    assert "(1) column 'c0'" in message  # the first problem is always shown
    shown = sum(f"column 'c{i}'" in message for i in range(11))
    assert 1 <= shown < 11
    assert f"and {11 - shown} more (`accord datasets check` lists them all)" in message
    assert "(11 problem(s))" in message
