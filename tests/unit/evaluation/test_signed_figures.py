"""Release gates read the store's rows; the round's signed entry must agree."""

from __future__ import annotations

from datetime import UTC, datetime

from accord.evaluation.release import _unsigned_site_figures
from accord.ledger.writer import site_metrics
from accord.records import MetricValue, RoundRecord, UpdateScore


def _record(metrics=(), scores=()) -> RoundRecord:
    now = datetime.now(UTC)
    return RoundRecord(
        "run",
        3,
        now,
        now,
        "completed",
        "0" * 64,
        (),
        (),
        tuple(metrics),
        None,
        (),
        tuple(scores),
    )


def _score(site: str, flags=(), excluded=False) -> UpdateScore:
    return UpdateScore(site, 1.0, 0.9, 0.1, 0.1, 1.0, 0.0, 0.0, flags, excluded)


SITE_A = MetricValue("site", "site-a", "accuracy", 0.71)
SITE_B = MetricValue("site", "site-b", "accuracy", 0.93)


def _entry(record: RoundRecord) -> dict:
    return {
        "siteMetrics": site_metrics(record.metrics),
        "scores": [
            {
                "participant": s.participant,
                "flags": list(s.flags),
                "excluded": s.excluded,
            }
            for s in record.scores
        ],
    }


def test_the_figures_signed_are_the_figures_stored():
    record = _record([SITE_A, SITE_B], [_score("site-a"), _score("site-b", ("norm",))])
    assert _unsigned_site_figures(record, _entry(record)) is None


def test_an_edited_site_score_or_a_cleared_flag_is_named():
    signed = _record([SITE_A, SITE_B], [_score("site-b", ("norm",), excluded=True)])
    edited = _record([MetricValue("site", "site-a", "accuracy", 0.99), SITE_B])
    assert "metric site.accuracy of site site-a is 0.99 in the store, 0.71" in (
        _unsigned_site_figures(edited, _entry(signed)) or ""
    )
    cleared = _record([SITE_A, SITE_B], [_score("site-b")])
    assert "update flags (flagged, excluded sites) differ" in (
        _unsigned_site_figures(cleared, _entry(signed)) or ""
    )
    dropped = _record([SITE_A], [_score("site-b", ("norm",), excluded=True)])
    assert "of site site-b is None in the store, 0.93" in (
        _unsigned_site_figures(dropped, _entry(signed)) or ""
    )


def test_an_entry_written_before_site_figures_has_nothing_to_compare():
    assert _unsigned_site_figures(_record([SITE_A], [_score("x")]), {}) is None
