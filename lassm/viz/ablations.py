"""Figures, table and report of an ablation study (notebook 06), from :mod:`lassm.ablations`'s plain results.

``table`` is :func:`lassm.ablations.summary_table`'s list (one row per variant, mean and std over
seeds); ``curves`` is :func:`lassm.ablations.validation_curves`'s (one entry per run).
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path

import plotly.graph_objects as go

from .colors import series_color
from .html import table_html, write_page

_TABLE_COLUMNS = (("variant", "variant"), ("done", "runs done"), ("failed", "failed"), ("AP", "mAP"),
                  ("AP50", "AP50"), ("AP25", "AP25"), ("train_seconds", "train s"),
                  ("infer_seconds", "s / scene"), ("params", "params"), ("peak_mb", "peak MB"),
                  ("error", "error"))


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def _cell(row: dict, key: str) -> str:
    """A summary cell as text: mean +- std for metrics, the value otherwise."""
    if f"{key}_mean" in row:
        mean, std = row[f"{key}_mean"], row[f"{key}_std"]
        if mean is None:
            return ""
        digits = 3 if key.startswith("AP") else 2 if "seconds" in key else 0
        return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std else "")
    value = row.get(key)
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _header() -> list[str]:
    return [title for _, title in _TABLE_COLUMNS]


def _cells(table: list[dict]) -> list[list[str]]:
    return [[_cell(r, key) for key, _ in _TABLE_COLUMNS] for r in table]


def format_table(table: list[dict]) -> str:
    """The summary as aligned plain text, for printing."""
    lines = [_header(), *_cells(table)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_TABLE_COLUMNS))]
    padded = ("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)
    return "\n".join(padded)


def table_figure(table: list[dict]) -> go.Figure:
    """The summary as a plotly table (mean ± std over seeds)."""
    columns = [[_cell(r, key) for r in table] for key, _ in _TABLE_COLUMNS]  # plotly tables are by column
    fig = go.Figure(go.Table(header=dict(values=_header(), align="left"),
                             cells=dict(values=columns, align="left")))
    fig.update_layout(height=80 + 30 * len(table), margin=dict(l=10, r=10, t=10, b=10))
    return fig


def ap_figure(table: list[dict]) -> go.Figure:
    """AP / AP50 / AP25 per variant with finished runs (best validation), mean over seeds, std error bars."""
    table = [r for r in table if r["done"]]
    fig = go.Figure()
    for i, key in enumerate(("AP", "AP50", "AP25")):
        fig.add_trace(go.Bar(x=[r["variant"] for r in table], y=[r[f"{key}_mean"] for r in table],
                             error_y=dict(type="data", array=[r[f"{key}_std"] for r in table]),
                             name=key, marker_color=series_color(i)))
    fig.update_layout(barmode="group", title="validation AP per variant (mean and std over seeds)",
                      yaxis_title="AP", height=420, margin=dict(l=50, r=20, t=50, b=80))
    return fig


def curves_figure(curves: list[dict], metric: str = "AP50") -> go.Figure:
    """A validation metric against step per run: a colour per variant, its first seed solid, others dashed."""
    fig = go.Figure()
    colors: dict[str, str] = {}
    for run in curves:
        if not run["step"]:
            continue
        first = run["variant"] not in colors
        color = colors.setdefault(run["variant"], series_color(len(colors)))
        fig.add_trace(go.Scatter(x=run["step"], y=run[metric], mode="lines+markers",
                                 name=f"{run['variant']} s{run['seed']}", legendgroup=run["variant"],
                                 line=dict(color=color, dash="solid" if first else "dash")))
    fig.update_layout(title=f"validation {metric} during training", xaxis_title="step", yaxis_title=metric,
                      height=420, margin=dict(l=50, r=20, t=50, b=40))
    return fig


def tradeoff_figure(table: list[dict]) -> go.Figure:
    """AP50 against inference seconds per scene, one labelled point per variant (means, std bars)."""
    table = [r for r in table if _finite(r["AP50_mean"]) and _finite(r["infer_seconds_mean"])]
    fig = go.Figure(go.Scatter(
        x=[r["infer_seconds_mean"] for r in table], y=[r["AP50_mean"] for r in table],
        error_x=dict(type="data", array=[r["infer_seconds_std"] for r in table]),
        error_y=dict(type="data", array=[r["AP50_std"] for r in table]),
        text=[r["variant"] for r in table], mode="markers+text", textposition="top center",
        marker=dict(size=10, color=[series_color(i) for i in range(len(table))])))
    fig.update_layout(title="accuracy against inference time", xaxis_title="seconds per scene (validation)",
                      yaxis_title="AP50", height=420, margin=dict(l=50, r=20, t=50, b=40))
    return fig


def report_html(figures: list[go.Figure], table: list[dict], path: str | os.PathLike, title: str,
                settings: dict | None = None, caveats: list[str] = (), plotlyjs: bool | str = True) -> Path:
    """One standalone page: a heading, the study's settings (name -> value) and caveats, the summary table
    and the figures, plotly.js embedded once (``plotlyjs="cdn"``: loaded from plotly's CDN, for a report
    to commit or share; :func:`lassm.viz.html.write_page`)."""
    parts = []
    if settings:
        parts.append("<h2>Settings</h2>" + table_html(["setting", "value"],
                                                      [[str(k), str(v)] for k, v in settings.items()]))
    if caveats:
        parts.append("<h2>Read with care</h2><ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in caveats)
                     + "</ul>")
    results = table_html(_header(), _cells(table))
    return write_page(path, title, [*parts, "<h2>Results</h2>", results, *figures], plotlyjs)


def study_caveats(table: list[dict], seeds: list[int], steps: int | None = None) -> list[str]:
    """What a reader of an ablation table should keep in mind, from the study's own settings."""
    notes = []
    if len(seeds) < 2:
        notes.append("One seed per variant: differences between variants can be run-to-run noise "
                     "(AP50 moves by about 0.1 between evaluations of one short run). Run several seeds "
                     "(the table then shows mean ± std).")
    if steps is not None and steps < 2000:
        notes.append(f"Short schedules ({steps:,} training steps per run): an early-training comparison, "
                     "not the converged models the paper compares.")
    if any(r.get("failed") for r in table):
        notes.append("Some runs failed (error column); their variants have no result.")
    notes.append("Timing columns compare runs only when they ran alone on the same device.")
    return notes
