"""A deployment on csv: data fits its preprocessing federatedly and equals simulate.

Three sites with shifted means, different spreads and different subsets of a
categorical column's levels (one with missing values): over real gRPC and mutual
TLS, each site's runtime holds only its own CSV; the coordinator gathers their
profiles, fits the encoder, records it and ships it before round 1 (the code path
of ``accord coordinator``). The global model of every round equals ``accord
simulate`` on the one CSV the per-site files were cut from.
"""

from pathlib import Path

import numpy as np
import pytest

from accord.cli.deploy import _prepare
from accord.config import FedConfig, load_config
from accord.coordinator.preparation import recorded_encoder
from accord.coordinator.runner import Coordinator
from accord.data.profile import encoder_digest
from accord.participant.backoff import Backoff
from accord.participant.data import build_task, load_local_data
from accord.participant.runtime import ParticipantRuntime
from accord.participant.sitelog import SiteLog
from accord.simulation.engine import simulate
from accord.store import MemoryStore

SITES = ("site-00", "site-01", "site-02")
FACTORY = "accord.task.numpy_task:softmax_regression"
SITE_OPTIONS = {"target": "y", "categorical": "colour"}
#: Per site: rows (largest first, so the simulation's natural order is the
#: roster's), mean shift, spread, and the colours it has.
SHAPES = {
    "site-00": (60, 0.0, 1.0, ("red", "green")),
    "site-01": (50, 8.0, 3.0, ("green", "blue")),
    "site-02": (40, -6.0, 0.5, ("blue", "yellow", None)),
}
FED = """
[federation]
name = "csv-sites"
rounds = 3
seed = 7
[data]
dataset = "csv:all.csv"
options = {{ target = "y", site_column = "site", categorical = "colour"{levels} }}
partition = "natural"
sites = 3
test_fraction = 0.0
holdout_fraction = 0.25
min_site_size = 1
[task]
factory = "{factory}"
[train]
epochs = 2
[evaluation]
central = false
[simulation]
workers = 0
[round]
deadline_s = 60
"""


def write_tables(root: Path, *, levels: str = "") -> tuple[FedConfig, dict[str, Path]]:
    """all.csv (with a site column) for the simulation, SITE.csv for each site."""
    rng = np.random.default_rng(11)
    header = "x1,x2,colour,y"
    every, per_site = [f"{header},site"], {}
    for site, (n, shift, spread, colours) in SHAPES.items():
        lines = [header]
        for i in range(n):
            x1 = rng.normal(shift, spread)
            x2 = "" if site == "site-02" and i % 7 == 0 else f"{rng.normal(-shift):.5f}"
            colour = colours[i % len(colours)] or ""
            y = "yes" if x1 - shift + rng.normal(0, 0.5) > 0 else "no"
            lines.append(f"{x1:.5f},{x2},{colour},{y}")
            every.append(f"{lines[-1]},{site}")
        path = root / f"{site}.csv"
        path.write_text("\n".join(lines) + "\n")
        per_site[site] = path
    (root / "all.csv").write_text("\n".join(every) + "\n")
    fed = root / "fed.toml"
    fed.write_text(FED.format(levels=levels, factory=FACTORY))
    return load_config(fed), per_site


def start_csv_sites(running, tables: dict[str, Path], logs: Path, background, **kw):
    """A runtime per site on its own CSV (encoded once the coordinator ships it)."""
    goodbyes: dict[str, object] = {}
    threads = []
    for name, path in tables.items():
        options = {**SITE_OPTIONS, **kw.get("options", {}).get(name, {})}
        site = load_local_data(f"csv:{path}", options=options)
        runtime = ParticipantRuntime(
            lambda n=name: running.client(n),
            None,
            site,
            builder=lambda data: build_task(data, FACTORY),
            log=SiteLog(logs / f"{name}.jsonl"),
            backoff=Backoff(initial_s=0.05, maximum_s=0.5),
            policy=kw.get("policies", {}).get(name),
        )

        def serve(r=runtime, n=name):
            try:
                goodbyes[n] = r.run()
            except Exception as exc:  # the test looks at it
                goodbyes[n] = exc
            finally:
                r.log.close()

        threads.append(background(serve))
    assert running.executor.wait_for(tuple(tables), 20) == set(tables)
    return goodbyes, threads


UNION = ("blue", "green", "missing", "red", "yellow")
DECLARED = ("yellow", "red", "green", "blue", "purple")


@pytest.mark.parametrize(
    ("levels", "colours"),
    [
        ("", UNION),  # the union of the sites' levels, sorted
        (f", levels = {{ colour = {list(DECLARED)} }}", (*DECLARED, "missing")),
    ],
    ids=["union", "declared"],
)
def test_deployed_csv_sites_train_the_simulated_model_round_for_round(
    start_coordinator, tmp_path, background, levels, colours
):
    config, per_site = write_tables(tmp_path, levels=levels.replace("'", '"'))
    simulated = simulate(config, store=MemoryStore()).run
    running = start_coordinator(SITES)
    goodbyes, threads = start_csv_sites(running, per_site, tmp_path, background)

    ctx = _prepare(config, running.executor, list(SITES), running.store, running.run_id)
    deployed = Coordinator(config, executor=running.executor, store=MemoryStore()).run(
        ctx.task.init_params(config.federation.seed)
    )
    running.executor.close()
    for thread in threads:
        thread.join(20)

    assert [r.status for r in deployed.rounds] == ["completed"] * 3
    assert [r.global_digest for r in deployed.rounds] == [
        r.global_digest for r in simulated.rounds
    ]
    assert deployed.params.digest() == simulated.params.digest()
    # Every site encodes the same levels, in the simulation's order.
    names = ctx.data.info.feature_names
    assert names == ("x1", "x2") + tuple(f"colour={c}" for c in colours)
    # The fit is recorded with the run, as shipped to and applied by every site.
    recorded = recorded_encoder(running.store, running.run_id)
    assert recorded is not None
    # Pooled over the shifted sites, not any one site's own mean (about 0, 8, -6).
    assert 0.5 < recorded.mean[0] < 2.0
    digest = encoder_digest(recorded)
    for name in SITES:
        logged = SiteLog.read(tmp_path / f"{name}.jsonl")
        assert [e["digest"] for e in logged if e["event"] == "encoded_data"] == [digest]
    # Federated evaluation on holdouts encoded alike: the same scores as simulated.
    assert [r.metrics for r in deployed.rounds] == [r.metrics for r in simulated.rounds]
    assert not running.executor.rejections.snapshot()
    assert goodbyes == dict.fromkeys(SITES, "run finished")
    # Each site can audit the released model from its own log and CSV alone.
    assert_site_audit_matches_simulation(
        tmp_path, config, per_site, running.run_id, deployed, simulated
    )


def assert_site_audit_matches_simulation(
    tmp_path, config, per_site, run_id, deployed, simulated
):
    """site-01 rebuilds its split from its site log; the figures are simulate's."""
    import math

    from accord.participant.privacy_audit import (
        audit_released_model,
        audited_rows,
        run_history,
    )
    from accord.privacy.audit import ShadowTraining, audit_site
    from accord.simulation.context import build_context
    from accord.store import CheckpointStore

    history = run_history(SiteLog.read(tmp_path / "site-01.jsonl"), run_id)
    table = load_local_data(f"csv:{per_site['site-01']}", options=SITE_OPTIONS)
    rows = audited_rows(table, history, data_sha256=None)
    model = CheckpointStore(tmp_path / "released").save(run_id, 3, deployed.params)
    ctx = build_context(config)
    twin = ctx.site("site-01")

    local = audit_released_model(
        build_task(rows, FACTORY),
        model,
        site="site-01",
        members=rows.train,
        nonmembers=rows.holdout,
        history=history,
        ledger=None,
        shadows=2,
        seed=1,
    )
    expected = audit_site(
        ctx.task,
        simulated.params,
        site="site-01",
        members=twin.train,
        nonmembers=twin.holdout,
        training=ShadowTraining(epochs=2, batch_size=32, learning_rate=0.05, passes=3),
        epsilon=math.inf,
        delta=0.0,
        shadows=2,
        seed=1,
    )

    assert history.rounds == {1, 2, 3} and history.settings is not None
    assert (history.settings.epochs, history.settings.options) == (2, {})
    np.testing.assert_array_equal(rows.train.x, twin.train.x)
    np.testing.assert_array_equal(rows.holdout.y, twin.holdout.y)
    assert local.run_id == run_id and local.passes == 3
    assert local.audit.attacks == expected.attacks
