"""``accord ckks``: the key holder's CKKS keys for ``secure_aggregation.mode = "ckks"``.

The key holder (a party other than the coordinator's operator) runs ``accord ckks
keys --out DIR`` once per key period. It writes two files:

* ``ckks-secret.bin`` (mode 0600): the secret context. It **decrypts every
  site's update**. It goes to every site, out of band and over a channel as safe
  as the one their certificates came by (``accord participant --ckks-context``),
  and must never reach the coordinator: a coordinator holding it reads every
  update, and CKKS then protects nothing;
* ``ckks-public.bin``: the public context (parameters, no key), for the
  coordinator (``accord coordinator --ckks-public``), which adds ciphertexts with
  it and cannot decrypt them.

:func:`read_context` loads either file where a command needs it, and refuses the
wrong kind; :func:`coordinator_public_context` is ``accord coordinator
--ckks-public``'s check against the run's mode. TenSEAL (the ``ckks`` extra) is
imported only when a command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from accord.cli.errors import reported
from accord.cli.text import shown
from accord.errors import ConfigError, MissingExtraError

if TYPE_CHECKING:
    from accord.config import FedConfig
    from accord.secagg.ckks_keys import CkksParams

__all__ = [
    "PUBLIC_FILE",
    "SECRET_FILE",
    "coordinator_public_context",
    "public_params",
    "read_context",
    "register",
]

SECRET_FILE = "ckks-secret.bin"
PUBLIC_FILE = "ckks-public.bin"

ckks_app = typer.Typer(
    help='The key holder\'s CKKS keys (secure_aggregation.mode = "ckks").',
    no_args_is_help=True,
)


def _keys() -> ModuleType:
    """:mod:`accord.secagg.ckks_keys`, or MissingExtraError naming the extra."""
    try:
        from accord.secagg import ckks_keys
    except ImportError as exc:  # accord.secagg needs the secagg extra
        raise MissingExtraError(
            extra="secagg,ckks",
            package=exc.name or "cryptography",
            feature="CKKS secure aggregation",
        ) from exc
    return ckks_keys


def read_context(path: Path, *, secret: bool, option: str) -> bytes:
    """The context in ``path``, checked to be of the kind asked for (ConfigError)."""
    load_context = _keys().load_context
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", key=option) from None
    try:
        load_context(blob, secret=secret)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}", key=option) from None
    return blob


def coordinator_public_context(cfg: FedConfig, path: Path | None) -> bytes | None:
    """The key holder's public context for a CKKS run, checked; None otherwise."""
    mode = cfg.secure_aggregation.mode
    if mode != "ckks":
        if path is not None:
            raise ConfigError(
                f"--ckks-public is for secure_aggregation.mode = 'ckks'; this "
                f"fed.toml has mode {mode!r}",
                key="--ckks-public",
            )
        return None
    if path is None:
        raise ConfigError(
            "secure_aggregation.mode = 'ckks' needs the key holder's public "
            "context: pass --ckks-public ckks-public.bin (made by `accord ckks "
            "keys`; the sites get ckks-secret.bin)",
            key="--ckks-public",
        )
    return read_context(path, secret=False, option="--ckks-public")


def public_params(public: bytes | None) -> CkksParams | None:
    """The parameters of the public context, which bound the uploads (or None)."""
    if public is None:
        return None
    from accord.secagg.ckks_keys import load_context

    return load_context(public, secret=False).params


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start; never replace a key."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise _exists(path) from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _exists(path: Path) -> ConfigError:
    return ConfigError(
        f"{path} already exists; a new key makes every copy of the old one useless, "
        "so remove the old files first if that is what you want",
        key="--out",
    )


@ckks_app.command("keys")
def keys_command(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for ckks-secret.bin, ckks-public.bin.")
    ],
    poly_modulus_degree: Annotated[
        int, typer.Option("--poly-modulus-degree", help="N: N/2 values a ciphertext.")
    ] = 8192,
    coeff_mod_bit_sizes: Annotated[
        str,
        typer.Option(
            "--coeff-mod-bit-sizes", help="Bits of each prime, comma-separated."
        ),
    ] = "60,40,40,60",
    scale_bits: Annotated[
        int, typer.Option("--scale-bits", help="Values are encoded at 2**bits.")
    ] = 40,
) -> None:
    """Create a CKKS key: ckks-secret.bin (sites only), ckks-public.bin (coordinator).

    ckks-secret.bin (mode 0600) decrypts every site's update: hand it to each site
    out of band, like its certificates, and NEVER to the coordinator, which gets
    ckks-public.bin (accord coordinator --ckks-public).
    """
    with reported():
        keys = _keys()
        try:
            primes = tuple(int(b) for b in coeff_mod_bit_sizes.split(","))
        except ValueError:
            raise ConfigError(
                f"{coeff_mod_bit_sizes!r} is not a comma-separated list of bit sizes",
                key="--coeff-mod-bit-sizes",
            ) from None
        params = keys.CkksParams(poly_modulus_degree, primes, scale_bits)
        secret, public = out / SECRET_FILE, out / PUBLIC_FILE
        for path in (secret, public):
            if path.exists():
                raise _exists(path)
        holder = keys.KeyHolder.create(params)
        out.mkdir(parents=True, exist_ok=True)
        _write_new(secret, holder.secret_context, 0o600)
        _write_new(public, holder.public_context, 0o644)
    Console().print(
        f"wrote {shown(secret)} (secret: it decrypts every update; give it to "
        f"every site out of band, NEVER to the coordinator) and {shown(public)} "
        "(for the coordinator: accord coordinator --ckks-public "
        f"{shown(public.name)}); key id "
        f"{holder.key_id.hex()}",
        highlight=False,
    )


@ckks_app.command("show")
def show_command(
    path: Annotated[Path, typer.Argument(help="A ckks-secret.bin or ckks-public.bin.")],
) -> None:
    """Say whether a context file is secret or public, its key id and parameters."""
    with reported():
        load_context = _keys().load_context
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        try:
            ctx = load_context(blob, secret=False)
        except ConfigError:
            ctx = load_context(blob, secret=True)
    kind = "SECRET (for the sites only)" if ctx.secret else "public (coordinator)"
    p = ctx.params
    Console().print(
        f"{shown(path)}: {kind} CKKS context, key id {ctx.key_id.hex()}; "
        f"N = {p.poly_modulus_degree}, primes {list(p.coeff_mod_bit_sizes)}, "
        f"scale 2**{p.scale_bits}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``accord ckks`` to the application."""
    app.add_typer(ckks_app, name="ckks")
