"""A real headless Chromium (Debian's) driven by Playwright, and a dashboard to visit.

Every test here skips, saying why, when ``/usr/bin/chromium`` is absent (``.ci/run``
installs it) or Playwright is not installed; nothing else makes them skip.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("ACCORD_CHROMIUM", "/usr/bin/chromium"))
#: Headless, and nothing reaching outside the machine (updates, sync, metrics).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's chromium package "
            "(apt-get install chromium; .ci/run does) to run the browser tests"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (dev extra)"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def serving(app: Any, *, tls: Any = None) -> Iterator[int]:
    """Serve ``app`` as ``accord dashboard`` does, on an ephemeral loopback port."""
    import uvicorn

    from accord.dashboard.server import listen, server_config

    config = server_config(app, host="127.0.0.1", port=0, tls=tls)
    sock = listen("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "no dashboard"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _expected(message: Any) -> bool:
    """The one refusal every page meets: plotly.js's MapLibre stylesheet.

    plotly.js injects it when it loads, for map traces; the dashboard draws none,
    and its CSP refuses inline styles (accord.dashboard.app says why).
    """
    return "inline style" in message.text and message.location["url"].endswith(
        "/static/plotly.min.js"
    )


@pytest.fixture
def page_errors() -> Callable[[Any], list[str]]:
    """Collect a page's console errors and uncaught exceptions (a CSP refusal)."""

    def watch(page: Any) -> list[str]:
        errors: list[str] = []
        page.on(
            "console",
            lambda m: (
                errors.append(m.text)
                if m.type == "error" and not _expected(m)
                else None
            ),
        )
        page.on("pageerror", lambda e: errors.append(str(e)))
        return errors

    return watch
