"""Plotly figures from plain arrays (no model or training imports)."""

from __future__ import annotations

from pathlib import Path

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


# ------------------------------------------------------------------------------- evaluation


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


def match_instances(gt_instance: np.ndarray, pred_masks: np.ndarray, pred_scores: np.ndarray,
                    iou_threshold: float = 0.5) -> np.ndarray:
    """(K,) the GT instance id each prediction matches, -1 for none (a false positive).

    Like the ScanNet protocol at one overlap (REFERENCE_SPEC 9.2): predictions in descending score
    claim their best-IoU GT instance when IoU > ``iou_threshold`` and that instance is still
    unclaimed, so a duplicate of a found instance counts as a false positive. gt_instance: (N,) ids,
    -1 = none; pred_masks: (K, N) bool.
    """
    gt_instance = np.asarray(gt_instance, dtype=np.int64)
    pred_masks = np.asarray(pred_masks, dtype=bool)
    ids, gt_index = np.unique(gt_instance, return_inverse=True)  # ids sorted, so -1 comes first
    gt_index = gt_index.reshape(-1)
    valid = ids >= 0  # (G_all,) ids that are instances
    gt_size = np.bincount(gt_index, minlength=len(ids))  # (G_all,)
    matched = np.full(len(pred_masks), -1, dtype=np.int64)
    claimed = np.zeros(len(ids), dtype=bool)
    for k in np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable"):
        inter = np.bincount(gt_index[pred_masks[k]], minlength=len(ids))  # (G_all,)
        union = gt_size + pred_masks[k].sum() - inter
        iou = np.where(valid & ~claimed, inter / np.maximum(union, 1), 0.0)
        best = int(np.argmax(iou)) if len(iou) else 0
        if len(iou) and iou[best] > iou_threshold:
            matched[k] = ids[best]
            claimed[best] = True
    return matched


def instance_comparison_figure(
    coord: np.ndarray,
    gt_instance: np.ndarray,
    pred_masks: np.ndarray,
    pred_scores: np.ndarray,
    iou_threshold: float = 0.5,
    max_points: int = 200_000,
    point_size: float = 1.5,
    seed: int = 0,
    title: str = "",
) -> go.Figure:
    """Ground-truth instances (left) next to predicted instances (right), in two 3-D scatters.

    coord: (N, 3); gt_instance: (N,) ids, -1 = none; pred_masks: (K, N) bool; pred_scores: (K,).
    A point in several predicted masks shows the highest-scoring one; points in none are grey, as
    are points of no GT instance. A prediction matching a GT instance (:func:`match_instances`)
    takes that instance's colour, so the panels compare at a glance; false positives get dark
    shades, which no GT instance has. At most ``max_points`` points (one seeded random subset,
    the same in both panels) are drawn.
    """
    from plotly.subplots import make_subplots

    coord = np.asarray(coord)
    gt_instance = np.asarray(gt_instance, dtype=np.int64)
    pred_masks = np.asarray(pred_masks, dtype=bool).reshape(-1, len(coord))  # (K, N)
    pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)  # (K,)
    if pred_masks.shape[0] != len(pred_scores):
        raise ValueError(f"pred_scores: expected one score per mask ({pred_masks.shape[0]}), "
                         f"got {len(pred_scores)}")
    matched = match_instances(gt_instance, pred_masks, pred_scores, iou_threshold)  # (K,)
    order = np.argsort(-pred_scores, kind="stable")  # (K,) best first
    owner = np.full(len(coord), -1, dtype=np.int64)  # (N,) predicted instance shown at each point
    if len(order):
        first = pred_masks[order].argmax(axis=0)  # (N,) first (best) mask holding the point
        owner = np.where(pred_masks.any(axis=0), order[first], -1)
    grey = np.array([190, 190, 190], dtype=np.uint8)
    pred_palette = label_colors(matched)  # (K, 3) matched: the GT colour
    false_pos = matched < 0
    pred_palette[false_pos] = (label_colors(np.flatnonzero(false_pos)) * 0.45).astype(np.uint8)  # dark
    pred_colors = np.concatenate([pred_palette, grey[None]])[owner]  # (N, 3); owner -1 -> grey row

    keep = np.arange(len(coord))
    if len(coord) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(coord), max_points, replace=False))
    xyz, gt, own = coord[keep], gt_instance[keep], owner[keep]
    gt_ids = np.unique(gt_instance[gt_instance >= 0])
    missed = len(np.setdiff1d(gt_ids, matched))
    subtitles = (f"ground truth: {len(gt_ids)} instances, {missed} missed",
                 f"prediction: {len(matched)} instances, {int((~false_pos).sum())} matched, "
                 f"{int(false_pos.sum())} false positive")
    fig = make_subplots(rows=1, cols=2, specs=[[{"type": "scene"}, {"type": "scene"}]],
                        subplot_titles=subtitles, horizontal_spacing=0.01)
    gt_text = [f"GT instance {g}" if g >= 0 else "no instance" for g in gt]
    pred_text = ["no prediction" if k < 0 else
                 f"prediction {k} (score {pred_scores[k]:.2f}) "
                 + (f"= GT {matched[k]}" if matched[k] >= 0 else "false positive") for k in own]
    for col, colors, text in ((1, label_colors(gt), gt_text), (2, pred_colors[keep], pred_text)):
        fig.add_trace(go.Scatter3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], mode="markers",
                                   marker=dict(size=point_size, color=_css(colors)), text=text,
                                   hoverinfo="text", showlegend=False), row=1, col=col)
    axes = dict(aspectmode="data", xaxis_visible=False, yaxis_visible=False, zaxis_visible=False)
    fig.update_layout(title=title, height=600, margin=dict(l=0, r=0, t=60 if title else 30, b=0),
                      scene=axes, scene2=axes)
    return fig


# ------------------------------------------------------------------------------- queries (notebook 05)

QUERY_COLOR = "rgb(220,40,40)"
FAINT = "rgba(150,150,150,0.25)"
_HIDDEN_AXES = dict(aspectmode="data", xaxis_visible=False, yaxis_visible=False, zaxis_visible=False)


def subsample(n: int, max_points: int, seed: int = 0) -> np.ndarray:
    """(min(n, max_points),) sorted indices of a seeded random subset of n points (all when n fits)."""
    if max_points <= 0:
        raise ValueError(f"max_points: expected a positive count, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def _xyz(points: np.ndarray) -> dict:
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    return dict(x=points[:, 0], y=points[:, 1], z=points[:, 2])


def _layout(fig: go.Figure, title: str, height: int = 650) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=0, r=0, t=50 if title else 10, b=0),
                      scene=_HIDDEN_AXES, legend=dict(x=0.0, y=0.0, xanchor="left", yanchor="bottom"))
    return fig


def scene_view_figure(coord: np.ndarray, colors_by_mode: dict[str, np.ndarray], mode: str | None = None,
                      max_points: int = 200_000, point_size: float = 1.5, seed: int = 0,
                      title: str = "") -> go.Figure:
    """One scene, coloured by any of ``colors_by_mode`` (name -> (N, 3) uint8), switched by a dropdown.

    The dropdown is a Plotly update menu, so it also works in an exported HTML file without a kernel;
    ``mode`` is the colouring shown first (default: the first). At most ``max_points`` points.
    """
    coord = np.asarray(coord)
    if not colors_by_mode:
        raise ValueError("colors_by_mode: expected at least one colouring")
    mode = next(iter(colors_by_mode)) if mode is None else mode
    if mode not in colors_by_mode:
        raise ValueError(f"mode: expected one of {list(colors_by_mode)}, got {mode!r}")
    for name, colors in colors_by_mode.items():
        if np.shape(colors) != (len(coord), 3):
            raise ValueError(f"colors_by_mode[{name!r}]: expected shape ({len(coord)}, 3), "
                             f"got {np.shape(colors)}")
    keep = subsample(len(coord), max_points, seed)
    options = {name: _css(np.asarray(c, dtype=np.uint8)[keep]) for name, c in colors_by_mode.items()}
    names = list(options)
    fig = go.Figure(go.Scatter3d(**_xyz(coord[keep]), mode="markers", name="points", hoverinfo="skip",
                                 marker=dict(size=point_size, color=options[mode])))
    _layout(fig, title)
    fig.update_layout(updatemenus=[dict(
        buttons=[dict(label=name, method="restyle", args=[{"marker.color": [c]}])
                 for name, c in options.items()],
        active=names.index(mode), direction="down", x=0.0, y=1.0, xanchor="left", yanchor="top")])
    return fig


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
        go.Scatter3d(**_xyz(coord[keep]), mode="markers", name="points", hoverinfo="skip",
                     marker=dict(size=1, color=FAINT)),
        go.Scatter3d(**_xyz(sp_coord), mode="markers", name="superpoints (confidence)", text=sp_text,
                     hoverinfo="text", marker=dict(size=3, color=sp_confidence, colorscale="Viridis",
                                                   cmin=0, cmax=1, colorbar=dict(title="confidence", x=1.0))),
        go.Scatter3d(**_xyz(sp_coord[candidates]), mode="markers", name=f"candidates ({len(candidates)})",
                     hoverinfo="skip", marker=dict(size=6, symbol="circle-open", color="orange")),
        go.Scatter3d(**_xyz(sp_coord[selected]), mode="markers", name=f"queries ({len(selected)})",
                     text=[f"query {q} <- superpoint {s}" for q, s in enumerate(selected)], hoverinfo="text",
                     marker=dict(size=7, symbol="diamond", color=QUERY_COLOR)),
    ])
    return _layout(fig, title)


def _stage_traces(coord, superpoint, sp_coord, positions, mask_probs, kinds, neighbours, seed_positions,
                  stage, query, trail, keep) -> list[go.Scatter3d]:
    """The five traces of one decoder stage, always in the same order (points, trails, queries,
    selected query, neighbours), empty where they do not apply, so slider frames can replace them."""
    pos = positions[stage]  # (Q, 3)
    if query is None:
        points = go.Scatter3d(**_xyz(coord[keep]), mode="markers", name="points", hoverinfo="skip",
                              marker=dict(size=1.5, color=FAINT))
    else:
        heat = mask_probs[stage, query][superpoint[keep]].astype(np.float32)  # (n,) each point's superpoint
        marker = dict(size=1.5, color=heat, colorscale="Inferno", cmin=0, cmax=1,
                      colorbar=dict(title="mask p", x=1.0))
        points = go.Scatter3d(**_xyz(coord[keep]), mode="markers", name=f"mask of query {query}",
                              hoverinfo="skip", marker=marker)
    path = [] if seed_positions is None else [np.asarray(seed_positions)[None]]
    track = np.concatenate([*path, positions[: stage + 1]])  # (steps, Q, 3) seed, then each stage
    lines = np.full((track.shape[1], track.shape[0] + 1, 3), np.nan, dtype=np.float32)  # NaN breaks lines
    lines[:, :-1] = track.transpose(1, 0, 2)
    if not trail or len(track) < 2:
        lines = lines[:0]
    trails = go.Scatter3d(**_xyz(lines.reshape(-1, 3)), mode="lines", name="trails", hoverinfo="skip",
                          connectgaps=False, line=dict(color="rgba(40,90,200,0.6)", width=2))
    queries = go.Scatter3d(**_xyz(pos), mode="markers", name="queries", hoverinfo="text",
                           text=[f"query {q}" for q in range(len(pos))],
                           marker=dict(size=4, color="rgb(40,90,200)"))
    chosen = go.Scatter3d(**_xyz(pos[[query]] if query is not None else np.zeros((0, 3))), mode="markers",
                          name="selected query", hoverinfo="text", text=[f"query {query}"],
                          marker=dict(size=9, symbol="diamond", color=QUERY_COLOR))
    near = np.zeros((0, 3), np.float32)
    if query is not None and kinds[stage] == "local aggregation" and neighbours[stage] is not None:
        idx = np.asarray(neighbours[stage][query])
        near = np.asarray(sp_coord)[idx[idx >= 0]]  # (k', 3)
    neighbour_trace = go.Scatter3d(**_xyz(near), mode="markers", name="kNN superpoints", hoverinfo="skip",
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
    return _layout(fig, title or f"stage {stage}: {kinds[stage]}")


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
    _layout(fig, f"{title + ': ' if title else ''}stage 0 ({kinds[0]})")
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


def instance_match_table(gt_instance: np.ndarray, pred_masks: np.ndarray, pred_scores: np.ndarray,
                         iou_threshold: float = 0.5) -> list[dict]:
    """One row per prediction (best score first), then per missed GT instance, from :func:`match_instances`:
    prediction, score, gt (-1 none), iou with that GT instance, status ("match", "false positive", "miss")."""
    gt_instance = np.asarray(gt_instance, dtype=np.int64)
    pred_masks = np.asarray(pred_masks, dtype=bool).reshape(-1, len(gt_instance))  # (K, N)
    pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    matched = match_instances(gt_instance, pred_masks, pred_scores, iou_threshold)  # (K,)
    rows = []
    for k in np.argsort(-pred_scores, kind="stable"):
        g = int(matched[k])
        iou = 0.0
        if g >= 0:
            gt_mask = gt_instance == g
            iou = float((gt_mask & pred_masks[k]).sum() / max((gt_mask | pred_masks[k]).sum(), 1))
        rows.append({"prediction": int(k), "score": float(pred_scores[k]), "gt": g, "iou": iou,
                     "status": "match" if g >= 0 else "false positive"})
    for g in np.setdiff1d(np.unique(gt_instance[gt_instance >= 0]), matched):
        rows.append({"prediction": -1, "score": 0.0, "gt": int(g), "iou": 0.0, "status": "miss"})
    return rows


def prediction_vs_gt_figure(coord: np.ndarray, gt_instance: np.ndarray, pred_masks: np.ndarray,
                            pred_scores: np.ndarray, iou_threshold: float = 0.5, max_points: int = 200_000,
                            seed: int = 0, title: str = "") -> go.Figure:
    """:func:`instance_comparison_figure` plus every matched pair's IoU written at the prediction's
    centre, and red overlays on the points of missed GT instances (left) and of false positives (right)."""
    coord = np.asarray(coord)
    gt_instance = np.asarray(gt_instance, dtype=np.int64)
    pred_masks = np.asarray(pred_masks, dtype=bool).reshape(-1, len(coord))  # (K, N)
    fig = instance_comparison_figure(coord, gt_instance, pred_masks, pred_scores, iou_threshold,
                                     max_points=max_points, seed=seed, title=title)
    rows = instance_match_table(gt_instance, pred_masks, pred_scores, iou_threshold)
    keep = subsample(len(coord), max_points, seed)  # the subset instance_comparison_figure draws
    missed = np.isin(gt_instance, [r["gt"] for r in rows if r["status"] == "miss"])  # (N,)
    false_pos = pred_masks[[r["prediction"] for r in rows if r["status"] == "false positive"]].any(0) \
        if any(r["status"] == "false positive" for r in rows) else np.zeros(len(coord), bool)
    for col, name, flag in ((1, "missed GT", missed), (2, "false positives", false_pos)):
        shown = keep[flag[keep]]
        fig.add_trace(go.Scatter3d(**_xyz(coord[shown]), mode="markers", name=name, hoverinfo="skip",
                                   marker=dict(size=2.5, color="rgba(230,30,30,0.5)")), row=1, col=col)
    pairs = [r for r in rows if r["status"] == "match"]
    centres = np.array([coord[pred_masks[r["prediction"]]].mean(0) for r in pairs],
                       dtype=np.float32).reshape(-1, 3)  # (matches, 3); a matched mask is never empty
    fig.add_trace(go.Scatter3d(**_xyz(centres), mode="text", name="IoU", hoverinfo="text",
                               text=[f"IoU {r['iou']:.2f}" for r in pairs],
                               hovertext=[f"prediction {r['prediction']} (score {r['score']:.2f}) = "
                                          f"GT {r['gt']}, IoU {r['iou']:.3f}" for r in pairs],
                               textfont=dict(size=11, color="black")), row=1, col=2)
    return fig


def save_html(fig: go.Figure, path) -> Path:
    """Write ``fig`` as a standalone HTML file (plotly.js embedded, so it opens offline), atomically."""
    from .data.io import atomic_path

    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"path: expected an .html file name, got {path}")
    with atomic_path(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True, full_html=True)
    return path
