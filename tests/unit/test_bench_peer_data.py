"""The data the Flower side-by-side benchmarks hand to Flower, and their refusals.

``bench/peer_data.py`` writes accord's own cells' data for the Flower scripts
(which cannot load accord's datasets): these tests check that what it writes is
what accord's simulation trains on, site by site, and that the two side-by-side
drivers stop with the setup command when Flower's venv is missing. No test here
needs Flower.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accord.config import FedConfig, config_from_mapping
from accord.simulation.context import build_context
from accord.simulation.robustness import cell_config

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import dp_side_by_side  # noqa: E402
import peer  # noqa: E402
import robustness_side_by_side  # noqa: E402
from peer_data import data_variant, export_federation  # noqa: E402


def _config() -> FedConfig:
    return config_from_mapping(
        {
            "federation": {"rounds": 2, "seed": 1},
            "data": {
                "dataset": "digits",
                "partition": "dirichlet",
                "alpha": 0.5,
                "sites": 10,
                "min_site_size": 20,
            },
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            "evaluation": {"federated": False},
            "simulation": {"workers": 0},
        }
    )


@pytest.mark.parametrize(
    ("attack", "variant"),
    [
        ("none", "clean"),
        ("alie", "clean"),
        ("scaling", "clean"),
        ("label_flip", "label_flip"),
        ("backdoor", "backdoor"),
        ("scaling+backdoor", "backdoor"),
        ("label_flip+backdoor", "label_flip"),
    ],
)
def test_each_attack_names_the_training_rows_it_needs(
    attack: str, variant: str
) -> None:
    assert data_variant(attack) == variant


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("export")
    path = export_federation(
        _config(), ["alie", "label_flip", "scaling+backdoor"], out, malicious=2
    )
    return out, json.loads(path.read_text())


def _load(out: Path, manifest: dict[str, Any], variant: str) -> dict[str, np.ndarray]:
    with np.load(out / manifest["data"][variant], allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_the_manifest_describes_every_attack_as_accord_simulates_it(
    exported: tuple[Path, dict[str, Any]],
) -> None:
    _, m = exported
    sim = build_context(
        cell_config(_config(), "alie", "mean", malicious=2), poison=True
    )
    names = list(sim.participants)

    assert m["schema"] == "accord.peer-federation/1"
    assert list(m["attacks"]) == ["none", "alie", "label_flip", "scaling+backdoor"]
    assert m["sites"] == names
    assert m["attacks"]["none"] == {
        "data": "clean",
        "update": None,
        "malicious": [],
        "trigger": None,
    }
    bad = [names.index(s) for s in sim.malicious]
    assert len(bad) == 2
    assert m["attacks"]["alie"]["malicious"] == bad
    assert m["attacks"]["alie"]["update"]["kind"] == "alie"
    assert m["attacks"]["label_flip"]["update"] is None
    assert m["attacks"]["scaling+backdoor"]["update"]["kind"] == "scaling"
    trigger = m["attacks"]["scaling+backdoor"]["trigger"]
    assert trigger["target"] == 0
    assert trigger["features"] == [60, 61, 62, 63]


def test_the_exported_rows_are_the_rows_accord_trains_on(
    exported: tuple[Path, dict[str, Any]],
) -> None:
    out, m = exported
    for attack in ("none", "label_flip", "scaling+backdoor"):
        sim = build_context(
            cell_config(_config(), attack, "mean", malicious=2), poison=True
        )
        data = _load(out, m, m["attacks"][attack]["data"])

        np.testing.assert_array_equal(data["test_x"], sim.data.test.x)
        np.testing.assert_array_equal(data["test_y"], sim.data.test.y)
        for i, site in enumerate(sim.data.sites):
            np.testing.assert_array_equal(data[f"train_x_{i}"], site.train.x)
            np.testing.assert_array_equal(data[f"train_y_{i}"], site.train.y)


def test_only_the_malicious_sites_rows_are_poisoned(
    exported: tuple[Path, dict[str, Any]],
) -> None:
    out, m = exported
    clean = _load(out, m, "clean")
    flipped = _load(out, m, "label_flip")
    bad = set(m["attacks"]["label_flip"]["malicious"])

    for i in range(len(m["sites"])):
        y, y_flip = clean[f"train_y_{i}"], flipped[f"train_y_{i}"]
        if i in bad:
            np.testing.assert_array_equal(y_flip, 9 - y)
        else:
            np.testing.assert_array_equal(y_flip, y)


@pytest.mark.parametrize("driver", [robustness_side_by_side, dp_side_by_side])
def test_a_driver_without_flowers_venv_stops_with_the_setup_command(
    driver: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(peer, "VENV_DIR", tmp_path / "no-venv")
    monkeypatch.setattr(driver, "RAW_DIR", tmp_path / "raw")

    code = driver.main([])

    err = capsys.readouterr().err
    assert code == 3
    assert "bash bench/setup-flower.sh" in err
    assert str(tmp_path / "no-venv") in err
    assert not (tmp_path / "raw").exists()  # nothing ran, nothing written
