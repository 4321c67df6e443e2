"""The model card as Markdown (CommonMark with GitHub's pipe tables).

Every string of the card is written through :func:`escape`: what a site sent or
was named (``<script>``, a ``|`` that would split a table cell, ``[x](y)`` that
would be a link) reads as the text it is, in any Markdown viewer. Plots are named
with a pointer to the HTML report, which draws them; their figures are in the
tables beside them.
"""

from __future__ import annotations

import re

from accord.report.document import Facts, ModelCard, Note, Plot, Table

__all__ = ["escape", "render_markdown"]

#: Characters that mean something to Markdown anywhere in a line, escaped with a
#: backslash (CommonMark lets any ASCII punctuation be escaped so). A ``]`` makes
#: a link or an image only when ``(``, ``[`` or ``:`` follows it, so only then is
#: it escaped, and ``[gates]`` reads as written. Lines start with ``-``, ``|`` or
#: ``*`` of the renderer's own, so ``#`` and ``1.`` never start one.
_SPECIAL = re.compile(r"([\\`*<>|&~]|\](?=[(\[:]))")
#: An underscore at a word's edge starts or ends emphasis; inside a word
#: (``max_epsilon``) it does not, and is left as it reads.
_EDGE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def escape(text: str) -> str:
    """``text`` as Markdown that renders as exactly that text, on one line."""
    text = " ".join(text.split())  # a newline would end a table row or a list item
    text = _SPECIAL.sub(r"\\\1", text)
    return _EDGE_UNDERSCORE.sub(r"\\_", text)


def _table(table: Table) -> list[str]:
    lines = [f"**{escape(table.title)}**", ""] if table.title else []
    lines.append("| " + " | ".join(escape(c) for c in table.columns) + " |")
    lines.append("|" + "---|" * len(table.columns))
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in table.rows]
    return lines


def render_markdown(card: ModelCard) -> str:
    """The whole card as one Markdown document."""
    lines = [f"# {escape(card.title)}", ""]
    for section in card.sections:
        lines += [f"## {escape(section.title)}", ""]
        for block in section.blocks:
            if isinstance(block, Facts):
                lines += [f"- **{escape(k)}**: {escape(v)}" for k, v in block.items]
            elif isinstance(block, Table):
                lines += _table(block)
            elif isinstance(block, Note):
                text = escape(block.text)
                lines.append(f"*{text}*" if block.missing else text)
            elif isinstance(block, Plot):
                lines.append(
                    f"*Plot: {escape(block.title)} (drawn by `accord report --html`).*"
                )
            lines.append("")
    return "\n".join(lines)
