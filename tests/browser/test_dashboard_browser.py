"""The dashboard in a real headless Chromium: it draws, it follows a live run, and
it lets nobody in without a certificate.

A simulation runs in a thread and writes to the same SQLite store the dashboard
reads, as ``accord simulate`` beside ``accord dashboard`` would; a gate in its
observer holds it after each round until the test lets it go on, so the test
sees each round arrive rather than racing a timer.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("plotly")

from accord.config import load_config
from accord.dashboard.app import create_app
from accord.simulation.engine import simulate
from accord.store import SqlStore

from .conftest import serving

FED = """
[federation]
name = "browser-test"
rounds = {rounds}
seed = 7
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[evaluation]
federated = true
[simulation]
workers = 0
[store]
directory = "{dir}"
"""

_POINTS = "document.getElementById('plot-global').data[0].x.length"
_STATUS = "document.getElementById('progress-status').textContent"


def _until(page: Any, expression: str, wanted: object, timeout: float = 30) -> None:
    """Wait until ``expression`` is ``wanted`` in the page.

    Polled from here: Playwright's own wait_for_function evaluates a string,
    which the dashboard's CSP (no eval) refuses, as it should.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = page.evaluate(expression)
        except Exception:  # the page is reloading
            value = None
        if value == wanted:
            return
        assert time.monotonic() < deadline, f"{expression} is {value!r}, not {wanted!r}"
        time.sleep(0.1)


class _Gate:
    """A run observer that holds the run after each recorded round."""

    def __init__(self) -> None:
        self.recorded = threading.Semaphore(0)
        self.go_on = threading.Semaphore(0)

    def round_started(self, number: int, selected: Any) -> None:
        pass

    def participant_finished(self, number: int, outcome: Any) -> None:
        pass

    def round_finished(self, summary: Any) -> None:
        self.recorded.release()
        assert self.go_on.acquire(timeout=120), "the test never let the run go on"


def _config(tmp_path: Path, rounds: int) -> Any:
    path = tmp_path / "fed.toml"
    path.write_text(FED.format(rounds=rounds, dir=tmp_path / "runs"))
    return load_config(path)


def test_pages_render_with_plots(browser, tmp_path, page_errors):
    url = f"sqlite:///{tmp_path / 'accord.db'}"
    with SqlStore(url) as store:
        run_id = simulate(_config(tmp_path, 3), store=store).run.run_id
    with SqlStore(url) as store, serving(create_app(store)) as port:
        page = browser.new_page()
        errors = page_errors(page)
        page.goto(f"http://127.0.0.1:{port}/")
        page.click(f"text={run_id}")
        page.wait_for_selector("#plot-global .main-svg")
        assert page.url.endswith(f"/runs/{run_id}")
        assert page.evaluate(_POINTS) == 3
        assert page.locator("#progress-status").inner_text() == "completed"
        assert page.locator("#plot-sites .main-svg").count() >= 1
        assert errors == [], errors  # no CSP refusal, no script error
        page.close()


def test_curves_update_while_a_simulated_run_progresses(browser, tmp_path, page_errors):
    url = f"sqlite:///{tmp_path / 'accord.db'}"
    rounds, gate, started = 4, _Gate(), threading.Event()
    run_ids: list[str] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with SqlStore(url) as store:
                simulate(
                    _config(tmp_path, rounds),
                    store=store,
                    observer=gate,
                    on_run=lambda r: (run_ids.append(r), started.set()),
                )
        except BaseException as exc:  # reported by the test, not lost in a thread
            failures.append(exc)
            gate.recorded.release()

    simulation = threading.Thread(target=run, daemon=True)
    simulation.start()
    try:
        assert gate.recorded.acquire(timeout=120) and not failures, failures
        with SqlStore(url) as store, serving(create_app(store, poll_ms=250)) as port:
            page = browser.new_page()
            errors = page_errors(page)
            page.goto(f"http://127.0.0.1:{port}/runs/{run_ids[0]}")
            page.wait_for_selector("#plot-global .main-svg")
            assert page.evaluate(_POINTS) == 1
            assert page.locator("#progress-status").inner_text() == "running"
            for seen in range(2, rounds + 1):
                gate.go_on.release()
                assert gate.recorded.acquire(timeout=120) and not failures, failures
                if seen < rounds:  # the last one ends the run: the page reloads
                    _until(page, _POINTS, seen)
                    assert page.locator("#progress-rounds").inner_text() == str(seen)
            gate.go_on.release()
            simulation.join(timeout=120)
            assert not failures, failures
            _until(page, _STATUS, "completed")
            page.wait_for_selector("#plot-global .main-svg")
            assert page.evaluate(_POINTS) == rounds
            assert errors == []
            page.close()
    finally:
        for _ in range(rounds):
            gate.go_on.release()
        simulation.join(timeout=60)


def test_a_browser_without_a_certificate_is_refused(browser, tmp_path):
    pytest.importorskip("cryptography")
    from playwright.sync_api import Error

    from accord.dashboard.server import TlsFiles
    from accord.store import MemoryStore
    from accord.transport import pki

    passphrase = b"browser test"
    ca = tmp_path / "ca"
    pki.init_ca(ca, federation="browser", passphrase=passphrase)
    folders = {}
    for name, role, hosts in (
        ("dashboard", "coordinator", ["127.0.0.1"]),
        ("audit-office", "auditor", []),
        ("site-1", "participant", []),
    ):
        csr = pki.request(tmp_path / name, name, role=role, hosts=hosts)
        pki.sign(ca, csr, passphrase=passphrase, role=role)
        folders[role] = tmp_path / name
    store = MemoryStore()
    store.create_run(name="secret-run", config={}, seed=0, rounds_planned=1)
    tls = TlsFiles(folders["coordinator"], ca)
    with serving(create_app(store), tls=tls) as port:
        origin = f"https://127.0.0.1:{port}"

        def context(role: str | None) -> Any:
            certificates = (
                []
                if role is None
                else [
                    {
                        "origin": origin,
                        "certPath": str(folders[role] / "cert.pem"),
                        "keyPath": str(folders[role] / "key.pem"),
                    }
                ]
            )
            return browser.new_context(
                ignore_https_errors=True, client_certificates=certificates
            )

        anonymous = context(None)
        with pytest.raises(Error, match="ERR_"):
            anonymous.new_page().goto(origin + "/")
        anonymous.close()

        participant = context("participant")
        response = participant.new_page().goto(origin + "/")
        assert response is not None and response.status == 403
        assert "secret-run" not in response.text()
        participant.close()

        auditor = context("auditor")
        page = auditor.new_page()
        response = page.goto(origin + "/")
        assert response is not None and response.status == 200
        assert page.locator("#runs").inner_text().count("secret-run") == 1
        auditor.close()
