"""The model card as one self-contained HTML file, with interactive plots.

The plots are Plotly figures (the ``report`` extra). plotly.js is inlined from the
copy shipped inside the ``plotly`` Python package, so the file opens offline and
fetches nothing when viewed; a Content-Security-Policy in the page forbids any
fetch besides (``default-src 'none'``), so a future plotly.js feature that reaches
for a CDN fails closed instead of leaking that the report was opened.

Escaping: every string of the card goes through :func:`html.escape` into the page.
Each figure's data is a JSON document in an inert ``<script
type="application/json">`` block, written by Plotly's encoder, which escapes
``<``, ``>`` and ``/`` inside strings, so a site named ``</script>`` cannot close
it; one small script hands the blocks to ``Plotly.newPlot``. Names shown inside a
plot (series, ticks) are HTML-escaped as well, since Plotly reads a few tags in
labels as formatting and shows entities as the characters they stand for.
"""

from __future__ import annotations

import html
from typing import Any

from accord.errors import MissingExtraError
from accord.report.document import Facts, ModelCard, Note, Plot, Series, Table

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "figure_json",
    "plot_id",
    "render_block",
    "render_html",
]

#: Nothing may be fetched: scripts and styles are inline, images data: URIs.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 64rem;
       padding: 0 1rem; color: #1b1b1b; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #ccc;
       padding-bottom: .2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left;
         vertical-align: top; }
caption { text-align: left; font-weight: 600; padding: .25rem 0; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
.missing { color: #8a4b00; font-style: italic; }
.plot { width: 100%; height: 360px; }
"""

#: Draws every figure block into the element named by its data-plot attribute.
_DRAW = """
document.querySelectorAll('script[type="application/json"][data-plot]')
  .forEach(function (block) {
    var figure = JSON.parse(block.textContent);
    Plotly.newPlot(block.getAttribute('data-plot'), figure.data, figure.layout,
                   {displaylogo: false, responsive: true});
  });
"""


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
        import plotly.offline
    except ImportError as exc:
        raise MissingExtraError(
            extra="report", package="plotly", feature="the HTML report's plots"
        ) from exc
    return go, plotly.offline


def _error(series: Series) -> dict[str, Any] | None:
    if series.low is None or series.high is None:
        return None
    plus = [
        None if h is None or y is None else h - y
        for h, y in zip(series.high, series.y, strict=True)
    ]
    minus = [
        None if lo is None or y is None else y - lo
        for lo, y in zip(series.low, series.y, strict=True)
    ]
    return {"type": "data", "array": plus, "arrayminus": minus, "visible": True}


def figure_json(plot: Plot) -> str:
    """``plot`` as a Plotly figure's JSON (labels HTML-escaped, see the module)."""
    go, _ = _plotly()
    esc = html.escape
    traces = []
    for s in plot.series:
        x = [esc(v) if isinstance(v, str) else v for v in s.x]
        if plot.kind == "bar":
            traces.append(go.Bar(x=x, y=list(s.y), name=esc(s.name), error_y=_error(s)))
        else:
            traces.append(
                go.Scatter(x=x, y=list(s.y), name=esc(s.name), mode="lines+markers")
            )
    figure = go.Figure(traces)
    figure.update_layout(
        title={"text": esc(plot.title)},
        xaxis={"title": {"text": esc(plot.x_label)}},
        yaxis={"title": {"text": esc(plot.y_label)}},
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        barmode="group",
        showlegend=True,
    )
    if plot.kind == "line":
        figure.update_xaxes(dtick=1)
    return str(figure.to_json())


def plot_id(key: str, plot_ids: dict[str, int]) -> str:
    """The page element id of the next plot keyed ``key`` (counted in ``plot_ids``).

    The first plot of a key is ``plot-KEY``, later ones ``plot-KEY-1``, ... so
    that a page and the dashboard's live figures name each plot alike.
    """
    n = plot_ids.get(key, 0)
    plot_ids[key] = n + 1
    return f"plot-{key}" + (f"-{n}" if n else "")


def render_block(block: Facts | Table | Note | Plot, plot_ids: dict[str, int]) -> str:
    """One block of a card as HTML, every string escaped (see the module).

    A plot is an empty element and its figure in an inert JSON block, drawn by a
    script of the page (this file's own, or the dashboard's).
    """
    esc = html.escape
    if isinstance(block, Facts):
        items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in block.items)
        return f"<dl>{items}</dl>"
    if isinstance(block, Table):
        caption = f"<caption>{esc(block.title)}</caption>" if block.title else ""
        head = "".join(f"<th>{esc(c)}</th>" for c in block.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
            for row in block.rows
        )
        return (
            f"<table>{caption}<thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
    if isinstance(block, Note):
        cls = ' class="missing"' if block.missing else ""
        return f"<p{cls}>{esc(block.text)}</p>"
    ident = plot_id(block.key, plot_ids)
    return (
        f'<div class="plot" id="{esc(ident)}" role="img" '
        f'aria-label="{esc(block.title)}"></div>\n'
        f'<script type="application/json" data-plot="{esc(ident)}">'
        f"{figure_json(block)}</script>"
    )


def render_html(card: ModelCard) -> str:
    """The whole card as one HTML page; plotly.js inlined only if it has plots."""
    esc = html.escape
    plot_ids: dict[str, int] = {}
    body = [f"<h1>{esc(card.title)}</h1>"]
    for section in card.sections:
        body.append(f'<section id="{esc(section.key)}"><h2>{esc(section.title)}</h2>')
        body += [render_block(b, plot_ids) for b in section.blocks]
        body.append("</section>")
    scripts = ""
    if card.plots:
        _, offline = _plotly()
        scripts = f"<script>{offline.get_plotlyjs()}</script>\n<script>{_DRAW}</script>"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" '
        f'content="{CONTENT_SECURITY_POLICY}">\n'
        f"<title>{esc(card.title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + f"\n{scripts}\n</body>\n</html>\n"
    )
