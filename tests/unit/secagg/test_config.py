from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accord.errors import ConfigError
from accord.secagg.config import SecAggConfig
from accord.secagg.crypto import Ed25519PrivateKey
from accord.secagg.messages import ShareKind, Stage
from accord.secagg.participant import SecAggParticipant


def test_create_takes_safe_defaults(kit):
    cfg = kit.make_config(kit.make_identities(20), 10)
    assert (cfg.threshold, cfg.degree) == (14, 19)
    assert cfg.participants == tuple(sorted(cfg.participants))
    assert cfg.graph().complete


def test_an_explicit_degree_gets_its_own_threshold(kit):
    cfg = kit.make_config(kit.make_identities(40), 10, degree=8)
    assert (cfg.threshold, cfg.degree) == (7, 8)
    assert not cfg.graph().complete


def test_unsafe_threshold_is_refused_at_creation(kit):
    with pytest.raises(ConfigError, match="at most half"):
        kit.make_config(kit.make_identities(6), 10, threshold=3)


def test_config_validates_its_fields(kit):
    cfg = kit.make_config(kit.make_identities(4), 10)
    with pytest.raises(ValueError, match="sorted"):
        dataclasses.replace(cfg, identities=cfg.identities[::-1])
    with pytest.raises(ValueError, match="32-byte"):
        dataclasses.replace(cfg, identities=((cfg.participants[0], b"k"),))
    with pytest.raises(ValueError, match="vector_size"):
        dataclasses.replace(cfg, vector_size=0)
    with pytest.raises(ValueError, match="round_number"):
        dataclasses.replace(cfg, round_number=-1)


def test_the_graph_changes_with_the_round(kit):
    ids = kit.make_identities(40)
    a = kit.make_config(ids, 4, degree=8, round_number=1).graph()
    b = kit.make_config(ids, 4, degree=8, round_number=2).graph()
    assert dict(a.neighbours) != dict(b.neighbours)


def test_participant_checks_its_identity_against_the_roster(kit):
    ids = kit.make_identities(4)
    cfg = kit.make_config(ids, 4)
    with pytest.raises(ValueError, match="not on this round's roster"):
        SecAggParticipant(cfg, "stranger", ids["site00"])
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    with pytest.raises(ValueError, match="not the one on the roster"):
        SecAggParticipant(cfg, "site00", other)


def test_participant_refuses_an_input_of_the_wrong_shape(harness):
    deliveries = harness.share(harness.advertise())
    with pytest.raises(ValueError, match="uint32 words"):
        harness.parts["site00"].masked_input(
            deliveries["site00"], np.zeros(3, np.uint32)
        )
    assert harness.parts["site00"].stage is Stage.MASKED_INPUT  # nothing changed


def test_each_dealer_gets_one_kind_of_share_revealed(make_harness):
    # site04 dealt shares then went silent: its masking key is revealed, never its
    # seed; the survivors' seeds are revealed, never their masking keys.
    h = make_harness(n=5, threshold=3)
    deliveries = h.share(h.advertise())
    survivors = h.masked(deliveries, who=["site00", "site01", "site02", "site03"])
    signed = h.consistency(survivors, who=survivors.survivors)
    reveal = h.parts["site00"].unmask(signed)
    kinds = {s.dealer: s.kind for s in reveal.shares}
    assert kinds == {
        "site00": ShareKind.SELF_MASK,
        "site01": ShareKind.SELF_MASK,
        "site02": ShareKind.SELF_MASK,
        "site03": ShareKind.SELF_MASK,
        "site04": ShareKind.MASK_KEY,
    }


def test_config_is_hashable_and_frozen(kit):
    cfg = kit.make_config(kit.make_identities(3), 2)
    assert hash(cfg) == hash(dataclasses.replace(cfg))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.threshold = 2  # type: ignore[misc]
    assert isinstance(cfg, SecAggConfig)


def test_identity_key_is_the_rosters_and_survives_replace(kit):
    cfg = kit.make_config(kit.make_identities(5), 10)
    keys = cfg.identity_keys()
    assert all(cfg.identity_key(p) == keys[p] for p in cfg.participants)
    with pytest.raises(KeyError):
        cfg.identity_key("not-on-the-roster")
    first = cfg.participants[0]
    other = dataclasses.replace(
        cfg, identities=((first, b"\x07" * 32), *cfg.identities[1:])
    )
    assert other.identity_key(first) == b"\x07" * 32
    assert cfg.identity_key(first) == keys[first]
