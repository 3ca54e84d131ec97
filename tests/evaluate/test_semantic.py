"""The semantic-label benchmark: mIoU against a brute-force count, label files, export and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from lassm.data.io import DataError
from lassm.evaluate import export, formats
from lassm.evaluate.semantic import (
    SemanticEvaluator,
    evaluate_semantic,
    read_labels,
    semantic_classes,
    write_labels,
)


def brute_force_iou(scenes: list[tuple[np.ndarray, np.ndarray]], ids: tuple[int, ...]) -> dict[int, float]:
    """IoU per evaluated id, point by point: GT outside ``ids`` is ignored; tp = GT c and predicted c;
    fn = GT c predicted anything else; fp = predicted c on a point whose GT is another evaluated id."""
    tp, fn, fp = dict.fromkeys(ids, 0), dict.fromkeys(ids, 0), dict.fromkeys(ids, 0)
    for gt, pred in scenes:
        for g, p in zip(gt.tolist(), pred.tolist(), strict=True):
            if g not in ids:
                continue
            if g == p:
                tp[g] += 1
            else:
                fn[g] += 1
                if p in ids:
                    fp[p] += 1
    return {c: tp[c] / (tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else math.nan for c in ids}


def random_scenes(rng: np.random.Generator, ids: tuple[int, ...], count: int = 4):
    """Scenes with unannotated (0) and not-evaluated GT ids, some classes never in GT, others never
    predicted, and predictions of 0 and of not-evaluated ids."""
    gt_ids, pred_ids = list(ids[:-3]), [*ids[:2], *ids[3:]]  # ids[-3:] never GT, ids[2] never predicted
    others = [0, 13, 40]  # unannotated and two NYU40 ids ScanNet20 does not evaluate
    scenes = []
    for _ in range(count):
        n = int(rng.integers(200, 600))
        gt = rng.choice(gt_ids + others, n)
        pred = np.where(rng.random(n) < 0.5, gt, rng.choice(pred_ids + others, n))  # half right
        pred = np.where(np.isin(pred, [ids[2]]), 0, pred)  # ids[2] is never predicted
        scenes.append((gt, pred))
    return scenes


def test_miou_matches_a_brute_force_count():
    rng = np.random.default_rng(0)
    names, ids = semantic_classes("scannet20")
    scenes = random_scenes(rng, ids)
    evaluator = SemanticEvaluator(names, ids)
    for gt, pred in scenes:
        evaluator.add(gt, pred)
    result = evaluator.compute()
    expected = brute_force_iou(scenes, ids)
    for name, c in zip(names, ids, strict=True):
        got = result["classes"][name]["iou"]
        assert (math.isnan(got) and math.isnan(expected[c])) or got == pytest.approx(expected[c]), name
    assert result["classes"][names[2]]["iou"] == 0  # in GT, never predicted
    assert result["classes"][names[-1]]["iou"] == 0  # predicted, never in GT
    assert expected[ids[-3]] == 0  # predicted without GT: false positives, IoU 0
    valid = [v for v in expected.values() if not math.isnan(v)]
    assert result["miou"] == pytest.approx(np.mean(valid)) and 0.1 < result["miou"] < 0.9


def test_a_class_without_gt_or_prediction_is_nan_and_left_out():
    names, ids = ("a", "b", "c"), (1, 2, 7)
    evaluator = SemanticEvaluator(names, ids)
    evaluator.add(np.array([1, 1, 2, 0, 5]), np.array([1, 2, 2, 7, 7]))  # GT 0 and 5 ignored
    result = evaluator.compute()["classes"]
    assert result["a"] == {"iou": 0.5, "tp": 1, "union": 2} and result["b"]["iou"] == 0.5
    assert math.isnan(result["c"]["iou"])  # predicted only where GT is ignored
    assert evaluator.compute()["miou"] == 0.5


def test_label_files_round_trip_and_score_like_the_evaluator(tmp_path):
    rng = np.random.default_rng(1)
    names, ids = semantic_classes("scannet20")
    scenes = random_scenes(rng, ids, count=3)
    evaluator = SemanticEvaluator(names, ids)
    for k, (gt, pred) in enumerate(scenes):
        write_labels(tmp_path / "gt", f"scene{k}", gt)
        write_labels(tmp_path / "pred", f"scene{k}", pred)
        assert np.array_equal(read_labels(tmp_path / "pred" / f"scene{k}.txt"), pred)
        evaluator.add(gt, pred)
    files = evaluate_semantic(tmp_path / "pred", tmp_path / "gt", "scannet20")
    assert files["num_scenes"] == 3
    assert files["miou"] == pytest.approx(evaluator.compute()["miou"])
    lines = (tmp_path / "pred" / "scene0.txt").read_text().splitlines()
    assert lines[:3] == [str(v) for v in scenes[0][1][:3]] and len(lines) == len(scenes[0][1])


def test_bad_label_files_name_the_file_and_line(tmp_path):
    write_labels(tmp_path / "gt", "s", np.array([1, 2, 3]))
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "s.txt").write_text("1\nwall\n3\n")
    with pytest.raises(DataError, match=r"s\.txt, line 2: expected one integer"):
        evaluate_semantic(tmp_path / "pred", tmp_path / "gt")
    (tmp_path / "pred" / "s.txt").write_text("1\n2\n")
    with pytest.raises(DataError, match="2 lines, but its GT"):
        evaluate_semantic(tmp_path / "pred", tmp_path / "gt")
    (tmp_path / "pred" / "s.txt").write_text("1\n-1\n3\n")  # the official script would count otherfurniture
    with pytest.raises(DataError, match="line 2: label id -1 is not a scannet20 label id"):
        evaluate_semantic(tmp_path / "pred", tmp_path / "gt")
    skipped = evaluate_semantic(tmp_path / "pred", tmp_path / "gt", unknown_labels="skip")
    assert skipped["classes"]["floor"] == {"iou": 0.0, "tp": 0, "union": 1}  # a miss, never a class
    with pytest.raises(ValueError, match="expected ids >= 0"):
        write_labels(tmp_path, "x", np.array([1, -1]))
    with pytest.raises(DataError, match="no ground truth"):
        evaluate_semantic(tmp_path / "pred", tmp_path / "nowhere")


# ------------------------------------------------------------------------------- export and the CLI


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    """Two tiny synthetic scenes (the val split of 3 rooms plus one train room) exported by a tiny model."""
    model, cfg = tiny_model
    out = tmp_path_factory.mktemp("semantic") / "bench"
    for split in ("val", "train"):
        export.export_split(model, cfg, split, out, "cpu", max_scenes=1)
    return model, cfg, out


def test_export_writes_the_heads_labels_and_the_gt(exported):
    model, cfg, out = exported
    table = export.semantic_label_ids(cfg)
    dataset = export.split_dataset(cfg, "val")
    arrays = export.scene_arrays(dataset, 0)
    pred = next(export.predict_split(model, cfg, dataset, "cpu", 1))[3]
    name = dataset.name(0)
    written = read_labels(out / "semantic" / f"{name}.txt")
    assert len(written) == len(arrays["coord"])
    assert written.tolist() == [int(table[s]) if s >= 0 else 0 for s in pred.semantic.tolist()]
    gt = read_labels(out / "gt_semantic" / f"{name}.txt")
    assert gt.tolist() == [int(table[s]) if s >= 0 else 0 for s in arrays["segment"].tolist()]
    assert (gt[arrays["segment"] == 0] == 1).all() and (gt[arrays["segment"] == 1] == 2).all()  # wall, floor


def test_semantic_flag_end_to_end(exported, tmp_path, capsys):
    model, cfg, out = exported
    result_file = tmp_path / "semantic.json"
    argv = ["--semantic", "--pred", str(out / "semantic"), "--gt", str(out / "gt_semantic"),
            "--classes", "scannet20", "--json", str(result_file)]
    assert formats.main(argv) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "otherfurniture" in printed
    result = json.loads(result_file.read_text())
    assert result["num_scenes"] == 2

    scenes = []  # the same two scenes predicted in memory, scored by the brute-force count
    for split in ("val", "train"):
        dataset = export.split_dataset(cfg, split)
        _, _, arrays, pred = next(export.predict_split(model, cfg, dataset, "cpu", 1))
        scenes.append((export.label_ids_of(arrays["segment"], cfg), export.label_ids_of(pred.semantic, cfg)))
    expected = brute_force_iou(scenes, semantic_classes("scannet20")[1])
    for name, c in zip(*semantic_classes("scannet20"), strict=True):
        got = result["classes"][name]["iou"]
        assert (got is None and math.isnan(expected[c])) or got == pytest.approx(expected[c]), name
    valid = [v for v in expected.values() if not math.isnan(v)]
    assert result["miou"] == pytest.approx(np.mean(valid))
    assert export.evaluate_split(model, cfg, "val", "cpu")["semantic"]["classes"]["wall"]["union"] > 0

    # the GT scored against itself: every class present is perfect
    assert formats.main(["--semantic", "--pred", str(out / "gt_semantic"), "--gt", str(out / "gt_semantic"),
                         "--json", str(result_file)]) == 0
    assert json.loads(result_file.read_text())["miou"] == 1.0
    # a bad flag value or folder is one error line and exit status 2
    missing = ["--semantic", "--pred", str(tmp_path / "none"), "--gt", str(out / "gt_semantic")]
    assert formats.main(missing) == 2
    assert "semantic prediction folder not found" in capsys.readouterr().err


def test_help_names_the_semantic_flag():
    proc = subprocess.run([sys.executable, "-m", "lassm.evaluate", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--semantic" in proc.stdout and "mIoU" in proc.stdout, proc.stderr
