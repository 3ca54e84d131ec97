"""Tests for lassm.model.postprocess: matrix NMS (REFERENCE_SPEC 8) and predict_instances (5.3)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from lassm.config import PostprocessConfig
from lassm.model.postprocess import Prediction, matrix_nms, point_semantics, predict_instances

GOLDEN = os.environ.get("LASSM_GOLDEN", "/work/shared/golden/golden_t3.pt")


def loop_matrix_nms(masks, labels, scores, kernel="linear", sigma=2.0):
    """Element-by-element matrix NMS in float64 Python, following REFERENCE_SPEC 8 literally."""
    n = len(scores)
    order = sorted(range(n), key=lambda i: -float(scores[i]))
    m = [[float(v) for v in masks[i]] for i in order]
    lab = [int(labels[i]) for i in order]
    sc = [float(scores[i]) for i in order]
    area = [sum(row) for row in m]

    def iou(i, j):
        inter = sum(a * b for a, b in zip(m[i], m[j], strict=True))
        return inter / (area[i] + area[j] - inter)

    d = [[iou(i, j) if i < j and lab[i] == lab[j] else 0.0 for j in range(n)] for i in range(n)]
    comp = [max(d[i][j] for i in range(n)) for j in range(n)]
    new = []
    for j in range(n):
        if kernel == "linear":
            coef = min((1 - d[i][j]) / (1 - comp[i]) for i in range(n))
        else:
            coef = min(math.exp(-sigma * d[i][j] ** 2) / math.exp(-sigma * comp[i] ** 2) for i in range(n))
        new.append(sc[j] * coef)
    final = sorted(range(n), key=lambda j: -new[j])
    return [new[j] for j in final], [lab[j] for j in final], [order[j] for j in final]


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_matrix_nms_matches_loop(kernel):
    gen = torch.Generator().manual_seed(0)
    n, s = 12, 20
    masks = torch.rand(n, s, generator=gen) ** 3  # (n, S) soft masks, some strongly overlapping
    masks[5] = masks[2] * 0.95
    labels = torch.randint(0, 3, (n,), generator=gen)
    scores = torch.rand(n, generator=gen)
    out_scores, out_labels, out_masks, keep = matrix_nms(masks, labels, scores, kernel=kernel, sigma=2.0)
    ref_scores, ref_labels, ref_keep = loop_matrix_nms(masks.double(), labels, scores.double(), kernel)
    assert torch.allclose(out_scores.double(), torch.tensor(ref_scores, dtype=torch.float64), atol=1e-5)
    assert out_labels.tolist() == ref_labels
    assert keep.tolist() == ref_keep
    assert torch.equal(out_masks, masks[keep])
    assert torch.equal(out_labels, labels[keep])
    assert (out_scores <= scores[keep] + 1e-6).all()  # scores only decay (coefficient <= 1)


def test_matrix_nms_identical_masks_eps():
    masks = torch.tensor([[1.0, 1.0, 0.0, 1.0]] * 3 + [[0.0, 1.0, 1.0, 0.0]])  # three identical binary masks
    labels = torch.tensor([0, 0, 0, 0])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    clamped = matrix_nms(masks, labels, scores, eps=1e-6)[0]
    assert torch.isfinite(clamped).all()
    reference = matrix_nms(masks, labels, scores, eps=0.0)[0]  # the reference's 0/0
    assert not torch.isfinite(reference).all()


def test_matrix_nms_empty_and_bad_kernel():
    scores, labels, masks, keep = matrix_nms(
        torch.zeros(0, 7), torch.zeros(0, dtype=torch.long), torch.zeros(0)
    )
    assert scores.shape == (0,) and labels.shape == (0,) and masks.shape == (0, 7) and keep.shape == (0,)
    with pytest.raises(ValueError, match="kernel"):
        matrix_nms(torch.rand(2, 3), torch.zeros(2, dtype=torch.long), torch.rand(2), kernel="box")


def reference_predict(logits, mask_logits, superpoint, cfg, query_scores=None):
    """Straightforward per-candidate version of REFERENCE_SPEC 5.3 using the loop NMS above."""
    num_queries, num_cls = logits.shape[0], logits.shape[1] - 1
    probs = torch.softmax(logits.double(), dim=1)[:, :num_cls]
    if query_scores is not None:  # a score head's output multiplies the probabilities (step 1)
        probs = probs * query_scores.double()[:, None]
    cands = sorted(
        ((float(probs[q, c]), q, c) for q in range(num_queries) for c in range(num_cls)), reverse=True
    )[: cfg.topk_insts]
    soft, scores, classes, queries = [], [], [], []
    for score, q, c in cands:
        m = mask_logits[q].double()
        pos = m > 0
        quality = float(torch.sigmoid(m)[pos].sum()) / (int(pos.sum()) + 1e-6)
        soft.append(torch.sigmoid(m))
        scores.append(score * quality)
        classes.append(c)
        queries.append(q)
    new_scores, new_classes, order = loop_matrix_nms(torch.stack(soft), classes, scores)
    out = []
    for score, cls, i in zip(new_scores, new_classes, order, strict=True):
        point_mask = soft[i][superpoint] > cfg.sp_score_thr
        if score > cfg.score_thr and int(point_mask.sum()) > cfg.npoint_thr:
            out.append((score, cls, queries[i], point_mask))
    out.sort(key=lambda t: -t[0])
    return out


def test_predict_instances_matches_reference():
    gen = torch.Generator().manual_seed(1)
    num_queries, num_cls, num_sp, num_pts = 8, 4, 15, 120
    logits = torch.randn(num_queries, num_cls + 1, generator=gen) * 2
    mask_logits = torch.randn(num_queries, num_sp, generator=gen) * 3
    superpoint = torch.randint(0, num_sp, (num_pts,), generator=gen)
    cfg = PostprocessConfig(topk_insts=20, score_thr=0.02, npoint_thr=10, sp_score_thr=0.4)
    pred = predict_instances(logits, mask_logits, superpoint, cfg)
    ref = reference_predict(logits, mask_logits, superpoint, cfg)
    assert 0 < len(ref) < 20  # the thresholds removed some but not all
    assert isinstance(pred, Prediction)
    assert pred.scores.dtype == torch.float32 and pred.classes.dtype == torch.int64
    assert pred.masks.dtype == torch.bool and pred.queries.dtype == torch.int64
    assert torch.allclose(
        pred.scores.double(), torch.tensor([r[0] for r in ref], dtype=torch.float64), atol=1e-5
    )
    assert pred.classes.tolist() == [r[1] for r in ref]
    assert pred.queries.tolist() == [r[2] for r in ref]
    assert torch.equal(pred.masks, torch.stack([r[3] for r in ref]))
    half = predict_instances(logits.half(), mask_logits.half(), superpoint, cfg)
    assert half.scores.dtype == torch.float32


def test_predict_instances_with_a_score_head_matches_reference():
    """The score head's predicted IoU multiplies each query's class probabilities before top-k: the
    order changes, and a negative score (the head has no sigmoid) drops the query at score_thr."""
    gen = torch.Generator().manual_seed(2)
    num_queries, num_cls, num_sp, num_pts = 8, 3, 15, 120
    logits = torch.randn(num_queries, num_cls + 1, generator=gen) * 2
    mask_logits = torch.randn(num_queries, num_sp, generator=gen) * 3
    superpoint = torch.randint(0, num_sp, (num_pts,), generator=gen)
    query_scores = torch.rand(num_queries, generator=gen)
    query_scores[3] = -0.2
    cfg = PostprocessConfig(topk_insts=12, score_thr=0.0, npoint_thr=10, sp_score_thr=0.4)
    pred = predict_instances(logits, mask_logits, superpoint, cfg, query_scores)
    ref = reference_predict(logits, mask_logits, superpoint, cfg, query_scores)
    plain = predict_instances(logits, mask_logits, superpoint, cfg)
    assert len(ref) > 2 and 3 not in pred.queries.tolist() and pred.queries.tolist() != plain.queries.tolist()
    torch.testing.assert_close(pred.scores.double(), torch.tensor([r[0] for r in ref], dtype=torch.float64),
                               atol=1e-5, rtol=0)
    assert pred.queries.tolist() == [r[2] for r in ref] and pred.classes.tolist() == [r[1] for r in ref]
    with pytest.raises(ValueError, match="query_scores"):
        predict_instances(logits, mask_logits, superpoint, cfg, query_scores[:-1])


def _two_query_scene():
    """Two queries, one class; query 0 covers superpoint 0 (5 points), query 1 superpoint 1 (6 points)."""
    logits = torch.tensor([[3.0, 0.0], [2.0, 0.0]])  # (Q, C+1)
    mask_logits = torch.tensor([[6.0, -6.0], [-6.0, 6.0]])  # (Q, S)
    superpoint = torch.tensor([0] * 5 + [1] * 6)  # (N_pt,)
    return logits, mask_logits, superpoint


def test_npoint_threshold_is_strict():
    logits, mask_logits, superpoint = _two_query_scene()
    pred = predict_instances(logits, mask_logits, superpoint, PostprocessConfig(npoint_thr=5, nms=False))
    assert pred.queries.tolist() == [1]  # exactly 5 points is dropped
    pred = predict_instances(logits, mask_logits, superpoint, PostprocessConfig(npoint_thr=4, nms=False))
    assert pred.queries.tolist() == [0, 1]
    assert pred.masks.sum(dim=1).tolist() == [5, 6]


def test_score_threshold_is_strict():
    logits, mask_logits, superpoint = _two_query_scene()
    base = predict_instances(logits, mask_logits, superpoint, PostprocessConfig(npoint_thr=0))
    assert base.queries.tolist() == [0, 1]
    cfg = PostprocessConfig(npoint_thr=0, score_thr=float(base.scores[1]))
    pred = predict_instances(logits, mask_logits, superpoint, cfg)
    assert pred.queries.tolist() == [0]  # the score equal to the threshold is dropped
    assert torch.equal(pred.scores, base.scores[:1])


def test_topk_clipped_to_candidates():
    gen = torch.Generator().manual_seed(2)
    logits, mask_logits = torch.randn(2, 4, generator=gen), torch.randn(2, 3, generator=gen)
    mask_logits[:, 0] = 5.0  # every mask covers superpoint 0
    superpoint = torch.tensor([0, 0, 1, 2])
    cfg = PostprocessConfig(topk_insts=200, score_thr=-1.0, npoint_thr=-1)
    pred = predict_instances(logits, mask_logits, superpoint, cfg)
    assert len(pred.scores) == 2 * 3  # Q x C candidates, not 200
    assert sorted(zip(pred.queries.tolist(), pred.classes.tolist(), strict=True)) == [
        (q, c) for q in range(2) for c in range(3)
    ]
    assert (pred.scores[:-1] >= pred.scores[1:]).all()


def test_empty_inputs_and_bad_superpoint():
    cfg = PostprocessConfig()
    pred = predict_instances(torch.zeros(0, 5), torch.zeros(0, 3), torch.tensor([0, 1, 2, 2]), cfg)
    assert pred.masks.shape == (0, 4) and pred.scores.shape == (0,) and pred.queries.shape == (0,)
    pred = predict_instances(torch.zeros(3, 5), torch.zeros(3, 0), torch.zeros(0, dtype=torch.long), cfg)
    assert pred.masks.shape == (0, 0) and pred.classes.shape == (0,)
    with pytest.raises(ValueError, match="superpoint"):
        predict_instances(torch.zeros(3, 5), torch.zeros(3, 2), torch.tensor([0, 2]), cfg)


def point_level_predict(logits, mask_logits, superpoint, cfg):
    """The point-level post-processing predict_instances replaced (issue 22), as the oracle of its results:
    every candidate's probabilities gathered to points (k x N_pt floats), thresholded, then filtered."""
    num_queries, num_classes = logits.shape[0], logits.shape[1] - 1
    class_scores = logits.float().softmax(dim=-1)[:, :-1]
    k = min(cfg.topk_insts, num_queries * num_classes)
    scores, flat_idx = class_scores.flatten().topk(k, sorted=False)
    classes, queries = flat_idx % num_classes, flat_idx // num_classes
    cand_logits = mask_logits.float()[queries]
    cand_probs = cand_logits.sigmoid()
    positive = (cand_logits > 0).float()
    quality = (cand_probs * positive).sum(dim=1) / (positive.sum(dim=1) + 1e-6)
    scores = scores * quality
    if cfg.nms:
        scores, classes, cand_probs, keep = matrix_nms(
            cand_probs, classes, scores, kernel=cfg.nms_kernel, sigma=cfg.nms_sigma, eps=cfg.nms_eps)
        queries = queries[keep]
    point_masks = cand_probs[:, superpoint.long()] > cfg.sp_score_thr  # (k, N_pt)
    keep = scores > cfg.score_thr
    scores, classes, queries, point_masks = scores[keep], classes[keep], queries[keep], point_masks[keep]
    keep = point_masks.sum(dim=1) > cfg.npoint_thr
    scores, classes, queries, point_masks = scores[keep], classes[keep], queries[keep], point_masks[keep]
    scores, order = torch.sort(scores, descending=True)
    return scores, classes[order], queries[order], point_masks[order]


def tied_scene(seed: int, num_queries: int = 12, num_classes: int = 3, num_sp: int = 9, num_pts: int = 200):
    """Random logits with repeated query rows (equal candidate scores) and coarse mask logits (equal
    superpoint probabilities), superpoints of uneven sizes and one superpoint without points."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randint(-2, 3, (num_queries, num_classes + 1), generator=gen).float()  # (Q, C+1)
    mask_logits = torch.randint(-3, 4, (num_queries, num_sp), generator=gen).float()  # (Q, S)
    twins = len(logits[1::3])
    logits[1::3], mask_logits[1::3] = logits[0::3][:twins], mask_logits[0::3][:twins]  # equal scores
    weights = torch.rand(num_sp, generator=gen) ** 2
    weights[-1] = 0.0  # an empty superpoint
    superpoint = torch.multinomial(weights, num_pts, replacement=True, generator=gen)  # (N_pt,)
    return logits, mask_logits, superpoint


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("nms", [True, False])
@pytest.mark.parametrize("topk, score_thr, npoint_thr", [
    (8, 0.0, 20),  # fewer candidates than Q x C
    (1000, -1.0, -1),  # k clipped to Q x C, nothing filtered
    (1000, 0.05, 40),  # both filters bite
    (1000, 0.0, 10_000),  # nothing is left
    (1000, 0.0, None),  # npoint_thr equal to a candidate's point count
])
def test_predict_instances_equals_point_level(seed, nms, topk, score_thr, npoint_thr):
    logits, mask_logits, superpoint = tied_scene(seed)
    if npoint_thr is None:
        masks = point_level_predict(logits, mask_logits, superpoint, PostprocessConfig(npoint_thr=-1))[3]
        npoint_thr = int(masks.sum(dim=1).median())  # a count some candidate has exactly
    cfg = PostprocessConfig(topk_insts=topk, score_thr=score_thr, npoint_thr=npoint_thr, nms=nms)
    pred = predict_instances(logits, mask_logits, superpoint, cfg)
    scores, classes, queries, masks = point_level_predict(logits, mask_logits, superpoint, cfg)
    assert torch.equal(pred.scores, scores) and torch.equal(pred.classes, classes)
    assert torch.equal(pred.queries, queries) and torch.equal(pred.masks, masks)
    assert pred.masks.shape == (len(scores), len(superpoint)) and pred.masks.dtype == torch.bool
    if npoint_thr == 10_000:
        assert len(scores) == 0
    if topk == 1000 and npoint_thr < 0:
        assert len(scores) == 12 * 3 and len(set(scores.tolist())) < len(scores)  # every candidate, ties


def test_predict_instances_point_counts_exact_under_autocast():
    """Masks of several hundred points, in a bfloat16 autocast region (the inference benchmark's): the
    superpoint-level counts must stay exact where a 16-bit matmul would round them."""
    logits, mask_logits, superpoint = tied_scene(1, num_pts=20_000)
    masks = point_level_predict(logits, mask_logits, superpoint, PostprocessConfig(npoint_thr=-1))[3]
    cfg = PostprocessConfig(npoint_thr=int(masks.sum(dim=1).median()))  # a count some candidate has exactly
    assert cfg.npoint_thr > 1000  # beyond bfloat16's exact integers (256)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = predict_instances(logits, mask_logits, superpoint, cfg)
        scores, classes, queries, masks = point_level_predict(logits, mask_logits, superpoint, cfg)
    assert torch.equal(pred.scores, scores) and torch.equal(pred.queries, queries)
    assert torch.equal(pred.classes, classes) and torch.equal(pred.masks, masks)


def test_predict_instances_expands_masks_on_demand():
    logits, mask_logits, superpoint = tied_scene(0)
    pred = predict_instances(logits, mask_logits, superpoint, PostprocessConfig(npoint_thr=20))
    assert pred._masks is None  # no point masks until asked
    assert pred.sp_masks.shape == (len(pred.scores), mask_logits.shape[1])
    assert pred.sp_masks.dtype == torch.bool
    assert torch.equal(pred.superpoint, superpoint) and len(pred.scores) > 0
    masks = pred.masks
    assert pred.masks is masks  # cached: expanded once
    assert torch.equal(masks, pred.sp_masks[:, superpoint])
    empty = predict_instances(torch.zeros(0, 4), torch.zeros(0, 9), superpoint, PostprocessConfig())
    assert empty._masks is None and empty.sp_masks.shape == (0, 9) and empty.masks.shape == (0, 200)


def test_prediction_constructor_forms():
    scores, classes, queries = torch.tensor([0.9, 0.5]), torch.tensor([1, 0]), torch.tensor([3, 4])
    point_masks = torch.tensor([[True, False, True], [False, True, False]])
    pred = Prediction(scores=scores, classes=classes, masks=point_masks, queries=queries)
    assert pred.masks is point_masks and pred.sp_masks is None and pred.superpoint is None
    assert pred.semantic is None and repr(pred) == "Prediction(2 instances over 3 points)"
    pred.semantic = torch.tensor([0, -1, 2])  # LaSSM.predict sets it after post-processing
    sp_masks, superpoint = torch.tensor([[True, False], [False, True]]), torch.tensor([0, 1, 0])
    pred = Prediction(scores=scores, classes=classes, queries=queries, sp_masks=sp_masks,
                      superpoint=superpoint)
    assert torch.equal(pred.masks, point_masks) and repr(pred) == "Prediction(2 instances over 3 points)"
    with pytest.raises(ValueError, match="masks: give point masks or sp_masks"):
        Prediction(scores=scores, classes=classes, queries=queries, masks=point_masks, sp_masks=sp_masks,
                   superpoint=superpoint)
    with pytest.raises(ValueError, match="sp_masks, superpoint: both"):
        Prediction(scores=scores, classes=classes, queries=queries, sp_masks=sp_masks)
    with pytest.raises(ValueError, match="sp_masks, superpoint: expected shapes"):
        Prediction(scores=scores, classes=classes, queries=queries, sp_masks=sp_masks[0],
                   superpoint=superpoint)
    with pytest.raises(TypeError):
        Prediction(scores, classes, point_masks, queries)  # keyword arguments only


@pytest.mark.skipif(not os.path.exists(GOLDEN), reason="golden reference data not available")
def test_golden_scene0_prediction():
    g = torch.load(GOLDEN, weights_only=False)
    stage = g["decoder"]["stages"][6]
    num_pts = int(g["inputs"]["origin_offset"][0])
    superpoint = torch.unique(g["inputs"]["superpoint"][:num_pts], return_inverse=True)[1]  # (N_pt,)
    cfg = PostprocessConfig(topk_insts=200, score_thr=0.0, npoint_thr=100, sp_score_thr=0.4, nms_eps=0.0)
    pred = predict_instances(stage["labels"][0].float(), stage["masks"][0].float(), superpoint, cfg)

    ref = g["prediction"]
    ref_scores = torch.as_tensor(ref["pred_scores"])
    ref_classes = torch.as_tensor(ref["pred_classes"])
    packed = np.asarray(ref["pred_masks_packed"])
    ref_masks = torch.from_numpy(np.unpackbits(packed, axis=1)[:, : int(ref["num_points"])].astype(bool))
    assert ref_masks.shape[1] == num_pts
    # the stored stage is float16, so the comparison is loose; exact parity is tested elsewhere
    assert abs(len(pred.scores) - len(ref_scores)) <= 2
    k = min(len(pred.scores), len(ref_scores))
    assert torch.equal(pred.classes[:150], ref_classes[:150])
    assert (pred.scores[:k] - ref_scores[:k]).abs().max() < 1e-2
    inter = (pred.masks[:k] & ref_masks[:k]).sum(dim=1).float()
    union = (pred.masks[:k] | ref_masks[:k]).sum(dim=1).float()
    assert ((inter / union) > 0.98).float().mean() > 0.9


def test_point_semantics_map_train_labels_around_stuff():
    """ScanNet200-like stuff (0, 2) in 5 dataset classes: train labels 0, 1, 2 are dataset labels 1, 3, 4."""
    sp_seg = torch.tensor([[5.0, 0, 0, 0],  # train label 0 -> 1
                           [0, 0, 5.0, 0],  # train label 2 -> 4
                           [0, 0, 0, 5.0],  # background -> -1
                           [0, 5.0, 0, 0],  # train label 1 -> 3
                           [1.0, 1.0, 0, 0]])  # a tie: the first maximum, train label 0 -> 1
    superpoint = torch.tensor([3, 0, 0, 2, 1, 4, 4, 1])
    labels = point_semantics(sp_seg, superpoint, (0, 2))
    assert labels.dtype == torch.int64
    assert labels.tolist() == [3, 1, 1, -1, 4, 1, 1, 4]
    assert point_semantics(sp_seg, torch.zeros(0, dtype=torch.long), (0, 2)).shape == (0,)
    with pytest.raises(ValueError, match="stuff_classes"):
        point_semantics(sp_seg, superpoint, (0, 7))
    with pytest.raises(ValueError, match="sp_seg"):
        point_semantics(sp_seg[:, :1], superpoint, ())
