"""A training run's curves, from the records of its metrics.jsonl (:func:`lassm.runlog.read_metrics`)."""

from __future__ import annotations

import plotly.graph_objects as go


def training_curves(records: list[dict]) -> go.Figure:
    """Loss per logged step and validation AP per evaluation, from a run's metrics.jsonl records."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "validation AP"))
    train = [r for r in records if r.get("kind") == "train"]
    if train:
        fig.add_trace(go.Scatter(x=[r["step"] for r in train], y=[r["loss"] for r in train],
                                 mode="lines", name="loss"), row=1, col=1)
    val = [r for r in records if r.get("kind") == "val"]
    for key in ("AP", "AP50", "AP25"):
        if val:
            fig.add_trace(go.Scatter(x=[r["step"] for r in val], y=[r[key] for r in val],
                                     mode="lines+markers", name=key), row=1, col=2)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=360, margin=dict(l=40, r=20, t=40, b=40))
    return fig
