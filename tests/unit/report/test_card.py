"""The card as a pure function of a run's records, and its Markdown."""

from __future__ import annotations

import json

import pytest

from accord.report.card import build_card
from accord.report.document import Facts, Note, Plot, Table, card_json
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

    (sites,) = [b for b in federation.blocks if isinstance(b, Table)]
    row = {r[0]: r for r in sites.rows}
    assert row[HOSTILE][1] == "101"  # rows from the last accepted update
    assert row[HOSTILE][4] == f"rows 101; digest {'d' * 23}\u2026"
    assert row["site-a"][4] == "none for this site"
    assert facts(federation)["data contract"] == "ledger entry 1 (data-contract)"
    assert not missing(federation)


def test_an_unreadable_contract_entry_degrades_to_its_position(full_inputs):
    ledger = tuple(
        e if e.kind != "data-contract" else type(e)(e.sequence, e.kind, None, e.digest)
        for e in full_inputs.ledger
    )
    inputs = type(full_inputs)(**{**_fields(full_inputs), "ledger": ledger})

    federation = build_card(inputs).section("federation")

    assert facts(federation)["data contract"] == "ledger entry 1 (data-contract)"


def _fields(inputs):
    return {f: getattr(inputs, f) for f in inputs.__dataclass_fields__}


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
