"""The data contract of a deployment on csv: data, over real gRPC and mutual TLS.

Three sites (two of them shifted on purpose, :mod:`.test_preprocess_deploy`) send
their guarded data profiles with their encoding answers before round 1; the
coordinator flags the shifted ones, records the contract with the run, and the
run's ledger carries it as its second entry, which verifies. A deployed site
profiles its rows exactly as its simulated twin does: the contract's digest is the
simulation's. With ``[profile] refuse`` a flagged federation never trains; a site
whose column was renamed is refused naming both.
"""

from pathlib import Path

import pytest

from accord.cli.deploy import _prepare
from accord.config import load_config
from accord.coordinator.contract import recorded_contract
from accord.coordinator.lineage import LedgerSetup
from accord.coordinator.preparation import REFUSED_KIND
from accord.coordinator.runner import Coordinator
from accord.errors import DatasetError, DriftRefused, SchemaMismatch
from accord.ledger.export import dump_export, parse_export
from accord.ledger.verify import verify_export
from accord.ledger.writer import simulation_signer
from accord.participant.data import load_local_data
from accord.participant.sitelog import SiteLog
from accord.simulation.profiling import simulated_contract

from .test_preprocess_deploy import SITES, start_csv_sites, write_tables

pytestmark = pytest.mark.timeout(180)


def test_deployed_sites_profile_as_simulated_and_the_contract_is_in_the_ledger(
    start_coordinator, tmp_path, background
):
    # Arrange
    config, per_site = write_tables(tmp_path)
    running = start_coordinator(SITES)
    _, threads = start_csv_sites(running, per_site, tmp_path, background)

    # Act: the preparation of `accord coordinator`, then three rounds with a ledger
    ctx = _prepare(config, running.executor, list(SITES), running.store, running.run_id)
    setup = LedgerSetup(simulation_signer(tmp_path / "key"), "test")
    result = Coordinator(
        config, executor=running.executor, store=running.store, ledger=setup
    ).run(ctx.task.init_params(config.federation.seed), run_id=running.run_id)
    running.executor.close()
    for thread in threads:
        thread.join(20)

    # Assert: recorded, flagged where the data was shifted, as the simulation says
    found = recorded_contract(running.store, running.run_id)
    assert found is not None
    digest, contract, profile = found
    assert digest == simulated_contract(config).digest
    assert set(contract["profiles"]) == set(SITES)
    flagged = {(f["site"], f["column"]) for f in contract["flags"]}
    assert ("site-01", "x1") in flagged and ("site-02", "x1") in flagged
    assert {f["measure"] for f in contract["flags"]} <= {
        "smd",
        "ks",
        "tvd",
        "label_rate",
        "missing_rate",
    }
    # site-02 misses x2 in about 5 of its 30 training rows: under 10, suppressed
    assert profile["sites"]["site-02"]["numeric"]["x2"]["missing"] is None
    assert profile["sites"]["site-00"]["numeric"]["x2"]["missing"] == 0
    # each site logged the digest of the profile it sent: the contract names it
    for name in SITES:
        sent = [
            e["digest"]
            for e in SiteLog.read(tmp_path / f"{name}.jsonl")
            if e["event"] == "sent_profile"
        ]
        assert sent == [contract["profiles"][name]]
    flags = [
        e for e in running.store.events(running.run_id) if e.kind == "profile_flag"
    ]
    assert len(flags) == len(contract["flags"])
    entries = running.store.ledger(result.run_id)
    assert [e.kind for e in entries] == [
        "run-opened",
        "data-contract",
        "round",
        "round",
        "round",
        "run-closed",
    ]
    lines = [e.envelope for e in entries]
    verdict = verify_export(
        parse_export(dump_export(result.run_id, lines, [])), anchors=None
    )
    assert verdict.ok, [str(p) for p in verdict.problems]


def test_a_flagged_federation_with_refuse_never_trains(
    start_coordinator, tmp_path, background
):
    config, per_site = write_tables(tmp_path)
    fed = tmp_path / "fed.toml"
    fed.write_text(fed.read_text() + "[profile]\nrefuse = true\n")
    config = load_config(fed)
    running = start_coordinator(SITES)
    start_csv_sites(running, per_site, tmp_path, background)

    with pytest.raises(DriftRefused) as caught:
        _prepare(config, running.executor, list(SITES), running.store, running.run_id)
    running.executor.close()

    assert "site 'site-01': 'x1'" in str(caught.value)
    assert "[profile] refuse = true" in str(caught.value)
    refused = [
        e for e in running.store.events(running.run_id) if e.kind == REFUSED_KIND
    ]
    assert [e.detail for e in refused] == [str(caught.value)]
    assert recorded_contract(running.store, running.run_id) is not None
    assert not any(
        e["event"] == "received_task" and e["kind"] in ("train", "eval")
        for name in SITES
        for e in SiteLog.read(tmp_path / f"{name}.jsonl")
    )


def test_a_renamed_column_at_a_deployed_site_is_refused_naming_both(
    start_coordinator, tmp_path, background
):
    config, per_site = write_tables(tmp_path)
    path: Path = per_site["site-01"]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(["x1,x2_new,colour,y", *lines[1:]]) + "\n")
    running = start_coordinator(SITES)
    start_csv_sites(running, per_site, tmp_path, background)

    with pytest.raises(SchemaMismatch) as caught:
        _prepare(config, running.executor, list(SITES), running.store, running.run_id)
    running.executor.close()

    assert (caught.value.site, caught.value.column) == ("site-01", "x2")
    assert "site 'site-01' has no column 'x2'" in str(caught.value)


def test_a_new_category_at_a_deployed_site_stops_the_run_before_round_1(
    start_coordinator, tmp_path, background
):
    # fed.toml declares colour's levels (those of the coordinator's reference
    # table); site-02's own table holds "yellow" besides them.
    declared = ', levels = { colour = ["red", "green", "blue"] }'
    write_tables(tmp_path)
    reference = tmp_path / "all.csv"
    reference.write_text(reference.read_text().replace(",yellow,", ",blue,"))
    fed = tmp_path / "fed.toml"
    fed.write_text(
        fed.read_text().replace(
            'categorical = "colour"', 'categorical = "colour"' + declared
        )
    )
    config = load_config(fed)
    per_site = {name: tmp_path / f"{name}.csv" for name in SITES}
    assert "yellow" in per_site["site-02"].read_text()
    running = start_coordinator(SITES)
    start_csv_sites(running, per_site, tmp_path, background)

    with pytest.raises(SchemaMismatch) as caught:
        _prepare(config, running.executor, list(SITES), running.store, running.run_id)
    running.executor.close()

    assert (caught.value.site, caught.value.column) == ("site-02", "colour")
    assert "'yellow'" in str(caught.value)
    assert running.store.rounds(running.run_id) == []  # nothing trained
    refused = [
        e for e in running.store.events(running.run_id) if e.kind == REFUSED_KIND
    ]
    assert [e.participant for e in refused] == ["site-02"]


def test_a_changed_type_at_a_deployed_site_stops_the_run_before_round_1(
    start_coordinator, tmp_path, background
):
    config, per_site = write_tables(tmp_path)
    path: Path = per_site["site-01"]
    header, *rows = path.read_text().splitlines()
    rows = [
        ",".join([r.split(",")[0], "high", *r.split(",")[2:]]) if i % 7 == 0 else r
        for i, r in enumerate(rows)
    ]  # x2 became text at site-01
    path.write_text("\n".join([header, *rows]) + "\n")
    # The site's own load refuses it as numeric; its operator declares it text.
    with pytest.raises(DatasetError, match="column 'x2' is not numeric"):
        load_local_data(f"csv:{path}", options={"target": "y", "categorical": "colour"})
    running = start_coordinator(SITES)
    text = {"site-01": {"categorical": "colour,x2"}}
    start_csv_sites(running, per_site, tmp_path, background, options=text)

    with pytest.raises(SchemaMismatch) as caught:
        _prepare(config, running.executor, list(SITES), running.store, running.run_id)
    running.executor.close()

    assert (caught.value.site, caught.value.column) == ("site-01", "x2")
    assert "site-01" in str(caught.value) and "x2" in str(caught.value)
    assert running.store.rounds(running.run_id) == []
