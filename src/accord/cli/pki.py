"""``accord pki``: the federation's certificate authority and a site's enrolment.

The CA's operator runs ``init`` once, ``sign`` for each site's request, ``revoke``
and ``list``; each site runs ``request`` where it will run, so its private key never
leaves it. The CA passphrase comes from ``--passphrase-file``, the
``ACCORD_CA_PASSPHRASE`` environment variable or a hidden prompt, never from a
command-line argument, which other users see in the process list and shell history
keeps. The PKI needs the ``deploy`` extra; it is imported only when a command runs,
so the rest of ``accord`` works without it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from accord.cli.errors import reported
from accord.cli.text import shown

__all__ = ["PASSPHRASE_ENV", "register"]

#: Environment variable the CA passphrase may come from.
PASSPHRASE_ENV = "ACCORD_CA_PASSPHRASE"

# The values of accord.transport.roster.Role, repeated so that `--help` works
# without the deploy extra; a test checks that the two agree.
RoleName = Literal["participant", "admin", "coordinator", "auditor"]

pki_app = typer.Typer(
    help="The federation's certificate authority: init, request, sign, pin, revoke, "
    "list.",
    no_args_is_help=True,
)
_Ca = Annotated[
    Path, typer.Option("--ca", help="The CA's directory (from `accord pki init`).")
]
_PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help=f"File holding the CA passphrase (else ${PASSPHRASE_ENV}, else a prompt).",
    ),
]


def _passphrase(path: Path | None, *, confirm: bool = False) -> bytes:
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {path}: {exc.strerror}", param_hint="--passphrase-file"
            ) from exc
    elif (env := os.environ.get(PASSPHRASE_ENV)) is not None:
        text = env
    else:
        text = typer.prompt(
            "CA passphrase", hide_input=True, confirmation_prompt=confirm
        )
    return text.encode()


@pki_app.command("init")
def init_command(
    directory: Annotated[Path, typer.Argument(help="New folder for the CA.")],
    federation: Annotated[
        str, typer.Option("--federation", help="The federation's name.")
    ],
    days: Annotated[
        int, typer.Option("--days", help="Validity of the CA certificate.")
    ] = 3650,
    passphrase_file: _PassphraseFile = None,
) -> None:
    """Create the federation's CA; its key is encrypted with a passphrase."""
    passphrase = _passphrase(passphrase_file, confirm=True)
    with reported():
        from accord.transport import pki

        info = pki.init_ca(
            directory, federation=federation, passphrase=passphrase, days=days
        )
    Console().print(
        f"created the CA of [bold]{shown(info.federation)}[/] (id "
        f"{info.federation_id}) in {shown(info.directory)}\n"
        f"CA fingerprint (SHA-256): {info.fingerprint}\n"
        f"Give {shown(info.directory / pki.CA_CERT)} to every site; keep the "
        "passphrase and ca.key safe.",
        highlight=False,
    )


@pki_app.command("request")
def request_command(
    name: Annotated[str, typer.Argument(help="This site's name in the federation.")],
    directory: Annotated[
        Path, typer.Option("--dir", help="This site's identity folder.")
    ],
    role: Annotated[RoleName, typer.Option("--role", help="Role asked for.")] = (
        "participant"
    ),
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host", help="Coordinator only: a DNS name or IP it is reached at."
        ),
    ] = None,
) -> None:
    """At a site: create its private key (kept here) and a signing request."""
    with reported():
        from accord.transport import pki

        csr = pki.request(directory, name, role=role, hosts=host or ())
    keys = f"{directory / pki.KEY} (private: it stays here)"
    returned = f"the {pki.CERT} and {pki.CA_CERT}"
    if role == "participant":  # its identity key too
        keys = f"{directory / pki.KEY}, {directory / pki.IDENTITY_KEY} (private: "
        keys += "they stay here)"
        returned = f"the {pki.CERT}, {pki.IDENTITY_CERT} and {pki.CA_CERT}"
    Console().print(
        f"wrote {keys} and {csr}.\n"
        f"Send {csr} to the federation's operator; put {returned} they return in "
        f"{directory}.",
        highlight=False,
    )


@pki_app.command("sign")
def sign_command(
    csr: Annotated[Path, typer.Argument(help="The site's request.csr.")],
    ca: _Ca,
    role: Annotated[RoleName, typer.Option("--role", help="Role to certify.")],
    days: Annotated[
        int, typer.Option("--days", help="Validity of the certificate.")
    ] = 365,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Certificate file (default: cert.pem by the CSR)."),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Revoke the name's current certificate."),
    ] = False,
    passphrase_file: _PassphraseFile = None,
) -> None:
    """Issue a certificate for a site's request and add it to the roster."""
    passphrase = _passphrase(passphrase_file)
    with reported():
        from accord.transport import pki

        cert = pki.sign(
            ca,
            csr,
            passphrase=passphrase,
            role=role,
            days=days,
            out=out,
            replace=replace,
        )
        identity = pki.read_roster(ca).entries[-1].identity_serial is not None
    files, keys = f"it and {cert.parent / pki.CA_CERT}", "key"
    if identity:
        files = (
            f"it, {cert.parent / pki.IDENTITY_CERT} (its identity certificate) and "
            f"{cert.parent / pki.CA_CERT}"
        )
        keys = "keys"
    pinned = cert.parent / "coordinator.pem"
    if role == "participant":
        files += (
            f", with {pinned} (the coordinator it trusts) and {cert.parent / pki.CRL}"
            if pinned.exists()
            else f", with {cert.parent / pki.CRL}; no coordinator is enrolled yet, so "
            "the site must pin it later (accord pki pin)"
        )
    Console().print(
        f"issued {cert} ({role}); return {files} to the site, to put next to its "
        f"{keys}.",
        highlight=False,
    )


@pki_app.command("pin")
def pin_command(
    directory: Annotated[Path, typer.Argument(help="This site's identity folder.")],
    certificate: Annotated[
        Path,
        typer.Option("--certificate", help="The coordinator's cert.pem to trust."),
    ],
    crl: Annotated[
        Path | None,
        typer.Option("--crl", help="The CA's crl.pem, if newer than the site's."),
    ] = None,
    add: Annotated[
        bool,
        typer.Option("--add", help="Keep the certificates already pinned (renewal)."),
    ] = False,
) -> None:
    """At a site: trust this coordinator certificate (after a renewal, say)."""
    with reported():
        from accord.transport.coordinator_pin import PIN, pin_coordinator

        try:
            cert_pem = certificate.read_bytes()
            crl_pem = crl.read_bytes() if crl is not None else None
        except OSError as exc:
            why = f"cannot read {exc.filename}: {exc.strerror}"
            raise typer.BadParameter(why) from exc
        pinned = pin_coordinator(directory, cert_pem, add=add, crl_pem=crl_pem)
    Console().print(
        f"{directory / PIN} now pins {len(pinned)} coordinator certificate(s): "
        + ", ".join(f[:16] for f in pinned),
        highlight=False,
    )


@pki_app.command("revoke")
def revoke_command(
    name: Annotated[str, typer.Argument(help="The site whose certificate to revoke.")],
    ca: _Ca,
    passphrase_file: _PassphraseFile = None,
) -> None:
    """Revoke a site's certificate; the coordinator refuses it from then on."""
    passphrase = _passphrase(passphrase_file)
    with reported():
        from accord.transport import pki

        revoked = pki.revoke(ca, name, passphrase=passphrase)
    serials = ", ".join(f"{e.serial:x}" for e in revoked)
    Console().print(
        f"revoked {shown(repr(name))} (serial {serials}); {shown(ca / pki.CRL)} "
        f"and {shown(ca / pki.ROSTER)} were updated: copy them to the coordinator "
        "if it reads a copy.",
        highlight=False,
    )


@pki_app.command("list")
def list_command(
    ca: _Ca,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The roster: every certificate the CA issued, and its status."""
    with reported():
        from accord.transport import pki

        roster = pki.read_roster(ca)
    now = datetime.now(UTC)
    if as_json:
        rows = [{**e.to_json(), "status": e.status(now)} for e in roster.entries]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        title=f"roster of {shown(roster.federation)} ({shown(roster.federation_id)})"
    )
    for col in ("name", "role", "status", "serial", "not after (UTC)", "fingerprint"):
        table.add_column(col)
    for e in roster.entries:
        status: str = e.status(now)
        if e.revoked_at is not None:
            status += f" {e.revoked_at:%Y-%m-%d %H:%M}"
        table.add_row(
            shown(e.name),
            shown(e.role),
            status,
            f"{e.serial:x}"[:16],
            f"{e.not_after:%Y-%m-%d %H:%M}",
            e.fingerprint[:16],
        )
    Console().print(table)


@pki_app.command("verify")
def verify_command(
    cert: Annotated[Path, typer.Argument(help="A certificate (PEM) to check.")],
    trust: Annotated[
        Path,
        typer.Option("--trust", help="CA folder, or a copy of its public files."),
    ],
    server: Annotated[
        bool, typer.Option("--server", help="Check it as a coordinator's certificate.")
    ] = False,
) -> None:
    """Check a certificate as the coordinator would; exit 5 if it would be refused."""
    with reported():
        from accord.transport import pki

        try:
            data = cert.read_bytes()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {cert}: {exc.strerror}") from exc
        who = pki.verify_peer(
            data, pki.TrustStore.load(trust), usage="server" if server else "client"
        )
    Console().print(
        f"accepted: {shown(repr(who.name))} ({who.role}), serial {who.serial:x}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``accord pki`` to the application."""
    app.add_typer(pki_app, name="pki")
