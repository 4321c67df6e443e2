"""The coordinator's preparation asks for, checks and returns the sites' profiles.

Real sites (:class:`~accord.participant.preparation.Preparation` over their own
tables) answer the stages through a scripted executor; the coordinator code is
:func:`~accord.coordinator.preparation.prepare_data`. A site that sends no profile
when asked, or a forged one, stops the run before round 1 naming it.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping

import numpy as np
import pytest

from accord.coordinator.executor import SecAggReply
from accord.coordinator.preparation import prepare_data
from accord.data.profile import Schema
from accord.data.summary import Guard
from accord.errors import RunAborted
from accord.participant.data import load_local_data
from accord.participant.preparation import Preparation
from accord.transport.messages import TaskOrder

SITES = ("a", "b")
SCHEMA = Schema(("x",), ("colour",), ("no", "yes"), {})


class Scripted:
    """An executor whose sites answer at once; ``tamper`` rewrites an answer."""

    def __init__(
        self,
        sites: Mapping[str, Preparation],
        tamper: Callable[[str, str, bytes], bytes] = lambda s, t, p: p,
    ) -> None:
        self._sites = sites
        self._tamper = tamper
        self._events: deque[SecAggReply] = deque()

    @property
    def participants(self) -> tuple[str, ...]:
        return tuple(self._sites)

    def submit_secagg(self, round_number: int, stage: str, payloads) -> None:
        for name, payload in payloads.items():
            order = TaskOrder(
                "run", round_number, "secagg", "", stage=stage, payload=payload
            )
            answer = self._sites[name].answer(order)
            self._events.append(
                SecAggReply(
                    name, round_number, stage, self._tamper(name, stage, answer)
                )
            )

    def next_event(self, timeout):
        return self._events.popleft() if self._events else None


def sites(tmp_path) -> dict[str, Preparation]:
    out = {}
    for i, name in enumerate(SITES):
        rng = np.random.default_rng(i)
        colours, labels = ("red", "blue"), ("no", "yes")
        rows = ["x,colour,y"] + [
            f"{rng.normal(3 * i):.4f},{colours[j % 2]},{labels[j % 3 > 0]}"
            for j in range(60)
        ]
        path = tmp_path / f"{name}.csv"
        path.write_text("\n".join(rows) + "\n")
        table = load_local_data(
            f"csv:{path}", options={"target": "y", "categorical": "colour"}
        )
        out[name] = Preparation(table, builder=lambda data: None)
    return out


GUARD = Guard()


def run(executor, guard: Guard | None = GUARD):
    return prepare_data(
        executor,
        SITES,
        SCHEMA,
        seed=1,
        holdout_fraction=0.2,
        secure_aggregation="off",
        deadline_s=30,
        clock=lambda: 0.0,
        guard=guard,
    )


def test_each_site_sends_its_profile_when_asked(tmp_path):
    prepared = run(Scripted(sites(tmp_path)))

    assert [name for name, _ in prepared.summaries] == list(SITES)
    assert all(s.rows == 48 for _, s in prepared.summaries)  # 60 rows, 12 held out
    assert run(Scripted(sites(tmp_path)), guard=None).summaries == ()


def test_a_site_that_sends_no_profile_when_asked_stops_the_run(tmp_path):
    def strip(site: str, stage: str, payload: bytes) -> bytes:
        if site != "b" or stage != "encoding":
            return payload
        doc = json.loads(payload)
        doc.pop("summary")
        return json.dumps(doc).encode()

    with pytest.raises(RunAborted, match=r"site\(s\) b sent no data profile"):
        run(Scripted(sites(tmp_path), strip))


def test_a_forged_profile_stops_the_run_naming_the_site(tmp_path):
    def forge(site: str, stage: str, payload: bytes) -> bytes:
        if site != "a" or stage != "encoding":
            return payload
        doc = json.loads(payload)
        doc["summary"]["rows"] = -5
        return json.dumps(doc).encode()

    with pytest.raises(RunAborted, match="site 'a' answered the encoding with"):
        run(Scripted(sites(tmp_path), forge))
