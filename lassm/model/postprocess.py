"""Inference post-processing: from the last decoder stage to scored point masks (REFERENCE_SPEC 5.3, 8).

The reference turns the final stage of one scene into instances in three moves: every (query, class)
pair is a candidate scored by its class probability times the query's mask quality; matrix NMS decays
(never removes) the scores of candidates overlapped by higher-scored ones of the same class; the
superpoint masks are projected to points and thresholded. Two deliberate differences, each a one-line
comment where it happens: top-k is clipped to Q x C (spec 11.2.5) and the linear NMS kernel's
denominator is clamped at `eps` (spec 11.2.6; `PostprocessConfig.nms_eps = 0.0` restores it).
The projection itself is deferred, a faster equivalent: thresholding a superpoint's probability decides
all its points at once, so masks are thresholded and sized per superpoint and a `Prediction` expands the
kept ones to points only when `masks` is read (the reference gathers k x N_pt floats first).
"""

from __future__ import annotations

import torch

from lassm.config import PostprocessConfig

NMS_KERNELS = ("linear", "gaussian")


def matrix_nms(
    masks: torch.Tensor,
    labels: torch.Tensor,
    scores: torch.Tensor,
    kernel: str = "linear",
    sigma: float = 2.0,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Matrix NMS on (soft) masks, mmdet's `mask_matrix_nms` as the reference uses it (REFERENCE_SPEC 8).

    masks: (n, S) mask values (soft probabilities in LaSSM), labels: (n,), scores: (n,).
    Returns (scores, labels, masks, keep_inds), sorted by the decayed scores descending; keep_inds (n,)
    are the input rows in output order. Nothing is removed (filter_thr, nms_pre and max_num are off).
    kernel: "linear" or "gaussian" (sigma is used by the gaussian kernel only).
    """
    if kernel not in NMS_KERNELS:
        raise ValueError(f"kernel must be one of {NMS_KERNELS}, got {kernel!r}")
    num_masks = masks.shape[0]
    if num_masks == 0:
        return (
            scores.new_zeros(0),
            labels.new_zeros(0),
            masks.new_zeros((0,) + tuple(masks.shape[1:])),
            torch.zeros(0, dtype=torch.int64, device=scores.device),
        )

    areas = masks.sum(dim=1).float()  # (n,) soft areas
    scores, keep_inds = torch.sort(scores, descending=True)  # (n,)
    masks = masks[keep_inds]  # (n, S)
    labels = labels[keep_inds]
    areas = areas[keep_inds]

    flat = masks.float()  # (n, S)
    inter = flat @ flat.T  # (n, n) soft intersections
    union = areas[:, None] + areas[None, :] - inter  # (n, n)
    iou = (inter / union).triu(diagonal=1)  # (n, n), i < j: row i scored higher
    same_label = (labels[:, None] == labels[None, :]).triu(diagonal=1)  # (n, n)
    decay_iou = iou * same_label
    # compensation of mask j: its largest IoU with a higher-scored mask of its class
    compensate = decay_iou.max(dim=0).values  # (n,)
    compensate = compensate[:, None].expand(num_masks, num_masks)  # (n, n), K[i, j] = comp_i

    if kernel == "linear":
        # deliberate (spec 11.2.6): (1 - K) clamped at eps; eps = 0 keeps the reference's division
        denominator = (1 - compensate).clamp_min(eps) if eps > 0 else 1 - compensate
        decay = (1 - decay_iou) / denominator  # (n, n)
    else:
        decay = torch.exp(-sigma * decay_iou**2) / torch.exp(-sigma * compensate**2)  # (n, n)
    coefficient = decay.min(dim=0).values  # (n,)

    scores = scores * coefficient
    scores, order = torch.sort(scores, descending=True)  # (n,)
    return scores, labels[order], masks[order], keep_inds[order]


class Prediction:
    """One scene's instances, sorted by score descending (REFERENCE_SPEC 5.3 step 8).

    Built by :func:`predict_instances` from superpoint masks (``sp_masks`` and the scene's ``superpoint``
    ids): the point masks are expanded on the first read of ``masks`` and cached (K x N_pt bools, the kept
    instances only). Built from point masks (``masks=``), ``sp_masks`` and ``superpoint`` are None.
    """

    scores: torch.Tensor  # (K,) float32
    classes: torch.Tensor  # (K,) int64 train labels 0..C-1
    queries: torch.Tensor  # (K,) int64 query each instance came from
    sp_masks: torch.Tensor | None  # (K, S) bool superpoint masks; None when built from point masks
    superpoint: torch.Tensor | None  # (N_pt,) int64 superpoint id 0..S-1 of every point; None likewise
    # (N_pt,) int64 semantic label of every point (an index of the dataset's class list, stuff included in
    # the numbering), -1 where the superpoint head says background; None where no head output was given
    semantic: torch.Tensor | None

    def __init__(self, *, scores: torch.Tensor, classes: torch.Tensor, queries: torch.Tensor,
                 masks: torch.Tensor | None = None, sp_masks: torch.Tensor | None = None,
                 superpoint: torch.Tensor | None = None, semantic: torch.Tensor | None = None) -> None:
        """Either ``masks`` (K, N_pt) bool point masks, or ``sp_masks`` (K, S) bool and ``superpoint``
        (N_pt,) ids; keyword arguments only."""
        if masks is not None and (sp_masks is not None or superpoint is not None):
            raise ValueError("masks: give point masks or sp_masks with superpoint, not both")
        if masks is None and (sp_masks is None or superpoint is None):
            raise ValueError("sp_masks, superpoint: both are needed when masks (point masks) is not given")
        if sp_masks is not None and (sp_masks.ndim != 2 or superpoint.ndim != 1):
            raise ValueError(f"sp_masks, superpoint: expected shapes (K, S) and (N_pt,), got "
                             f"{tuple(sp_masks.shape)} and {tuple(superpoint.shape)}")
        self.scores, self.classes, self.queries, self.semantic = scores, classes, queries, semantic
        self.sp_masks, self.superpoint = sp_masks, superpoint
        self._masks = masks  # (K, N_pt) point masks; None until `masks` first expands sp_masks

    @property
    def masks(self) -> torch.Tensor:
        """(K, N_pt) bool point masks, expanded from the superpoint masks on the first read, then cached."""
        if self._masks is None:
            self._masks = self.sp_masks[:, self.superpoint]  # (K, S) -> (K, N_pt) bool gather
        return self._masks

    def __repr__(self) -> str:
        num_points = self.superpoint.shape[0] if self._masks is None else self._masks.shape[1]
        return f"Prediction({len(self.scores)} instances over {num_points} points)"


def _empty_prediction(superpoint: torch.Tensor, num_sp: int) -> Prediction:
    """No instances over the scene's points (N_pt,) and its S superpoints."""
    device = superpoint.device
    return Prediction(
        scores=torch.zeros(0, dtype=torch.float32, device=device),
        classes=torch.zeros(0, dtype=torch.int64, device=device),
        queries=torch.zeros(0, dtype=torch.int64, device=device),
        sp_masks=torch.zeros((0, num_sp), dtype=torch.bool, device=device),
        superpoint=superpoint.long(),
    )


@torch.no_grad()
def predict_instances(
    logits: torch.Tensor,
    mask_logits: torch.Tensor,
    superpoint: torch.Tensor,
    cfg: PostprocessConfig,
    query_scores: torch.Tensor | None = None,
) -> Prediction:
    """Scored instances of one scene from its final stage (REFERENCE_SPEC 5.3), point masks on demand.

    logits: (Q, C+1) class logits with background last; mask_logits: (Q, S) superpoint mask logits;
    superpoint: (N_pt,) compact superpoint ids 0..S-1 of the scene's points; query_scores: (Q,) the score
    head's predicted mask IoU (``decoder.use_score``), multiplying the class probabilities as the
    reference would (spec 5.3 step 1). Computed in float32.
    """
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (Q, C+1) with C >= 1, got {tuple(logits.shape)}")
    if mask_logits.ndim != 2 or mask_logits.shape[0] != logits.shape[0]:
        raise ValueError(
            f"mask_logits must have shape (Q, S) with Q = {logits.shape[0]}, got {tuple(mask_logits.shape)}"
        )
    if superpoint.ndim != 1:
        raise ValueError(f"superpoint must have shape (N_pt,), got {tuple(superpoint.shape)}")
    num_queries, num_sp = mask_logits.shape
    num_classes = logits.shape[1] - 1
    num_points = superpoint.shape[0]
    if num_points > 0 and (int(superpoint.max()) >= num_sp or int(superpoint.min()) < 0):
        raise ValueError(
            f"superpoint ids must lie in 0..S-1 = 0..{num_sp - 1}, got range "
            f"{int(superpoint.min())}..{int(superpoint.max())}"
        )
    superpoint = superpoint.long()
    if num_queries == 0 or num_sp == 0:
        return _empty_prediction(superpoint, num_sp)

    logits = logits.float()
    mask_logits = mask_logits.float()

    class_scores = logits.softmax(dim=-1)[:, :-1]  # (Q, C) background dropped
    if query_scores is not None:
        if query_scores.shape != (num_queries,):
            raise ValueError(f"query_scores must have shape (Q,) = ({num_queries},), "
                             f"got {tuple(query_scores.shape)}")
        class_scores = class_scores * query_scores.float()[:, None]  # no sigmoid, as the reference
    # deliberate (spec 11.2.5): k clipped to Q x C; the reference's top-k crashes when it is larger
    k = min(cfg.topk_insts, num_queries * num_classes)
    scores, flat_idx = class_scores.flatten().topk(k, sorted=False)  # (k,) query-major flattening
    classes = flat_idx % num_classes  # (k,)
    queries = flat_idx // num_classes  # (k,)

    cand_logits = mask_logits[queries]  # (k, S)
    cand_probs = cand_logits.sigmoid()  # (k, S)
    positive = (cand_logits > 0).float()
    quality = (cand_probs * positive).sum(dim=1) / (positive.sum(dim=1) + 1e-6)  # (k,)
    scores = scores * quality

    if cfg.nms:
        scores, classes, cand_probs, keep = matrix_nms(
            cand_probs, classes, scores, kernel=cfg.nms_kernel, sigma=cfg.nms_sigma, eps=cfg.nms_eps
        )
        queries = queries[keep]

    # a point is in a mask when its superpoint's probability is: thresholding per superpoint is the
    # reference's point-level threshold (cand_probs[:, superpoint] > thr) without the k x N_pt floats
    sp_masks = cand_probs > cfg.sp_score_thr  # (k, S) bool

    keep = scores > cfg.score_thr  # strict, spec 5.3 step 6
    scores, classes, queries, sp_masks = scores[keep], classes[keep], queries[keep], sp_masks[keep]
    sp_size = torch.bincount(superpoint, minlength=num_sp).double()  # (S,) points per superpoint
    # points per mask: float64 sums of integer counts are exact (below 2^53 points), and autocast, which
    # would take float32 matmuls to 16 bits, leaves float64 alone
    keep = sp_masks.double() @ sp_size > cfg.npoint_thr  # (k,), strict, spec 5.3 step 7
    scores, classes, queries, sp_masks = scores[keep], classes[keep], queries[keep], sp_masks[keep]

    # (K,) the default, unstable sort as the point-level version had it: stable=True orders equal scores
    # differently (tests/model/test_postprocess.py)
    scores, order = torch.sort(scores, descending=True)
    return Prediction(scores=scores, classes=classes[order], queries=queries[order], sp_masks=sp_masks[order],
                      superpoint=superpoint)


@torch.no_grad()
def point_semantics(sp_seg: torch.Tensor, superpoint: torch.Tensor, stuff_classes: tuple[int, ...]
                    ) -> torch.Tensor:
    """Per-point semantic labels from the superpoint semantic head (spec 6.1), in the dataset's label space.

    sp_seg: (S, C+1) logits, the C instance classes in train-label order then background; superpoint:
    (N_pt,) compact ids 0..S-1 (their range is not checked again here: :func:`predict_instances` checks the
    same scene's ids, and a check costs GPU round trips). Every superpoint takes its argmax class and
    passes it to its points.
    Train label k is the k-th class of the C + len(stuff_classes) dataset classes that is not stuff
    (the inverse of ``lassm.data.labels.train_labels``). The head has no column per stuff class: its
    background column is trained on stuff and unlabelled points alike (spec 5.2, 7.4), so a point it
    calls background gets -1, never a stuff class. Returns (N_pt,) int64 labels, -1 = background.
    """
    if sp_seg.ndim != 2 or sp_seg.shape[1] < 2:
        raise ValueError(f"sp_seg must have shape (S, C+1) with C >= 1, got {tuple(sp_seg.shape)}")
    if superpoint.ndim != 1:
        raise ValueError(f"superpoint must have shape (N_pt,), got {tuple(superpoint.shape)}")
    num_classes = sp_seg.shape[1] - 1
    stuff = set(stuff_classes)
    total = num_classes + len(stuff)
    if any(not 0 <= c < total for c in stuff):
        raise ValueError(f"stuff_classes: expected labels in 0..{total - 1} (C = {num_classes} instance "
                         f"classes plus {len(stuff)} stuff classes), got {tuple(stuff_classes)}")
    things = [c for c in range(total) if c not in stuff]  # train label k -> dataset label things[k]
    # (C+1,) background -> -1; built on the host, copied without waiting for the device
    table = torch.tensor([*things, -1], dtype=torch.int64).to(sp_seg.device, non_blocking=True)
    return table[sp_seg.argmax(dim=1)][superpoint.long()]  # (S,) classes -> (N_pt,) labels
