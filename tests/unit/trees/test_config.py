import pytest

from accord.config import config_from_mapping, refuse_trees
from accord.errors import ConfigError

DATA = {"dataset": "breast_cancer", "sites": 3}


def test_a_trees_section_means_gbdt_and_takes_xgboosts_names() -> None:
    cfg = config_from_mapping(
        {"data": DATA, "trees": {"depth": 3, "lambda": 2.0, "bins": 32}}
    )

    assert cfg.model.kind == "gbdt" and cfg.task is None
    assert cfg.trees_settings.reg_lambda == 2.0 and cfg.trees_settings.depth == 3


def test_gbdt_without_a_trees_section_takes_the_defaults() -> None:
    cfg = config_from_mapping({"data": DATA, "model": {"kind": "gbdt"}})

    assert cfg.trees_settings.bins == 64 and cfg.trees_settings.trees is None


def test_a_task_model_still_needs_its_task() -> None:
    with pytest.raises(ConfigError, match=r"task\.factory.*gbdt"):
        config_from_mapping({"data": DATA})


def test_trees_take_no_task() -> None:
    with pytest.raises(ConfigError, match="remove \\[task\\]"):
        config_from_mapping(
            {"data": DATA, "model": {"kind": "gbdt"}, "task": {"factory": "a:b"}}
        )


def test_trees_beside_a_task_model_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"^trees:"):
        config_from_mapping(
            {
                "data": DATA,
                "model": {"kind": "task"},
                "task": {"factory": "a:b"},
                "trees": {},
            }
        )


@pytest.mark.parametrize(
    ("section", "value", "key"),
    [
        (
            "privacy",
            {"level": "participant", "noise_multiplier": 1.0, "clip": 1.0},
            "privacy.level",
        ),
        ("secure_aggregation", {"mode": "ckks"}, "secure_aggregation.mode"),
        ("compression", {"method": "q8"}, "compression.method"),
        ("strategy", {"aggregation": "median"}, "strategy.aggregation"),
        ("simulation", {"engine": "ray", "workers": 2}, "simulation.engine"),
        ("simulation", {"slowdown": {"a": 2.0}}, "simulation.slowdown"),
        ("round", {"mode": "async"}, "round.mode"),
    ],
)
def test_settings_trees_do_not_have_are_refused_by_key(
    section: str, value: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: is not supported"):
        config_from_mapping({"data": DATA, "trees": {}, section: value})


def test_bad_tree_settings_name_their_key() -> None:
    with pytest.raises(ConfigError, match=r"trees\.depth"):
        config_from_mapping({"data": DATA, "trees": {"depth": 0}})
    with pytest.raises(ConfigError, match=r"trees\.bins"):
        config_from_mapping({"data": DATA, "trees": {"bins": 1}})


def test_deployment_refuses_gbdt_naming_why() -> None:
    cfg = config_from_mapping({"data": DATA, "trees": {}})

    with pytest.raises(ConfigError, match="simulate` only.*histograms"):
        refuse_trees(cfg, "accord coordinator")
    refuse_trees(config_from_mapping({"data": DATA, "task": {"factory": "a:b"}}), "x")
