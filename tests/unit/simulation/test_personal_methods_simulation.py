"""FedPer and Ditto end to end: seeded, label-skewed digits federations.

Ten sites at Dirichlet alpha 0.1 with the numpy MLP: the site that the global
FedAvg model serves worst does better with its own FedPer or Ditto model, by a wide
margin. FedPer's head never reaches the coordinator (the updates it kept, its
checkpoints, a secure run's sum); worker processes give the in-process figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from safetensors.numpy import load_file
from typer.testing import CliRunner

from accord.cli.main import app
from accord.config import FedConfig, config_from_mapping
from accord.simulation.engine import simulate
from accord.store import MemoryStore

HEAD = ["w2", "b2"]
runner = CliRunner()

DITTO_TOML = """
[federation]
rounds = 10
seed = 0
[data]
dataset = "digits"
partition = "dirichlet"
alpha = 0.1
sites = 10
min_site_size = 20
[task]
factory = "accord.task.numpy_task:mlp"
[evaluation]
every = 10
[simulation]
workers = 0
[store]
directory = "{dir}"
[personalization]
method = "ditto"
lambda = 0.1
"""


def _config(tmp_path: Path, personal: dict[str, Any], **extra: Any) -> FedConfig:
    raw: dict[str, Any] = {
        "federation": {"rounds": 10, "seed": 0},
        "data": {
            "dataset": "digits",
            "partition": "dirichlet",
            "alpha": 0.1,
            "sites": 10,
            "min_site_size": 20,
        },
        "task": {"factory": "accord.task.numpy_task:mlp"},
        "evaluation": {"every": 10},
        "simulation": {"workers": 0},
        "store": {"directory": str(tmp_path / "runs")},
        "profile": {"enabled": False},
    }
    if personal:
        raw["personalization"] = personal
    for section, values in extra.items():
        raw[section] = {**raw.get(section, {}), **values}
    return config_from_mapping(raw, base_dir=tmp_path)


def _sites(cfg: FedConfig, **kwargs: Any) -> dict[str, dict[str, float]]:
    """Each site's metrics at the last round."""
    store = MemoryStore()
    run = simulate(cfg, store=store, **kwargs).run
    last = store.rounds(run.run_id)[-1]
    sites: dict[str, dict[str, float]] = {}
    for m in last.metrics:
        if m.scope == "site" and m.participant is not None:
            sites.setdefault(m.participant, {})[m.name] = m.value
    return sites


def _tensors(checkpoint: Path) -> set[str]:
    """The model tensors a checkpoint names, with or without a state prefix."""
    return {n.rsplit("/", 1)[-1] for n in load_file(checkpoint)} - {"step"}


def test_fedper_and_ditto_serve_the_worst_site_better_than_fedavg(tmp_path: Path):
    fedavg = _sites(_config(tmp_path, {}))
    fedper = _sites(_config(tmp_path, {"method": "fedper", "private": ["?2"]}))
    ditto = _sites(_config(tmp_path, {"method": "ditto", "lambda": 0.1}))

    worst = min(fedavg, key=lambda s: fedavg[s]["accuracy"])
    glob = fedavg[worst]["accuracy"]
    assert len(fedavg) == len(fedper) == len(ditto) == 10
    # measured: the worst site 0.318 under FedAvg; FedPer's worst site 0.750,
    # Ditto's 0.625 (Ditto's global model is FedAvg's: the same 0.318 there)
    own_worst = {
        name: min(v["personalized_accuracy"] for v in sites.values())
        for name, sites in (("fedper", fedper), ("ditto", ditto))
    }
    assert own_worst["fedper"] > glob + 0.25, (glob, own_worst)
    assert own_worst["ditto"] > glob + 0.2, (glob, own_worst)
    assert ditto[worst]["accuracy"] == pytest.approx(glob)
    assert ditto[worst]["personalized_accuracy"] > glob + 0.2


def test_fedper_head_never_reaches_the_coordinator(tmp_path: Path):
    cfg = _config(
        tmp_path,
        {"method": "fedper", "private": ["w2", "b?"]},
        federation={"rounds": 2},
        contribution={"keep_updates": True},
    )
    checkpoints = tmp_path / "ckpt"

    sites = _sites(cfg, checkpoint_dir=checkpoints)

    kept = sorted(checkpoints.glob("*/updates/round-*/0*.safetensors"))
    saved = sorted(checkpoints.glob("*/round-*.safetensors"))
    assert len(kept) == 2 * 10 and saved
    for path in kept:
        assert sorted(load_file(path)) == ["w1"], path  # b1 and b2 matched "b?"
    for path in saved:  # the model, and the server optimizer's state of it
        assert _tensors(path) == {"w1"}, path
    assert all("personalized_accuracy" in v for v in sites.values())


def test_fedper_composes_with_secure_aggregation(tmp_path: Path):
    cfg = _config(
        tmp_path,
        {"method": "fedper", "private": HEAD},
        federation={"rounds": 2},
        data={"sites": 4},
        secure_aggregation={"mode": "masking", "stage_timeout_s": 60.0},
    )
    checkpoints = tmp_path / "ckpt"

    sites = _sites(cfg, checkpoint_dir=checkpoints)

    saved = sorted(checkpoints.glob("*/round-*.safetensors"))
    assert saved and all(_tensors(p) == {"b1", "w1"} for p in saved)
    assert len(sites) == 4
    assert all(0 <= v["personalized_accuracy"] <= 1 for v in sites.values())


@pytest.mark.parametrize(
    "personal",
    [{"method": "fedper", "private": HEAD}, {"method": "ditto", "lambda": 0.5}],
)
def test_workers_keep_the_sites_models_as_the_coordinator_process_does(
    tmp_path: Path, personal: dict[str, Any]
):
    small = {"federation": {"rounds": 3}, "data": {"sites": 4}}
    small_eval = {"evaluation": {"every": 1}}

    inline = _sites(_config(tmp_path, personal, **small, **small_eval))
    pooled = _sites(
        _config(tmp_path, personal, **small, **small_eval, simulation={"workers": 2})
    )

    assert pooled == inline
    assert all("personalized_loss" in v for v in inline.values())


def test_runs_show_and_the_report_put_ditto_beside_the_global_model(tmp_path: Path):
    fed = tmp_path / "fed.toml"
    fed.write_text(DITTO_TOML.format(dir=tmp_path / "runs"))
    runs = ["--dir", str(tmp_path / "runs")]

    simulated = runner.invoke(app, ["simulate", str(fed), "--json"])
    shown = runner.invoke(app, ["runs", "show", "latest", "--json", *runs])
    table = runner.invoke(app, ["runs", "show", "latest", *runs])
    card = runner.invoke(app, ["report", "latest", "--json", *runs])

    assert simulated.exit_code == 0, simulated.output
    assert shown.exit_code == 0 and table.exit_code == 0, shown.output
    assert card.exit_code == 0, card.output
    sites = json.loads(shown.stdout)["personalization"]["sites"]
    worst = min(sites, key=lambda s: sites[s]["global"]["accuracy"])
    glob = sites[worst]["global"]["accuracy"]
    own = sites[worst]["personalized"]["accuracy"]
    assert own > glob + 0.2, (worst, glob, own)
    row = next(line for line in table.stdout.splitlines() if f" {worst} " in line)
    assert f"{glob:.4f}" in row and f"{own:.4f}" in row, row
    metrics = next(
        s for s in json.loads(card.stdout)["sections"] if s["key"] == "metrics"
    )
    facts = dict(
        item for b in metrics["blocks"] if b["type"] == "facts" for item in b["items"]
    )
    assert facts["personalization"] == "ditto"
    assert facts["worst site, global model accuracy"] == f"{glob:.4f}"
    personal = next(
        b for b in metrics["blocks"] if b.get("title", "").startswith("personalization")
    )
    assert [worst, f"{glob:.4f}", f"{own:.4f}"] == [
        personal["rows"][list(sites).index(worst)][i] for i in (0, 2, 3)
    ]


def test_fedper_baselines_train_the_users_whole_model(tmp_path: Path):
    cfg = _config(
        tmp_path,
        {"method": "fedper", "private": HEAD},
        federation={"rounds": 3},
        data={"sites": 4},
        evaluation={"every": 3, "baselines": True},
    )

    result = simulate(cfg, store=MemoryStore())

    assert result.comparison is not None
    # pooled training of the whole MLP, not of a body behind an untrained head
    # (measured 0.900; the body with the initial head scores 0.304)
    assert result.comparison.pooled["accuracy"] > 0.8
    assert result.comparison.federated["accuracy"] < 0.5


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own, as it starts
@pytest.mark.parametrize(
    "personal",
    [{"method": "fedper", "private": HEAD}, {"method": "ditto", "lambda": 0.5}],
)
def test_ray_actors_keep_the_sites_models_as_the_coordinator_process_does(
    tmp_path: Path, personal: dict[str, Any]
):
    ray = pytest.importorskip("ray")
    from accord.simulation.ray_pool import start_ray

    small = {"federation": {"rounds": 3}, "data": {"sites": 4}}
    inline = _sites(_config(tmp_path, personal, **small))
    assert start_ray("local", num_cpus=2)
    try:
        actors = _sites(
            _config(
                tmp_path, personal, **small, simulation={"workers": 2, "engine": "ray"}
            )
        )
    finally:
        ray.shutdown()

    assert actors == inline
    assert all("personalized_accuracy" in v for v in inline.values())


def test_async_fedper_scores_each_sites_newest_head(tmp_path: Path):
    # async trains in batches numbered apart from the versions it evaluates
    cfg = _config(
        tmp_path,
        {"method": "fedper", "private": HEAD},
        federation={"rounds": 6},
        data={"sites": 4},
        evaluation={"every": 6},
        round={"mode": "async", "buffer_size": 2},
    )

    sites = _sites(cfg)

    own = [v["personalized_accuracy"] for v in sites.values()]
    untrained_head = [v["accuracy"] for v in sites.values()]
    # measured: own 0.814 to 0.960 a site; the body with the initial head 0.295
    # to 0.379, and 0.76 on site-00's 25 rows (the bug scored that initial head, so
    # own equalled it: none kept)
    assert min(own) > 0.75, own
    gaps = [o - u for o, u in zip(own, untrained_head, strict=True)]
    assert min(gaps) > 0.15 and sorted(gaps)[1] > 0.3, gaps
