"""Standalone HTML: one figure, a report page of tables and figures, an executed notebook.

Every page embeds plotly.js (once) so it opens offline, unless asked to load it from plotly's CDN (a
page meant to be committed or mailed: 30 kB instead of 4.8 MB); every page is written atomically.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import plotly.graph_objects as go

from ..data.io import atomic_path

_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}")


def save_html(fig: go.Figure, path, plotlyjs: bool | str = True) -> Path:
    """Write ``fig`` as a standalone HTML file, atomically. ``plotlyjs``: True embeds plotly.js (the file
    opens offline on its own); "directory" writes it once beside the file, for folders of many views."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"path: expected an .html file name, got {path}")
    with atomic_path(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=plotlyjs, full_html=True, auto_play=False)  # sliders wait
    return path


def export_view(fig: go.Figure, folder, view: str, enabled: bool = True) -> Path | None:
    """``<folder>/<view>.html`` (:func:`save_html`) when ``enabled``; says where it went. None otherwise."""
    if not enabled:
        return None
    path = save_html(fig, Path(folder) / f"{view}.html")
    print(f"wrote {path}")
    return path


def table_html(header: list[str], rows: list[list[str]]) -> str:
    """A plain HTML table of text cells (escaped)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_page(path: str | os.PathLike, title: str, parts: list[str | go.Figure],
               plotlyjs: bool | str = True) -> Path:
    """One standalone page: the title as a heading, then ``parts`` in order (HTML text as it is,
    figures with plotly.js in the first one only: embedded, or with ``plotlyjs="cdn"`` a script tag that
    loads it from plotly's CDN, so the page is small but needs a network to draw its figures)."""
    if plotlyjs not in (True, "cdn"):
        raise ValueError(f"plotlyjs: expected True (embedded) or 'cdn', got {plotlyjs!r}")
    chunks, embedded = [], False
    for part in parts:
        if isinstance(part, go.Figure):
            chunks.append(part.to_html(full_html=False, include_plotlyjs=False if embedded else plotlyjs,
                                       auto_play=False))
            embedded = True
        else:
            chunks.append(part)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(chunks)}</body></html>")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def export_report(executed_notebook_path: str | os.PathLike, html_path: str | os.PathLike) -> Path:
    """An executed notebook (e.g. papermill's output of 06_ablations) as standalone HTML, via nbconvert.

    A running notebook cannot export itself; call this on the copy papermill wrote.
    """
    source = Path(executed_notebook_path)
    if not source.is_file():
        raise ValueError(f"executed_notebook_path: {source} does not exist; expected an executed .ipynb")
    try:
        import nbformat
        from nbconvert import HTMLExporter
    except ImportError:
        raise RuntimeError("export_report needs nbconvert (pip install nbconvert); write_page writes "
                           "tables and figures without it") from None
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(source, as_version=4))
    path = Path(html_path)
    with atomic_path(path) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return path
