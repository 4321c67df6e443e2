"""A coordinator with a valid server certificate, against the site's state folder.

A site keeps model-sized state per run and per participant name (top-k's residual,
SCAFFOLD's ``c_i``, FedPer's and Ditto's tensors). A coordinator that named a new
run or a new participant in each task made the site write a new folder each time,
without end. Now a connection serves one run, a train task must name the site
itself and the run its declarations key state by, and the first task of each new
run keeps only the newest runs' state.
"""

from __future__ import annotations

import json
import os

import pytest

from accord.errors import SubmissionRefused
from accord.participant.backoff import Backoff
from accord.participant.policy import SitePolicy
from accord.participant.privacy_ledger import PrivacyLedger
from accord.participant.runtime import ParticipantRuntime
from accord.participant.site_state import MAX_RUNS, prune_runs
from accord.privacy.dpsgd import OPTION_KEY as DP_KEY
from accord.privacy.dpsgd import DpSgdPlan
from accord.task.local_strategy import OPTION_KEY as STRATEGY_KEY
from accord.task.local_strategy import LocalStrategy
from accord.task.protocol import TrainConfig
from accord.transforms.compression import OPTION_KEY as COMPRESSION_KEY
from accord.transforms.compression import Declared
from accord.transport import codec
from accord.transport.messages import Goodbye, TaskOrder, Welcome

from ..unit.participant.test_runtime import DATA, DIGEST, AddOne, Script

TOPK = {COMPRESSION_KEY: Declared("topk", 0.5, 1).to_json()}


def _runtime(script, tmp_path, **kw):
    backoff = Backoff(initial_s=0.001, maximum_s=0.002)
    return ParticipantRuntime(
        script.connect,
        AddOne(),
        DATA,
        backoff=backoff,
        state_dir=tmp_path / "state",
        **kw,
    )


def _train(run, round=1, participant="site-00", options=None):
    config = TrainConfig(round=round, seed=3, participant=participant)
    if options is not None:
        config = TrainConfig(
            round=round, seed=3, participant=participant, options=options
        )
    return TaskOrder(run, round, "train", DIGEST, config)


def _runs(tmp_path, kind="compression"):
    folder = tmp_path / "state" / kind
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_task_of_another_run_than_the_welcomes_is_refused(tmp_path):
    script = Script(
        [
            Welcome("run-a.0123abcd", 0),
            _train("run-a.0123abcd", 1, options=TOPK),
            _train("run-b.0123abcd", 2, options=TOPK),
            Goodbye("run-a.0123abcd", "done"),
        ]
    )
    assert _runtime(script, tmp_path, name="site-00").run() == "done"

    assert len(script.updates) == 1
    (failure,) = script.failures
    assert failure.run_id == "run-b.0123abcd"
    assert "serves run 'run-a.0123abcd'" in failure.reason
    assert _runs(tmp_path) == ["run-a"]


def test_without_a_welcome_the_first_tasks_run_binds_the_connection(tmp_path):
    script = Script(
        [
            _train("run-a.0123abcd", 1, options=TOPK),
            _train("run-b.0123abcd", 2, options=TOPK),
            Goodbye("run-a.0123abcd", "done"),
        ]
    )
    assert _runtime(script, tmp_path).run() == "done"
    assert len(script.updates) == 1
    assert "a task of run 'run-b.0123abcd' is refused" in script.failures[0].reason


def test_a_train_task_addressed_to_another_participant_is_refused(tmp_path):
    script = Script(
        [
            Welcome("run", 0),
            _train("run", 1, participant="site-00", options=TOPK),
            _train("run", 2, participant="someone-else", options=TOPK),
            Goodbye("run", "done"),
        ]
    )
    assert _runtime(script, tmp_path, name="site-00").run() == "done"

    assert len(script.updates) == 1
    (failure,) = script.failures
    assert "addressed to participant 'someone-else'; this site is 'site-00'" in (
        failure.reason
    )
    assert os.listdir(tmp_path / "state" / "compression" / "run") == ["site-00"]


def _scaffold(run):
    return {STRATEGY_KEY: LocalStrategy(scaffold=True, run=run).to_json()}


def _dp(run):
    plan = DpSgdPlan(
        run=run,
        noise_multiplier=1.0,
        clip=1.0,
        sampling_rate=0.5,
        steps=2,
        delta=1e-5,
        accountant="rdp",
    )
    return {DP_KEY: plan.to_json()}


def test_a_runs_tasks_declare_their_state_under_one_run(tmp_path):
    """The first declaration binds the run's: SCAFFOLD's c_i folder and the DP
    ledger's key cannot change from one task to the next."""
    wire = "run.0123abcd"
    script = Script(
        [
            Welcome(wire, 0),
            _train(wire, 1, options=_scaffold("run")),
            _train(wire, 2, options=_scaffold("elsewhere")),
            _train(wire, 3, options=_dp("another")),
            _train(wire, 4, options={**_dp("run"), **_scaffold("other")}),
            Goodbye(wire, "done"),
        ]
    )
    assert _runtime(script, tmp_path, name="site-00").run() == "done"

    reasons = {f.round: f.reason for f in script.failures}
    assert "no control variate" in reasons[1]  # trained as declared, and failed
    assert "under run 'elsewhere'; this run's tasks declared 'run'" in reasons[2]
    assert "under run 'another'; this run's tasks declared 'run'" in reasons[3]
    assert "DP-SGD and SCAFFOLD state under ['other', 'run']" in reasons[4]
    assert not (tmp_path / "state" / "scaffold" / "elsewhere").exists()


def test_a_dp_declaration_for_another_run_is_refused_before_the_ledger(tmp_path):
    policy = SitePolicy(max_epsilon=100.0, dp_delta=1e-5)
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl")
    wire = "run.0123abcd"
    script = Script(
        [
            Welcome(wire, 0),
            _train(wire, 1, options=_dp("run")),
            _train(wire, 2, options=_dp("elsewhere")),
            Goodbye(wire, "done"),
        ]
    )
    runtime = _runtime(script, tmp_path, name="site-00", policy=policy, ledger=ledger)
    assert runtime.run() == "done"
    first, second = script.failures
    assert "cannot train with record-level DP-SGD" in first.reason  # AddOne has none
    assert "this run's tasks declared 'run'" in second.reason
    assert ledger.epsilon() == 0.0


def test_a_new_run_per_connection_keeps_only_the_newest_runs_state(tmp_path):
    runs = [f"run-{i:02d}.0123abcd" for i in range(MAX_RUNS + 4)]
    script = Script(
        *(
            [Welcome(run, 0), _train(run, 1, options=TOPK), Goodbye(run, "bye")]
            for run in runs
        )
    )
    for _ in runs:
        runtime = _runtime(script, tmp_path, name="site-00")
        assert runtime.run() == "bye"
        # Each run's residual is written later than the last one's.
        for path in (tmp_path / "state" / "compression").rglob("*"):
            stamp = path.stat().st_mtime - 100
            os.utime(path, (stamp, stamp))

    assert len(script.updates) == len(runs)
    kept = _runs(tmp_path)
    assert kept == [r.split(".")[0] for r in runs[-(MAX_RUNS + 1) :]]


def _state(tmp_path, kind, run, stamp):
    folder = tmp_path / "state" / kind / run / "site-00"
    folder.mkdir(parents=True)
    (folder / "residual-1.f64").write_bytes(b"\0" * 8)
    for path in (folder / "residual-1.f64", folder, folder.parent):
        os.utime(path, (stamp, stamp))


def test_pruning_keeps_the_newest_runs_per_kind_and_the_starting_one(tmp_path):
    for i in range(MAX_RUNS + 2):
        _state(tmp_path, "scaffold", f"r{i}", 1000 + i)
    _state(tmp_path, "personal", "oldest", 10)  # alone in its kind: kept
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the site's")
    os.symlink(outside, tmp_path / "state" / "scaffold" / "linked")

    removed = prune_runs(tmp_path / "state", keep="r0.0123abcd")

    assert sorted(p.name for p in removed) == ["r1"]
    assert _runs(tmp_path, "scaffold") == sorted(
        ["linked", "r0", *[f"r{i}" for i in range(2, MAX_RUNS + 2)]]
    )
    assert _runs(tmp_path, "personal") == ["oldest"]
    assert (outside / "keep.txt").read_text() == "not the site's"


def test_a_file_written_inside_a_run_makes_the_run_new(tmp_path):
    for i in range(MAX_RUNS + 1):
        _state(tmp_path, "compression", f"r{i}", 1000 + i)
    # r0's folder is the oldest, but a file under it was written last.
    os.utime(tmp_path / "state" / "compression" / "r0" / "site-00" / "residual-1.f64")

    removed = prune_runs(tmp_path / "state", keep="new")
    assert [p.name for p in removed] == ["r1"]


@pytest.mark.parametrize(
    ("key", "value", "accepted"),
    [
        ("epochs", 10_000, True),
        ("epochs", 10_001, False),
        ("epochs", 0, False),
        ("epochs", 10**18, False),
        ("batch_size", 1, True),
        ("batch_size", 0, False),
        ("batch_size", -32, False),
        ("batch_size", 2**31 - 1, True),
        ("batch_size", 2**31, False),
        ("seed", 2**32 - 1, True),
        ("seed", 2**32, False),
        ("seed", -1, False),
        ("round", -1, False),
        ("round", 2**31, False),
    ],
)
def test_a_train_config_past_the_sites_bounds_is_malformed(key, value, accepted):
    text = codec.encode_train_config(TrainConfig(round=1, participant="site-00"))
    raw = {**json.loads(text), key: value}
    if accepted:
        assert getattr(codec.decode_train_config(json.dumps(raw)), key) == value
        return
    with pytest.raises(SubmissionRefused) as err:
        codec.decode_train_config(json.dumps(raw))
    assert err.value.kind == "malformed"
    assert f"{key} must be in" in err.value.reason
