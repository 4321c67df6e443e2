"""``accord dashboard``: serve a store's runs as read-only web pages.

Bound to 127.0.0.1 by default. Any other ``--host`` needs ``--pki DIR`` (the
server's key and certificate) and ``--trust DIR`` (the federation's CA): clients
then present an admin or auditor certificate of that CA (mutual TLS, no
passwords). Exit 2 for a non-loopback address without TLS or an unusable
certificate, 3 when the ``dashboard`` or ``report`` extra is missing, 4 when the
store cannot be opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from accord.cli.errors import reported
from accord.cli.text import shown
from accord.errors import ConfigError

__all__ = ["dashboard_command", "register"]


def dashboard_command(
    store: Annotated[
        str | None,
        typer.Option("--store", help="SQLAlchemy URL (default: the local store)."),
    ] = None,
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder of the store.")
    ] = Path("accord-runs"),
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on; not loopback needs --pki and --trust."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8765,
    pki: Annotated[
        Path | None,
        typer.Option("--pki", help="The server's identity folder (key.pem, cert.pem)."),
    ] = None,
    trust: Annotated[
        Path | None,
        typer.Option(
            "--trust", help="The federation's CA folder (ca.pem, crl.pem, roster.json)."
        ),
    ] = None,
) -> None:
    """Serve the store's runs, live, as read-only web pages with plots."""
    with reported():
        from accord.dashboard.server import (
            TlsFiles,
            check_binding,
            listen,
            server_config,
        )

        if (pki is None) != (trust is None):
            raise ConfigError(
                "mutual TLS needs both --pki (the server's certificate) and --trust "
                "(the CA its clients' certificates come from)",
                key="--pki" if pki is None else "--trust",
            )
        tls = None if pki is None or trust is None else TlsFiles(pki, trust)
        check_binding(host, tls)  # before the store is opened or anything imported
        from accord.dashboard.app import create_app
        from accord.errors import StoreError
        from accord.store import open_store

        if store is None and not (directory / "accord.db").is_file():
            raise StoreError(
                f"no store at {directory / 'accord.db'}: run `accord simulate` "
                "there first, or name the store with --dir DIR or --store URL"
            )

        db = open_store(store, default_dir=directory)
        try:
            config = server_config(create_app(db), host=host, port=port, tls=tls)
            with listen(host, port) as sock:
                scheme = "https" if tls else "http"
                named = f"[{host}]" if ":" in host else host
                bound = sock.getsockname()[1]
                url = shown(f"{scheme}://{named}:{bound}/")
                Console(stderr=True).print(
                    f"accord dashboard (read-only) on {url} (Ctrl-C stops it)",
                    highlight=False,
                )
                import uvicorn

                uvicorn.Server(config).run(sockets=[sock])
        finally:
            db.close()


def register(app: typer.Typer) -> None:
    """Add ``accord dashboard`` to the application."""
    app.command("dashboard")(dashboard_command)
