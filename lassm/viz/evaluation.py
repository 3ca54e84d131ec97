"""Evaluation results as charts: average precision per class."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def per_class_figure(result: dict, title: str = "") -> go.Figure:
    """Grouped bars of AP, AP50 and AP25 per class from an evaluation result.

    result: :meth:`lassm.evaluate.InstanceEvaluator.compute`'s dict (or ``lassm.export.evaluate_split``'s,
    whose "overall" is one). Classes without ground truth (NaN, REFERENCE_SPEC 9.2) keep their place
    on the axis with no bar, and a note under the title names them.
    """
    overall = result.get("overall", result)
    per_class = overall["per_class"]
    names = list(per_class)
    missing = [n for n in names if np.isnan(per_class[n]["AP50"])]
    fig = go.Figure()
    for key in ("AP", "AP50", "AP25"):
        values = [None if np.isnan(per_class[n][key]) else per_class[n][key] for n in names]
        fig.add_trace(go.Bar(x=names, y=values, name=f"{key} (mean {overall[key]:.3f})"))
    heading = title or "per-class average precision"
    if missing:
        heading += f"<br><sub>no ground truth, no bar: {', '.join(missing)}</sub>"
    fig.update_layout(title=heading, barmode="group", height=420, yaxis=dict(range=[0, 1], title="AP"),
                      xaxis=dict(tickangle=-45), margin=dict(l=50, r=20, t=80, b=120))
    return fig
