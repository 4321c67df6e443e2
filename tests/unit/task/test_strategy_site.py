"""The site's part of SCAFFOLD and q-FedAvg: its c_i, delta_c and pre-training loss."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from accord.aggregation.qfedavg import LOSS_METRIC
from accord.aggregation.scaffold import split_control, with_control
from accord.data.arrays import ArrayData, DatasetInfo
from accord.errors import ConfigError, StoreError
from accord.params import Params
from accord.task import TrainConfig
from accord.task.local_strategy import OPTION_KEY, LocalStrategy
from accord.task.numpy_task import SoftmaxRegression
from accord.task.strategy_site import ControlStore, StrategySite

INFO = DatasetInfo("one", (1,), ("a", "b"))
DATA = ArrayData(np.array([[1.0]], np.float32), np.array([0]))


def _zero() -> Params:
    return Params({"w": np.zeros((1, 2), np.float32), "b": np.zeros(2, np.float32)})


def _config(round_number: int, **fields: object) -> TrainConfig:
    return TrainConfig(
        epochs=1,
        batch_size=1,
        learning_rate=1.0,
        round=round_number,
        participant="site-1",
        options={OPTION_KEY: LocalStrategy(**fields).to_json()},  # type: ignore[arg-type]
    )


def test_q_fedavg_reports_the_global_models_loss_before_training():
    site = StrategySite(SoftmaxRegression(INFO), state_dir=None)

    result = site.train(_zero(), DATA, _config(1, report_loss=True))

    # The zero model gives p = 0.5 to the true class: log loss ln 2.
    assert result.metrics[LOSS_METRIC] == pytest.approx(math.log(2), rel=1e-6)
    assert "train_loss" in result.metrics


def test_scaffold_first_round_keeps_c_i_and_sends_delta_c(tmp_path: Path):
    # One step at lr 1 from 0 with c = c_i = 0: y - x = [[0.5, -0.5]], [0.5, -0.5];
    # K = 1, so c_i+ = 0 - 0 - (y - x) = -(y - x) and delta_c = c_i+.
    site = StrategySite(SoftmaxRegression(INFO), state_dir=tmp_path)
    c = _zero()

    result = site.train(
        with_control(_zero(), c), DATA, _config(1, scaffold=True, run="r")
    )
    model, control = split_control(result.params)

    np.testing.assert_allclose(model["w"], [[0.5, -0.5]], rtol=1e-6)
    assert control is not None
    np.testing.assert_allclose(control["w"], [[-0.5, 0.5]], rtol=1e-6)
    kept = ControlStore(tmp_path).load("r", "site-1", before=2, like=_zero())
    np.testing.assert_allclose(kept["b"], [-0.5, 0.5], rtol=1e-6)
    assert result.metrics["local_steps"] == 1.0


def test_scaffold_corrects_by_c_minus_c_i_and_a_retrained_round_repeats(tmp_path):
    site = StrategySite(SoftmaxRegression(INFO), state_dir=tmp_path)
    c = Params({"w": np.array([[0.1, -0.2]], np.float32), "b": np.zeros(2, np.float32)})
    published = with_control(_zero(), c)
    site.train(published, DATA, _config(1, scaffold=True, run="r"))

    second = site.train(published, DATA, _config(2, scaffold=True, run="r"))
    again = site.train(published, DATA, _config(2, scaffold=True, run="r"))

    # Round 1 stepped by grad + (c - 0): y - x = -([-0.5, 0.5] + [0.1, -0.2]) =
    # [0.4, -0.3], so c_i = 0 - c - (y - x) = [-0.5, 0.5] (the gradient at x, as
    # option II gives after one step). Round 2 steps by grad + c - c_i =
    # [-0.5, 0.5] + [0.6, -0.7]: w = [[-0.1, 0.2]].
    model, _ = split_control(second.params)
    np.testing.assert_allclose(model["w"], [[-0.1, 0.2]], rtol=1e-5)
    assert again.params.digest() == second.params.digest()


def test_the_control_store_prunes_and_reads_only_earlier_rounds(tmp_path: Path):
    store = ControlStore(tmp_path)
    for r in (1, 2, 3):
        store.save("r", "s", r, Params({"w": np.full(2, float(r), np.float32)}))
    like = Params({"w": np.zeros(2, np.float32)})

    files = sorted(p.name for p in (tmp_path / "r" / "s").iterdir())

    assert files == ["round-00002.safetensors", "round-00003.safetensors"]
    assert store.load("r", "s", before=3, like=like)["w"].tolist() == [2.0, 2.0]
    assert store.load("r", "s", before=1, like=like)["w"].tolist() == [0.0, 0.0]


def test_a_control_file_that_does_not_fit_is_refused_naming_it(tmp_path: Path):
    store = ControlStore(tmp_path)
    store.save("r", "s", 1, Params({"w": np.zeros(3, np.float32)}))

    with pytest.raises(StoreError, match="round-00001.safetensors"):
        store.load("r", "s", before=2, like=Params({"w": np.zeros(2, np.float32)}))


@pytest.mark.parametrize("name", ["../up", "", "a/b", ".hidden"])
def test_names_that_cannot_be_a_folder_are_refused(tmp_path: Path, name: str):
    with pytest.raises(ConfigError, match="cannot name a folder"):
        ControlStore(tmp_path).load(name, "s", before=1, like=_zero())


def test_a_site_and_coordinator_that_disagree_are_told(tmp_path: Path):
    site = StrategySite(SoftmaxRegression(INFO), state_dir=tmp_path)

    with pytest.raises(ConfigError, match="disagree"):
        site.train(with_control(_zero(), _zero()), DATA, _config(1))
    with pytest.raises(ConfigError, match="no control variate"):
        site.train(_zero(), DATA, _config(1, scaffold=True, run="r"))


def test_predict_reads_the_model_part_and_flags_pass_through():
    inner = SoftmaxRegression(INFO)
    site = StrategySite(inner, state_dir=None)
    x = np.array([[2.0]], np.float32)

    got = site.predict(with_control(_zero(), _zero()), x)

    np.testing.assert_allclose(got, inner.predict(_zero(), x))
    assert site.supports_scaffold is True  # type: ignore[attr-defined]
