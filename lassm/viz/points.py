"""Plumbing of the 3-D point figures: a seeded subset of points, coordinates as Scatter3d arguments,
and the layout they share (no axes, equal aspect)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

HIDDEN_AXES = dict(aspectmode="data", xaxis_visible=False, yaxis_visible=False, zaxis_visible=False)


def subsample(n: int, max_points: int, seed: int = 0) -> np.ndarray:
    """(min(n, max_points),) sorted indices of a seeded random subset of n points (all when n fits)."""
    if max_points <= 0:
        raise ValueError(f"max_points: expected a positive count, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def xyz(points: np.ndarray) -> dict:
    """(N, 3) points as the x=, y=, z= arguments of a Scatter3d."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    return dict(x=points[:, 0], y=points[:, 1], z=points[:, 2])


def scene_layout(fig: go.Figure, title: str, height: int = 650) -> go.Figure:
    """One 3-D scene without axes, the legend bottom left; returns ``fig``."""
    fig.update_layout(title=title, height=height, margin=dict(l=0, r=0, t=50 if title else 10, b=0),
                      scene=HIDDEN_AXES, legend=dict(x=0.0, y=0.0, xanchor="left", yanchor="bottom"))
    return fig
