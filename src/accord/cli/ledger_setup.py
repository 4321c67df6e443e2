"""Who signs a run's ledger at the command line, and what its first entry records.

``accord simulate`` signs with the store's simulation key (:func:`key_folder`)
(:func:`~accord.ledger.writer.simulation_signer`: integrity, not identity);
``accord coordinator`` with its certificate's key (``--pki DIR`` or ``--cert`` and
``--key``), and records each participant's certificate fingerprints from the
roster next to it; with ``--insecure`` (loopback, no PKI) it signs as a simulation
does. Without the ``cryptography`` package (the ``deploy`` extra) a simulation runs
without a ledger and says so in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from accord import __version__
from accord.config import FedConfig
from accord.coordinator.lineage import LedgerSetup, task_code

__all__ = ["deployment_ledger", "key_folder", "simulation_ledger"]

logger = logging.getLogger(__name__)


def simulation_ledger(config: FedConfig) -> LedgerSetup | None:
    """The ledger of a simulation: signed with the store folder's simulation key."""
    try:
        from accord.ledger.writer import simulation_signer
    except ImportError:
        logger.warning(
            "this run keeps no ledger: signing it needs the cryptography package "
            "(pip install 'accord[deploy]')"
        )
        return None
    signer = simulation_signer(key_folder(config))
    return LedgerSetup(signer, __version__, task_code(config))


def key_folder(config: FedConfig) -> Path | None:
    """Where the simulation key lives: beside the store's database.

    The store folder by default; the folder of a SQLite file given by URL; None
    (a key for this process only) for a SQLite database in memory. A server
    database (PostgreSQL) keeps its key in the store folder.
    """
    from sqlalchemy import make_url

    if config.store.url is None:
        return Path(config.store.directory)
    url = make_url(config.store.url)
    if url.get_backend_name() != "sqlite":
        return Path(config.store.directory)
    if not url.database or url.database == ":memory:":
        return None
    return Path(url.database).parent


def deployment_ledger(
    config: FedConfig, identity: Any, trust_dir: Path | None
) -> LedgerSetup:
    """The ledger of ``accord coordinator``: signed with its certificate's key.

    ``identity`` holds the PEM key and certificate (None with ``--insecure``);
    ``trust_dir`` the ``roster.json`` whose fingerprints the first entry records.
    """
    from accord.ledger.writer import certificate_signer, simulation_signer

    if identity is None:
        signer = simulation_signer(key_folder(config))
    else:
        signer = certificate_signer(identity.key_pem, identity.cert_pem)
    return LedgerSetup(
        signer, __version__, task_code(config), roster=_roster_of(trust_dir)
    )


def _roster_of(
    trust_dir: Path | None,
) -> Callable[[Sequence[str]], list[dict[str, Any]]]:
    """Each participant's certificate fingerprints, from ``roster.json`` if any."""

    def describe(names: Sequence[str]) -> list[dict[str, Any]]:
        from accord.transport.roster import Roster

        path = None if trust_dir is None else trust_dir / "roster.json"
        roster = None
        if path is not None and path.is_file():
            roster = Roster.from_bytes(path.read_bytes(), source=str(path))
        out: list[dict[str, Any]] = []
        for name in names:
            entry = None if roster is None else roster.current(name)
            out.append(
                {
                    "participant": name,
                    "certificate": None if entry is None else entry.fingerprint,
                    "identity": None if entry is None else entry.identity_fingerprint,
                }
            )
        return out

    return describe
