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


def _strategy(sites: int = 10, **keys):
    return config_from_mapping(
        {
            "data": {"dataset": "digits", "sites": sites},
            "task": {"factory": "m:o"},
            "strategy": keys,
        }
    ).strategy


@pytest.mark.parametrize(
    ("rule", "f", "fails_at", "works_at"),
    [
        ("krum", 2, 6, 7),
        ("multi_krum", 1, 4, 5),
        ("bulyan", 1, 6, 7),
        ("bulyan", 2, 10, 11),
    ],
)
def test_byzantine_bounds_are_checked_against_the_round_size(
    rule, f, fails_at, works_at
):
    # n = 2f + 2 (krum) and n = 4f + 2 (bulyan) are refused, one more is accepted
    with pytest.raises(ConfigError, match=r"strategy\.attackers.*at least") as refused:
        _strategy(sites=fails_at, aggregation=rule, attackers=f)
    assert "lower attackers" in str(refused.value)
    assert _strategy(sites=works_at, aggregation=rule, attackers=f).attackers == f


def test_default_attackers_needs_three_participants():
    with pytest.raises(ConfigError, match="at least 3"):
        _strategy(sites=2, aggregation="krum")
    assert _strategy(sites=3, aggregation="bulyan").attackers is None


def test_an_option_of_another_rule_is_refused_with_its_rule():
    with pytest.raises(ConfigError, match=r"strategy\.attackers.*'krum'"):
        _strategy(aggregation="median", attackers=1)
    with pytest.raises(ConfigError, match=r"strategy\.tau.*centered_clip"):
        _strategy(aggregation="geometric_median", tau=1.0)
    with pytest.raises(ConfigError, match=r"strategy\.root_examples.*fltrust"):
        _strategy(aggregation="mean", root_examples=50)


def test_norm_bounding_needs_its_bound_and_robust_options_are_strict():
    with pytest.raises(ConfigError, match=r"strategy\.norm_bound"):
        _strategy(aggregation="norm_bounding")
    with pytest.raises(ConfigError, match=r"strategy\.norm_bound"):
        _strategy(aggregation="norm_bounding", norm_bound=0.0)
    with pytest.raises(ConfigError, match=r"strategy\.iterations"):
        _strategy(aggregation="geometric_median", iterations=1.5)
    with pytest.raises(ConfigError, match=r"strategy\.aggregation"):
        _strategy(aggregation="krum_plus")
    with pytest.raises(ConfigError, match=r"strategy\.select"):
        _strategy(sites=7, aggregation="multi_krum", attackers=2, select=6)


def test_robust_rules_are_refused_with_secure_aggregation():
    with pytest.raises(ConfigError, match="needs every individual update"):
        config_from_mapping(
            {
                "data": {"dataset": "digits", "sites": 5},
                "task": {"factory": "m:o"},
                "strategy": {"aggregation": "geometric_median"},
                "secure_aggregation": "masking",
            }
        )
