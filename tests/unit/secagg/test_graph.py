from __future__ import annotations

import pytest

from accord.errors import ConfigError
from accord.secagg.graph import (
    COMPLETE_GRAPH_MAX,
    build_graph,
    check_threshold,
    safe_defaults,
)

IDS = [f"p{i:03d}" for i in range(100)]


@pytest.mark.parametrize(
    ("n", "threshold", "degree"),
    [(3, 3, 2), (5, 4, 4), (20, 14, 19), (32, 22, 31), (33, 12, 16), (100, 15, 20)],
)
def test_safe_defaults(n, threshold, degree):
    assert safe_defaults(n) == (threshold, degree)
    check_threshold(threshold, degree=degree, participants=n)


def test_degree_grows_logarithmically():
    degrees = [safe_defaults(n)[1] for n in (100, 1_000, 10_000)]
    assert degrees == [20, 30, 40]


def test_too_few_participants_are_refused():
    with pytest.raises(ConfigError, match="at least 3"):
        safe_defaults(2)


@pytest.mark.parametrize(
    ("threshold", "degree", "n", "match"),
    [
        (10, 19, 20, "at most half of 20 participants"),
        (4, 8, 40, "at most half of each neighbourhood of 9"),
        (21, 19, 20, "exceeds"),
        (5, 7, 40, "odd"),
        (5, 1, 40, "must be in"),
    ],
)
def test_unsafe_settings_are_refused_with_a_reason(threshold, degree, n, match):
    with pytest.raises(ConfigError, match=match) as info:
        check_threshold(threshold, degree=degree, participants=n)
    assert info.value.key is not None and info.value.key.startswith(
        "secure_aggregation"
    )


def test_half_threshold_message_explains_the_attack():
    with pytest.raises(ConfigError) as info:
        check_threshold(2, degree=3, participants=4)
    text = str(info.value)
    assert "dropped" in text and "surviving" in text and "at least 3" in text


def test_complete_graph_for_small_federations():
    n = COMPLETE_GRAPH_MAX
    graph = build_graph(IDS[:n], degree=n - 1, seed=b"r")
    assert graph.complete
    assert all(graph.of(p) == set(IDS[:n]) - {p} for p in IDS[:n])
    assert graph.holders(IDS[0]) == IDS[:n]


def test_sparse_graph_is_regular_symmetric_and_seeded():
    graph = build_graph(IDS, degree=20, seed=b"run/round 1")
    assert graph.degree == 20 and not graph.complete
    for p in IDS:
        assert len(graph.of(p)) == 20 and p not in graph.of(p)
        assert all(p in graph.of(q) for q in graph.of(p))
    again = build_graph(IDS, degree=20, seed=b"run/round 1")
    other = build_graph(IDS, degree=20, seed=b"run/round 2")
    assert dict(again.neighbours) == dict(graph.neighbours)
    assert dict(other.neighbours) != dict(graph.neighbours)


def test_holders_are_in_roster_order_and_follow_the_alive_set():
    graph = build_graph(IDS[:40], degree=8, seed=b"x")
    me = IDS[7]
    holders = graph.holders(me)
    assert len(holders) == 9 and me in holders
    assert holders == sorted(holders)
    gone = next(iter(graph.of(me)))
    alive = frozenset(IDS[:40]) - {gone, me}
    assert graph.holders(me, alive=alive) == [h for h in holders if h != gone]


def test_bad_graphs_are_refused():
    with pytest.raises(ValueError, match="unique"):
        build_graph(["a", "a", "b"], degree=2, seed=b"")
    with pytest.raises(ValueError, match="even"):
        build_graph(IDS[:10], degree=3, seed=b"")


def test_the_same_roster_degree_and_seed_give_one_shared_read_only_graph():
    first = build_graph(IDS, degree=20, seed=b"run/1")
    again = build_graph(list(IDS), degree=20, seed=b"run/1")
    other = build_graph(IDS, degree=20, seed=b"run/2")
    assert again is first
    assert other is not first and other.neighbours != first.neighbours
    with pytest.raises(TypeError):
        first.neighbours["p000"] = frozenset()  # type: ignore[index]


def test_remembered_holders_are_the_computed_ones_and_a_fresh_list_each_time():
    graph = build_graph(IDS, degree=8, seed=b"holders")
    alive = frozenset(IDS[::2])
    who = IDS[10]
    expected = [p for p in IDS if p == who or (p in graph.of(who) and p in alive)]
    got = graph.holders(who, alive=alive)
    assert got == expected
    got.append("intruder")  # the caller's list, not the graph's memory
    assert graph.holders(who, alive=alive) == expected
    assert graph.holders(who) == [p for p in IDS if p == who or p in graph.of(who)]
