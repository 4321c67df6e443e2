import numpy as np
import pytest

from accord.config import load_config
from accord.data.handshake import PrepareRequest
from accord.data.profile import Schema, fit_encoder
from accord.errors import ConfigError
from accord.participant.data import LocalData, build_task, load_local_data
from accord.participant.table import SiteTable
from accord.simulation.context import build_context

FED = """
[federation]
seed = 4
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
"""


@pytest.fixture
def fed_toml(tmp_path):
    path = tmp_path / "fed.toml"
    path.write_text(FED)
    return path


def test_sim_data_is_exactly_the_simulated_site(fed_toml):
    ctx = build_context(load_config(fed_toml))

    local = load_local_data(f"sim:{fed_toml}#site-01")

    site = ctx.site("site-01")
    assert local.name == "site-01" and local.info == ctx.data.info
    np.testing.assert_array_equal(local.train.x, site.train.x)
    np.testing.assert_array_equal(local.holdout.y, site.holdout.y)
    task = build_task(local, None)
    assert task.init_params(4).digest() == ctx.task.init_params(4).digest()


def test_an_unknown_site_lists_the_real_ones(fed_toml):
    with pytest.raises(ConfigError, match="site-00, site-01, site-02"):
        load_local_data(f"sim:{fed_toml}#site-09")


def test_csv_data_waits_for_the_federation_encoder(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["a,b,label"] + [
        f"{rng.normal():.4f},{rng.normal():.4f},{'yes' if i % 3 else 'no'}"
        for i in range(60)
    ]
    path = tmp_path / "clinic.csv"
    path.write_text("\n".join(rows) + "\n")

    site = load_local_data(f"csv:{path}", options={"target": "label"})

    assert isinstance(site, SiteTable) and site.name == "clinic"
    request = PrepareRequest(seed=3, holdout_fraction=0.2, index=0)
    profile = site.profile(request)
    assert profile.classes == ("no", "yes") and profile.train_rows == 48
    encoder = fit_encoder(
        [("clinic", profile)], Schema(("a", "b"), (), ("no", "yes"), {})
    )
    info, train, holdout = site.encode(encoder, request)
    assert info.feature_shape == (2,) and (len(train), len(holdout)) == (48, 12)
    # Scaled with the fitted statistics: the training rows are standardized.
    np.testing.assert_allclose(train.x.mean(axis=0), 0.0, atol=1e-6)
    local = LocalData("clinic", info, train, holdout)
    task = build_task(local, "accord.task.numpy_task:softmax_regression")
    assert len(task.init_params(0)) > 0


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("parquet:x", "unknown data source"),
        ("sim:fed.toml", "must name a site"),
        ("csv:/nonexistent.csv", "no CSV file"),
    ],
)
def test_bad_sources_say_what_to_write(source, match):
    with pytest.raises(ConfigError, match=match):
        load_local_data(source)


def test_csv_needs_its_label_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")

    with pytest.raises(ConfigError, match="target=COLUMN"):
        load_local_data(f"csv:{path}")


def test_csv_data_needs_a_task(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    site = load_local_data(f"csv:{path}", options={"target": "y"})
    request = PrepareRequest(seed=0, holdout_fraction=0.0, index=0)
    encoder = fit_encoder(
        [("x", site.profile(request))], Schema(("a",), (), ("0", "1"), {})
    )
    info, train, holdout = site.encode(encoder, request)

    with pytest.raises(ConfigError, match="--task"):
        build_task(LocalData("x", info, train, holdout), None)
