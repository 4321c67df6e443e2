"""The card as a pure function of a run's records, and its Markdown."""

from __future__ import annotations

import dataclasses
import json

import pytest

from accord.records import PrivacySpent, RunEvent
from accord.report.card import build_card
from accord.report.document import Facts, Note, Plot, Table, card_json
from accord.report.inputs import LedgerEntry
from accord.report.markdown import escape, render_markdown

HOSTILE = "<script>alert(1)</script>"

SECTIONS = [
    "run",
    "federation",
    "rounds",
    "strategy",
    "privacy",
    "gates",
    "metrics",
    "robustness",
    "contributions",
    "ledger",
]


def facts(section) -> dict[str, str]:
    return {k: v for b in section.blocks if isinstance(b, Facts) for k, v in b.items}


def missing(section) -> list[str]:
    return [b.text for b in section.blocks if isinstance(b, Note) and b.missing]


def test_a_run_without_privacy_gates_or_ledger_says_not_recorded(plain_inputs):
    card = build_card(plain_inputs)

    assert [s.key for s in card.sections] == SECTIONS
    assert "[privacy] level = off" in missing(card.section("privacy"))[0]
    assert "no release was attempted" in missing(card.section("gates"))[0]
    assert any(
        b.text == "[gates] sets no threshold: a release needs only a completed run."
        for b in card.section("gates").blocks
        if isinstance(b, Note)
    )
    assert "[robustness] scores = true" in missing(card.section("robustness"))[0]
    assert "keep_updates = false" in missing(card.section("contributions"))[0]
    assert "no ledger" in missing(card.section("ledger"))[0]
    assert "no data-contract entry" in missing(card.section("federation"))[0]
    assert "per-group metrics" in missing(card.section("metrics"))[0]
    assert card.section("run").blocks  # identity is there without a ledger
    assert (
        "computed from the stored configuration"
        in facts(card.section("run"))["configuration digest (SHA-256)"]
    )


def test_the_card_holds_the_recorded_figures(full_inputs):
    card = build_card(full_inputs)

    privacy = facts(card.section("privacy"))
    assert privacy["epsilon spent"] == "3"
    assert privacy["budget (epsilon)"] == "10"
    (eps,) = card.section("privacy").plots
    assert eps.series[0].y == (1.5, 3.0)
    gates = card.section("gates")
    (table,) = [b for b in gates.blocks if isinstance(b, Table)]
    assert table.rows[1] == ("max_epsilon", "FAIL", f"epsilon 3 > 2 {HOSTILE}")
    assert facts(gates)["decision"] == "failed: the model was not released"
    metrics = card.section("metrics")
    assert facts(metrics)["final central.accuracy (round 2)"] == "0.7000"
    glob, per_site = metrics.plots
    assert [s.name for s in glob.series] == ["central.accuracy", "federated.accuracy"]
    assert glob.series[0].y == (0.6, 0.7)
    assert [s.name for s in per_site.series] == ["site-a", HOSTILE]
    assert per_site.series[1].y == pytest.approx((0.41, 0.42))
    assert facts(metrics)["demographic parity difference"] == "0.2500"
    assert facts(metrics)["equalized odds difference"] == "undefined"
    robustness = card.section("robustness")
    assert facts(robustness)["sites flagged"] == HOSTILE
    norm, dist = robustness.plots
    assert norm.series[1].y == (2.0, 3.0)
    ledger = facts(card.section("ledger"))
    assert ledger["head digest (SHA-256)"] == "5" * 64
    assert ledger["final model digest"] == "e" * 64
    assert ledger["chain verifies"] == "yes: integrity only"
    run = facts(card.section("run"))
    assert run["accord version"] == "9.9"
    assert run["configuration digest (SHA-256)"] == "c" * 64
    assert facts(card.section("rounds"))["messages refused"] == "1 message"


def test_a_data_contract_entry_is_summarised_per_site(full_inputs):
    federation = build_card(full_inputs).section("federation")

    sites, flags = [b for b in federation.blocks if isinstance(b, Table)]
    row = {r[0]: r for r in sites.rows}
    assert row[HOSTILE][1] == "101"  # rows from the last accepted update
    assert row[HOSTILE][4] == f"profile {'d' * 16}\u2026; 1 drift flag"
    assert row["site-a"][4] == f"profile {'a' * 16}\u2026; no drift flag"
    assert flags.rows == ((HOSTILE, "age", "smd", "1.5000", "0.5000"),)
    summary = facts(federation)
    assert summary["data contract"] == "ledger entry 1 (data-contract)"
    assert summary["schema"] == "2 numeric and 1 categorical columns; classes no, yes"
    assert summary["preprocessing"] == "f" * 64
    assert summary["drift flags"] == "1"
    assert not missing(federation)


def test_another_contract_layout_is_summarised_not_refused(full_inputs):
    other = LedgerEntry(
        1, "data-contract", None, "1" * 64, {"sites": {"site-a": {"rows": 7}}}
    )
    ledger = tuple(e if e.sequence != 1 else other for e in full_inputs.ledger)

    federation = build_card(dataclasses.replace(full_inputs, ledger=ledger)).section(
        "federation"
    )

    (sites,) = [b for b in federation.blocks if isinstance(b, Table)]
    row = {r[0]: r for r in sites.rows}
    assert row["site-a"][4] == "rows 7"
    assert row[HOSTILE][4] == "none for this site"
    assert facts(federation)["drift flags"] == "0"


def test_an_unreadable_contract_entry_degrades_to_its_position(full_inputs):
    ledger = tuple(
        e
        if e.kind != "data-contract"
        else LedgerEntry(e.sequence, e.kind, None, e.digest)
        for e in full_inputs.ledger
    )

    federation = build_card(dataclasses.replace(full_inputs, ledger=ledger)).section(
        "federation"
    )

    assert facts(federation)["data contract"] == "ledger entry 1 (data-contract)"


def test_markdown_renders_store_strings_inert(full_inputs):
    text = render_markdown(build_card(full_inputs))

    assert HOSTILE not in text
    assert escape(HOSTILE) in text
    assert "\\<script\\>alert(1)\\</script\\>" in text
    tables: list[list[int]] = [[]]
    for line in text.splitlines():  # every row of a table keeps its cell count
        if line.startswith("|"):
            tables[-1].append(line.count("|") - line.count("\\|"))
        elif tables[-1]:
            tables.append([])
    assert len(tables) > 5
    assert all(len(set(cells)) <= 1 for cells in tables)


def test_markdown_escape_keeps_a_table_cell_and_a_line_whole():
    assert escape("a|b\nc") == "a\\|b c"
    assert escape("[x](http://e)") == "[x\\](http://e)"
    assert escape("![i](e) [r]: e [gates]") == "![i\\](e) [r\\]: e [gates]"
    assert escape("max_epsilon _x_") == "max_epsilon \\_x\\_"


def test_the_card_as_json_is_plain_data(full_inputs):
    document = card_json(build_card(full_inputs))

    text = json.dumps(document, allow_nan=False)
    plots = [
        b for s in document["sections"] for b in s["blocks"] if b["type"] == "plot"
    ]
    assert [p["key"] for p in plots] == [
        "privacy",
        "global",
        "sites",
        "norm_z",
        "distance_z",
    ]
    assert HOSTILE in text  # JSON carries the name as recorded; renderers escape


def test_every_plot_has_as_many_values_as_positions(full_inputs):
    for plot in build_card(full_inputs).plots:
        assert isinstance(plot, Plot)
        for series in plot.series:
            assert len(series.x) == len(series.y)


def test_without_a_ledger_the_release_event_names_the_failed_gates(plain_inputs):
    event = RunEvent(
        plain_inputs.run.run_id,
        plain_inputs.rounds[0].finished_at,
        None,
        None,
        "release",
        '{"passed": false, "failed": ["central_metric"], "model": "m", "file": null}',
    )

    gates = build_card(dataclasses.replace(plain_inputs, events=(event,))).section(
        "gates"
    )

    assert facts(gates) == {"decision": "failed", "failed gates": "central_metric"}
    assert not missing(gates)
    rounds = build_card(dataclasses.replace(plain_inputs, events=(event,)))
    assert facts(rounds.section("rounds"))["messages refused"] == "0 messages"


def test_record_level_privacy_lists_each_site_and_quarantine(full_inputs):
    def record_level(r):
        spent = tuple(
            PrivacySpent("record", s, 0.5 * r.number + i, 1e-5, "rdp", 1.1, 0.1, 1.0)
            for i, s in enumerate(r.selected)
        )
        scores = tuple(
            dataclasses.replace(sc, excluded=sc.participant == HOSTILE)
            for sc in r.scores
        )
        return dataclasses.replace(r, privacy=spent, scores=scores)

    inputs = dataclasses.replace(
        full_inputs,
        rounds=tuple(record_level(r) for r in full_inputs.rounds),
        run=dataclasses.replace(full_inputs.run, summary=None),
    )

    card = build_card(inputs)

    privacy = card.section("privacy")
    assert facts(privacy)["epsilon spent (largest of the sites')"] == "2"
    (sites,) = [b for b in privacy.blocks if isinstance(b, Table)]
    assert sites.rows == (
        ("site-a", "1", "1e-05", "1.1000"),
        (HOSTILE, "2", "1e-05", "1.1000"),
    )
    (plot,) = privacy.plots
    assert [s.name for s in plot.series] == ["site-a", HOSTILE]
    assert plot.series[1].y == (1.5, 2.0)
    robustness = facts(card.section("robustness"))
    assert robustness["sites quarantined"] == HOSTILE
