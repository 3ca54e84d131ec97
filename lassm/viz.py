"""Plotly figures from plain arrays (no model or training imports)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def label_colors(labels: np.ndarray, ignore_color=(190, 190, 190)) -> np.ndarray:
    """A stable distinct RGB colour per integer label; -1 (unlabelled) is grey. (N, 3) uint8."""
    labels = np.asarray(labels, dtype=np.int64)
    # golden-ratio hue steps keep neighbouring ids apart; fixed saturation/value keep them readable
    hue = (labels * 0.618033988749895) % 1.0
    sat = 0.55 + 0.35 * ((labels * 7) % 3) / 2
    val = np.full(hue.shape, 0.92)
    i = np.floor(hue * 6).astype(int) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    sectors = ((val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q))
    rgb = np.choose(i[:, None], [np.stack(c, 1) for c in sectors])
    out = (rgb * 255).astype(np.uint8)
    out[labels < 0] = ignore_color
    return out


def _css(rgb: np.ndarray) -> list[str]:
    return [f"rgb({r},{g},{b})" for r, g, b in rgb]


def scene_figure(
    coord: np.ndarray,
    color: np.ndarray | None = None,
    layers: dict[str, np.ndarray] | None = None,
    class_names: tuple[str, ...] | None = None,
    max_points: int = 60_000,
    point_size: float = 1.5,
    seed: int = 0,
    title: str = "",
) -> go.Figure:
    """A 3-D scatter of one scene with a dropdown to colour it by RGB or by each label layer.

    coord: (N, 3); color: (N, 3) uint8; layers: name -> (N,) integer labels (e.g. semantic,
    instance, superpoint). At most ``max_points`` points are drawn (a fixed random subset) so
    the figure stays light in a notebook or HTML export. Hovering shows every layer's value,
    with class names for the layer called "semantic".
    """
    coord = np.asarray(coord)
    layers = dict(layers or {})
    keep = np.arange(len(coord))
    if len(coord) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(coord), max_points, replace=False))
    xyz = coord[keep]
    options = {}
    if color is not None:
        options["RGB"] = _css(np.asarray(color)[keep])
    for name, values in layers.items():
        options[name] = _css(label_colors(np.asarray(values)[keep]))
    if not options:
        options["height"] = xyz[:, 2]
    hover = []
    for name, values in layers.items():
        v = np.asarray(values)[keep]
        if name == "semantic" and class_names is not None:
            names = np.array([*class_names, "unlabelled"])
            hover.append([f"{name}: {names[i]}" for i in v])
        else:
            hover.append([f"{name}: {i}" for i in v])
    text = ["<br>".join(parts) for parts in zip(*hover, strict=True)] if hover else None
    first = next(iter(options.values()))
    fig = go.Figure(go.Scatter3d(
        x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], mode="markers",
        marker=dict(size=point_size, color=first), text=text, hoverinfo="text" if text else "x+y+z",
    ))
    fig.update_layout(
        title=title, height=650, margin=dict(l=0, r=0, t=40 if title else 10, b=0),
        scene=dict(aspectmode="data", xaxis_visible=False, yaxis_visible=False, zaxis_visible=False),
        updatemenus=[dict(
            buttons=[dict(label=name, method="restyle", args=[{"marker.color": [c]}])
                     for name, c in options.items()],
            direction="down", x=0.0, y=1.0, xanchor="left", yanchor="top",
        )],
    )
    return fig


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
