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
