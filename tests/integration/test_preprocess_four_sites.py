"""Four csv: sites with string categorical columns: deployed equals simulated.

Issue 15's acceptance: a deployment of 4 sites whose string categorical columns
hold different levels per site (``violet`` and ``enterprise`` at one site only),
with NaN in a categorical and in a numeric column, trains without a refusal and
gives, round for round, the global models of ``accord simulate`` on one CSV with
a site column over the same rows. Then the same deployment under secure
aggregation (issue 8): the preprocessing statistics go through the secure sum,
every site requires secure aggregation, and the fit is bit for bit the plain one.
"""

from pathlib import Path

import numpy as np
import pytest

from accord.cli.deploy import _prepare
from accord.config import FedConfig, load_config
from accord.coordinator.contract import EVENT_KIND as CONTRACT_KIND
from accord.coordinator.contract import FLAG_KIND
from accord.coordinator.preparation import EVENT_KIND, recorded_encoder
from accord.coordinator.runner import Coordinator
from accord.data.profile import encoder_digest, encoder_to_json
from accord.participant.backoff import Backoff
from accord.participant.data import build_task, load_local_data
from accord.participant.policy import SitePolicy
from accord.participant.runtime import ParticipantRuntime
from accord.participant.sitelog import SiteLog
from accord.simulation.engine import simulate
from accord.store import MemoryStore
from accord.transport import pki
from accord.transport.identity import load_signing_identity
from accord.transport.jobs import STAGES

SITES = ("site-00", "site-01", "site-02", "site-03")
FACTORY = "accord.task.numpy_task:softmax_regression"
SITE_OPTIONS = {"target": "y", "categorical": "colour,plan"}
#: Per site: rows (largest first: the simulation's natural order is the
#: roster's), mean shift, spread, its colours and its plans (None: missing).
SHAPES = {
    "site-00": (60, 0.0, 1.0, ("red", "green"), ("basic", "pro")),
    "site-01": (50, 8.0, 3.0, ("green", "blue"), ("basic",)),
    "site-02": (40, -6.0, 0.5, ("blue", "red", None), ("pro", "enterprise")),
    "site-03": (35, 3.0, 2.0, ("red", "violet"), ("basic", "pro")),
}
ROUNDS = 3
FED = """
[federation]
name = "four-csv-sites"
rounds = {rounds}
seed = 5
[data]
dataset = "csv:all.csv"
options = {{ target = "y", site_column = "site", categorical = "colour,plan" }}
partition = "natural"
sites = 4
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
{secure}
"""
SECURE = """
[secure_aggregation]
mode = "masking"
stage_timeout_s = 60
"""


def write_tables(root: Path, *, secure: bool) -> tuple[FedConfig, dict[str, Path]]:
    """all.csv (with a site column) for the simulation, SITE.csv for each site."""
    rng = np.random.default_rng(23)
    header = "x1,x2,colour,plan,y"
    every, per_site = [f"{header},site"], {}
    for site, (n, shift, spread, colours, plans) in SHAPES.items():
        lines = [header]
        for i in range(n):
            x1 = rng.normal(shift, spread)
            x2 = "" if site == "site-03" and i % 5 == 0 else f"{rng.normal(-shift):.5f}"
            colour = colours[i % len(colours)] or ""
            plan = plans[i % len(plans)]
            lift = 0.5 if plan == "pro" else 0.0
            y = "yes" if x1 - shift + lift + rng.normal(0, 0.5) > 0 else "no"
            lines.append(f"{x1:.5f},{x2},{colour},{plan},{y}")
            every.append(f"{lines[-1]},{site}")
        path = root / f"{site}.csv"
        path.write_text("\n".join(lines) + "\n")
        per_site[site] = path
    (root / "all.csv").write_text("\n".join(every) + "\n")
    fed = root / ("fed-secure.toml" if secure else "fed.toml")
    fed.write_text(
        FED.format(rounds=ROUNDS, factory=FACTORY, secure=SECURE if secure else "")
    )
    return load_config(fed), per_site


def start_sites(running, tables, logs: Path, background, *, secure: bool):
    """A runtime per site on its own CSV; secure sites hold their identity keys."""
    goodbyes: dict[str, object] = {}
    threads = []
    for name, path in tables.items():
        folder = running.federation.root / name
        site = load_local_data(f"csv:{path}", options=SITE_OPTIONS)
        runtime = ParticipantRuntime(
            lambda n=name: running.client(n),
            None,
            site,
            builder=lambda data: build_task(data, FACTORY),
            log=SiteLog(logs / f"{name}.jsonl"),
            backoff=Backoff(initial_s=0.05, maximum_s=0.5),
            signing=load_signing_identity(folder) if secure else None,
            ca_pem=pki.load_identity(folder).ca_pem if secure else None,
            policy=SitePolicy(require_secure_aggregation=True) if secure else None,
        )

        def serve(r=runtime, n=name):
            try:
                goodbyes[n] = r.run()
            except Exception as exc:  # the test looks at it
                goodbyes[n] = exc
            finally:
                r.log.close()

        threads.append(background(serve))
    assert running.executor.wait_for(SITES, 20) == set(SITES)
    return goodbyes, threads


def deploy(config, tables, logs: Path, start_coordinator, background, *, secure):
    """Prepare and run the federation as ``accord coordinator`` does."""
    logs.mkdir()
    running = start_coordinator(SITES)
    goodbyes, threads = start_sites(running, tables, logs, background, secure=secure)
    ctx = _prepare(config, running.executor, list(SITES), running.store, running.run_id)
    try:
        result = Coordinator(
            config, executor=running.executor, store=MemoryStore()
        ).run(ctx.task.init_params(config.federation.seed))
    finally:
        running.executor.close()
        for thread in threads:
            thread.join(20)
    return running, ctx, result, goodbyes


def _refusals(running) -> list[str]:
    """Every event of the run but its records (the fit, the data contract and
    its drift flags): refusals of any kind."""
    records = (EVENT_KIND, CONTRACT_KIND, FLAG_KIND)
    return [
        f"{e.kind}: {e.detail}"
        for e in running.store.events(running.run_id)
        if e.kind not in records
    ]


@pytest.fixture
def four_sites(federation):
    federation.enrol("site-03")
    return federation


def test_four_csv_sites_with_other_levels_train_the_simulated_models(
    four_sites, start_coordinator, tmp_path, background
):
    config, tables = write_tables(tmp_path, secure=False)
    simulated = simulate(config, store=MemoryStore()).run

    running, ctx, deployed, goodbyes = deploy(
        config, tables, tmp_path / "plain", start_coordinator, background, secure=False
    )

    assert _refusals(running) == []
    assert not running.executor.rejections.snapshot()
    assert [r.status for r in deployed.rounds] == ["completed"] * ROUNDS
    assert [r.succeeded for r in deployed.rounds] == [4] * ROUNDS
    assert [r.global_digest for r in deployed.rounds] == [
        r.global_digest for r in simulated.rounds
    ]
    assert [r.metrics for r in deployed.rounds] == [r.metrics for r in simulated.rounds]
    # The union of the sites' levels, with the levels only one site holds and
    # the level of colour's missing values.
    names = ctx.data.info.feature_names
    assert "colour=violet" in names and "plan=enterprise" in names
    assert "colour=missing" in names
    assert goodbyes == dict.fromkeys(SITES, "run finished")


def test_four_csv_sites_fit_the_same_preprocessing_under_secure_aggregation(
    four_sites, start_coordinator, tmp_path, background
):
    plain_config, tables = write_tables(tmp_path, secure=False)
    config, _ = write_tables(tmp_path, secure=True)
    plain_run, plain_ctx, plain, _ = deploy(
        plain_config,
        tables,
        tmp_path / "plain",
        start_coordinator,
        background,
        secure=False,
    )
    simulated = simulate(config, store=MemoryStore()).run

    running, ctx, deployed, goodbyes = deploy(
        config, tables, tmp_path / "secure", start_coordinator, background, secure=True
    )

    # Every site requires secure aggregation and took part: nothing refused.
    assert _refusals(running) == []
    assert not running.executor.rejections.snapshot()
    assert goodbyes == dict.fromkeys(SITES, "run finished")
    assert [r.status for r in deployed.rounds] == ["completed"] * ROUNDS
    # The securely summed fit is bit for bit the plain one (exact encoding).
    secure_fit = recorded_encoder(running.store, running.run_id)
    plain_fit = recorded_encoder(plain_run.store, plain_run.run_id)
    assert secure_fit is not None and plain_fit is not None
    assert encoder_to_json(secure_fit) == encoder_to_json(plain_fit)
    assert encoder_digest(secure_fit) == encoder_digest(plain_fit)
    assert ctx.data.info.feature_names == plain_ctx.data.info.feature_names
    # Secure rounds: the simulated secure run's models exactly; the plain
    # deployment's within the fixed-point resolution of the training rounds.
    assert [r.global_digest for r in deployed.rounds] == [
        r.global_digest for r in simulated.rounds
    ]
    gap = max(
        float(np.abs(deployed.params[k] - plain.params[k]).max()) for k in plain.params
    )
    assert gap < 1e-5
    # Round 0 at each site: its columns, then the secure sum, then the encoding;
    # no statistic in the clear.
    for name in SITES:
        entries = SiteLog.read(tmp_path / "secure" / f"{name}.jsonl")
        stages = [
            e["stage"]
            for e in entries
            if e["event"] == "sent_secagg" and e["round"] == 0
        ]
        assert stages == ["profile", "statistics", *STAGES[1:], "encoding"]
