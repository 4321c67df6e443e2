"""The dashboard's web application: server-rendered pages and JSON, read-only.

Routes (GET and HEAD only; any other method is answered 405 before routing, on
every path, so no handler added later can become a way to write):

- ``/``: the runs, newest first; ``/api/runs``: the same as JSON.
- ``/runs/{run_id}``: the run's model card with its plots, its refusals and the
  baseline comparison; while the run is running the page polls
  ``/api/runs/{run_id}/live`` and redraws its progress and curves.
- ``/api/runs/{run_id}``: the card as JSON (as ``accord report --json``), with
  the progress.
- ``/static/...``: the page's script and style, and plotly.js as the installed
  ``plotly`` package ships it: nothing comes from a CDN.

Every response carries :data:`CONTENT_SECURITY_POLICY` (scripts and styles from
this server only, no inline script, no frames, no form posts); none but the
static assets is cached.
The store is read under a lock: one request at a time reads it, which a
dashboard's load allows, and no store needs to be safe across threads.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from accord.errors import MissingExtraError, RunNotFound
from accord.report.card import build_card
from accord.report.document import card_json
from accord.report.inputs import CardInputs
from accord.report.sources import gather
from accord.store.protocol import RunStore

try:
    import jinja2  # noqa: F401  (the templates' engine: named if missing)
    from fastapi import FastAPI, HTTPException, Request, Response
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
    from fastapi.templating import Jinja2Templates
    from markupsafe import Markup
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        extra="dashboard", package=exc.name or "fastapi", feature="the dashboard"
    ) from exc

from accord.dashboard import views

__all__ = ["CONTENT_SECURITY_POLICY", "READ_METHODS", "create_app"]

logger = logging.getLogger(__name__)

#: The SHA-256 of an empty ``<style>`` element: plotly.js creates empty ones and
#: fills them through the CSSOM (``insertRule``), which the CSP does not govern.
_EMPTY_STYLE = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
#: Only this server's own script and style run, and fetches go back to it alone:
#: no inline script, no eval, no inline style but plotly.js's empty elements, no
#: frames, no form posts. (plotly.js also tries to inject the stylesheet of
#: MapLibre, for map traces the dashboard never draws; the CSP refuses it.)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; "
    f"style-src 'self' {_EMPTY_STYLE}; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
#: The methods the dashboard answers; every other one is refused with 405.
READ_METHODS = frozenset({"GET", "HEAD"})
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_HERE = Path(__file__).parent
_Handler = TypeVar("_Handler", bound=Callable[..., Any])
#: How often a page of a running run polls for progress (milliseconds).
POLL_MS = 2000


def _plotly_js() -> bytes:
    try:
        source = resources.files("plotly") / "package_data" / "plotly.min.js"
        return source.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise MissingExtraError(
            extra="report", package="plotly", feature="the dashboard's plots"
        ) from exc


def create_app(store: RunStore, *, poll_ms: int = POLL_MS) -> FastAPI:
    """The dashboard over ``store``, which it only reads (see the module)."""
    lock = threading.Lock()
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    assets = {
        "plotly.min.js": (_plotly_js(), "text/javascript; charset=utf-8"),
        "dashboard.js": (
            (_HERE / "static" / "dashboard.js").read_bytes(),
            "text/javascript; charset=utf-8",
        ),
        "dashboard.css": (
            (_HERE / "static" / "dashboard.css").read_bytes(),
            "text/css; charset=utf-8",
        ),
    }
    app = FastAPI(
        title="accord dashboard",
        docs_url=None,  # the interactive docs load their assets from a CDN
        redoc_url=None,
        openapi_url=None,
    )

    @app.middleware("http")
    async def read_only(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.method not in READ_METHODS:
            response: Response = PlainTextResponse(
                "the dashboard is read-only: only GET and HEAD are answered\n",
                status_code=405,
                headers={"Allow": "GET, HEAD"},
            )
        else:
            response = await call_next(request)
        response.headers.update(_HEADERS)
        if request.url.path.startswith("/static/") and response.status_code == 200:
            # plotly.js is megabytes: a browser keeps it for an hour (the run's
            # data, in pages and JSON, is never cached)
            response.headers["Cache-Control"] = "private, max-age=3600"
        return response

    def read(path: str, **options: Any) -> Callable[[_Handler], _Handler]:
        """A route answering GET and HEAD (FastAPI's ``get`` answers GET only)."""
        return app.api_route(path, methods=["GET", "HEAD"], **options)

    @contextmanager
    def reading() -> Iterator[RunStore]:
        with lock:
            try:
                yield store
            except RunNotFound as exc:
                raise HTTPException(status_code=404, detail=str(exc)) from exc

    def inputs(run_id: str, *, ledger: bool) -> CardInputs:
        with reading() as db:
            if ledger:
                return gather(db, run_id)
            return CardInputs(
                run=db.get_run(run_id),
                rounds=tuple(db.rounds(run_id)),
                events=tuple(db.events(run_id)),
            )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        detail = str(exc.detail)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": detail}, status_code=exc.status_code)
        page = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<link rel="stylesheet" href="/static/dashboard.css">'
            f"<title>{exc.status_code}</title></head><body><h1>{exc.status_code}"
            f'</h1><p>{html.escape(detail)}</p><p><a href="/">All runs</a></p>'
            "</body></html>"
        )
        return HTMLResponse(page, status_code=exc.status_code)

    @read("/static/{name}")
    def static(name: str) -> Response:
        if name not in assets:
            raise HTTPException(status_code=404, detail=f"no asset {name!r}")
        body, media = assets[name]
        return Response(body, media_type=media)

    @read("/", response_class=HTMLResponse)
    def runs_page(request: Request) -> Response:
        with reading() as db:
            runs = [views.run_row(r) for r in db.list_runs()]
        return templates.TemplateResponse(request, "runs.html", {"runs": runs})

    @read("/api/runs")
    def runs_json() -> list[dict[str, Any]]:
        with reading() as db:
            return [views.run_row(r) for r in db.list_runs()]

    @read("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str) -> Response:
        from accord.report.html import render_block

        data = inputs(run_id, ledger=True)
        card = build_card(data)
        plot_ids: dict[str, int] = {}
        sections = [
            {
                "key": s.key,
                "title": s.title,
                # render_block escapes every string of the card
                "html": Markup("\n".join(render_block(b, plot_ids) for b in s.blocks)),
            }
            for s in views.page_sections(card, data)
        ]
        context = {
            "title": card.title,
            "progress": views.progress(data.run, data.rounds),
            "sections": sections,
            "poll_ms": poll_ms,
        }
        return templates.TemplateResponse(request, "run.html", context)

    @read("/api/runs/{run_id}")
    def run_json(run_id: str) -> dict[str, Any]:
        data = inputs(run_id, ledger=True)
        return {
            "progress": views.progress(data.run, data.rounds),
            "card": card_json(build_card(data)),
        }

    @read("/api/runs/{run_id}/live")
    def run_live(run_id: str) -> dict[str, Any]:
        return views.live(inputs(run_id, ledger=False))

    return app
