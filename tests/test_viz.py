from __future__ import annotations

import numpy as np

from lassm.viz import (
    instance_comparison_figure,
    label_colors,
    match_instances,
    per_class_figure,
    scene_figure,
)


def test_label_colors():
    c = label_colors(np.array([-1, 0, 1, 2, 0]))
    assert c.shape == (5, 3) and c.dtype == np.uint8
    assert (c[0] == 190).all()  # unlabelled grey
    assert (c[1] == c[4]).all() and not (c[1] == c[2]).all()


def test_scene_figure_subsamples_and_has_dropdown():
    rng = np.random.default_rng(0)
    n = 5000
    fig = scene_figure(rng.random((n, 3)), rng.integers(0, 255, (n, 3)),
                       {"semantic": rng.integers(-1, 3, n), "instance": rng.integers(-1, 9, n)},
                       class_names=("a", "b", "c"), max_points=1000)
    assert len(fig.data[0].x) == 1000
    labels = [b.label for b in fig.layout.updatemenus[0].buttons]
    assert labels == ["RGB", "semantic", "instance"]
    assert any(t.startswith("semantic: ") for t in fig.data[0].text[:20])


# ------------------------------------------------------------------------------- evaluation figures

GREY = "rgb(190,190,190)"


def test_per_class_figure_groups_bars_and_leaves_classes_without_gt_empty():
    nan = float("nan")
    per_class = {"chair": {"AP": 0.4, "AP50": 0.6, "AP25": 0.8},
                 "table": {"AP": nan, "AP50": nan, "AP25": nan},
                 "sofa": {"AP": 0.1, "AP50": 0.2, "AP25": 0.3}}
    overall = {"AP": 0.25, "AP50": 0.4, "AP25": 0.55, "per_class": per_class}
    fig = per_class_figure({"overall": overall, "per_scene": []})
    assert len(fig.data) == 3 and fig.layout.barmode == "group"
    assert [t.name.split()[0] for t in fig.data] == ["AP", "AP50", "AP25"]
    assert list(fig.data[1].x) == ["chair", "table", "sofa"]
    assert list(fig.data[1].y) == [0.6, None, 0.2]
    assert "table" in fig.layout.title.text and "chair" not in fig.layout.title.text
    assert len(per_class_figure(overall).data) == 3  # a bare evaluator result works too


def brute_force_matches(gt, masks, scores, threshold):
    """Every (prediction, GT) IoU from sets, greedy by score, each GT claimed once."""
    out, claimed = {}, set()
    for k in sorted(range(len(masks)), key=lambda k: -scores[k]):
        pred = {i for i in range(len(gt)) if masks[k][i]}
        best, best_iou = -1, 0.0
        for g in sorted(set(gt) - {-1}):
            members = {i for i in range(len(gt)) if gt[i] == g}
            iou = len(pred & members) / len(pred | members)
            if g not in claimed and iou > best_iou:
                best, best_iou = g, iou
        out[k] = best if best_iou > threshold else -1
        if out[k] >= 0:
            claimed.add(out[k])
    return [out[k] for k in range(len(masks))]


def test_match_instances_equals_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = 60
        gt = rng.integers(-1, 5, n) * 3  # sparse ids: -3 becomes -1 below
        gt[gt < 0] = -1
        base = np.stack([gt == g for g in range(0, 15, 3)])
        noisy = [base ^ (rng.random(base.shape) < 0.15) for _ in range(2)]  # duplicates
        masks = np.concatenate([*noisy, rng.random((3, n)) < 0.3])  # and clutter
        scores = rng.random(len(masks))
        assert match_instances(gt, masks, scores).tolist() == \
            brute_force_matches(gt.tolist(), masks.tolist(), scores.tolist(), 0.5)


def two_object_scene(n_per: int = 100):
    """GT 7 and 9 plus background; prediction 0 = GT 9 (score .9), 1 = blob (score .8), 2 = GT 7 (.5)."""
    coord = np.random.default_rng(0).random((3 * n_per, 3))
    gt = np.repeat([7, 9, -1], n_per)
    masks = np.zeros((3, 3 * n_per), dtype=bool)
    masks[0, n_per:2 * n_per] = True  # GT 9 exactly
    masks[1, 2 * n_per:2 * n_per + 50] = True  # background: a false positive
    masks[1, n_per:n_per + 10] = True  # overlaps GT 9 but prediction 0 is shown there (higher score)
    masks[2, :n_per - 20] = True  # 80 % of GT 7, IoU 0.8
    return coord, gt, masks, np.array([0.9, 0.8, 0.5])


def test_instance_comparison_figure_colours_matches_like_their_gt():
    coord, gt, masks, scores = two_object_scene()
    fig = instance_comparison_figure(coord, gt, masks, scores)
    assert len(fig.data) == 2 and {t.scene for t in fig.data} == {"scene", "scene2"}
    assert fig.layout.scene2.aspectmode == "data"
    gt_colors, pred_colors = list(fig.data[0].marker.color), list(fig.data[1].marker.color)
    n = 100
    assert pred_colors[n + 5] == gt_colors[n + 5]  # GT 9's colour on its prediction
    assert pred_colors[3] == gt_colors[3] and gt_colors[3] != gt_colors[n + 5]  # GT 7
    assert pred_colors[n - 5] == GREY  # the 20 points of GT 7 no prediction holds
    assert gt_colors[2 * n + 60] == GREY and pred_colors[2 * n + 60] == GREY  # background
    fp = pred_colors[2 * n + 5]  # the false positive: a colour of neither GT nor grey
    assert fp not in {gt_colors[0], gt_colors[n], GREY}
    assert "0 missed" in fig.layout.annotations[0].text
    assert "2 matched, 1 false positive" in fig.layout.annotations[1].text


def test_instance_comparison_figure_counts_missed_and_subsamples():
    coord, gt, masks, scores = two_object_scene()
    fig = instance_comparison_figure(coord, gt, masks[:2], scores[:2], max_points=120, seed=3)
    assert "1 missed" in fig.layout.annotations[0].text
    assert all(len(t.x) == 120 for t in fig.data)
    assert list(fig.data[0].x) == list(fig.data[1].x)  # the same subset in both panels
    again = instance_comparison_figure(coord, gt, masks[:2], scores[:2], max_points=120, seed=3)
    assert list(again.data[0].x) == list(fig.data[0].x)  # seeded
    empty = instance_comparison_figure(coord, gt, np.zeros((0, len(coord)), bool), np.zeros(0))
    assert set(empty.data[1].marker.color) == {GREY}
