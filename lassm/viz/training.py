"""A training run's curves, from the records of its metrics.jsonl (:func:`lassm.runlog.read_metrics`)."""

from __future__ import annotations

import plotly.graph_objects as go

from .colors import series_color

LOSS_TERMS = ("loss_cls", "loss_mask", "loss_dice", "loss_bbox", "loss_sp_cls")  # the criterion's parts
VAL_STYLES = {"AP": "solid", "AP50": "dash", "AP25": "dot"}  # distinct dashes: no curve hides another


def training_curves(records: list[dict]) -> go.Figure:
    """Three panels from a run's records: the total loss (every logged step as a line, the mean of each
    epoch as markers, so a short run with few logged steps still has a curve), the loss terms (epoch
    means), and validation AP / AP50 / AP25 with the learning rate on a second axis."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("training loss", "loss terms (epoch means)",
                                                        "validation"),
                        specs=[[{}, {}, {"secondary_y": True}]])
    steps = [r for r in records if r.get("kind") == "train"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    val = [r for r in records if r.get("kind") == "val"]
    if steps:
        fig.add_trace(go.Scatter(x=[r["step"] for r in steps], y=[r["loss"] for r in steps], mode="lines",
                                 name="loss (logged steps)", line=dict(color=series_color(0))), row=1, col=1)
    if epochs:
        fig.add_trace(go.Scatter(x=[r["step"] for r in epochs], y=[r["loss"] for r in epochs],
                                 mode="markers", name="loss (epoch mean)",
                                 marker=dict(color=series_color(1), size=6)), row=1, col=1)
    for i, term in enumerate(t for t in LOSS_TERMS if epochs and t in epochs[0]):
        fig.add_trace(go.Scatter(x=[r["step"] for r in epochs], y=[r[term] for r in epochs], mode="lines",
                                 name=term, line=dict(color=series_color(i + 2))), row=1, col=2)
    for key, dash in VAL_STYLES.items():
        if val:
            fig.add_trace(go.Scatter(x=[r["step"] for r in val], y=[r[key] for r in val],
                                     mode="lines+markers", name=key,
                                     line=dict(dash=dash, color=series_color(8))), row=1, col=3)
    if steps and "lr" in steps[0]:
        fig.add_trace(go.Scatter(x=[r["step"] for r in steps], y=[r["lr"] for r in steps], mode="lines",
                                 name="learning rate", line=dict(color="grey", width=1)),
                      row=1, col=3, secondary_y=True)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=2)
    fig.update_yaxes(title_text="AP", range=[0, 1], row=1, col=3, secondary_y=False)
    fig.update_yaxes(title_text="learning rate", row=1, col=3, secondary_y=True)
    fig.update_layout(height=380, margin=dict(l=50, r=50, t=40, b=40))
    return fig
