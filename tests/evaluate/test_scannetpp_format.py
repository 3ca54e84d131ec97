"""ScanNet++'s own instance benchmark files (lassm.evaluate.scannetpp_format) and --format scannetpp.

The reader in `toolkit_read` follows the ScanNet++ toolkit's documented reading rules (eval_instance.py's
header and instance_utils): lines `path label conf` split on spaces, mask paths relative to the
prediction file's folder, masks read with np.loadtxt as integers, nonzero = in the instance; GT
semantic_id * 1000 + instance. The expected AP values of the perturbations are derived by hand below.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from lassm import config
from lassm.data import scannetpp
from lassm.data.io import write_scene
from lassm.data.labels import CLASS_LABELS_PP
from lassm.evaluate import export
from lassm.evaluate.ap import evaluate_predictions
from lassm.evaluate.formats import main as evaluate_main
from lassm.evaluate.scannetpp_format import (
    EVALUATED_IDS,
    MESH_MASK_FILE,
    ScanNetPPFileError,
    evaluate_scannetpp,
    gt_values,
    toolkit_classes,
    toolkit_label_ids,
    write_gt,
    write_predictions,
)
from lassm.model import LaSSM, Prediction

TABLE, CHAIR, BOX, WALL, CUP = (CLASS_LABELS_PP.index(n) for n in ("table", "chair", "box", "wall", "cup"))
N = 1200  # vertices of the tiny scene: 24 segments of 50
# Vertex ranges of the tiny scene after preprocessing (column 0 = the smallest object of a vertex):
TABLE_V = np.r_[0:100, 150:300]  # table group: segments 0..5, minus segment 2 (the box on it is smaller)
BOX_V = np.r_[100:150]  # 50 vertices: a GT below 100 vertices, not counted
CHAIR_B, CHAIR_C = np.r_[300:500], np.r_[500:650]  # two chairs: 200 and 150 vertices
WALL_V = np.r_[650:850]  # stuff: void in the benchmark
CUP_V = np.r_[850:900]  # small
# 900..1199: unlabelled


# ------------------------------------------------------------------------------- fixtures


def tiny_scene_arrays(shift: float) -> dict:
    """A processed ScanNet++ scene made by our preprocessing's annotation step (REFERENCE_SPEC 1.2)."""
    seg = np.arange(N) // 50
    groups = [
        {"objectId": 7, "label": "table", "segments": [0, 1, 2, 3, 4, 5]},
        {"objectId": 2, "label": "box", "segments": [2]},  # overlaps the table: column 0 gets the box
        {"objectId": 3, "label": "chair", "segments": [6, 7, 8, 9]},
        {"objectId": 12, "label": "chair", "segments": [10, 11, 12]},
        {"objectId": 1, "label": "wall", "segments": [13, 14, 15, 16]},
        {"objectId": 5, "label": "cup", "segments": [17]},
    ]
    index = {name: CLASS_LABELS_PP.index(name) for name in ("table", "box", "chair", "wall", "cup")}
    segment, instance = scannetpp.annotate_vertices(seg, groups, index)
    x, y = np.meshgrid(np.arange(40) * 0.05, np.arange(30) * 0.05, indexing="ij")
    coord = np.stack([x.ravel() + shift, y.ravel(), np.zeros(N)], 1).astype(np.float32)
    return {"coord": coord, "color": np.full((N, 3), 128, np.uint8), "superpoint": seg.astype(np.int64),
            "segment": segment, "instance": instance}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("scannetpp")
    for k, name in enumerate(("scene_a", "scene_b")):
        write_scene(root / "val" / name, tiny_scene_arrays(shift=3.0 * k))
    return root


def tiny(root) -> config.Config:
    cfg = config.scannetpp(root=str(root))
    cfg.model.backbone.sparse_backend = "torch"
    cfg.model.decoder.d_model, cfg.model.decoder.ffn_hidden, cfg.model.decoder.heads = 64, 128, 4
    cfg.model.decoder.num_query = 16
    return cfg


def prediction(masks, classes, scores) -> Prediction:
    return Prediction(scores=torch.as_tensor(scores, dtype=torch.float32), classes=torch.as_tensor(classes),
                      masks=torch.as_tensor(np.stack(masks)), queries=torch.arange(len(scores)))


def vertex_mask(*ranges) -> np.ndarray:
    mask = np.zeros(N, dtype=bool)
    for r in ranges:
        mask[r] = True
    return mask


def toolkit_read(pred_dir, scene):
    """[(mask (N,) bool, label id, confidence)] by the toolkit's documented reading rules."""
    pred_file = os.path.join(pred_dir, f"{scene}.txt")
    out = []
    for line in open(pred_file).read().splitlines():
        rel, label, conf = line.split(" ")
        assert not os.path.isabs(rel) and os.path.dirname(rel)  # relative, in a subfolder
        mask = np.loadtxt(os.path.join(os.path.dirname(pred_file), rel), dtype=np.int32)
        out.append((mask != 0, int(float(label)), float(conf)))
    return out


# ------------------------------------------------------------------------------- label space and files


def test_label_space_is_the_index_in_the_100_semantic_classes():
    names, ids = toolkit_classes()
    assert len(ids) == 84 and len(set(ids)) == 84
    # from REFERENCE_SPEC appendix A: table = 3, door = 4, box = 15, monitor = 17, marker = 99
    assert [ids[names.index(n)] for n in ("table", "door", "box", "monitor", "marker")] == [3, 4, 15, 17, 99]
    assert not {"wall", "ceiling", "floor", "window frame", "paper"} & set(names)
    assert toolkit_label_ids(["chair", "wall"], "p").tolist() == [9, 0]
    cfg = config.scannetpp()
    train_label_ids = toolkit_label_ids(cfg.data.instance_class_names, "p", instance_only=True)
    assert train_label_ids.tolist() == list(ids)  # train label k -> id of the k-th instance class
    with pytest.raises(ValueError, match=r"data\.class_names: \['wall'\] is not ScanNet\+\+ benchmark inst"):
        toolkit_label_ids(["table", "wall"], "data.class_names", instance_only=True)
    scannet20 = config.synthetic().data.instance_class_names
    with pytest.raises(ValueError, match=r"class_names: \['counter', 'desk', 'shower curtain'\] are not"):
        toolkit_label_ids(scannet20, "data.class_names", instance_only=True)


def test_round_trip_through_the_toolkits_reading_rules(tmp_path):
    rng = np.random.default_rng(0)
    masks = rng.random((5, 300)) < 0.3
    labels = np.array([3, 99, 9, 3, 15])
    scores = np.array([0.9, 1.0, 0.0, 0.123456789012345, 0.5])
    path = write_predictions(tmp_path, "0a5c013435", masks, labels, scores)
    assert path == tmp_path / "0a5c013435.txt"
    back = toolkit_read(tmp_path, "0a5c013435")
    assert len(back) == 5
    for k, (mask, label, conf) in enumerate(back):
        assert np.array_equal(mask, masks[k]) and label == labels[k] and conf == scores[k]
    # GT: one integer per vertex, semantic * 1000 + instance >= 1, 0 elsewhere
    semantic = np.array([3, 3, 9, 9, 0, -1, 9, 15])
    instance = np.array([40, 40, 7, 8, 1, 5, 8, -1])
    gt = np.loadtxt(write_gt(tmp_path / "gt", "s", semantic, instance), dtype=np.int64)
    assert gt.tolist() == [3003, 3003, 9001, 9002, 0, 0, 9002, 0]  # ids 7, 8, 40 -> 1, 2, 3


def test_gt_from_a_processed_scene_uses_column_0_and_instance_classes_only(data_root):
    cfg = tiny(data_root)
    arrays = export.scene_arrays(export.split_dataset(cfg, "val"), 0)
    semantic = toolkit_label_ids(cfg.data.class_names, "p")[np.clip(arrays["segment"], 0, None)]
    values = gt_values(np.where(arrays["segment"] >= 0, semantic, -1), arrays["instance"])
    # objectIds 2 (box), 3, 7 (table), 5 (cup), 12 -> 1..5 in ascending order; the wall gets none
    expected = np.zeros(N, np.int64)
    for v, value in ((TABLE_V, TABLE * 1000 + 4), (BOX_V, BOX * 1000 + 1), (CHAIR_B, CHAIR * 1000 + 2),
                     (CHAIR_C, CHAIR * 1000 + 5), (CUP_V, CUP * 1000 + 3)):
        expected[v] = value
    assert np.array_equal(values, expected)


# ------------------------------------------------------------------------------- evaluation


def perfect_export(data_root, out) -> config.Config:
    """GT and perfect predictions of both tiny scenes through the export path (train labels -> ids)."""
    cfg = tiny(data_root)
    dataset = export.split_dataset(cfg, "val")
    k = {n: cfg.data.instance_class_names.index(n) for n in ("table", "chair")}
    for i in range(len(dataset.scenes)):
        arrays = export.scene_arrays(dataset, i)
        pred = prediction([vertex_mask(TABLE_V), vertex_mask(CHAIR_B), vertex_mask(CHAIR_C)],
                          [k["table"], k["chair"], k["chair"]], [0.9, 0.8, 0.7])
        export.write_scene(out, dataset.name(i), arrays, pred, cfg, "scannetpp")
    return cfg


def test_perfect_predictions_score_one(data_root, tmp_path):
    perfect_export(data_root, tmp_path)
    res = evaluate_scannetpp(tmp_path / "predictions", tmp_path / "gt")
    assert res["ap"] == res["ap50"] == res["ap25"] == 1.0 and res["num_scenes"] == 2
    assert res["classes"]["table"]["ap"] == 1.0 and math.isnan(res["classes"]["marker"]["ap"])
    assert math.isnan(res["classes"]["box"]["ap"])  # its only GT has 50 vertices
    assert toolkit_read(tmp_path / "predictions", "scene_a")[0][1] == TABLE


def write_perturbed(pred_dir, scene, extra_fp: bool):
    """Chair B predicted with 100 wall vertices added (IoU 200/300); optionally a chair on the table."""
    masks = [vertex_mask(TABLE_V), vertex_mask(CHAIR_B, WALL_V[:100]), vertex_mask(CHAIR_C)]
    labels, scores = [TABLE, CHAIR, CHAIR], [0.9, 0.8, 0.7]
    if extra_fp:
        masks.append(vertex_mask(TABLE_V))
        labels.append(CHAIR)
        scores.append(0.95)
    write_predictions(pred_dir, scene, np.stack(masks), labels, scores)


def test_perturbations_give_the_hand_derived_ap(data_root, tmp_path):
    perfect_export(data_root, tmp_path)
    pred, gt = tmp_path / "predictions", tmp_path / "gt"
    for scene in ("scene_a", "scene_b"):
        write_perturbed(pred, scene, extra_fp=False)
    # Chair, per scene: B' (0.8, IoU 2/3 with B) and C (0.7, exact). Overlaps 0.25..0.65: both match, AP 1.
    # Overlaps 0.7..0.9: B' is a false positive (void share 1/3 <= overlap), B a missed GT; over both scenes
    # the examples are TP 0.7 x2, FP 0.8 x2, 2 hard FN. Thresholds 0.7: p 2/4, r 2/4; 0.8: p 0, r 0; then
    # (1, 0). AP = 0.5 * (0.5 - 0) / 2 + 0 * (0.5 - 0) / 2 + 1 * 0 = 0.125.
    chair = (4 * 1.0 + 5 * 0.125) / 9
    res = evaluate_scannetpp(pred, gt)
    assert res["classes"]["chair"]["ap"] == pytest.approx(chair, abs=1e-12)
    assert res["ap"] == pytest.approx((9 + 9 * chair) / 18, abs=1e-12)  # table: 1 at every overlap
    assert res["ap50"] == 1.0 and res["ap25"] == 1.0
    # The toolkit's per-scene mesh mask: the 100 wall vertices leave the scene, B' becomes exact.
    raw = tmp_path / "raw_data"
    for scene in ("scene_a", "scene_b"):
        (raw / scene / "scans").mkdir(parents=True)
        (raw / scene / "scans" / MESH_MASK_FILE).write_text("".join(f"{v}\n" for v in WALL_V[:100]))
    assert evaluate_scannetpp(pred, gt, data_root=raw)["ap"] == 1.0
    # Add a chair predicted on the table (0.95) in every scene. Chair at overlap 0.5: TP 0.8 and 0.7 and FP
    # 0.95 in each scene, no missed GT. Thresholds 0.7: p 4/6, r 1; 0.8: p 2/4, r 2/4; 0.95: p 0, r 0; then
    # (1, 0). AP50 = (2/3)(1 - 0.5)/2 + (1/2)(1 - 0)/2 + 0 * (0.5 - 0)/2 = 5/12.
    for scene in ("scene_a", "scene_b"):
        write_perturbed(pred, scene, extra_fp=True)
    res = evaluate_scannetpp(pred, gt)
    assert res["classes"]["chair"]["ap50"] == pytest.approx(5 / 12, abs=1e-12)
    assert res["ap50"] == pytest.approx((1 + 5 / 12) / 2, abs=1e-12)


def test_files_score_like_the_in_memory_evaluator(data_root, tmp_path):
    cfg = tiny(data_root)
    dataset = export.split_dataset(cfg, "val")
    rng = np.random.default_rng(1)
    preds, scenes = [], []
    for i in range(len(dataset.scenes)):
        arrays = export.scene_arrays(dataset, i)
        masks = [vertex_mask(v) & (rng.random(N) > rng.uniform(0, 0.5))
                 for v in (TABLE_V, CHAIR_B, CHAIR_C, WALL_V, CHAIR_B, np.r_[200:700])]
        classes = [0, 6, 6, 6, 6, 12]  # table, chair x4 (one on the wall, one duplicate), box
        pred = prediction(masks, classes, np.sort(rng.random(len(masks)))[::-1].copy())
        export.write_scene(tmp_path, dataset.name(i), arrays, pred, cfg, "scannetpp")
        preds.append(pred)
        scenes.append({"segment": arrays["segment"], "instance": arrays["instance"]})
    memory = evaluate_predictions(preds, scenes, cfg.data.class_names, cfg.data.stuff_classes)
    files = evaluate_scannetpp(tmp_path / "predictions", tmp_path / "gt")
    assert 0 < files["ap"] < 1
    for ours, theirs in (("AP", "ap"), ("AP50", "ap50"), ("AP25", "ap25")):
        assert files[theirs] == pytest.approx(memory[ours], abs=1e-12)


# ------------------------------------------------------------------------------- errors


def test_writer_refuses_wrong_label_ids_and_scores(tmp_path):
    masks = np.ones((1, 10), bool)
    for bad in (0, 100, -1, 16):  # wall, past the 100 classes, negative, window frame (not an instance)
        with pytest.raises(ValueError, match=rf"label_ids: \[{bad}\] are not ScanNet\+\+ instance class ids"):
            write_predictions(tmp_path, "s", masks, [bad], [0.5])
    with pytest.raises(ValueError, match=r"scores: expected confidences in \[0, 1\]"):
        write_predictions(tmp_path, "s", masks, [3], [1.5])
    with pytest.raises(ValueError, match="semantic_ids: expected ScanNet\\+\\+ semantic ids 0..99"):
        write_gt(tmp_path, "s", [100], [1])
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.fixture
def scene(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    write_predictions(pred, "s", np.ones((1, 200), bool), [3], [0.9])
    write_gt(gt, "s", np.full(200, 3), np.zeros(200))
    return pred, gt


@pytest.mark.parametrize("line, message", [
    ("predicted_masks/s_000.txt 100 0.5", r"s\.txt, line 2: label id 100 is not a ScanNet\+\+ label id"),
    ("predicted_masks/s_000.txt -1 0.5", r"s\.txt, line 2: label id -1 is not"),
    ("predicted_masks/s_000.txt 3.0 0.5", r"line 2: expected an integer label id, got '3.0'"),
    ("predicted_masks/s_000.txt 3 1.2", r"line 2: expected a confidence in \[0, 1\], got '1.2'"),
    ("predicted_masks/s_000.txt 3 nan", r"line 2: expected a confidence in \[0, 1\]"),
    ("predicted_masks/s_000.txt 3", r"line 2: expected 3 fields"),
    ("../s_000.txt 3 0.5", r"line 2: mask path '../s_000.txt' points outside"),
    ("predicted_masks/x.txt 3 0.5", r"line 2: mask file .*x\.txt not found"),
])
def test_bad_prediction_lines_name_file_and_line(scene, line, message):
    pred, gt = scene
    (pred / "s.txt").write_text(f"predicted_masks/s_000.txt 3 0.9\n{line}\n")
    with pytest.raises(ScanNetPPFileError, match=message):
        evaluate_scannetpp(pred, gt)


def test_skips_defined_non_instance_ids_and_on_request_unknown_ones(scene):
    pred, gt = scene
    (pred / "predicted_masks" / "short.txt").write_text("1\n" * 5)  # never read: its class is skipped
    (pred / "s.txt").write_text("predicted_masks/s_000.txt 3 0.9\npredicted_masks/short.txt 0 0.99\n")
    assert evaluate_scannetpp(pred, gt)["ap"] == 1.0
    (pred / "s.txt").write_text("predicted_masks/s_000.txt 3 0.9\npredicted_masks/short.txt 3 0.99\n")
    with pytest.raises(ScanNetPPFileError, match=r"short\.txt: 5 lines, expected 200"):
        evaluate_scannetpp(pred, gt)
    (pred / "s.txt").write_text("predicted_masks/s_000.txt 3 0.9\npredicted_masks/short.txt 100 0.99\n")
    assert evaluate_scannetpp(pred, gt, unknown_labels="skip")["ap"] == 1.0


def test_scene_list_and_mesh_mask_errors(scene, tmp_path):
    pred, gt = scene
    listed = tmp_path / "val.txt"
    listed.write_text("s\nt\n")
    with pytest.raises(ScanNetPPFileError, match=r"pred/t\.txt: prediction file of scene t not found"):
        evaluate_scannetpp(pred, gt, scenes=listed)
    with pytest.raises(ScanNetPPFileError, match=rf"s/scans/{MESH_MASK_FILE}: mesh mask not found"):
        evaluate_scannetpp(pred, gt, data_root=tmp_path)
    (tmp_path / "s" / "scans").mkdir(parents=True)
    (tmp_path / "s" / "scans" / MESH_MASK_FILE).write_text("3\n200\n")
    with pytest.raises(ScanNetPPFileError, match="vertex index 200 outside the scene's 200 vertices"):
        evaluate_scannetpp(pred, gt, data_root=tmp_path)


def test_export_refuses_a_model_without_scannetpp_classes_and_mixed_formats(data_root, tmp_path):
    cfg = config.synthetic(root=str(data_root))
    with pytest.raises(ValueError, match=r"data\.class_names: .* not ScanNet\+\+ benchmark instance classes"):
        export.export_split(None, cfg, "val", tmp_path, "cpu", fmt="scannetpp")  # before any model call
    with pytest.raises(ValueError, match="format: expected one of"):
        export.export_split(None, cfg, "val", tmp_path, "cpu", fmt="scannet++")
    export.check_format(tmp_path / "out", "scannet", overwrite=False)
    with pytest.raises(ValueError, match="--format: .* holds a scannet export"):
        export.check_format(tmp_path / "out", "scannetpp", overwrite=False)
    export.check_format(tmp_path / "out", "scannetpp", overwrite=True)
    assert (tmp_path / "out" / export.FORMAT_FILE).read_text() == "scannetpp\n"


# ------------------------------------------------------------------------------- command lines


def test_export_and_evaluate_commands_with_format_scannetpp(data_root, tmp_path, capsys):
    cfg = tiny(data_root)
    torch.manual_seed(0)
    model = LaSSM(cfg.model).eval()
    checkpoint = tmp_path / "model.pth"
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, checkpoint)
    out = tmp_path / "bench"
    args = [str(checkpoint), "--split", "val", "--out", str(out), "--device", "cpu", "--format", "scannetpp"]
    assert export.main(args) == 0
    assert "--format scannetpp" in capsys.readouterr().out
    for scene in ("scene_a", "scene_b"):
        assert all(label in EVALUATED_IDS and 0 <= conf <= 1 for _, label, conf in toolkit_read(
            out / "predictions", scene))
    memory = export.evaluate_split(model, cfg, "val", "cpu")["overall"]
    result = tmp_path / "res.json"
    files = ["--pred", str(out / "predictions"), "--gt", str(out / "gt")]
    assert evaluate_main(["--format", "scannetpp", *files, "--json", str(result)]) == 0
    assert "no --data-root" in capsys.readouterr().err
    scores = json.loads(result.read_text())
    for ours, theirs in (("AP", "ap"), ("AP50", "ap50"), ("AP25", "ap25")):
        assert scores[theirs] == pytest.approx(memory[ours], abs=1e-12)
    assert evaluate_main([*files, "--data-root", "x"]) == 2
    assert "only with --format scannetpp" in capsys.readouterr().err
    assert evaluate_main(["--format", "scannetpp", "--classes", "scannet20", *files]) == 2
    assert "own label space" in capsys.readouterr().err


def test_help_lists_the_new_flags():
    for module, flags in (("lassm.evaluate", ("--format", "--data-root", "--scene-list")),
                          ("lassm.export", ("--format",))):
        proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and all(f in proc.stdout for f in flags), proc.stderr
        assert "scannetpp" in proc.stdout
