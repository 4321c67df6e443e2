"""FedPer at the site: the head stays, only the body is returned and published."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from accord.data.arrays import ArrayData, DatasetInfo
from accord.errors import ConfigError, StoreError
from accord.params import Params
from accord.task import TrainConfig
from accord.task.fedper import FedPerSite
from accord.task.numpy_task import mlp
from accord.task.personal_state import FileStore, MemoryStore, PrivateSelection

INFO = DatasetInfo("toy", (4,), ("a", "b", "c"))
RNG = np.random.default_rng(0)
DATA = ArrayData(RNG.normal(size=(40, 4)).astype(np.float32), RNG.integers(0, 3, 40))
CONFIG = TrainConfig(
    epochs=2, batch_size=8, learning_rate=0.1, round=1, participant="site-a"
)


def _site(store: MemoryStore | FileStore | None = None) -> FedPerSite:
    return FedPerSite(
        mlp(INFO, hidden=5),
        private=PrivateSelection(["?2"]),
        store=store or MemoryStore(),
        seed=3,
    )


def test_the_federation_sees_only_the_body():
    site = _site()

    published = site.init_params(3)

    assert tuple(published) == ("w1", "b1")


def test_the_head_never_leaves_the_site():
    store = MemoryStore()
    site = _site(store)
    body = site.init_params(3)
    first_head = site.private.split(mlp(INFO, hidden=5).init_params(3))[1]

    sent = site.train(body, DATA, CONFIG)

    kept = store.load("site-a", like=first_head, before=2)
    assert kept is not None
    assert tuple(sent.params) == ("w1", "b1")
    wire = bytes(sent.params.spec.pack(sent.params))
    for head in (first_head, kept):
        for name, array in head.items():
            assert array.tobytes() not in wire, name
    assert not np.array_equal(kept["w2"], first_head["w2"])  # the head trained


def test_a_round_starts_from_the_head_the_site_kept():
    task = mlp(INFO, hidden=5)
    site = _site()
    body = site.init_params(3)
    site.train(body, DATA, CONFIG)
    head = site.personal_model(body, "site-a")

    again = site.train(body, DATA, dataclasses.replace(CONFIG, round=2))

    by_hand = task.train(head, DATA, CONFIG).params
    for name in ("w1", "b1"):
        np.testing.assert_array_equal(again.params[name], by_hand[name])


def test_sites_keep_heads_of_their_own():
    site = _site()
    body = site.init_params(3)
    site.train(body, DATA, CONFIG)

    other = site.personal_model(body, "site-b")
    own = site.personal_model(body, "site-a")

    assert not np.array_equal(own["w2"], other["w2"])
    np.testing.assert_array_equal(other["w2"], mlp(INFO, hidden=5).init_params(3)["w2"])


def test_predict_without_a_site_uses_the_initial_head():
    site = _site()
    body = site.init_params(3)
    full = mlp(INFO, hidden=5).init_params(3)

    np.testing.assert_array_equal(
        site.predict(body, DATA.x), mlp(INFO, hidden=5).predict(full, DATA.x)
    )


@pytest.mark.parametrize(
    ("patterns", "says"),
    [(["head.*"], "match none"), (["*"], "match every"), (["w*", "b*"], "every")],
)
def test_patterns_that_keep_nothing_or_everything_are_refused(patterns, says):
    with pytest.raises(ConfigError, match=says) as caught:
        FedPerSite(
            mlp(INFO), private=PrivateSelection(patterns), store=MemoryStore(), seed=0
        )

    assert caught.value.key == "personalization.private"
    assert "w1, b1, w2, b2" in str(caught.value)


def test_no_pattern_is_refused():
    with pytest.raises(ConfigError, match="at least one pattern"):
        PrivateSelection([])


def test_the_head_in_a_state_folder_survives_a_restart(tmp_path: Path):
    site = _site(FileStore(tmp_path))
    body = site.init_params(3)
    site.train(body, DATA, CONFIG)
    before = site.personal_model(body, "site-a")

    restarted = _site(FileStore(tmp_path))

    after = restarted.personal_model(body, "site-a")
    assert (tmp_path / "site-a" / "round-00001.safetensors").is_file()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


def test_a_round_trained_again_starts_from_the_head_of_the_round_before(
    tmp_path: Path,
):
    site = _site(FileStore(tmp_path))
    body = site.init_params(3)
    site.train(body, DATA, CONFIG)
    head_1 = site.personal_model(body, "site-a")
    first = site.train(body, DATA, dataclasses.replace(CONFIG, round=2))

    # the coordinator died before recording round 2 and asks for it again
    again = site.train(body, DATA, dataclasses.replace(CONFIG, round=2))

    np.testing.assert_array_equal(again.params["w1"], first.params["w1"])
    assert site.personal_model(body, "site-a", before=2)["w2"].tobytes() == (
        head_1["w2"].tobytes()
    )
    site.train(body, DATA, dataclasses.replace(CONFIG, round=3))
    files = sorted(p.name for p in (tmp_path / "site-a").iterdir())
    assert files == ["round-00002.safetensors", "round-00003.safetensors"]


def test_a_foreign_head_file_is_refused_naming_it(tmp_path: Path):
    (tmp_path / "site-a").mkdir()
    (tmp_path / "site-a" / "round-00001.safetensors").write_bytes(b"not a file")
    site = _site(FileStore(tmp_path))

    with pytest.raises(StoreError, match="round-00001.safetensors"):
        site.personal_model(site.init_params(3), "site-a")


def test_a_site_name_with_path_characters_stays_inside_the_store(tmp_path: Path):
    store = FileStore(tmp_path / "store")
    store.save("../up", 1, Params({"w": np.ones(1, np.float32)}))

    assert not (tmp_path / "up").exists()
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["%2E%2E%2Fup"]
    got = store.load("../up", like=Params({"w": np.zeros(1, np.float32)}), before=2)
    assert got is not None and got["w"][0] == 1.0


def test_an_empty_site_name_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="empty site name"):
        FileStore(tmp_path).save("", 1, Params({"w": np.zeros(1, np.float32)}))
