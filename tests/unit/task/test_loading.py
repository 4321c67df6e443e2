"""Loading the user's task: options a factory does not declare are refused."""

import sys
from pathlib import Path

import pytest

from accord.data.arrays import DatasetInfo
from accord.errors import ConfigError
from accord.task.loading import load_task, resolve_object

INFO = DatasetInfo(name="toy", feature_shape=(3,), class_names=("no", "yes"))

FACTORIES = """
from accord.task.numpy_task import softmax_regression

def build(info, *, weight_decay=0.0):
    return softmax_regression(info, weight_decay=weight_decay)

def open_ended(info, **options):
    return softmax_regression(info)
"""


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "mytask.py").write_text(FACTORIES)
    return tmp_path


def test_a_declared_option_reaches_the_factory(base):
    task = load_task("mytask:build", INFO, options={"weight_decay": 0.5}, base_dir=base)
    assert task.weight_decay == 0.5


def test_a_misspelt_option_is_refused_naming_it_and_the_accepted_ones(base):
    with pytest.raises(ConfigError) as err:
        load_task("mytask:build", INFO, options={"weigth_decay": 0.5}, base_dir=base)
    assert err.value.key == "task.options"
    assert "'weigth_decay' is not an option of mytask:build" in str(err.value)
    assert "accepts weight_decay" in str(err.value)


def test_a_factory_with_kwargs_takes_any_option(base):
    task = load_task("mytask:open_ended", INFO, options={"anything": 1}, base_dir=base)
    assert task.init_params(0).spec


@pytest.mark.parametrize(
    ("example", "accepted"), [("covid", "weight_decay"), ("lending_club", "hidden")]
)
def test_the_examples_refuse_a_typo_in_their_options(example, accepted, monkeypatch):
    base = Path(__file__).parents[3] / "examples" / example
    monkeypatch.delitem(sys.modules, "task", raising=False)  # each example its own
    monkeypatch.syspath_prepend(str(base))
    with pytest.raises(ConfigError) as err:
        load_task("task:build", INFO, options={"hiddne": 3}, base_dir=base)
    assert f"'hiddne' is not an option of task:build, which accepts {accepted}" in (
        str(err.value)
    )


def test_two_task_files_of_the_same_name_in_one_process_stay_apart(tmp_path):
    # Arrange: two federations, each with its own task.py and a helper beside it
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / f"helper_{name}.py").write_text(f"WHO = {name!r}\n")
        (folder / "task.py").write_text(
            f"from helper_{name} import WHO\n\ndef build():\n    return WHO\n"
        )

    # Act: both resolved in one process, the first twice
    first = resolve_object("task:build", base_dir=tmp_path / "one")
    second = resolve_object("task:build", base_dir=tmp_path / "two")
    again = resolve_object("task:build", base_dir=tmp_path / "one")

    # Assert: each file's own factory (the module cache keyed by path), reused
    assert (first(), second()) == ("one", "two")
    assert again is first
