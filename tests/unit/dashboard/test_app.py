"""The dashboard's pages and JSON over a real simulated run, through TestClient."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("plotly")

from fastapi.testclient import TestClient

from accord.cli.ledger_setup import simulation_ledger
from accord.config import load_config
from accord.dashboard.app import CONTENT_SECURITY_POLICY, create_app
from accord.simulation.engine import simulate
from accord.store import SqlStore

FED = """
[federation]
name = "dash-test"
rounds = 3
seed = 5
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[evaluation]
federated = true
baselines = true
[privacy]
level = "participant"
noise_multiplier = 0.5
clip = 5.0
[robustness]
scores = true
[gates]
central_metric = 0.5
[simulation]
workers = 0
[store]
directory = "{dir}"
"""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[SqlStore, str]:
    root = tmp_path_factory.mktemp("dash")
    config = root / "fed.toml"
    config.write_text(FED.format(dir=root / "runs"))
    store = SqlStore(f"sqlite:///{root / 'accord.db'}")
    fed = load_config(config)
    result = simulate(fed, store=store, ledger=simulation_ledger(fed))
    run_id = result.run.run_id
    store.record_event(
        run_id,
        round=2,
        participant="<script>alert(1)</script>",
        kind="unauthenticated",
        detail="no certificate <b>at all</b>",
    )
    yield store, run_id
    store.close()


@pytest.fixture(scope="module")
def client(recorded: tuple[SqlStore, str]) -> TestClient:
    return TestClient(create_app(recorded[0]))


def test_runs_list_links_each_run(client, recorded):
    _, run_id = recorded
    page = client.get("/")
    assert page.status_code == 200
    assert f'href="/runs/{run_id}"' in page.text
    assert "dash-test" in page.text
    listed = client.get("/api/runs").json()
    assert [(r["run_id"], r["status"], r["rounds_completed"]) for r in listed] == [
        (run_id, "completed", 3)
    ]


def test_run_page_renders_the_runs_sections_and_plots(client, recorded):
    _, run_id = recorded
    page = client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    text = page.text
    for section in (
        "progress",
        "rounds",
        "privacy",
        "gates",
        "metrics",
        "robustness",
        "ledger",
        "refusals",
        "comparison",
    ):
        assert f'<section id="{section}"' in text, section
    assert "3</span> of 3 rounds completed" in text
    figures = re.findall(
        r'<script type="application/json" data-plot="([^"]+)">(.*?)</script>',
        text,
        flags=re.S,
    )
    ids = [i for i, _ in figures]
    assert {"plot-global", "plot-comparison"} <= set(ids)
    global_figure = json.loads(dict(figures)["plot-global"])
    assert global_figure["data"][0]["x"] == [1, 2, 3]
    comparison = json.loads(dict(figures)["plot-comparison"])
    names = comparison["data"][0]["x"]
    assert names[:2] == ["federated", "pooled"]
    assert any(n.startswith("alone: ") for n in names)
    # a hostile participant name and reason are shown as text, never as markup
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "no certificate &lt;b&gt;at all&lt;/b&gt;" in text
    # the chain verifies (a simulation ledger: integrity)
    assert "chain verifies</dt><dd>yes" in text
    # a finished run does not poll
    assert "data-live" not in text


def test_no_page_loads_anything_from_another_origin(client, recorded):
    _, run_id = recorded
    for path in ("/", f"/runs/{run_id}", "/runs/nope"):
        text = client.get(path).text
        sources = re.findall(r'(?:src|href)="([^"]*)"', text)
        assert sources, path
        for source in sources:
            assert source.startswith(("/", "#")) or source == "data:,", (path, source)
        assert "cdn" not in text.lower().replace("cdnjs", "cdn"), path
        assert not re.search(r"https?://", text), path


def test_every_response_carries_the_csp_and_no_inline_script_runs(client, recorded):
    _, run_id = recorded
    for path in ("/", f"/runs/{run_id}", "/api/runs", "/static/dashboard.js", "/x"):
        response = client.get(path)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY
    page = client.get(f"/runs/{run_id}").text
    scripts = re.findall(r"<script([^>]*)>", page)
    # every script is either a file of this server or an inert JSON block
    assert all('src="/static/' in s or 'type="application/json"' in s for s in scripts)


def test_head_is_answered_like_get(client, recorded):
    _, run_id = recorded
    for path in ("/", f"/runs/{run_id}", "/api/runs"):
        response = client.head(path)
        assert response.status_code == 200, path
        assert response.content == b""


def test_only_static_assets_may_be_cached(client, recorded):
    _, run_id = recorded
    assert client.get("/static/dashboard.css").headers["cache-control"] == (
        "private, max-age=3600"
    )
    for path in ("/", f"/runs/{run_id}", f"/api/runs/{run_id}/live"):
        assert client.get(path).headers["cache-control"] == "no-store", path


def test_plotly_js_is_served_from_the_installed_package(client):
    import plotly.offline

    response = client.get("/static/plotly.min.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.text == plotly.offline.get_plotlyjs()
    assert client.get("/static/../../etc/passwd").status_code == 404
    assert client.get("/static/other.js").status_code == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/api/runs", "/runs/x", "/anything"])
def test_write_methods_are_refused(client, method, path):
    response = client.request(method, path, content=b"{}")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert "read-only" in response.text


def test_run_json_holds_the_card_and_progress(client, recorded):
    _, run_id = recorded
    doc = client.get(f"/api/runs/{run_id}").json()
    assert doc["progress"]["rounds_completed"] == 3
    assert doc["progress"]["last_round"]["number"] == 3
    keys = [s["key"] for s in doc["card"]["sections"]]
    assert keys[:3] == ["run", "federation", "rounds"]


def test_live_json_names_the_plots_the_page_holds(client, recorded):
    _, run_id = recorded
    live = client.get(f"/api/runs/{run_id}/live").json()
    page = client.get(f"/runs/{run_id}").text
    shown = set(re.findall(r'<div class="plot" id="([^"]+)"', page))
    assert set(live["figures"]) == shown
    assert live["status"] == "completed"
    assert live["fraction"] == 1.0
    privacy = [k for k in live["figures"] if "privacy" in k or "epsilon" in k]
    assert privacy, sorted(live["figures"])


def test_an_unknown_run_is_404_in_html_and_json(client):
    page = client.get("/runs/20990101-000000-000000")
    assert page.status_code == 404
    assert "All runs" in page.text
    api = client.get("/api/runs/20990101-000000-000000/live")
    assert api.status_code == 404
    assert "error" in api.json()


def test_openapi_docs_are_not_served(client):
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404


def test_the_app_writes_nothing_to_the_store(recorded, tmp_path: Path):
    store, run_id = recorded
    before = (len(store.events(run_id)), len(store.ledger(run_id)))
    client = TestClient(create_app(store))
    client.get(f"/runs/{run_id}")
    client.get(f"/api/runs/{run_id}/live")
    assert (len(store.events(run_id)), len(store.ledger(run_id))) == before
