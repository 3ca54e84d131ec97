"""Figures of whole scenes: labels and colours, and predicted instances against the ground truth.

Plain arrays in, Plotly figures out (no model or training imports). Hovering names what a point is;
at most ``max_points`` points (one seeded subset) are drawn so a figure stays light in a notebook
or an HTML export.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .colors import css_colors, indexed_colors, label_colors
from .points import HIDDEN_AXES, scene_layout, subsample, xyz


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
    with class names for the layer called "semantic", whose colours also get a legend (shown while
    that layer is selected).
    """
    coord = np.asarray(coord)
    layers = dict(layers or {})
    keep = subsample(len(coord), max_points, seed)
    shown = coord[keep]  # (n, 3)
    options = {}
    if color is not None:
        options["RGB"] = css_colors(np.asarray(color)[keep])
    for name, values in layers.items():
        options[name] = css_colors(label_colors(np.asarray(values)[keep]))
    if not options:
        options["height"] = shown[:, 2]
    hover = []
    for name, values in layers.items():
        v = np.asarray(values)[keep]
        if name == "semantic" and class_names is not None:
            names = np.array([*class_names, "unlabelled"])
            hover.append([f"{name}: {names[i]}" for i in v])
        else:
            hover.append([f"{name}: {i}" for i in v])
    text = ["<br>".join(parts) for parts in zip(*hover, strict=True)] if hover else None
    first_name, first = next(iter(options.items()))
    fig = go.Figure(go.Scatter3d(
        **xyz(shown), mode="markers", showlegend=False,
        marker=dict(size=point_size, color=first), text=text, hoverinfo="text" if text else "x+y+z",
    ))
    legend = []  # (class name, colour) of the semantic layer's classes in view
    if "semantic" in layers and class_names is not None:
        ids = np.unique(np.asarray(layers["semantic"])[keep])
        ids = ids[ids >= 0]
        legend = [(class_names[i] if i < len(class_names) else str(i), c)
                  for i, c in zip(ids, css_colors(label_colors(ids)), strict=True)]
    for name, c in legend:  # legend only: traces without points
        fig.add_trace(go.Scatter3d(x=[None], y=[None], z=[None], mode="markers", name=name,
                                   marker=dict(size=8, color=c), visible=first_name == "semantic"))
    fig.update_layout(
        title=title, height=650, margin=dict(l=0, r=0, t=40 if title else 10, b=0),
        scene=HIDDEN_AXES, legend=dict(itemsizing="constant"),
        updatemenus=[dict(
            buttons=[dict(label=name, method="restyle",
                          args=[{"marker.color": [c, *(lc for _, lc in legend)],
                                 "visible": [True, *([name == "semantic"] * len(legend))]}])
                     for name, c in options.items()],
            direction="down", x=0.0, y=1.0, xanchor="left", yanchor="top",
        )],
    )
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
    options = {name: indexed_colors(np.asarray(c, dtype=np.uint8)[keep])
               for name, c in colors_by_mode.items()}
    names = list(options)
    fig = go.Figure(go.Scatter3d(**xyz(coord[keep]), mode="markers", name="points", hoverinfo="skip",
                                 marker=dict(size=point_size, showscale=False, **options[mode])))
    scene_layout(fig, title)
    fig.update_layout(updatemenus=[dict(
        buttons=[dict(label=name, method="restyle", args=[{f"marker.{k}": [v] for k, v in c.items()}])
                 for name, c in options.items()],
        active=names.index(mode), direction="down", x=0.0, y=1.0, xanchor="left", yanchor="top")])
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
    instance_names: dict[int, str] | None = None,
    max_legend: int = 24,
) -> go.Figure:
    """Ground-truth instances (left) next to predicted instances (right), in two 3-D scatters.

    coord: (N, 3); gt_instance: (N,) ids, -1 = none; pred_masks: (K, N) bool; pred_scores: (K,).
    A point in several predicted masks shows the highest-scoring one; points in none are grey, as
    are points of no GT instance. A prediction matching a GT instance (:func:`match_instances`)
    takes that instance's colour, so the panels compare at a glance; false positives get dark
    shades, which no GT instance has. At most ``max_points`` points (one seeded random subset,
    the same in both panels) are drawn. The legend names the colours: each GT instance (its class from
    ``instance_names`` {instance id: name} when given; the first ``max_legend``), false positives and
    points of no instance.
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

    keep = subsample(len(coord), max_points, seed)
    shown, gt, own = coord[keep], gt_instance[keep], owner[keep]
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
        fig.add_trace(go.Scatter3d(**xyz(shown), mode="markers",
                                   marker=dict(size=point_size, color=css_colors(colors)), text=text,
                                   hoverinfo="text", showlegend=False), row=1, col=col)
    names = instance_names or {}
    found = {int(g) for g in matched[matched >= 0]}
    entries = [(f"instance {g}" + (f": {names[g]}" if g in names else "")
                + ("" if g in found else " (missed)"),
                label_colors(np.array([g]))[0])
               for g in gt_ids[:max_legend]]
    if len(gt_ids) > max_legend:
        entries.append((f"... {len(gt_ids) - max_legend} more instances", grey))
    entries += [("false positive (dark shades)", (label_colors(np.array([0]))[0] * 0.45).astype(np.uint8)),
                ("no instance / no prediction", grey)]
    for name, color in entries:  # legend only: a trace without points
        fig.add_trace(go.Scatter3d(x=[None], y=[None], z=[None], mode="markers", name=name,
                                   marker=dict(size=8, color=css_colors(color[None])[0])), row=1, col=1)
    fig.update_layout(title=title, height=600, margin=dict(l=0, r=0, t=60 if title else 30, b=0),
                      scene=HIDDEN_AXES, scene2=HIDDEN_AXES, legend=dict(itemsizing="constant"))
    return fig


def prediction_vs_gt_figure(coord: np.ndarray, gt_instance: np.ndarray, pred_masks: np.ndarray,
                            pred_scores: np.ndarray, iou_threshold: float = 0.5, max_points: int = 200_000,
                            seed: int = 0, title: str = "", instance_names: dict[int, str] | None = None
                            ) -> go.Figure:
    """:func:`instance_comparison_figure` plus every matched pair's IoU written at the prediction's
    centre, and red overlays on the points of missed GT instances (left) and of false positives (right)."""
    coord = np.asarray(coord)
    gt_instance = np.asarray(gt_instance, dtype=np.int64)
    pred_masks = np.asarray(pred_masks, dtype=bool).reshape(-1, len(coord))  # (K, N)
    fig = instance_comparison_figure(coord, gt_instance, pred_masks, pred_scores, iou_threshold,
                                     max_points=max_points, seed=seed, title=title,
                                     instance_names=instance_names)
    rows = instance_match_table(gt_instance, pred_masks, pred_scores, iou_threshold)
    keep = subsample(len(coord), max_points, seed)  # the subset instance_comparison_figure draws
    missed = np.isin(gt_instance, [r["gt"] for r in rows if r["status"] == "miss"])  # (N,)
    false_pos = pred_masks[[r["prediction"] for r in rows if r["status"] == "false positive"]].any(0) \
        if any(r["status"] == "false positive" for r in rows) else np.zeros(len(coord), bool)
    for col, name, flag in ((1, "missed GT", missed), (2, "false positives", false_pos)):
        shown = keep[flag[keep]]
        fig.add_trace(go.Scatter3d(**xyz(coord[shown]), mode="markers", name=name, hoverinfo="skip",
                                   marker=dict(size=2.5, color="rgba(230,30,30,0.5)")), row=1, col=col)
    pairs = [r for r in rows if r["status"] == "match"]
    centres = np.array([coord[pred_masks[r["prediction"]]].mean(0) for r in pairs],
                       dtype=np.float32).reshape(-1, 3)  # (matches, 3); a matched mask is never empty
    fig.add_trace(go.Scatter3d(**xyz(centres), mode="text", name="IoU", hoverinfo="text",
                               text=[f"IoU {r['iou']:.2f}" for r in pairs],
                               hovertext=[f"prediction {r['prediction']} (score {r['score']:.2f}) = "
                                          f"GT {r['gt']}, IoU {r['iou']:.3f}" for r in pairs],
                               textfont=dict(size=11, color="black")), row=1, col=2)
    return fig
