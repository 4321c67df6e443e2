"""Text from a store or a peer, made safe to print on an operator's terminal.

Commands print with rich, which reads ``[...]`` as markup: a site name or a
failure reason holding ``[/]`` raised ``MarkupError`` (and stopped a run from its
progress display), and ``[link=...]`` drew a hidden hyperlink. Control and
format characters (terminal escape sequences) are replaced as well, since the
store may hold text recorded before intake cleaned it.
"""

from __future__ import annotations

from rich.markup import escape

from accord.records import plain_text

__all__ = ["shown"]


def shown(text: object) -> str:
    """``text`` as rich markup that prints it literally, without control codes."""
    return escape(plain_text(str(text)))
