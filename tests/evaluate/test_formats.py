"""Tests for lassm.evaluate.formats: the official ScanNet instance benchmark on its file format.

`official_ap` below is a slow, loop-by-loop re-implementation of the official script's logic
(ScanNet BenchmarkScripts/3d_evaluation/evaluate_semantic_instance.py + util_3d.py), written from
its reading; the module (vectorised, built on lassm.evaluate.ap) must give the same numbers.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from lassm.evaluate.formats import (
    BenchmarkFileError,
    benchmark_classes,
    evaluate_benchmark,
    read_ints,
    read_mask,
    read_prediction_file,
    scene_groups,
    write_gt,
    write_predictions,
)
from lassm.evaluate.formats import main as evaluate_main

OVERLAPS = list(np.append(np.arange(0.5, 0.95, 0.05), 0.25))  # the official list, exact floats


# ------------------------------------------------------------------------------- brute force


def official_ap(pred_dir, gt_dir, names, ids):
    """(C, 10) AP per class and overlap, straight from the official script's loops."""
    id2name = dict(zip(ids, names, strict=True))
    matches = []
    for fname in sorted(os.listdir(pred_dir)):
        if not fname.endswith(".txt") or fname == "semantic_instance_evaluation.txt":
            continue
        pred_file = os.path.join(pred_dir, fname)
        gt_ids = [int(x) for x in open(os.path.join(gt_dir, fname)).read().splitlines()]
        # util_3d.get_instances: one instance per unique id != 0 whose id // 1000 is a valid class
        gt2pred = {name: [] for name in names}
        for gid in sorted(set(gt_ids)):
            if gid != 0 and gid // 1000 in ids:
                gt2pred[id2name[gid // 1000]].append(
                    {"instance_id": gid, "vert_count": gt_ids.count(gid), "matched_pred": []})
        void = [(g // 1000) not in ids for g in gt_ids]
        pred_info = {}
        for line in open(pred_file).read().splitlines():
            path, label, conf = line.split(" ")
            pred_info[os.path.abspath(os.path.join(pred_dir, path))] = (int(float(label)), float(conf))
        pred2gt = {name: [] for name in names}
        for mask_file, (label, conf) in pred_info.items():
            if label not in id2name:
                continue
            mask = [int(x) != 0 for x in open(mask_file).read().splitlines()]
            num = sum(mask)
            if num < 100:
                continue
            pred = {"filename": mask_file, "vert_count": num, "confidence": conf,
                    "void_intersection": sum(1 for m, v in zip(mask, void, strict=True) if m and v)}
            matched_gt = []
            for gt in gt2pred[id2name[label]]:
                inter = sum(1 for m, g in zip(mask, gt_ids, strict=True) if m and g == gt["instance_id"])
                if inter > 0:
                    matched_gt.append(dict(gt, intersection=inter))
                    gt["matched_pred"].append(dict(pred, intersection=inter))
            pred["matched_gt"] = matched_gt
            pred2gt[id2name[label]].append(pred)
        matches.append((gt2pred, pred2gt))

    ap = np.zeros((len(names), len(OVERLAPS)))
    for oi, th in enumerate(OVERLAPS):
        visited = {p["filename"]: False for _, p2g in matches for n in names for p in p2g[n]}
        for li, name in enumerate(names):
            y_true, y_score, hard_fn, has_gt, has_pred = [], [], 0, False, False
            for gt2pred, pred2gt in matches:
                preds = pred2gt[name]
                gts = [g for g in gt2pred[name] if g["instance_id"] >= 1000 and g["vert_count"] >= 100]
                has_gt |= bool(gts)
                has_pred |= bool(preds)
                cur_true, cur_score, cur_match = [1.0] * len(gts), [-math.inf] * len(gts), [False] * len(gts)
                for gi, gt in enumerate(gts):
                    found = False
                    for p in gt["matched_pred"]:
                        if visited[p["filename"]]:
                            continue
                        iou = p["intersection"] / (gt["vert_count"] + p["vert_count"] - p["intersection"])
                        if iou > th:
                            if cur_match[gi]:
                                lo = min(cur_score[gi], p["confidence"])
                                cur_score[gi] = max(cur_score[gi], p["confidence"])
                                cur_true.append(0.0)
                                cur_score.append(lo)
                                cur_match.append(True)
                            else:
                                found = True
                                cur_match[gi] = True
                                cur_score[gi] = p["confidence"]
                                visited[p["filename"]] = True
                    if not found:
                        hard_fn += 1
                cur_true = [t for t, m in zip(cur_true, cur_match, strict=True) if m]
                cur_score = [s for s, m in zip(cur_score, cur_match, strict=True) if m]
                for p in preds:
                    if any(g["intersection"] / (g["vert_count"] + p["vert_count"] - g["intersection"]) > th
                           for g in p["matched_gt"]):
                        continue
                    ignore = p["void_intersection"] + sum(g["intersection"] for g in p["matched_gt"]
                                                         if g["vert_count"] < 100)
                    if ignore / p["vert_count"] <= th:
                        cur_true.append(0.0)
                        cur_score.append(p["confidence"])
                y_true += cur_true
                y_score += cur_score
            if has_gt and has_pred and y_score:
                thresholds = sorted(set(y_score))
                total_true = sum(y_true)
                prec, rec = [], []
                for t in thresholds:  # everything scored >= t is called positive
                    tp = sum(y for y, s in zip(y_true, y_score, strict=True) if s >= t)
                    fp = sum(1 for s in y_score if s >= t) - tp
                    fn = (total_true - tp) + hard_fn
                    prec.append(tp / (tp + fp))
                    rec.append(tp / (tp + fn))
                prec.append(1.0)
                rec.append(0.0)
                r = [rec[0]] + rec + [0.0]
                ap[li, oi] = sum(p * (r[j] - r[j + 2]) / 2 for j, p in enumerate(prec))
            elif has_gt:
                ap[li, oi] = 0.0  # has_gt and has_pred with no example: the official script crashes
            else:
                ap[li, oi] = math.nan
    return ap


def averages(ap, names):
    with np.errstate(invalid="ignore"):
        return {"ap": np.nanmean(ap[:, :9]), "ap50": np.nanmean(ap[:, 0]), "ap25": np.nanmean(ap[:, 9]),
                "classes": {n: (np.mean(ap[i, :9]), ap[i, 0], ap[i, 9]) for i, n in enumerate(names)}}


# ------------------------------------------------------------------------------- helpers


def make_dirs(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    return pred, gt


def rng_mask(n, *ranges):
    m = np.zeros(n, dtype=bool)
    for a, b in ranges:
        m[a:b] = True
    return m


def gt_file(gt_dir, scene, values):
    (gt_dir / f"{scene}.txt").write_text("".join(f"{v}\n" for v in values))


CABINET, BED, CHAIR = 3, 4, 5  # ScanNet20 label ids


def assert_matches_official(pred, gt, classes="scannet20"):
    names, ids = benchmark_classes(classes)
    got = evaluate_benchmark(pred, gt, classes)
    want = averages(official_ap(str(pred), str(gt), names, ids), names)
    for key in ("ap", "ap50", "ap25"):
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-12, equal_nan=True)
    for name, (a, a50, a25) in want["classes"].items():
        r = got["classes"][name]
        np.testing.assert_allclose([r["ap"], r["ap50"], r["ap25"]], [a, a50, a25], atol=1e-12, equal_nan=True)
    return got


# ------------------------------------------------------------------------------- class lists


def test_class_lists():
    names, ids = benchmark_classes("scannet20")
    assert ids == (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39) and names[0] == "cabinet"
    names, ids = benchmark_classes("scannet200")
    assert len(ids) == 198 and 1 not in ids and 3 not in ids and 2 in ids and names[0] == "chair"
    names, ids = benchmark_classes("scannetpp")
    assert len(ids) == 84 and names[0] == "table" and ids[0] == 4
    assert benchmark_classes("mosd") == (("object",), (2,))
    with pytest.raises(ValueError, match="classes"):
        benchmark_classes("kitti")


# ------------------------------------------------------------------------------- round trip


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    masks = rng.random((3, 50)) < 0.4
    labels, scores = np.array([3, 5, 39]), np.array([0.1, 0.123456789012345, 1e-7])
    path = write_predictions(tmp_path, "scene0000_00", masks, labels, scores)
    entries = read_prediction_file(path, tmp_path)
    read_back = [(lab, conf) for lab, conf, _ in entries.values()]
    assert read_back == list(zip(labels.tolist(), scores.tolist(), strict=True))  # scores exactly (repr)
    for k, mask_path in enumerate(entries):
        assert mask_path == str(tmp_path / "predicted_masks" / f"scene0000_00_{k:03d}.txt")
        np.testing.assert_array_equal(read_mask(mask_path, 50), masks[k])
    label = np.array([3, 3, 5, 5, 1, 0, 7, 3])
    instance = np.array([4, 4, 9, -1, 2, 5, 9, 2])
    write_gt(tmp_path, "g", label, instance)  # unlabelled (0) vertex 5 drops instance 5: 2, 4, 9 -> 1, 2, 3
    np.testing.assert_array_equal(read_ints(tmp_path / "g.txt"), [3002, 3002, 5003, 0, 1001, 0, 7003, 3001])
    write_gt(tmp_path, "g", label, instance, classes="scannet20")  # wall (1) is not an instance class
    np.testing.assert_array_equal(read_ints(tmp_path / "g.txt"), [3002, 3002, 5003, 0, 0, 0, 7003, 3001])
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


# ------------------------------------------------------------------------------- hand-computed cases


def test_perfect_prediction(tmp_path):
    pred, gt = make_dirs(tmp_path)
    gt_file(gt, "s", [3001] * 200 + [5002] * 150 + [0] * 50)
    write_predictions(pred, "s", [rng_mask(400, (0, 200)), rng_mask(400, (200, 350))], [3, 5], [0.9, 0.4])
    res = assert_matches_official(pred, gt)
    assert res["ap"] == res["ap50"] == res["ap25"] == 1.0
    assert res["classes"]["cabinet"] == {"ap": 1.0, "ap50": 1.0, "ap25": 1.0}
    assert math.isnan(res["classes"]["bed"]["ap"]) and res["num_scenes"] == 1  # no GT: left out of the mean


def test_half_overlap_is_not_a_match(tmp_path):
    pred, gt = make_dirs(tmp_path)
    gt_file(gt, "s", [3001] * 200 + [0] * 100)
    write_predictions(pred, "s", [rng_mask(300, (0, 100))], [3], [0.9])  # IoU = 100 / 200 = 0.5 exactly
    res = assert_matches_official(pred, gt)
    assert res["ap50"] == 0.0 and res["ap25"] == 1.0 and res["ap"] == 0.0


def test_duplicate_is_a_false_positive(tmp_path):
    pred, gt = make_dirs(tmp_path)
    gt_file(gt, "s", [3001] * 200 + [3002] * 200)
    a, b = rng_mask(400, (0, 200)), rng_mask(400, (200, 400))
    write_predictions(pred, "s", [a, b, a], [3, 3, 3], [0.9, 0.5, 0.7])  # the third duplicates the first
    res = assert_matches_official(pred, gt)
    # examples TP 0.9, FP 0.7, TP 0.5: recall (1, .5, .5, 0), precision (2/3, 1/2, 1, 1), centred steps 1/4
    assert res["ap"] == pytest.approx(19 / 24, abs=1e-12)


def test_prediction_on_unannotated_is_ignored(tmp_path):
    pred, gt = make_dirs(tmp_path)
    gt_file(gt, "s", [3001] * 200 + [0] * 150 + [1001] * 50 + [5001] * 200)
    exact, on_void, on_chair = rng_mask(600, (0, 200)), rng_mask(600, (200, 400)), rng_mask(600, (400, 600))
    write_predictions(pred, "s", [exact, on_void], [3, 3], [0.9, 0.95])  # void = unannotated + wall
    assert assert_matches_official(pred, gt)["classes"]["cabinet"]["ap"] == 1.0
    write_predictions(pred, "s", [exact, on_chair], [3, 3], [0.9, 0.95])  # annotated chair: a real FP
    assert assert_matches_official(pred, gt)["classes"]["cabinet"]["ap"] == pytest.approx(0.25)


def test_small_predictions_dropped_and_crash_case_gives_zero(tmp_path):
    pred, gt = make_dirs(tmp_path)
    gt_file(gt, "s", [3001] * 200 + [0] * 200 + [5001] * 200)
    # cabinet: its only prediction lies on void (ignored), so no example at all -> AP 0, not a crash.
    # chair: a 99-vertex exact-ish prediction is dropped (below 100 vertices) -> no prediction -> AP 0.
    write_predictions(pred, "s", [rng_mask(600, (200, 400)), rng_mask(600, (400, 499))], [3, 5], [0.9, 0.9])
    res = assert_matches_official(pred, gt)
    assert res["classes"]["cabinet"] == {"ap": 0.0, "ap50": 0.0, "ap25": 0.0}
    assert res["classes"]["chair"]["ap25"] == 0.0


def test_matches_brute_force_on_random_scenes(tmp_path):
    rng = np.random.default_rng(1)
    pred, gt = make_dirs(tmp_path)
    labels = [0, 1, CABINET, BED, CHAIR, 36]  # unannotated, wall (void), three classes, bathtub
    for s in range(6):
        n = 1500
        sizes = rng.integers(40, 260, size=12)
        cuts = np.minimum(np.cumsum(sizes), n)
        seg = np.searchsorted(cuts, np.arange(n), side="right")  # (N,) segment of each vertex
        seg_label = rng.choice(labels, size=seg.max() + 1, p=[0.15, 0.1, 0.3, 0.2, 0.2, 0.05])
        seg_label[seg.max()] = 0  # the tail after the last cut
        ids = np.where(seg_label[seg] > 0, seg_label[seg] * 1000 + seg + 1, 0)
        gt_file(gt, f"scene{s}", ids.tolist())
        masks, lab, score = [], [], []
        for g in range(seg.max()):
            for _ in range(rng.integers(0, 3)):  # 0..2 noisy copies of each segment (duplicates included)
                m = (seg == g) & (rng.random(n) < rng.uniform(0.6, 1.0))
                m |= rng.random(n) < rng.uniform(0.0, 0.03)
                masks.append(m)
                right = seg_label[g] > 1 and rng.random() < 0.8  # else a random (often wrong) class
                lab.append(seg_label[g] if right else rng.choice(labels[2:]))
                score.append(round(rng.random(), 1))  # ties on purpose
        for _ in range(3):  # random blobs
            a = int(rng.integers(0, n - 300))
            masks.append(rng_mask(n, (a, a + int(rng.integers(50, 300)))))
            lab.append(rng.choice(labels[2:]))
            score.append(rng.random())
        write_predictions(pred, f"scene{s}", np.array(masks), lab, score)
    res = assert_matches_official(pred, gt)
    assert 0.0 < res["ap"] < 1.0 and res["num_scenes"] == 6


# ------------------------------------------------------------------------------- bad input


@pytest.fixture
def scene(tmp_path):
    pred, gt = make_dirs(tmp_path)
    gt_file(gt, "s", [3001] * 200)
    (pred / "predicted_masks").mkdir()
    (pred / "predicted_masks" / "m.txt").write_text("1\n" * 200)
    return pred, gt


@pytest.mark.parametrize("line, mask, message", [
    ("predicted_masks/m.txt 3", None, r"s\.txt, line 2: expected 3 fields"),
    ("predicted_masks/m.txt  3 0.5", None, r"s\.txt, line 2: expected 3 fields"),
    ("/abs/m.txt 3 0.5", None, r"line 2: expected a mask path relative"),
    ("../m.txt 3 0.5", None, r"line 2: mask path '../m.txt' points outside"),
    ("predicted_masks/m.txt 41 0.5", None, r"line 2: label id 41 is not a scannet20 label id"),
    ("predicted_masks/m.txt chair 0.5", None, r"line 2: expected an integer label id"),
    ("predicted_masks/m.txt 3 high", None, r"line 2: expected a numeric confidence"),
    ("predicted_masks/m.txt 3 nan", None, r"line 2: expected a numeric confidence"),
    ("predicted_masks/x.txt 3 0.5", None, r"x\.txt: cannot read"),
    ("predicted_masks/b.txt 3 0.5", "1\n" * 199, r"b\.txt, line 200: expected 200 lines"),
    ("predicted_masks/b.txt 3 0.5", "1\n" * 150 + "2\n" + "0\n" * 49, r"b\.txt, line 151: expected 0 or 1"),
    ("predicted_masks/b.txt 3 0.5", "1\n" * 10 + "yes\n" + "0\n" * 189,
     r"b\.txt, line 11: expected one integer"),
])
def test_bad_prediction_files(scene, line, mask, message):
    pred, gt = scene
    if mask is not None:
        (pred / "predicted_masks" / "b.txt").write_text(mask)
    (pred / "s.txt").write_text(f"predicted_masks/m.txt 3 0.9\n{line}\n")
    with pytest.raises(BenchmarkFileError, match=message):
        evaluate_benchmark(pred, gt)


def test_bad_gt_and_layout(scene, tmp_path):
    pred, gt = scene
    (pred / "t.txt").write_text("predicted_masks/m.txt 3 0.9\n")
    with pytest.raises(BenchmarkFileError, match=r"t\.txt: no ground truth"):
        evaluate_benchmark(pred, gt)
    gt_file(gt, "t", [3001] * 199 + ["x"])
    with pytest.raises(BenchmarkFileError, match=r"t\.txt, line 200: expected one integer"):
        evaluate_benchmark(pred, gt)
    gt_file(gt, "t", [3001] * 200)
    (pred / "s.txt").write_text("predicted_masks/m.txt 3 0.9\n")  # the same mask file in two scenes
    with pytest.raises(BenchmarkFileError, match=r"also used by"):
        evaluate_benchmark(pred, gt)
    with pytest.raises(BenchmarkFileError, match="no prediction files"):
        evaluate_benchmark(tmp_path / "gt" / "..", gt)  # tmp_path holds only folders
    with pytest.raises(ValueError, match="unknown_labels"):
        evaluate_benchmark(pred, gt, unknown_labels="warn")


def test_skip_unknown_labels_like_the_official_script(scene):
    pred, gt = scene
    # wall (1) is a ScanNet label but no instance class: skipped like the official script, mask never read
    (pred / "s.txt").write_text("predicted_masks/m.txt 3 0.9\npredicted_masks/missing.txt 1 0.99\n")
    assert evaluate_benchmark(pred, gt)["ap"] == 1.0
    # 999 is no ScanNet label at all: an error, unless asked to skip it as the official script does
    (pred / "s.txt").write_text("predicted_masks/m.txt 3 0.9\npredicted_masks/missing.txt 999 0.99\n")
    with pytest.raises(BenchmarkFileError, match="line 2: label id 999"):
        evaluate_benchmark(pred, gt)
    assert evaluate_benchmark(pred, gt, unknown_labels="skip")["ap"] == 1.0


# ------------------------------------------------------------------------------- command line


def test_cli_writes_json(scene, tmp_path, capsys):
    pred, gt = scene
    (pred / "s.txt").write_text("predicted_masks/m.txt 3 0.9\n")
    out = tmp_path / "out" / "res.json"
    assert evaluate_main(["--pred", str(pred), "--gt", str(gt), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert {"ap", "ap50", "ap25", "classes"} <= set(res) and res["ap"] == 1.0
    assert res["classes"]["cabinet"] == {"ap": 1.0, "ap50": 1.0, "ap25": 1.0}
    assert res["classes"]["bed"] == {"ap": None, "ap50": None, "ap25": None}  # NaN -> null
    table = capsys.readouterr().out
    assert "cabinet" in table and "average" in table and "AP50" in table
    proc = subprocess.run([sys.executable, "-m", "lassm.evaluate", "--pred", str(pred), "--gt",
                           str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert proc.returncode == 2 and "no ground truth" in proc.stderr


def test_a_short_gt_file_is_blamed_with_both_lengths(scene):
    pred, gt = scene
    (pred / "s.txt").write_text("predicted_masks/m.txt 3 0.9\n")  # m.txt: 200 lines
    gt_file(gt, "s", [3001] * 150)
    with pytest.raises(BenchmarkFileError, match=r"s\.txt: 150 lines .*m\.txt with 200 lines") as err:
        evaluate_benchmark(pred, gt)
    assert str(err.value).startswith(str(gt / "s.txt"))
    gt_file(gt, "s", [3001] * 250)  # a mask shorter than its GT file: the mask is the odd one out
    with pytest.raises(BenchmarkFileError, match=r"m\.txt, line 201: expected 250 lines"):
        evaluate_benchmark(pred, gt)


def test_gt_scenes_without_predictions_warn_or_fail_with_strict(scene, capsys):
    pred, gt = scene
    (pred / "s.txt").write_text("predicted_masks/m.txt 3 0.9\n")
    for name in ("t", "u"):
        gt_file(gt, name, [3001] * 200)
    args = ["--pred", str(pred), "--gt", str(gt)]
    assert evaluate_main(args) == 0
    err = capsys.readouterr().err
    assert "warning: 2 scene(s)" in err and "t, u" in err and "--strict" in err
    assert evaluate_main([*args, "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 2 scene(s)") and "t, u" in err and "Traceback" not in err
    (pred / "t.txt").write_text("")
    (pred / "u.txt").write_text("")
    assert evaluate_main([*args, "--strict"]) == 0 and "warning" not in capsys.readouterr().err


def test_json_target_is_checked_before_scoring(scene, tmp_path, capsys, monkeypatch):
    import lassm.evaluate.formats as formats

    pred, gt = scene
    (pred / "s.txt").write_text("predicted_masks/m.txt 3 0.9\n")
    monkeypatch.setattr(formats, "evaluate_benchmark", lambda *a: pytest.fail("scored"))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for target, words in ((tmp_path, "is a folder"), (a_file / "res.json", "is a file, not a folder")):
        assert evaluate_main(["--pred", str(pred), "--gt", str(gt), "--json", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --json") and words in err and "Traceback" not in err


# ------------------------------------------------------------------------------- scene groups


def test_groups_score_like_their_scenes_alone(tmp_path, capsys):
    rng = np.random.default_rng(3)
    groups = {"learn2": "single boxes", "learn20": "stacked boxes", "learn21": "stacked boxes",
              "mine": "other"}
    every = make_dirs(tmp_path)
    alone = {}
    for group in set(groups.values()):
        (tmp_path / group).mkdir()
        alone[group] = make_dirs(tmp_path / group)
    for scene, group in groups.items():
        instance = rng.integers(0, 4, 600) * (rng.random(600) < 0.9)  # objects 1-3, 0 = table
        label = np.where(instance > 0, 2, 1)  # mosd: object 2, table 1
        masks = [(instance == k) ^ (rng.random(600) < 0.3) for k in (1, 2, 3)] + [rng.random(600) < 0.2]
        scores = rng.random(4)
        for pred, gt in (every, alone[group]):
            write_gt(gt, scene, label, instance, classes="mosd")
            write_predictions(pred, scene, masks, [2] * 4, scores)
    got = evaluate_benchmark(*every, "mosd", groups=scene_groups("mosd", every[1]))
    assert list(got["groups"]) == ["single boxes", "stacked boxes", "other"]  # "mine" is in no mosd group
    for group, folders in alone.items():
        want = evaluate_benchmark(*folders, "mosd")
        assert got["groups"][group] == {**{k: want[k] for k in ("ap", "ap50", "ap25")},
                                        "num_scenes": want["num_scenes"]}
    assert got["groups"]["stacked boxes"]["num_scenes"] == 2
    assert "groups" not in evaluate_benchmark(*every, "mosd")
    listing = tmp_path / "groups.csv"
    listing.write_text("scene,group\nlearn2,a\nlearn20,a\n\nmine,b\n")
    assert scene_groups(str(listing), every[1]) == {"learn2": "a", "learn20": "a", "mine": "b"}
    assert evaluate_main(["--pred", str(every[0]), "--gt", str(every[1]), "--classes", "mosd",
                          "--groups", str(listing)]) == 0
    out = capsys.readouterr().out
    assert "scene group" in out and [line.split()[:2] for line in out.splitlines()[-3:]] == [
        ["a", "2"], ["b", "1"], ["other", "1"]]
    listing.write_text("learn2\n")
    with pytest.raises(BenchmarkFileError, match="groups.csv, line 1: expected 'scene,group'"):
        scene_groups(str(listing), every[1])
    with pytest.raises(FileNotFoundError, match="--groups: expected 'mosd'"):
        scene_groups(str(tmp_path / "none.csv"), every[1])
