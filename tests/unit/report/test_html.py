"""The HTML card: one file, nothing fetched, every store string inert, plots' data."""

from __future__ import annotations

import dataclasses
import json
from html.parser import HTMLParser

from accord.contribution import ContributionReport, SiteScore
from accord.report.card import build_card
from accord.report.html import CONTENT_SECURITY_POLICY, render_html

HOSTILE = "<script>alert(1)</script>"


class Page(HTMLParser):
    """Every tag with its attributes, each script's text, and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._in_script: dict[str, str | None] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append((self._in_script, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        else:
            self.text.append(data)


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    parser.close()
    return parser


def with_contributions(inputs):
    report = ContributionReport(
        method="both",
        sites=(
            SiteScore("site-a", 2, 0.1, 0.2, 0.15, 0.25),
            SiteScore(HOSTILE, 2, -0.05, -0.1, -0.2, 0.0),
        ),
        rounds=2,
        evaluations=8,
        seconds=0.1,
        gain=0.1,
        permutations=20,
    )
    return dataclasses.replace(inputs, contributions=report)


def test_the_page_fetches_nothing_and_names_are_text(full_inputs):
    card = build_card(with_contributions(full_inputs))

    page = render_html(card)
    parsed = parse(page)

    assert page.startswith("<!DOCTYPE html>")
    for tag, attrs in parsed.tags:
        for name in ("src", "href", "data"):
            value = attrs.get(name) or ""
            assert not value.startswith(("http://", "https://", "//")), (tag, attrs)
    assert not any(t == "link" for t, _ in parsed.tags)
    assert not any("src" in attrs for attrs, _ in parsed.scripts)
    csp = [
        a for t, a in parsed.tags if a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp[0]["content"] == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    # the hostile name is never markup: it reads as text, and no script holds it raw
    assert HOSTILE not in page
    assert any(HOSTILE in chunk for chunk in parsed.text)
    assert all("alert(1)</script>" not in body for _, body in parsed.scripts)
    executable = [b for a, b in parsed.scripts if a.get("type") != "application/json"]
    assert len(executable) == 2  # plotly.js and the few lines that draw
    assert "alert(1)" not in executable[1]


def test_each_plot_carries_its_data(full_inputs):
    card = build_card(with_contributions(full_inputs))

    parsed = parse(render_html(card))

    figures = {
        attrs["data-plot"]: json.loads(body)
        for attrs, body in parsed.scripts
        if attrs.get("type") == "application/json"
    }
    assert list(figures) == [
        "plot-privacy",
        "plot-global",
        "plot-sites",
        "plot-norm_z",
        "plot-distance_z",
        "plot-contributions",
    ]
    ids = {a.get("id") for t, a in parsed.tags if t == "div"}
    assert set(figures) <= ids
    assert figures["plot-privacy"]["data"][0]["y"] == [1.5, 3.0]
    assert figures["plot-global"]["data"][1]["y"] == [0.5, 0.6000000000000001]
    sites = figures["plot-sites"]["data"]
    assert [t["name"] for t in sites] == [
        "site-a",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
    ]
    bars = figures["plot-contributions"]["data"]
    assert [t["type"] for t in bars] == ["bar", "bar"]
    assert bars[1]["y"] == [0.2, -0.1]
    assert bars[1]["error_y"]["array"] == [0.04999999999999999, 0.1]
    assert bars[1]["error_y"]["arrayminus"] == [0.05000000000000002, 0.1]
