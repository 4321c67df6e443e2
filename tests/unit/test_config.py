import pytest
from pydantic import ValidationError

from accord.config import config_from_mapping, load_config
from accord.errors import ConfigError

MINIMAL = {"data": {"dataset": "digits", "sites": 4}, "task": {"factory": "mod:obj"}}


def test_minimal_config_gets_defaults_and_is_frozen():
    cfg = config_from_mapping(MINIMAL)
    assert cfg.federation.rounds == 10
    assert cfg.strategy.aggregation == "mean"
    with pytest.raises(ValidationError):
        cfg.federation.rounds = 3  # type: ignore[misc]


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"round\.deadline"):
        config_from_mapping({**MINIMAL, "round": {"deadline": 3}})


def test_out_of_range_value_names_key_and_bound():
    with pytest.raises(
        ConfigError, match=r"selection\.fraction.*less than or equal to 1"
    ):
        config_from_mapping({**MINIMAL, "selection": {"fraction": 1.5}})


def test_every_error_is_listed_at_once():
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"data": {"sites": 0}, "task": {"factory": "nocolon"}})
    text = str(info.value)
    for key in ("data.dataset", "data.sites", "task.factory"):
        assert key in text


def test_incompatible_participants_refused_at_load():
    with pytest.raises(ConfigError, match="min_participants"):
        config_from_mapping({**MINIMAL, "selection": {"min_participants": 5}})


def test_load_config_reads_toml_and_applies_overrides(tmp_path):
    path = tmp_path / "fed.toml"
    path.write_text(
        '[federation]\nrounds = 3\n[data]\ndataset = "wine"\nsites = 3\n'
        '[task]\nfactory = "t:build"\n[simulation]\nworkers = 2\n'
    )
    cfg = load_config(path, simulation={"workers": 0})
    assert cfg.federation.rounds == 3
    assert cfg.simulation.workers == 0
    assert cfg.base_dir == str(tmp_path.resolve())


def test_load_config_reports_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
