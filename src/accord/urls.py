"""Database URLs as records and messages may show them: without their secrets.

A store URL may carry a password (``postgresql://user:secret@host/db``, or
``?password=secret``), and the URL travels further than the connection: the run's
recorded configuration (``accord runs show``, exports, the dashboard), log lines and
error messages. :func:`hide_password` replaces each secret with ``***``, as
SQLAlchemy's ``URL.render_as_string(hide_password=True)`` does. It is written with
the standard library rather than SQLAlchemy because :mod:`accord.config`, which
records the URL, is part of the pure core that imports no database code; and it
hides more, never less, than SQLAlchemy would: everything between the first ``:``
of the user part and the last ``@`` before the host.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlsplit

__all__ = ["HIDDEN", "hide_password"]

#: What a hidden secret is shown as (SQLAlchemy shows the same).
HIDDEN = "***"
# Query parameters that libpq and the common drivers take as a secret.
_SECRET_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword"})


def hide_password(url: str) -> str:
    """``url`` with its password (in the user part or the query) shown as ``***``.

    A URL without a secret comes back unchanged, character for character; a text
    that is not a URL at all is shown as a placeholder rather than echoed, since it
    may be a secret typed in the wrong place.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<not a URL>"
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    hidden_user = at and ":" in userinfo
    if hidden_user:
        netloc = f"{userinfo.split(':', 1)[0]}:{HIDDEN}@{host}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    hidden_query = any(key.lower() in _SECRET_KEYS for key, _ in pairs)
    if not (hidden_user or hidden_query):
        return url
    query = parts.query
    if hidden_query:
        query = "&".join(
            f"{quote(key)}={HIDDEN if key.lower() in _SECRET_KEYS else quote(value)}"
            for key, value in pairs
        )
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    if query:
        shown += f"?{query}"
    if parts.fragment:
        shown += f"#{parts.fragment}"
    return shown
