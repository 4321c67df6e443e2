"""``[profile]`` and ``[data] site_files``: defaults, bounds (and just past them)."""

import pytest

from accord.config import config_from_mapping
from accord.errors import ConfigError

MINIMAL = {"data": {"dataset": "digits", "sites": 4}, "task": {"factory": "mod:obj"}}
FILES = {"dataset": "csv:all.csv", "site_files": {"a": "a.csv", "b": "b.csv"}}


def profile(**keys):
    return config_from_mapping({**MINIMAL, "profile": keys}).profile


def test_the_defaults_are_the_documented_ones():
    p = profile()

    assert (p.enabled, p.min_count, p.noise, p.epsilon, p.refuse) == (
        True,
        10,
        "off",
        None,
        False,
    )
    assert (p.max_smd, p.max_ks, p.max_tvd) == (0.5, 0.25, 0.25)
    assert (p.max_label_diff, p.max_missing_diff, p.significance) == (0.2, 0.2, 0.001)


@pytest.mark.parametrize(
    "keys",
    [
        {"min_count": 1},
        {"min_count": 1_000_000},
        {"noise": "laplace", "epsilon": 1000.0},
        {"noise": "gaussian", "epsilon": 0.01, "delta": 0.999},
        {"max_ks": 1.0, "max_tvd": 1.0, "max_label_diff": 1.0},
        {"max_smd": 100.0, "significance": 0.999},
    ],
)
def test_values_at_the_bounds_are_accepted(keys):
    p = profile(**keys)

    assert all(getattr(p, k) == v for k, v in keys.items())


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"min_count": 0}, r"profile\.min_count"),
        ({"min_count": 1_000_001}, r"profile\.min_count"),
        ({"noise": "laplace", "epsilon": 0.0}, r"profile\.epsilon"),
        ({"noise": "laplace", "epsilon": 1000.001}, r"profile\.epsilon"),
        ({"noise": "laplace"}, r"needs profile\.epsilon"),
        ({"noise": "loud", "epsilon": 1.0}, r"profile\.noise"),
        ({"delta": 1.0}, r"profile\.delta"),
        ({"max_ks": 1.001}, r"profile\.max_ks"),
        ({"max_smd": 0.0}, r"profile\.max_smd"),
        ({"significance": 0.0}, r"profile\.significance"),
        ({"min_cout": 5}, r"profile\.min_cout"),
    ],
)
def test_a_bad_profile_setting_is_named(keys, named):
    with pytest.raises(ConfigError, match=named):
        profile(**keys)


def test_site_files_set_the_number_of_sites():
    cfg = config_from_mapping({**MINIMAL, "data": FILES})

    assert cfg.data.sites == 2 and cfg.data.site_files == {"a": "a.csv", "b": "b.csv"}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({**FILES, "dataset": "digits"}, "needs a csv: dataset"),
        ({**FILES, "sites": 3}, "data.sites is 3 but data.site_files names 2"),
        ({**FILES, "site_files": {"a": ""}}, "none empty"),
    ],
)
def test_bad_site_files_are_refused_saying_why(data, words):
    with pytest.raises(ConfigError, match=words):
        config_from_mapping({**MINIMAL, "data": data})
