"""Attacks on the preprocessing fit under secure aggregation (issue 8, "Correctness
of deployed preprocessing": the statistics summed securely).

Three csv: sites over real gRPC and mutual TLS, each with its identity certificate,
in a run with ``[secure_aggregation] mode = "masking"``; the coordinator runs
``accord coordinator``'s preparation (:func:`accord.cli.deploy._prepare`). The
honest fit is tested in ``tests/integration/test_preprocess_four_sites.py``. Here
a site that will not take part in the secure sum (its minimum threshold, no
identity), that goes silent in it, or that feeds it statistics no table gives,
stops the run before round 1: the error names the site where one is to blame (a
forged input cannot be traced through a secure sum: the error says so), the
store holds a ``preprocessing_refused`` event, and no site is asked to train.
"""

from pathlib import Path

import pytest

from accord.cli.deploy import _prepare
from accord.config import load_config
from accord.coordinator.preparation import REFUSED_KIND, recorded_encoder
from accord.data.profile import encoder_digest
from accord.errors import PreparationFailed, RunAborted
from accord.participant.backoff import Backoff
from accord.participant.data import build_task, load_local_data
from accord.participant.policy import SitePolicy
from accord.participant.runtime import ParticipantRuntime
from accord.participant.sitelog import SiteLog
from accord.participant.table import SiteTable
from accord.transport import pki
from accord.transport.client import CoordinatorClient
from accord.transport.identity import load_signing_identity
from accord.transport.jobs import STAGES
from accord.transport.messages import Receipt

from ..integration.test_preprocess_deploy import (
    FACTORY,
    SITE_OPTIONS,
    SITES,
    write_tables,
)

SECURE = '\n[secure_aggregation]\nmode = "masking"\nstage_timeout_s = {timeout}\n'


def secure_config(root: Path, *, timeout: float = 60):
    config, tables = write_tables(root)
    fed = root / "fed.toml"
    fed.write_text(fed.read_text() + SECURE.format(timeout=timeout))
    return load_config(fed), tables


class Lying(SiteTable):
    """A site that feeds the secure sum more values than it has rows."""

    def statistics(self, request, columns):
        vector = super().statistics(request, columns)
        vector[0] = 1e6  # the first column's count
        return vector


class SilentFrom:
    """A site's connection that sends nothing of the secure sum from ``stage`` on."""

    def __init__(self, client, stage: str) -> None:
        self.client, self.cut = client, STAGES.index(stage)

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    def submit_secagg(self, header, payload, **kw):
        if header.stage in STAGES and STAGES.index(header.stage) >= self.cut:
            return Receipt(header.run_id, header.round, "", "", 0)  # lost on the way
        return self.client.submit_secagg(header, payload, **kw)


def start_sites(running, tables, logs: Path, background, **special):
    """A runtime per site on its own CSV, with its identity (unless told not)."""
    for name, path in tables.items():
        folder = running.federation.root / name
        site = load_local_data(f"csv:{path}", options=SITE_OPTIONS)
        if name in special.get("lying", ()):
            site = Lying(site.name, site.table, site.labels)
        silent = special.get("silent", {}).get(name)
        identity = name not in special.get("anonymous", ())

        def connect(n=name, cut=silent, folder=folder, identity=identity):
            if not identity:  # connects without presenting its identity certificate
                return CoordinatorClient(
                    running.target, identity=pki.load_identity(folder)
                )
            client = running.client(n)
            return SilentFrom(client, cut) if cut else client

        runtime = ParticipantRuntime(
            connect,
            None,
            site,
            builder=lambda data: build_task(data, FACTORY),
            log=SiteLog(logs / f"{name}.jsonl"),
            backoff=Backoff(initial_s=0.05, maximum_s=0.5),
            signing=load_signing_identity(folder) if identity else None,
            ca_pem=pki.load_identity(folder).ca_pem if identity else None,
            policy=special.get("policies", {}).get(name),
        )

        def serve(r=runtime):
            try:
                r.run()
            finally:
                r.log.close()

        background(serve)
    assert running.executor.wait_for(SITES, 20) == set(SITES)


def prepare_fails(running, config, error):
    with pytest.raises(error) as caught:
        _prepare(config, running.executor, list(SITES), running.store, running.run_id)
    running.executor.close()
    refusals = [
        (e.participant, e.detail)
        for e in running.store.events(running.run_id)
        if e.kind == REFUSED_KIND
    ]
    return caught.value, refusals


def log(logs: Path, name: str, event: str) -> list[dict]:
    return [e for e in SiteLog.read(logs / f"{name}.jsonl") if e["event"] == event]


def never_trained(logs: Path) -> bool:
    return not any(
        e["kind"] in ("train", "eval")
        for name in SITES
        for e in log(logs, name, "received_task")
    )


def test_a_site_whose_minimum_threshold_is_not_met_keeps_its_statistics(
    start_coordinator, tmp_path, background
):
    config, tables = secure_config(tmp_path)
    running = start_coordinator(SITES)
    strict = {"site-01": SitePolicy(min_threshold=4)}  # 3 sites: threshold <= 3
    start_sites(running, tables, tmp_path, background, policies=strict)

    exc, refusals = prepare_fails(running, config, PreparationFailed)

    assert exc.site == "site-01" and "--min-threshold" in str(exc)
    assert refusals == [("site-01", str(exc))]
    # It sent its columns, nothing of the sum; nobody sent a masked input.
    assert [e["stage"] for e in log(tmp_path, "site-01", "sent_secagg")] == ["profile"]
    assert not any(
        e["stage"] == "masked_input"
        for name in SITES
        for e in log(tmp_path, name, "sent_secagg")
    )
    assert never_trained(tmp_path)


def test_a_site_without_an_identity_cannot_join_the_secure_sum(
    start_coordinator, tmp_path, background
):
    config, tables = secure_config(tmp_path)
    running = start_coordinator(SITES)
    start_sites(running, tables, tmp_path, background, anonymous=("site-02",))

    exc, refusals = prepare_fails(running, config, PreparationFailed)

    # It presented no identity certificate when it connected: named, and the
    # secure sum never started (no site was sent a statistics task).
    assert exc.site == "site-02" and "no identity certificate" in str(exc)
    assert refusals == [("site-02", str(exc))]
    assert not any(
        e.get("stage") == "statistics"
        for name in SITES
        for e in log(tmp_path, name, "received_task")
    )
    assert never_trained(tmp_path)


def test_a_site_silent_in_the_secure_sum_stops_the_fit_named(
    start_coordinator, tmp_path, background
):
    config, tables = secure_config(tmp_path, timeout=20)
    running = start_coordinator(SITES)
    start_sites(
        running, tables, tmp_path, background, silent={"site-00": "masked_input"}
    )

    exc, refusals = prepare_fails(running, config, PreparationFailed)

    assert exc.site == "site-00" and "masked_input" in str(exc)
    assert refusals == [("site-00", str(exc))]
    assert never_trained(tmp_path)


def test_statistics_no_table_gives_are_refused_as_a_sum(
    start_coordinator, tmp_path, background
):
    config, tables = secure_config(tmp_path)
    running = start_coordinator(SITES)
    start_sites(running, tables, tmp_path, background, lying=("site-02",))

    exc, refusals = prepare_fails(running, config, RunAborted)

    # The sum hides who lied: the error says the sum is impossible, and why.
    assert not isinstance(exc, PreparationFailed)
    assert "impossible" in str(exc) and "hides which" in str(exc)
    assert refusals == [(None, str(exc))]
    for name in SITES:  # every site took its part in the sum to the end
        stages = [e["stage"] for e in log(tmp_path, name, "sent_secagg")]
        assert stages == ["profile", "statistics", *STAGES[1:]]
    assert never_trained(tmp_path)


def test_a_ckks_run_sums_its_statistics_by_masking_to_the_plain_fit(
    start_coordinator, tmp_path, background
):
    plain, tables = write_tables(tmp_path)
    fed = tmp_path / "fed-ckks.toml"
    fed.write_text(
        (tmp_path / "fed.toml").read_text()
        + SECURE.format(timeout=60).replace('"masking"', '"ckks"')
    )
    fits = {}
    for name, config in (("ckks", load_config(fed)), ("plain", plain)):
        logs = tmp_path / name
        logs.mkdir()
        running = start_coordinator(SITES)
        start_sites(running, tables, logs, background)
        _prepare(config, running.executor, list(SITES), running.store, running.run_id)
        running.executor.close()
        fits[name] = encoder_digest(recorded_encoder(running.store, running.run_id))
        stages = [e["stage"] for e in log(logs, "site-00", "sent_secagg")]
        assert ("statistics" in stages) == (name == "ckks")

    assert fits["ckks"] == fits["plain"]
