"""Tests for lassm.evaluate.ap: the ScanNet-protocol AP of REFERENCE_SPEC 9 (hand-computed cases + loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lassm.evaluate.ap import (
    DEFAULT_OVERLAPS,
    InstanceEvaluator,
    average_precision,
    evaluate_matches,
    evaluate_predictions,
    prediction_matches,
    scene_matches,
)

TAUS = DEFAULT_OVERLAPS + (0.25,)  # 0.5, 0.55, ..., 0.9, 0.25 (the reference's exact floats)


def mask(n, *ranges):
    m = np.zeros(n, dtype=bool)
    for a, b in ranges:
        m[a:b] = True
    return m


def per_overlap(result, name):
    return [result["per_class"][name]["AP_per_overlap"][round(t, 2)] for t in TAUS]


def run(scenes, names=("a", "b", "c")):
    ev = InstanceEvaluator(names)
    for s in scenes:
        ev.add(*s)
    return ev.compute()


# ------------------------------------------------------------------------------- literal reference


def loop_evaluate(scenes, num_classes, min_size=100):
    """Spec 9.1 + 9.2 transcribed literally (dicts, per-point Python counting). Returns (C, T) AP."""
    matches = []
    for masks, scores, classes, inst, lab in scenes:
        gts = []
        for gid in sorted(set(int(i) for i in inst if i != -1)):
            pts = [p for p in range(len(inst)) if inst[p] == gid]
            if lab[pts[0]] == -1:
                continue
            gts.append({"cls": int(lab[pts[0]]), "count": len(pts), "pts": set(pts), "matched_pred": []})
        preds = []
        for k in range(len(scores)):
            pts = set(np.flatnonzero(masks[k]).tolist())
            if len(pts) < min_size:
                continue
            p = {"id": (len(matches), k), "cls": int(classes[k]), "count": len(pts), "conf": float(scores[k]),
                 "void": sum(1 for q in pts if lab[q] == -1), "matched_gt": []}
            for g in gts:
                inter = len(pts & g["pts"])
                if g["cls"] == p["cls"] and inter > 0:
                    p["matched_gt"].append((g, inter))
                    g["matched_pred"].append((p, inter))
            preds.append(p)
        matches.append((gts, preds))
    ap = np.full((num_classes, len(TAUS)), np.nan)
    for t, tau in enumerate(TAUS):
        visited = {}
        for c in range(num_classes):
            y_true, y_score, hard_fn, has_gt, has_pred = [], [], 0, False, False
            for gts, preds in matches:
                gl = [g for g in gts if g["cls"] == c and g["count"] >= min_size]
                pl = [p for p in preds if p["cls"] == c]
                has_gt, has_pred = has_gt or bool(gl), has_pred or bool(pl)
                cur_true, cur_score, cur_match = [1] * len(gl), [-math.inf] * len(gl), [False] * len(gl)
                for gi, g in enumerate(gl):
                    found = False
                    for p, inter in g["matched_pred"]:
                        if visited.get(p["id"]):
                            continue
                        if inter / (g["count"] + p["count"] - inter) > tau:
                            if cur_match[gi]:
                                lo = min(cur_score[gi], p["conf"])
                                cur_score[gi] = max(cur_score[gi], p["conf"])
                                cur_true.append(0)
                                cur_score.append(lo)
                                cur_match.append(True)
                            else:
                                found, cur_match[gi], cur_score[gi] = True, True, p["conf"]
                                visited[p["id"]] = True
                    hard_fn += not found
                y_true += [v for v, keep in zip(cur_true, cur_match, strict=True) if keep]
                y_score += [v for v, keep in zip(cur_score, cur_match, strict=True) if keep]
                for p in pl:
                    if any(i / (g["count"] + p["count"] - i) > tau for g, i in p["matched_gt"]):
                        continue
                    ignore = p["void"] + sum(i for g, i in p["matched_gt"] if g["count"] < min_size)
                    if ignore / p["count"] <= tau:
                        y_true.append(0)
                        y_score.append(p["conf"])
            if has_gt and has_pred:
                order = sorted(range(len(y_score)), key=lambda i: y_score[i])
                ys, yt = [y_score[i] for i in order], [y_true[i] for i in order]
                total, prec, rec = sum(yt), [], []
                for i in range(len(ys)):
                    if i > 0 and ys[i] == ys[i - 1]:
                        continue  # one point per distinct score, at its first index
                    before = sum(yt[:i])
                    tp, fn = total - before, before + hard_fn
                    prec.append(tp / (len(ys) - i))
                    rec.append(tp / (tp + fn))
                prec.append(1.0)
                rec.append(0.0)
                ap[c, t] = sum(prec[j] * ((rec[j - 1] if j > 0 else rec[0]) - (rec[j + 1] if j + 1 < len(rec)
                                                                                   else 0.0)) / 2
                               for j in range(len(prec)))
            elif has_gt:
                ap[c, t] = 0.0
    return ap


def random_scene(rng, n=700, num_classes=3):
    """Blocks of points as GT instances (some small, some void), noisy overlapping predictions."""
    inst = np.full(n, -1)
    lab = rng.integers(-1, num_classes, n)
    start, gid = 0, 0
    while start < n:
        size = int(rng.integers(40, 220))
        if rng.random() < 0.8:
            inst[start:start + size] = gid
            lab[start:start + size] = rng.integers(-1, num_classes)  # class -1: a void GT, dropped
            gid += 1
        start += size
    masks, classes = [], []
    for _ in range(int(rng.integers(6, 16))):
        g = int(rng.integers(0, max(gid, 1)))
        pts = np.flatnonzero(inst == g)
        m = np.zeros(n, dtype=bool)
        if len(pts):
            m[pts[: int(len(pts) * rng.uniform(0.3, 1.0))]] = True
        m[rng.integers(0, n, int(rng.integers(0, 120)))] = True  # noise, partly on void / other GTs
        masks.append(m)
        classes.append(int(lab[pts[0]]) if len(pts) and lab[pts[0]] >= 0 and rng.random() < 0.8
                       else int(rng.integers(0, num_classes)))
    scores = np.sort(rng.choice([0.2, 0.4, 0.6, 0.8, 0.9], len(masks)))[::-1]  # ties on purpose
    return np.stack(masks), scores, np.array(classes), inst, lab


# ------------------------------------------------------------------------------- hand-computed


def test_perfect_prediction_gives_ap_one_everywhere():
    n = 500
    inst, lab = np.full(n, -1), np.full(n, -1)
    inst[:200], lab[:200] = 0, 0
    inst[200:350], lab[200:350] = 1, 1
    masks = np.stack([mask(n, (0, 200)), mask(n, (200, 350))])
    r = run([(masks, np.array([0.9, 0.8]), np.array([0, 1]), inst, lab)])
    assert per_overlap(r, "a") == [1.0] * 10 and per_overlap(r, "b") == [1.0] * 10
    assert r["AP"] == r["AP50"] == r["AP25"] == r["Prec50"] == r["Rec50"] == 1.0
    assert math.isnan(r["per_class"]["c"]["AP"])  # no GT: excluded, not 0


def test_iou_0_6_counts_only_up_to_0_55():
    # GT of 200 points; the prediction covers 120 of them and nothing else: IoU = 120/200 = 0.6.
    # Matched (AP 1) where 0.6 > tau: 0.25, 0.50, 0.55. Not at 0.60 (the threshold is 0.6000000000000001
    # and the test strict) nor above: the GT is a hard false negative and the prediction a false positive
    # (0 ignored points <= tau): precision/recall points (0, 0) and (1, 0) -> AP 0.
    # AP = mean of the nine 0.5..0.9 values = 2/9.
    n = 300
    inst, lab = np.full(n, -1), np.full(n, 0)
    inst[:200] = 0
    r = run([(mask(n, (0, 120))[None], np.array([0.7]), np.array([0]), inst, lab)])
    assert per_overlap(r, "a") == [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert r["AP"] == pytest.approx(2 / 9) and r["AP50"] == 1.0 and r["AP25"] == 1.0


def test_false_positive_above_true_positive_halves_the_centred_integral():
    # Class 0: GT on 0..199; TP exact (score 0.5); FP (score 0.9) on labelled points 200..399 with no GT.
    # Ascending scores [0.5 (TP), 0.9 (FP)]: threshold 0.5 -> p 1/2, r 1; threshold 0.9 -> p 0, r 0;
    # artificial (1, 0). Widths (r_{j-1} - r_{j+1}) / 2 = 1/2, 1/2, 0 -> AP = 1/2 * 1/2 = 0.25.
    n = 400
    inst, lab = np.full(n, -1), np.full(n, 0)
    inst[:200] = 0
    masks = np.stack([mask(n, (200, 400)), mask(n, (0, 200))])
    r = run([(masks, np.array([0.9, 0.5]), np.array([0, 0]), inst, lab)])
    assert per_overlap(r, "a") == pytest.approx([0.25] * 10)
    # The same FP ranked below the TP: points (1/2, 1), (1, 1), (1, 0) with widths 0, 1/2, 1/2 -> AP 1.
    r = run([(masks[::-1], np.array([0.9, 0.3]), np.array([0, 0]), inst, lab)])
    assert per_overlap(r, "a") == pytest.approx([1.0] * 10)


def test_duplicates_are_false_positives_and_the_gt_keeps_the_best_score():
    # Two GTs of class 0 (A: 0..199, B: 200..399). A1 exact (0.9), A2 exact duplicate (0.8), B1 exact (0.7).
    # Examples ascending: 0.7 T, 0.8 F, 0.9 T (2 true). Points: t=0.7 (2/3, 1), t=0.8 (1/2, 1/2),
    # t=0.9 (1, 1/2), artificial (1, 0). Widths 1/4 each -> AP = (2/3 + 1/2 + 1 + 1) / 4 = 19/24.
    n = 400
    inst, lab = np.full(n, -1), np.full(n, 0)
    inst[:200], inst[200:] = 0, 1
    masks = np.stack([mask(n, (0, 200)), mask(n, (0, 200)), mask(n, (200, 400))])
    r = run([(masks, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 0]), inst, lab)])
    assert per_overlap(r, "a") == pytest.approx([19 / 24] * 10)
    # Without the duplicate: AP 1.
    r = run([(masks[[0, 2]], np.array([0.9, 0.7]), np.array([0, 0]), inst, lab)])
    assert per_overlap(r, "a") == pytest.approx([1.0] * 10)


def test_first_prediction_in_order_wins_and_loses_its_match_above_its_iou():
    # GT 0..199. P_hi (0.9) covers 140 GT points: IoU 0.7; P_lo (0.8) is exact. In prediction order P_hi
    # matches first while 0.7 > tau (0.25, 0.50..0.65) and P_lo is a duplicate with a lower score: AP 1.
    # From tau 0.70 (0.7000000000000002) only P_lo matches and P_hi is an FP above it: AP 0.25.
    # AP = (4 * 1 + 5 * 0.25) / 9 = 7/12.
    n = 300
    inst, lab = np.full(n, -1), np.full(n, 0)
    inst[:200] = 0
    masks = np.stack([mask(n, (0, 140)), mask(n, (0, 200))])
    r = run([(masks, np.array([0.9, 0.8]), np.array([0, 0]), inst, lab)])
    assert per_overlap(r, "a") == pytest.approx([1, 1, 1, 1, .25, .25, .25, .25, .25, 1])
    assert r["AP"] == pytest.approx(7 / 12)


def test_classes_without_gt_are_excluded_from_the_means():
    # Class a: perfect (AP 1). Class b: predictions only, no GT -> NaN, not 0.
    # Class c: GT, no prediction -> 0.
    n = 600
    inst, lab = np.full(n, -1), np.full(n, -1)
    inst[:200], lab[:200] = 0, 0
    inst[400:600], lab[400:600] = 1, 2
    lab[200:400] = 1  # labelled class b points without an instance
    masks = np.stack([mask(n, (0, 200)), mask(n, (200, 400))])
    r = run([(masks, np.array([0.9, 0.8]), np.array([0, 1]), inst, lab)])
    assert all(math.isnan(v) for v in per_overlap(r, "b"))
    assert per_overlap(r, "c") == [0.0] * 10
    assert r["AP"] == r["AP50"] == r["AP25"] == 0.5  # mean of a (1) and c (0)
    assert "nan" in InstanceEvaluator(("a", "b", "c")).format_table(r)


def test_gt_below_100_points_is_ignored_and_discounts_predictions_on_it():
    # Class a: small GT S (80 points) and big GT B (200 points, predicted exactly with score 0.5).
    # P (0.9, 120 points) covers S and 40 unlabelled-instance points: IoU 80/120 = 2/3 with S.
    # tau < 2/3: P is above tau with S -> neither TP nor FP; S is no GT -> AP 1.
    # tau >= 0.70: ignored share 80/120 = 2/3 <= tau -> P is an FP above the TP -> AP 0.25.
    n = 500
    inst, lab = np.full(n, -1), np.full(n, 0)
    inst[:80], inst[200:400] = 0, 1
    masks = np.stack([mask(n, (0, 120)), mask(n, (200, 400))])
    r = run([(masks, np.array([0.9, 0.5]), np.array([0, 0]), inst, lab)])
    assert per_overlap(r, "a") == pytest.approx([1, 1, 1, 1, .25, .25, .25, .25, .25, 1])
    # Only the small GT: the class has no GT at all (NaN), and no hard false negative anywhere.
    r = run([(masks[:1], np.array([0.9]), np.array([0]), inst * (inst == 0) - (inst != 0), lab)])
    assert math.isnan(r["per_class"]["a"]["AP50"]) and math.isnan(r["AP"])


def test_predictions_on_void_points_count_only_where_void_share_is_at_most_tau():
    # Class a: GT 0..199 predicted exactly (0.5). P (0.9, 200 points): 144 on void (label -1) and 56 on
    # labelled points without an instance: void share 0.72. FP iff 0.72 <= tau: at 0.75..0.90 (AP 0.25),
    # not at 0.25, 0.50..0.70 (AP 1). AP = (5 * 1 + 4 * 0.25) / 9 = 2/3.
    n = 500
    inst, lab = np.full(n, -1), np.full(n, 0)
    inst[:200] = 0
    lab[200:344] = -1
    masks = np.stack([mask(n, (200, 400)), mask(n, (0, 200))])
    m = scene_matches(masks, np.array([0.9, 0.5]), np.array([0, 0]), inst, lab)
    assert m.pred_void.tolist() == [144, 0]
    r = run([(masks, np.array([0.9, 0.5]), np.array([0, 0]), inst, lab)])
    assert per_overlap(r, "a") == pytest.approx([1, 1, 1, 1, 1, .25, .25, .25, .25, 1])
    assert r["AP"] == pytest.approx(2 / 3)


def test_void_share_equal_to_tau_still_counts_and_a_visited_prediction_matches_once():
    # Void share exactly 0.25 (50 of 200 points): 0.25 <= tau at every threshold, so P (0.9) is an FP above
    # the exact TP (0.5) everywhere: AP 0.25 (see the FP-above-TP case).
    n = 500
    inst, lab = np.full(n, -1), np.full(n, 0)
    inst[:200] = 0
    lab[200:250] = -1
    masks = np.stack([mask(n, (200, 400)), mask(n, (0, 200))])
    r = run([(masks, np.array([0.9, 0.5]), np.array([0, 0]), inst, lab)])
    assert per_overlap(r, "a") == pytest.approx([0.25] * 10)
    # Two GTs of 100 points, one prediction over both: IoU 1/2 with each. At 0.25 it matches the first GT
    # and, now visited, not the second (a hard false negative): points (1, 1/2), (1, 0) -> AP 1/2.
    # At 0.50 and above it matches nothing (0.5 is not > 0.5) and is an FP; both GTs missed: AP 0.
    inst = np.full(n, -1)
    inst[:100], inst[100:200] = 0, 1
    r = run([(mask(n, (0, 200))[None], np.array([0.9]), np.array([0]), inst, np.zeros(n, int))])
    assert per_overlap(r, "a") == pytest.approx([0] * 9 + [0.5])


def test_small_predictions_are_dropped_and_average_precision_edge_case():
    n = 300
    inst, lab = np.full(n, -1), np.full(n, 0)
    inst[:200] = 0
    m = scene_matches(np.stack([mask(n, (0, 99)), mask(n, (0, 100))]), [0.9, 0.8], [0, 0], inst, lab)
    assert m.pred_scores.tolist() == [0.8] and m.intersection.tolist() == [[100]]
    # No examples at all (an unmatched GT, ignored predictions): only the artificial point -> AP 0.
    assert average_precision(np.zeros(0), np.zeros(0), 1)[0] == 0.0


# ------------------------------------------------------------------------------- against loops


def test_vectorised_matches_equal_a_brute_force_iou_loop():
    rng = np.random.default_rng(0)
    masks, scores, classes, inst, lab = random_scene(rng, n=900)
    m = scene_matches(masks, scores, classes, inst, lab)
    kept = [k for k in range(len(scores)) if masks[k].sum() >= 100]
    gts = [g for g in sorted(set(inst[inst >= 0].tolist())) if lab[np.flatnonzero(inst == g)[0]] != -1]
    assert m.intersection.shape == (len(kept), len(gts)) and len(gts) > 3
    for i, k in enumerate(kept):
        assert m.pred_void[i] == sum(1 for p in range(len(lab)) if masks[k, p] and lab[p] == -1)
        for j, g in enumerate(gts):
            inter = sum(1 for p in range(len(inst)) if masks[k, p] and inst[p] == g)
            gt_count = int((inst == g).sum())
            same = classes[k] == lab[np.flatnonzero(inst == g)[0]]
            assert m.intersection[i, j] == (inter if same else 0)
            expected = inter / (masks[k].sum() + gt_count - inter) if same else 0.0
            assert m.iou[i, j] == pytest.approx(expected)


def test_ap_matches_a_literal_loop_implementation_on_random_scenes():
    rng = np.random.default_rng(1)
    scenes = [random_scene(rng) for _ in range(4)]
    ev = InstanceEvaluator(("a", "b", "c"))
    for s in scenes:
        ev.add(*s)
    ap, _, _ = ev.ap_matrix()
    expected = loop_evaluate(scenes, 3)
    np.testing.assert_allclose(ap, expected, equal_nan=True)
    finite = expected[np.isfinite(expected)]
    assert len(finite) > 10 and len({round(v, 6) for v in finite}) > 3  # a varied, non-trivial case


# ------------------------------------------------------------------------------- model outputs


class FakePrediction:
    def __init__(self, scores, classes, masks):
        self.scores, self.classes, self.masks = scores, classes, masks


def test_evaluate_predictions_maps_raw_labels_and_treats_stuff_as_void():
    # Raw ScanNet-like labels: 0 wall, 1 floor (stuff), 2.. things. A chair (raw 4 -> train 2) instance and
    # a prediction covering it plus 100 wall points: wall is void, so at tau >= 2/3 (IoU 200/300 fails) the
    # prediction's void share 1/3 <= tau makes it an FP and the GT a miss -> AP 0 there; AP 1 up to 0.65.
    n = 400
    segment = torch.full((n,), 0)
    segment[:200] = 4
    segment[300:] = 1
    instance = torch.full((n,), 7)
    instance[:200] = 3
    masks = torch.zeros(1, n, dtype=torch.bool)
    masks[0, :300] = True
    pred = FakePrediction(torch.tensor([0.9]), torch.tensor([2]), masks)
    r = evaluate_predictions([pred], [{"segment": segment, "instance": instance}], ("wall", "floor", "cab",
                                                                                   "bed", "chair"), (0, 1))
    assert list(r["per_class"]) == ["cab", "bed", "chair"]
    assert per_overlap(r, "chair") == [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="predictions"):
        evaluate_predictions([], [{"segment": segment, "instance": instance}], ("a",))


def test_a_scannet_sized_scene_runs():
    rng = np.random.default_rng(2)
    n, num_gt = 250_000, 30
    inst = np.repeat(np.arange(num_gt), n // num_gt + 1)[:n]
    inst[rng.random(n) < 0.3] = -1
    lab = np.where(inst >= 0, inst % 18, -1)
    masks = np.zeros((200, n), dtype=bool)
    for k in range(200):
        g = k % num_gt
        masks[k] = (inst == g) & (rng.random(n) < rng.uniform(0.5, 1.0))
    scores = torch.sort(torch.from_numpy(rng.random(200)), descending=True).values
    classes = torch.tensor([k % num_gt % 18 for k in range(200)])
    ev = InstanceEvaluator([f"c{i}" for i in range(18)])
    ev.add(torch.from_numpy(masks), scores, classes, torch.from_numpy(inst), torch.from_numpy(lab))
    r = ev.compute()
    assert 0.0 < r["AP"] <= 1.0 and r["AP25"] == 1.0
    assert ev.scenes[0].intersection.shape == (200, 30)


def test_scenes_matched_apart_and_gathered_score_as_one_evaluation():
    """A DDP validation: each process associates its own scenes (every world-th), the pickled SceneMatches
    are gathered and put back in scene order; the metrics equal evaluate_predictions bit for bit."""
    import pickle

    rng = np.random.default_rng(5)
    names = ("wall", "floor", "chair", "table", "bed")  # raw labels 0..4, wall and floor stuff
    predictions, scenes = [], []
    for _ in range(5):
        n, num_gt = 3000, int(rng.integers(0, 6))  # a scene may hold no instance
        instance = np.repeat(np.arange(num_gt), n // max(num_gt, 1) + 1)[:n] if num_gt else np.full(n, -1)
        segment = np.where(instance >= 0, 2 + instance % 3, rng.integers(0, 2, n))
        instance[rng.random(n) < 0.1] = -1
        k = int(rng.integers(1, 12))
        masks = np.zeros((k, n), dtype=bool)
        for j in range(k):  # noisy copies of the instances, some in the wrong class, some random
            masks[j] = (instance == j % max(num_gt, 1)) & (rng.random(n) < rng.uniform(0.5, 1))
            masks[j] |= rng.random(n) < rng.uniform(0, 0.05)
        scores = torch.sort(torch.from_numpy(rng.random(k)), descending=True).values
        classes = torch.from_numpy(rng.integers(0, 3, k))
        predictions.append(FakePrediction(scores, classes, torch.from_numpy(masks)))
        scenes.append({"segment": segment, "instance": instance})
    whole = evaluate_predictions(predictions, scenes, names, (0, 1))
    assert 0 < whole["AP"] < 1  # a case where the order and every match matter
    world = 2
    gathered = []
    for rank in range(world):  # what each process sends: (scene index, its association), pickled
        mine = [(i, prediction_matches(predictions[i], scenes[i], names, (0, 1)))
                for i in range(rank, len(scenes), world)]
        gathered += pickle.loads(pickle.dumps(mine))
    matches = [m for _, m in sorted(gathered, key=lambda pair: pair[0])]
    apart = evaluate_matches(matches, names, (0, 1))
    assert apart.keys() == whole.keys()
    assert all(apart[k] == whole[k] for k in ("AP", "AP50", "AP25", "Prec50", "Rec50", "overlaps"))
    assert repr(apart["per_class"]) == repr(whole["per_class"])  # repr: NaN equals NaN there
    again = pickle.loads(pickle.dumps(matches[0]))  # the compact pickle restores the dense matrix exactly
    assert again.intersection.dtype == np.int64
    assert np.array_equal(again.intersection, matches[0].intersection) and again.intersection.any()
