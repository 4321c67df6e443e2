"""Site names from the data (spaces, slashes, dots) name distinct, safe folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accord.errors import ConfigError
from accord.params import Params
from accord.task.site_folder import site_folder
from accord.task.strategy_site import ControlStore


@pytest.mark.parametrize("name", ["site-00", "CA", "nicu", "a.b_c-d", "9"])
def test_a_safe_name_is_its_own_folder(name: str) -> None:
    assert site_folder(name) == name


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("clinical lab", "clinical%20lab"),
        ("line clinical lab-", "line%20clinical%20lab-"),
        ("../up", "%2E%2E%2Fup"),
        ("..", "%2E%2E"),
        (".hidden", "%2Ehidden"),
        ("a/b", "a%2Fb"),
        ("_x", "_x"),
        ("é", "%C3%A9"),
        ("50%", "50%25"),
    ],
)
def test_other_names_are_percent_encoded(name: str, folder: str) -> None:
    assert site_folder(name) == folder


def test_distinct_names_never_share_a_folder() -> None:
    names = ["a b", "a%20b", "a.b", "a%2Eb", "_a", "a_", "-a", "a-", "a", "A", "%"]
    folders = [site_folder(n) for n in names]
    assert len(set(folders)) == len(names)
    assert all("/" not in f and f not in {".", ".."} for f in folders)


def test_empty_and_too_long_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="empty site name"):
        site_folder("")
    with pytest.raises(ConfigError, match="too long"):
        site_folder(" " * 67)  # 201 characters once encoded
    assert len(site_folder(" " * 66)) == 198


def test_scaffold_state_of_a_site_named_with_a_space(tmp_path: Path) -> None:
    store = ControlStore(tmp_path)
    like = Params({"w": np.zeros(2, np.float32)})
    store.save("run-1", "emergency dept", 3, Params({"w": np.full(2, 0.5, np.float32)}))

    got = store.load("run-1", "emergency dept", before=4, like=like)
    assert got["w"].tolist() == [0.5, 0.5]
    assert (tmp_path / "run-1" / "emergency%20dept").is_dir()
    assert store.load("run-1", "emergency_dept", before=4, like=like)["w"].sum() == 0
