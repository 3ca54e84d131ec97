from __future__ import annotations

import numpy as np
import pytest

from lassm.viz import (
    ap_figure,
    class_scores_figure,
    css_colors,
    curves_figure,
    decoder_slider_figure,
    decoder_stage_figure,
    export_report,
    format_table,
    indexed_colors,
    instance_comparison_figure,
    instance_match_table,
    label_colors,
    match_instances,
    per_class_figure,
    prediction_vs_gt_figure,
    query_init_figure,
    report_html,
    save_html,
    scene_figure,
    scene_view_figure,
    series_color,
    study_caveats,
    table_figure,
    tradeoff_figure,
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
    # the semantic layer's legend: one entry per class, in its colour, visible with that layer only
    assert [t.name for t in fig.data[1:]] == ["a", "b", "c"] and not any(t.visible for t in fig.data[1:])
    assert fig.data[2].marker.color == css_colors(label_colors(np.array([1])))[0]
    semantic = fig.layout.updatemenus[0].buttons[1].args[0]
    assert semantic["visible"] == [True, True, True, True]
    assert semantic["marker.color"][1:] == [t.marker.color for t in fig.data[1:]]
    assert fig.layout.updatemenus[0].buttons[0].args[0]["visible"] == [True, False, False, False]


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
    fig = instance_comparison_figure(coord, gt, masks, scores, instance_names={7: "chair", 9: "table"})
    assert {t.scene for t in fig.data[:2]} == {"scene", "scene2"}
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
    # the legend: one entry per GT instance in its colour, then false positives and no instance
    legend = fig.data[2:]
    assert [t.name for t in legend] == ["instance 7: chair", "instance 9: table",
                                        "false positive (dark shades)", "no instance / no prediction"]
    assert all(t.x == (None,) for t in legend)  # entries only, no points
    assert legend[0].marker.color == gt_colors[3] and legend[1].marker.color == gt_colors[n + 5]
    assert legend[3].marker.color == GREY


def test_instance_comparison_figure_counts_missed_and_subsamples():
    coord, gt, masks, scores = two_object_scene()
    fig = instance_comparison_figure(coord, gt, masks[:2], scores[:2], max_points=120, seed=3)
    assert "1 missed" in fig.layout.annotations[0].text
    assert all(len(t.x) == 120 for t in fig.data[:2])
    assert "instance 7 (missed)" in [t.name for t in fig.data[2:]]
    assert list(fig.data[0].x) == list(fig.data[1].x)  # the same subset in both panels
    again = instance_comparison_figure(coord, gt, masks[:2], scores[:2], max_points=120, seed=3)
    assert list(again.data[0].x) == list(fig.data[0].x)  # seeded
    empty = instance_comparison_figure(coord, gt, np.zeros((0, len(coord)), bool), np.zeros(0))
    assert set(empty.data[1].marker.color) == {GREY}


# ------------------------------------------------------------------------------- query figures (notebook 05)

KINDS = ("init", "cross-attention", "local aggregation", "local aggregation")


def fake_trace(n: int = 3000, s: int = 12, q: int = 5, k: int = 4) -> dict:
    """Arrays shaped like a SceneTrace: T = 4 stages (init, one cross-attention, two local aggregation)."""
    rng = np.random.default_rng(0)
    t = len(KINDS)
    neighbours = [None, None, rng.integers(0, s, (q, k)), rng.integers(0, s, (q, k))]
    neighbours[3][0, -1] = -1  # an empty slot (a scene of fewer than k superpoints)
    return {"coord": rng.random((n, 3)), "superpoint": rng.integers(0, s, n), "sp_coord": rng.random((s, 3)),
            "positions": rng.random((t, q, 3)), "mask_probs": rng.random((t, q, s)), "kinds": KINDS,
            "neighbours": neighbours, "seed_positions": rng.random((q, 3))}


def test_scene_view_figure_dropdown_starts_at_mode_and_caps_points():
    rng = np.random.default_rng(0)
    n = 4000
    colors = {m: rng.integers(0, 255, (n, 3)).astype(np.uint8) for m in ("RGB", "semantic", "instance")}
    fig = scene_view_figure(rng.random((n, 3)), colors, mode="semantic", max_points=500)
    assert len(fig.data) == 1 and len(fig.data[0].x) == 500
    menu = fig.layout.updatemenus[0]
    assert [b.label for b in menu.buttons] == ["RGB", "semantic", "instance"] and menu.active == 1
    assert list(fig.data[0].marker.color) == list(menu.buttons[1].args[0]["marker.color"][0])
    with pytest.raises(ValueError, match="mode"):
        scene_view_figure(rng.random((n, 3)), colors, mode="height")
    with pytest.raises(ValueError, match="colors_by_mode"):
        scene_view_figure(rng.random((n, 3)), {"RGB": colors["RGB"][:10]})


def test_indexed_colors_give_every_point_its_colour():
    """A point's number falls in the band of its own colour on the step scale; beyond max_colors, the
    colour 4 bits a channel."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (30, 3)).astype(np.uint8)[rng.integers(0, 30, 2000)]  # 30 distinct colours
    for max_colors, expect in ((4096, rgb), (10, (rgb & 0xF0) | 0x08)):
        m = indexed_colors(rgb, max_colors=max_colors)
        stops = np.array([t for t, _ in m["colorscale"]])
        assert m["cmin"] == 0 and np.all(np.diff(stops) >= 0) and stops[0] == 0 and stops[-1] == 1
        t = (m["color"] - m["cmin"]) / (m["cmax"] - m["cmin"])  # where plotly.js looks each point up
        band = np.searchsorted(stops, t, side="right") - 1  # the stop at or below: its colour's first stop
        assert [m["colorscale"][b][1] for b in band] == css_colors(expect)


def test_query_init_figure_layers():
    tr = fake_trace()
    conf = np.linspace(0, 1, 12)
    fig = query_init_figure(tr["coord"], tr["sp_coord"], conf, np.array([11, 10, 9, 8, 7]), np.array([11, 8]),
                            max_points=1000)
    points, sps, cands, queries = fig.data
    assert len(points.x) == 1000 and len(sps.x) == 12 and len(cands.x) == 5 and len(queries.x) == 2
    assert sps.marker.colorbar.title.text == "confidence"
    np.testing.assert_allclose(sps.marker.color, conf, rtol=1e-6)
    np.testing.assert_allclose([queries.x[1], queries.y[1], queries.z[1]], tr["sp_coord"][8])


def test_decoder_stage_figure_mask_heat_trails_and_neighbours_only_when_aggregating():
    tr = fake_trace()
    q = 2
    for stage, kind in enumerate(KINDS):
        fig = decoder_stage_figure(**tr, stage=stage, query=q, max_points=800)
        points, trails, queries, chosen, near = fig.data
        assert len(points.x) == 800 and len(queries.x) == 5 and len(chosen.x) == 1
        # the heat map is the query's mask probability at each drawn point's superpoint
        keep = np.flatnonzero(np.isin(tr["coord"][:, 0].astype(np.float32), points.x))
        np.testing.assert_allclose(points.marker.color, tr["mask_probs"][stage, q][tr["superpoint"][keep]],
                                   rtol=1e-6)
        drawn = np.isfinite(np.asarray(trails.x, dtype=float)).sum()
        assert drawn == 5 * (stage + 2)  # every query: its seed, then stages 0..stage
        expected = 0 if kind != "local aggregation" else int((tr["neighbours"][stage][q] >= 0).sum())
        assert len(near.x) == expected
        if expected:
            idx = tr["neighbours"][stage][q]
            np.testing.assert_allclose(near.x, tr["sp_coord"][idx[idx >= 0], 0])
    assert len(decoder_stage_figure(**tr, stage=3, query=0).data[4].x) == 3  # one slot empty
    bare = decoder_stage_figure(**tr, stage=2, query=None, trail=False)
    assert len(bare.data[1].x) == 0 and len(bare.data[3].x) == 0 and len(bare.data[4].x) == 0
    with pytest.raises(ValueError, match="stage"):
        decoder_stage_figure(**tr, stage=4)
    with pytest.raises(ValueError, match="query"):
        decoder_stage_figure(**tr, stage=0, query=5)


def test_decoder_slider_figure_has_one_frame_per_stage():
    tr = fake_trace()
    fig = decoder_slider_figure(**tr, query=1, max_points=700)
    assert len(fig.frames) == len(KINDS) == len(fig.layout.sliders[0].steps)
    assert [f.name for f in fig.frames] == ["0", "1", "2", "3"]
    assert [list(s.args[0]) for s in fig.layout.sliders[0].steps] == [["0"], ["1"], ["2"], ["3"]]
    assert len(fig.data[0].x) == 700
    for stage, frame in enumerate(fig.frames):
        assert len(frame.data) == len(fig.data) == 5 and list(frame.traces) == [0, 1, 2, 3, 4]
        assert frame.data[0].x is None and len(frame.data[0].marker.color) == 700  # only new colours
        single = decoder_stage_figure(**tr, stage=stage, query=1, max_points=700)
        np.testing.assert_allclose(frame.data[0].marker.color, single.data[0].marker.color)
        assert len(frame.data[4].x) == len(single.data[4].x)
        assert (len(frame.data[4].x) > 0) == (KINDS[stage] == "local aggregation")


def test_class_scores_figure():
    fig = class_scores_figure(np.array([0.1, 0.6, 0.3]), ("chair", "table"))
    assert list(fig.data[0].x) == ["chair", "table", "background"]
    assert fig.data[0].marker.color[1] != fig.data[0].marker.color[0]  # the most likely stands out
    with pytest.raises(ValueError, match="class_names"):
        class_scores_figure(np.array([0.1, 0.6, 0.3]), ("chair",))


def test_instance_match_table_and_prediction_vs_gt_figure():
    coord, gt, masks, scores = two_object_scene()
    rows = instance_match_table(gt, masks[1:], scores[1:])  # drop the prediction of GT 9: a miss
    assert [(r["prediction"], r["gt"], r["status"]) for r in rows] == [
        (0, -1, "false positive"), (1, 7, "match"), (-1, 9, "miss")]
    assert rows[1]["iou"] == pytest.approx(0.8)
    fig = prediction_vs_gt_figure(coord, gt, masks[1:], scores[1:], max_points=250)
    names = [t.name for t in fig.data]
    missed, false_pos, labels = (fig.data[names.index(n)] for n in ("missed GT", "false positives", "IoU"))
    n_missed = len(missed.x)
    assert 0 < n_missed <= 100 and n_missed <= 250  # GT 9's drawn points
    assert 0 < len(false_pos.x) <= 60
    assert list(labels.text) == ["IoU 0.80"]  # matched pairs only; false positives are the red overlay
    assert "1 missed" in fig.layout.annotations[0].text


def test_save_html_writes_a_standalone_file(tmp_path):
    fig = class_scores_figure(np.array([0.5, 0.5]), ("chair",))
    path = save_html(fig, tmp_path / "outputs" / "explore" / "scores.html")
    text = path.read_text()
    assert path.is_file() and "<html>" in text[:200] and len(text) > 1_000_000  # plotly.js inside
    assert not list(path.parent.glob(".*.tmp"))
    with pytest.raises(ValueError, match="path"):
        save_html(fig, tmp_path / "scores.png")
    # an animated figure (the decoder stages) waits for its Play button in a saved page
    slider = decoder_slider_figure(**fake_trace(), query=0)
    assert slider.frames and "Plotly.animate(" in slider.to_html(auto_play=True)  # what would autoplay
    assert "Plotly.animate(" not in save_html(slider, tmp_path / "stages.html").read_text()


# ------------------------------------------------------------------------------- package layout

# every public name of the single-module lassm.viz before it became a package
FORMER_PUBLIC_NAMES = ("FAINT", "QUERY_COLOR", "class_scores_figure", "decoder_slider_figure",
                       "decoder_stage_figure", "instance_comparison_figure", "instance_match_table",
                       "label_colors", "match_instances", "per_class_figure", "prediction_vs_gt_figure",
                       "query_init_figure", "save_html", "scene_figure", "scene_view_figure", "subsample",
                       "training_curves")


def test_package_reexports_every_public_name():
    import importlib

    import lassm.viz as viz

    for name in FORMER_PUBLIC_NAMES:
        assert callable(getattr(viz, name)) or isinstance(getattr(viz, name), str), name
    for name in viz.__all__:
        home = importlib.import_module(getattr(viz, name).__module__) if callable(getattr(viz, name)) else viz
        assert getattr(home, name) is getattr(viz, name), name


def test_viz_imports_no_model_or_training_code():
    import subprocess
    import sys

    code = ("import sys, lassm.viz; bad = sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['lassm', 'model'], ['lassm', 'train'], ['lassm', 'ablations'])); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------- ablation figures


def _summary_row(variant: str, done: int, ap50: float | None, seconds: float | None, error: str = "") -> dict:
    """A row shaped like lassm.ablations.summary_table's."""
    row = {"variant": variant, "runs": max(done, 1), "done": done, "failed": 0 if done else 1,
           "params": 1234 if done else None, "error": error}
    for key, mean, std in (("AP", ap50 and ap50 / 2, 0.01), ("AP50", ap50, 0.02), ("AP25", ap50, 0.0),
                           ("train_seconds", seconds, 0.5), ("wall_seconds", seconds, 0.5),
                           ("infer_seconds", seconds and seconds / 100, 0.001), ("peak_mb", 10.0, 0.0)):
        row[f"{key}_mean"], row[f"{key}_std"] = (mean, std) if mean is not None else (None, None)
    return row


def _table() -> list[dict]:
    return [_summary_row("base", 2, 0.5, 20.0), _summary_row("k-4", 0, None, None, "RuntimeError: boom"),
            _summary_row("k-16", 1, 0.7, 40.0)]


def test_ablation_table_text_and_figure():
    table = _table()
    text = format_table(table).splitlines()
    assert text[0].split()[:3] == ["variant", "runs", "done"] and len(text) == 4
    assert "0.250 ± 0.010" in text[1] and "1,234" in text[1] and "RuntimeError: boom" in text[2]
    cells = table_figure(table).data[0].cells.values
    assert list(cells[0]) == ["base", "k-4", "k-16"]
    assert list(cells[4]) == ["0.500 ± 0.020", "", "0.700 ± 0.020"]  # AP50; k-4 has no result


def test_ablation_ap_and_tradeoff_figures_skip_variants_without_results():
    table = _table()
    ap = ap_figure(table)
    assert [t.name for t in ap.data] == ["AP", "AP50", "AP25"]
    assert list(ap.data[1].x) == ["base", "k-16"] and list(ap.data[1].y) == [0.5, 0.7]
    assert list(ap.data[1].error_y.array) == [0.02, 0.02]
    tradeoff = tradeoff_figure(table)
    assert list(tradeoff.data[0].text) == ["base", "k-16"]
    assert list(tradeoff.data[0].x) == pytest.approx([0.2, 0.4])


def test_twenty_series_colours_are_distinct():
    from lassm.viz import SERIES_COLORS

    assert len({series_color(i).lower() for i in range(20)}) == 20 == len(SERIES_COLORS)


def test_ablation_curves_one_colour_per_variant_first_seed_solid():
    curves = [{"variant": "base", "seed": 0, "step": [1, 2], "AP": [0.1, 0.2], "AP50": [0.3, 0.4],
               "AP25": [0.5, 0.6]},
              {"variant": "base", "seed": 1, "step": [1, 2], "AP": [0.1, 0.1], "AP50": [0.2, 0.5],
               "AP25": [0.5, 0.5]},
              {"variant": "k-4", "seed": 0, "step": [], "AP": [], "AP50": [], "AP25": []},
              {"variant": "k-16", "seed": 0, "step": [2], "AP": [0.3], "AP50": [0.6], "AP25": [0.7]}]
    fig = curves_figure(curves)
    assert [t.name for t in fig.data] == ["base s0", "base s1", "k-16 s0"]
    assert [t.line.dash for t in fig.data] == ["solid", "dash", "solid"]
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    assert list(fig.data[1].y) == [0.2, 0.5] and list(curves_figure(curves, "AP").data[1].y) == [0.1, 0.1]


def test_ablation_report_is_one_standalone_page(tmp_path):
    table = _table()
    figures = [ap_figure(table), tradeoff_figure(table)]
    caveats = study_caveats(table, seeds=[0], steps=240)
    assert any("One seed" in c for c in caveats) and any("240 training steps" in c for c in caveats)
    assert not any("One seed" in c for c in study_caveats(table, seeds=[0, 1], steps=240))
    path = report_html(figures, table, tmp_path / "study" / "report.html", "a <test>",
                       settings={"epochs": 40, "learning rate": 0.002}, caveats=caveats)
    text = path.read_text()
    assert "<td>learning rate</td><td>0.002</td>" in text and "One seed per variant" in text
    assert text.index("Settings") < text.index("Read with care") < text.index("Results")
    assert text.count("plotly.js v") == 1 and text.count("Plotly.newPlot") == 2  # plotly.js embedded once
    assert "<h1>a &lt;test&gt;</h1>" in text and "<td>RuntimeError: boom</td>" in text
    assert not list(path.parent.glob(".*.tmp"))
    shared = report_html(figures, table, tmp_path / "shared.html", "a <test>", plotlyjs="cdn")
    small = shared.read_text()  # a page to commit: plotly.js from its CDN, one script tag, same figures
    assert "plotly.js v" not in small and small.count("cdn.plot.ly/plotly-") == 1
    assert small.count("Plotly.newPlot") == 2 and shared.stat().st_size < 100_000 < path.stat().st_size
    with pytest.raises(ValueError, match="plotlyjs"):
        report_html(figures, table, tmp_path / "bad.html", "t", plotlyjs="directory")


def test_export_report(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbconvert")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# hello ablations")])
    source = tmp_path / "done.ipynb"
    nbformat.write(nb, source)
    out = export_report(source, tmp_path / "done.html")
    assert "hello ablations" in out.read_text()
    with pytest.raises(ValueError, match="executed_notebook_path"):
        export_report(tmp_path / "missing.ipynb", tmp_path / "x.html")


def test_training_curves_show_epochs_terms_validation_and_learning_rate():
    """A short run logs few steps but an epoch record each epoch: every record kind gets its curve."""
    from lassm.viz import training_curves

    terms = {"loss_cls": 0.5, "loss_mask": 0.2, "loss_dice": 0.7, "loss_bbox": 0.3, "loss_sp_cls": 0.4}
    records = [{"kind": "run", "step": 0, "params": 1.0},
               {"kind": "train", "step": 50, "loss": 3.0, "lr": 1e-3, **terms},
               *({"kind": "epoch", "step": 3 * e, "loss": 4.0 - 0.1 * e, "epoch": e, **terms}
                 for e in range(1, 41)),
               *({"kind": "val", "step": 30 * v, "AP": 0.1 * v, "AP50": 0.2 * v, "AP25": 0.3 * v}
                 for v in (1, 2, 3))]
    fig = training_curves(records)
    names = [t.name for t in fig.data]
    assert names == ["loss (logged steps)", "loss (epoch mean)", *terms, "AP", "AP50", "AP25",
                     "learning rate"]
    assert len(fig.data[1].x) == 40  # every epoch, though only one step was logged
    dashes = {t.name: t.line.dash for t in fig.data if t.name in ("AP", "AP50", "AP25")}
    assert len(set(dashes.values())) == 3  # AP is not hidden under AP50
    assert fig.layout.xaxis.title.text == "step" and fig.layout.yaxis.title.text == "loss"
    assert training_curves([]).data == ()
