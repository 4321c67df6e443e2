"""The secure sum of the fairness counts equals the plain sum, and hides each site's.

On lending_club by state (ten sites) with ``verification_status`` as the sensitive
attribute, a seeded model's per-group counts summed under the masking protocol are
the very integers the plain sum of every site's counts gives (and so the pooled
predictions' rates, :mod:`tests.unit.evaluation.test_fairness`); the server of the
sum receives masked vectors only, never a site's encoded counts; a site that drops
out refuses the sum instead of reporting partial counts.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cryptography")

from accord.config import FedConfig, config_from_mapping  # noqa: E402
from accord.errors import ConfigError, SecAggAborted  # noqa: E402
from accord.evaluation.fairness import fairness_report, sum_counts  # noqa: E402
from accord.evaluation.group_sums import counts_vector  # noqa: E402
from accord.params import Params  # noqa: E402
from accord.secagg import local  # noqa: E402
from accord.secagg.exact import ExactEncoding  # noqa: E402
from accord.secagg.messages import MaskedInput, Stage  # noqa: E402
from accord.secagg.server import SecAggServer  # noqa: E402
from accord.simulation import fair_sum  # noqa: E402
from accord.simulation.context import build_context  # noqa: E402
from accord.simulation.fair_sum import secure_group_counts  # noqa: E402
from accord.simulation.holdouts import score_sites, sensitive_values  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def lending(mode: str, **evaluation: object) -> FedConfig:
    raw = {
        "federation": {"name": "fair-secure", "rounds": 1, "seed": 11},
        "data": {"dataset": "lending_club", "partition": "natural", "sites": 10},
        "task": {"factory": "task:build", "options": {"hidden": 8}},
        "evaluation": {"metric": "auc", **evaluation},
        "secure_aggregation": {"mode": mode},
    }
    return config_from_mapping(raw, base_dir=EXAMPLES / "lending_club")


@pytest.fixture(scope="module")
def model() -> tuple[Params, float]:
    """Seeded parameters, and a threshold that makes both decisions in each group."""
    ctx = build_context(lending("off"))
    params = ctx.task.init_params(5)
    scores = [
        np.asarray(ctx.task.predict(params, s.holdout.x))[:, 1] for s in ctx.data.sites
    ]
    return params, float(np.median(np.concatenate(scores)))


def test_the_secure_sum_is_the_plain_sum_to_the_integer(model):
    params, threshold = model
    fair = {"sensitive": "verification_status", "decision_threshold": threshold}

    secure = secure_group_counts(lending("masking", **fair), params)

    plain = sum_counts(
        s.groups for s in score_sites(lending("off", **fair), params, fairness=True)
    )
    assert secure == plain  # every TP, FP, TN, FN of every group
    assert len(secure) == 3 and all(
        c.tp and c.fp and c.tn and c.fn for c in plain.values()
    )
    report = fairness_report(secure, column="v", threshold=threshold)
    assert (
        report.to_dict()
        == fairness_report(plain, column="v", threshold=threshold).to_dict()
    )
    assert 0 < report.demographic_parity_difference < 1


def test_the_server_of_the_sum_sees_no_sites_counts(model, monkeypatch):
    # Arrange: record every masked input the server of the sum receives
    params, threshold = model
    fair = {"sensitive": "verification_status", "decision_threshold": threshold}
    received: list[MaskedInput] = []
    original = SecAggServer.receive

    def spy(self: SecAggServer, message: object) -> object:
        if isinstance(message, MaskedInput):
            received.append(message)
        return original(self, message)  # type: ignore[arg-type]

    monkeypatch.setattr(SecAggServer, "receive", spy)

    # Act
    secure_group_counts(lending("masking", **fair), params)

    # Assert: ten masked vectors, none of them a site's encoded counts
    cfg = lending("off", **fair)
    _, groups = sensitive_values(cfg, "verification_status")
    encoding = ExactEncoding(4 * len(groups))
    plain = {
        s.site: encoding.encode(counts_vector(s.groups, groups)).astype("<u4").tobytes()
        for s in score_sites(cfg, params, fairness=True)
    }
    assert sorted(m.sender for m in received) == sorted(plain)
    for message in received:
        assert len(message.vector) == len(plain[message.sender])
        assert message.vector not in plain.values()


def test_a_site_that_drops_out_refuses_the_sum(model, monkeypatch):
    params, threshold = model
    fair = {"sensitive": "verification_status", "decision_threshold": threshold}
    dropping = partial(local.run_local_round, drop={Stage.MASKED_INPUT: ["CA"]})
    monkeypatch.setattr(fair_sum, "run_local_round", dropping)

    with pytest.raises(SecAggAborted, match="CA dropped out .*not the federation's"):
        secure_group_counts(lending("masking", **fair), params)


def test_plain_per_site_counts_stay_refused_under_secure_aggregation(model):
    params, _ = model

    with pytest.raises(ConfigError, match="per-site fairness counts are refused"):
        score_sites(
            lending("masking", sensitive="verification_status"),
            params,
            sites=["CA"],
            fairness=True,
        )
