"""Figures of the query decoder (REFERENCE_SPEC 6, notebook 05): query initialisation, each stage's
queries and masks, a slider over the stages, and one query's class scores.

The arrays are those :class:`lassm.model.trace.SceneTrace` holds (no model import here).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .colors import FAINT, QUERY_COLOR
from .points import scene_layout, subsample, xyz


def query_init_figure(coord: np.ndarray, sp_coord: np.ndarray, sp_confidence: np.ndarray,
                      candidates: np.ndarray, selected: np.ndarray, max_points: int = 200_000,
                      seed: int = 0, title: str = "") -> go.Figure:
    """Query initialisation (REFERENCE_SPEC 6.2) in four traces: the scene's points (faint), every
    superpoint centroid coloured by its semantic confidence, the candidates of the top-ratio rule
    (open circles) and the queries FPS chose among them (large diamonds).

    coord: (N, 3); sp_coord: (S, 3); sp_confidence: (S,); candidates: (M,) and selected: (Q,)
    superpoint indices.
    """
    coord, sp_coord = np.asarray(coord), np.asarray(sp_coord)
    sp_confidence = np.asarray(sp_confidence, dtype=np.float32).reshape(-1)
    candidates, selected = np.asarray(candidates, np.int64), np.asarray(selected, np.int64)
    if len(sp_confidence) != len(sp_coord):
        raise ValueError(f"sp_confidence: expected one value per superpoint ({len(sp_coord)}), "
                         f"got {len(sp_confidence)}")
    keep = subsample(len(coord), max_points, seed)
    sp_text = [f"superpoint {i}<br>confidence {c:.3f}" for i, c in enumerate(sp_confidence)]
    fig = go.Figure([
        go.Scatter3d(**xyz(coord[keep]), mode="markers", name="points", hoverinfo="skip",
                     marker=dict(size=1, color=FAINT)),
        go.Scatter3d(**xyz(sp_coord), mode="markers", name="superpoints (confidence)", text=sp_text,
                     hoverinfo="text", marker=dict(size=3, color=sp_confidence, colorscale="Viridis",
                                                   cmin=0, cmax=1, colorbar=dict(title="confidence", x=1.0))),
        go.Scatter3d(**xyz(sp_coord[candidates]), mode="markers", name=f"candidates ({len(candidates)})",
                     hoverinfo="skip", marker=dict(size=6, symbol="circle-open", color="orange")),
        go.Scatter3d(**xyz(sp_coord[selected]), mode="markers", name=f"queries ({len(selected)})",
                     text=[f"query {q} <- superpoint {s}" for q, s in enumerate(selected)], hoverinfo="text",
                     marker=dict(size=7, symbol="diamond", color=QUERY_COLOR)),
    ])
    return scene_layout(fig, title)


def _stage_traces(coord, superpoint, sp_coord, positions, mask_probs, kinds, neighbours, seed_positions,
                  stage, query, trail, keep) -> list[go.Scatter3d]:
    """The five traces of one decoder stage, always in the same order (points, trails, queries,
    selected query, neighbours), empty where they do not apply, so slider frames can replace them."""
    pos = positions[stage]  # (Q, 3)
    if query is None:
        points = go.Scatter3d(**xyz(coord[keep]), mode="markers", name="points", hoverinfo="skip",
                              marker=dict(size=1.5, color=FAINT))
    else:
        heat = mask_probs[stage, query][superpoint[keep]].astype(np.float32)  # (n,) each point's superpoint
        marker = dict(size=1.5, color=heat, colorscale="Inferno", cmin=0, cmax=1,
                      colorbar=dict(title="mask p", x=1.0))
        points = go.Scatter3d(**xyz(coord[keep]), mode="markers", name=f"mask of query {query}",
                              hoverinfo="skip", marker=marker)
    path = [] if seed_positions is None else [np.asarray(seed_positions)[None]]
    track = np.concatenate([*path, positions[: stage + 1]])  # (steps, Q, 3) seed, then each stage
    lines = np.full((track.shape[1], track.shape[0] + 1, 3), np.nan, dtype=np.float32)  # NaN breaks lines
    lines[:, :-1] = track.transpose(1, 0, 2)
    if not trail or len(track) < 2:
        lines = lines[:0]
    trails = go.Scatter3d(**xyz(lines.reshape(-1, 3)), mode="lines", name="trails", hoverinfo="skip",
                          connectgaps=False, line=dict(color="rgba(40,90,200,0.6)", width=2))
    queries = go.Scatter3d(**xyz(pos), mode="markers", name="queries", hoverinfo="text",
                           text=[f"query {q}" for q in range(len(pos))],
                           marker=dict(size=4, color="rgb(40,90,200)"))
    chosen = go.Scatter3d(**xyz(pos[[query]] if query is not None else np.zeros((0, 3))), mode="markers",
                          name="selected query", hoverinfo="text", text=[f"query {query}"],
                          marker=dict(size=9, symbol="diamond", color=QUERY_COLOR))
    near = np.zeros((0, 3), np.float32)
    if query is not None and kinds[stage] == "local aggregation" and neighbours[stage] is not None:
        idx = np.asarray(neighbours[stage][query])
        near = np.asarray(sp_coord)[idx[idx >= 0]]  # (k', 3)
    neighbour_trace = go.Scatter3d(**xyz(near), mode="markers", name="kNN superpoints", hoverinfo="skip",
                                   marker=dict(size=6, symbol="square-open", color="lime"))
    return [points, trails, queries, chosen, neighbour_trace]


def _check_stage_arrays(positions, mask_probs, kinds, neighbours, query):
    if positions.ndim != 3 or positions.shape[2] != 3:
        raise ValueError(f"positions: expected shape (T, Q, 3), got {positions.shape}")
    if mask_probs.shape[:2] != positions.shape[:2]:
        raise ValueError(f"mask_probs: expected shape (T, Q, S) with T, Q = {positions.shape[:2]}, "
                         f"got {mask_probs.shape}")
    if len(kinds) != len(positions) or len(neighbours) != len(positions):
        raise ValueError(f"kinds and neighbours: expected one entry per stage ({len(positions)}), "
                         f"got {len(kinds)} and {len(neighbours)}")
    if query is not None and not 0 <= query < positions.shape[1]:
        raise ValueError(f"query: expected an index in 0..{positions.shape[1] - 1}, got {query}")


def decoder_stage_figure(coord: np.ndarray, superpoint: np.ndarray, sp_coord: np.ndarray,
                         positions: np.ndarray, mask_probs: np.ndarray, kinds, neighbours, stage: int,
                         query: int | None = None, trail: bool = True,
                         seed_positions: np.ndarray | None = None, max_points: int = 200_000, seed: int = 0,
                         title: str = "") -> go.Figure:
    """The decoder after ``stage`` (0 = initial queries, i = layer i; REFERENCE_SPEC 6.3-6.5).

    All queries at their positions after the stage, with trails from their seeds through the earlier
    stages; for a selected ``query``, its mask probability over the points (through each point's
    superpoint) and, at local-aggregation stages, the k superpoints it gathered. Arrays as
    :class:`lassm.model.trace.SceneTrace` holds them: positions (T, Q, 3), mask_probs (T, Q, S),
    kinds (T,), neighbours per stage (Q, k) or None, superpoint (N,) ids into sp_coord (S, 3).
    """
    positions, mask_probs = np.asarray(positions), np.asarray(mask_probs)
    _check_stage_arrays(positions, mask_probs, kinds, neighbours, query)
    if not 0 <= stage < len(positions):
        raise ValueError(f"stage: expected 0..{len(positions) - 1}, got {stage}")
    coord, superpoint = np.asarray(coord), np.asarray(superpoint, dtype=np.int64)
    keep = subsample(len(coord), max_points, seed)
    fig = go.Figure(_stage_traces(coord, superpoint, sp_coord, positions, mask_probs, kinds, neighbours,
                                  seed_positions, stage, query, trail, keep))
    return scene_layout(fig, title or f"stage {stage}: {kinds[stage]}")


def decoder_slider_figure(coord: np.ndarray, superpoint: np.ndarray, sp_coord: np.ndarray,
                          positions: np.ndarray, mask_probs: np.ndarray, kinds, neighbours,
                          query: int | None = None, trail: bool = True,
                          seed_positions: np.ndarray | None = None, max_points: int = 200_000,
                          seed: int = 0, title: str = "") -> go.Figure:
    """:func:`decoder_stage_figure` for every stage, one Plotly frame each, with a slider over them.

    Frames and slider live in the figure, so an exported HTML file steps through the stages without
    a kernel. The points' coordinates are sent once; each frame carries only their mask colours.
    """
    positions, mask_probs = np.asarray(positions), np.asarray(mask_probs)
    _check_stage_arrays(positions, mask_probs, kinds, neighbours, query)
    coord, superpoint = np.asarray(coord), np.asarray(superpoint, dtype=np.int64)
    keep = subsample(len(coord), max_points, seed)
    frames = []
    for stage in range(len(positions)):
        traces = _stage_traces(coord, superpoint, sp_coord, positions, mask_probs, kinds, neighbours,
                               seed_positions, stage, query, trail, keep)
        # frames update the existing traces: the points need only their (new) mask colours
        traces[0] = go.Scatter3d(marker=dict(color=traces[0].marker.color))
        heading = f"{title + ': ' if title else ''}stage {stage} ({kinds[stage]})"
        frames.append(go.Frame(data=traces, name=str(stage), traces=list(range(len(traces))),
                               layout=dict(title=heading)))
    fig = go.Figure(_stage_traces(coord, superpoint, sp_coord, positions, mask_probs, kinds, neighbours,
                                  seed_positions, 0, query, trail, keep), frames=frames)
    scene_layout(fig, f"{title + ': ' if title else ''}stage 0 ({kinds[0]})")
    step_args = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    fig.update_layout(sliders=[dict(
        active=0, currentvalue=dict(prefix="stage "), pad=dict(t=10),
        steps=[dict(label=f"{s} {kinds[s]}", method="animate", args=[[str(s)], step_args])
               for s in range(len(positions))])])
    return fig


def class_scores_figure(probs: np.ndarray, class_names, title: str = "") -> go.Figure:
    """Bars of one query's class probabilities (C + 1,), background last; the most likely is red.

    class_names: the C class names (a "background" bar is added) or all C + 1.
    """
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    names = list(class_names)
    if len(names) == len(probs) - 1:
        names.append("background")
    if len(names) != len(probs):
        raise ValueError(f"class_names: expected {len(probs) - 1} or {len(probs)} names for "
                         f"{len(probs)} probabilities, got {len(names)}")
    colors = ["rgb(70,110,190)"] * len(probs)
    colors[int(np.argmax(probs))] = QUERY_COLOR
    fig = go.Figure(go.Bar(x=names, y=probs, marker_color=colors, name="probability"))
    fig.update_layout(title=title, height=360, yaxis=dict(range=[0, 1], title="probability"),
                      xaxis=dict(tickangle=-45), margin=dict(l=50, r=20, t=50 if title else 10, b=110))
    return fig
