"""``accord audit``: export a run's ledger, and verify an export offline.

``accord audit export RUN -o ledger.jsonl`` writes the run's signed entries and the
sites' receipts as one file (:mod:`accord.ledger.export`). ``accord audit verify
ledger.jsonl --trust ca/ [--model final.safetensors]`` checks it with nothing but
the federation's CA certificate (:mod:`accord.ledger.verify`): exit 0 when it
holds, 6 when any entry is broken (each one named), 2 when the file or CA cannot be
read. Without ``--trust`` it checks a simulation ledger, for integrity only
(``--key`` pins it to its store's key). ``accord audit privacy RUN`` attacks a
run's final model with membership inference (:mod:`accord.cli.privacy_audit`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from accord.cli.errors import reported
from accord.cli.text import shown
from accord.errors import LedgerError, LedgerInvalid

__all__ = ["register", "trust_anchors"]

audit_app = typer.Typer(
    help="The signed ledger of a run: export, verify; its privacy: membership "
    "inference."
)
_STORE = typer.Option(
    None, "--store", help="SQLAlchemy URL (default: the local store)."
)
_DIR = typer.Option(Path("accord-runs"), "--dir", help="Folder of the default store.")


@audit_app.command("export")
def export_command(
    run: Annotated[
        str, typer.Argument(help="Run id, a unique prefix of one, or latest.")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write (default: stdout)."),
    ] = None,
    store: str | None = _STORE,
    directory: Path = _DIR,
) -> None:
    """Write the run's ledger and receipts as one JSON Lines file."""
    from accord.cli.runs import resolve_run
    from accord.ledger.export import disagreements, export_run
    from accord.store import open_store

    with reported():
        db = open_store(store, default_dir=directory)
        try:
            run_id = resolve_run(db, run)
            entries, receipts = db.ledger(run_id), db.receipts(run_id)
            found = disagreements(
                db.get_run(run_id), db.rounds(run_id), entries, db.events(run_id)
            )
        finally:
            db.close()
        if found:
            raise LedgerError(
                f"run {run_id}'s ledger disagrees with the store's record of it ("
                + "; ".join(found)
                + "): entries were removed from the ledger or rows edited in the "
                "database. Nothing was exported; restore the database from a backup"
            )
        text = export_run(run_id, entries, receipts)
        if output is None:
            typer.echo(text, nl=False)
            return
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise LedgerError(f"cannot write {output}: {exc.strerror or exc}") from exc
    Console(stderr=True).print(
        f"wrote {len(entries)} entries and {len(receipts)} receipt(s) of run "
        f"{run_id} to {shown(str(output))}",
        highlight=False,
    )


def trust_anchors(trust: Path) -> list[Any]:
    """The federation's CA certificates from ``--trust`` (a folder or a PEM)."""
    from cryptography import x509

    path = trust / "ca.pem" if trust.is_dir() else trust
    try:
        return list(x509.load_pem_x509_certificates(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise LedgerError(
            f"cannot read the federation's CA certificate {path}: {exc}; pass "
            "--trust with the folder that holds ca.pem, or the file itself"
        ) from exc


def _key_id(path: Path) -> str:
    """The key id of the simulation key in ``path`` (private or public PEM)."""
    from cryptography.hazmat.primitives import serialization

    from accord.ledger.dsse import key_id

    try:
        data = path.read_bytes()
        try:
            public: Any = serialization.load_pem_private_key(data, None).public_key()
        except (ValueError, TypeError):
            public = serialization.load_pem_public_key(data)
    except (OSError, ValueError) as exc:
        raise LedgerError(f"cannot read the simulation key {path}: {exc}") from exc
    return key_id(public)


def _model_file(path: Path) -> Any:
    from accord.ledger.verify import ModelFile
    from accord.store import CheckpointStore

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LedgerError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:  # an accord checkpoint: its model's digests, whatever else the file holds
        params = CheckpointStore(path.parent).load(path)
    except Exception:  # noqa: BLE001 - any other file is compared by its bytes
        return ModelFile(str(path), hashlib.sha256(data).hexdigest(), None)
    return ModelFile(
        str(path),
        hashlib.sha256(data).hexdigest(),
        params.digest(),
        params.legacy_digest(),
    )


@audit_app.command("verify")
def verify_command(
    export: Annotated[Path, typer.Argument(help="A file from `accord audit export`.")],
    trust: Annotated[
        Path | None,
        typer.Option(
            "--trust",
            help="The federation's CA: a folder with ca.pem, or the PEM file. "
            "Without it, a simulation ledger is checked for integrity only.",
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="A model file the run's closing entry must name."),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help="A simulation ledger's key (the store's ledger-key.pem): the "
            "ledger must be signed with it.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document.")
    ] = False,
) -> None:
    """Check an export's chain, signatures, receipts and final model, offline."""
    from accord.ledger.export import parse_export
    from accord.ledger.verify import verify_export

    with reported():
        try:
            text = export.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LedgerError(f"cannot read {export}: {exc}") from exc
        parsed = parse_export(text, source=str(export))
        anchors = None if trust is None else trust_anchors(trust)
        file = None if model is None else _model_file(model)
        pinned = None if key is None else _key_id(key)
        verdict = verify_export(
            parsed, anchors=anchors, model=file, simulation_key=pinned
        )
        if as_json:
            typer.echo(json.dumps(_as_json(verdict), indent=2))
        else:
            _print(verdict, model)
        if not verdict.ok:
            raise LedgerInvalid(tuple(str(p) for p in verdict.problems))


def _as_json(verdict: Any) -> dict[str, Any]:
    return {
        "run": verdict.run,
        "ok": verdict.ok,
        "entries": verdict.entries,
        "rounds": verdict.rounds,
        "status": verdict.status,
        "final_model": verdict.final_model,
        "identity": verdict.identity,
        "signers": list(verdict.signers),
        "receipts": verdict.receipts,
        "problems": [str(p) for p in verdict.problems],
    }


def _print(verdict: Any, model: Path | None) -> None:
    out = Console(highlight=False, soft_wrap=True)
    out.print(
        f"run {shown(verdict.run)}: {verdict.entries} entries, {verdict.rounds} "
        f"rounds, closed {shown(verdict.status or '(not closed)')}"
    )
    for signer in verdict.signers:
        out.print(f"signed by {shown(signer)}")
    if not verdict.identity:
        out.print(
            "integrity only, no identity: a simulation ledger is signed with a key "
            "it carries itself; pin it with --key <store>/ledger-key.pem"
        )
    if verdict.receipts:
        out.print(f"{verdict.receipts} site receipt(s) hold")
    if verdict.final_model is not None:
        held = f" = {shown(str(model))}" if model is not None and verdict.ok else ""
        out.print(f"final model {shown(verdict.final_model)}{held}")
    for problem in verdict.problems:
        out.print(f"[bold red]broken:[/] {shown(str(problem))}")
    if verdict.ok:
        out.print(
            "[bold green]verified:[/] the chain is whole and every signature holds"
        )


def register(app: typer.Typer) -> None:
    """Add ``accord audit`` (with ``privacy``) to the application."""
    from accord.cli.privacy_audit import privacy_command

    audit_app.command("privacy")(privacy_command)
    app.add_typer(audit_app, name="audit")
