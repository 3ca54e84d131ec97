"""The loss of every decoder stage and scene at once (REFERENCE_SPEC 7.2): a few dozen tensor ops.

:func:`lassm.model.criterion.stage_loss` is the readable form: one stage, a loop over the scenes,
about 40 small ops per scene and stage (21 times for three scenes and seven stages, then as many
again in backward); on a GPU each is a kernel launch. Here the T stages and B scenes are padded
tensors, (T, B, Q, ...), and the matched (query, ground truth) pairs of all of them are one list of
K rows. Everything that depends only on the matching's host-side result (which rows, each row's
share of its stage's mean, the class-weight denominators) is laid out on the host and crosses to the
device in two copies, right after the matching's own round trip; the device then computes every
row's BCE, Dice and L1 and every query's cross-entropy in one go and sums them per stage with those
weights. Same numbers as ``stage_loss`` per stage up to float rounding (the sums run in another
order): ``tests/model/test_losses.py`` compares the two, gradients included.

The per-row BCE is ``softplus(m) - m t`` (equal to torch's BCE-with-logits, fewer kernels).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = -100  # cross-entropy target that counts nothing (padding queries here)


class PaddedStages(NamedTuple):
    """The decoder's stages as padded tensors: T stages, B scenes padded to Q queries and S superpoints."""

    logits: torch.Tensor  # (T, B, Q, C + 1) class logits, background last
    masks: torch.Tensor  # (T, B, Q, S) superpoint mask logits
    centres: torch.Tensor  # (T, B, Q, 3) normalised centres
    counts: list[int]  # Q_b real queries of each scene
    sizes: list[int]  # S_b real superpoints of each scene
    scores: torch.Tensor | None = None  # (T, B, Q) predicted mask IoU (decoder.use_score), else None


def stack_stages(stages: list[tuple[torch.Tensor, ...]], counts: list[int], sizes: list[int]) -> PaddedStages:
    """The decoder's padded stages (``DecoderOutput.padded``: per stage (logits, masks, centres,
    positions[, scores]) of shape (B, Q, ...)) stacked to :class:`PaddedStages`."""
    fields = list(zip(*stages, strict=True))  # the positions (fourth) are not part of the loss
    return stacked_stages([None if i == 3 else torch.stack(f) for i, f in enumerate(fields)], counts, sizes)


def stacked_stages(fields: list[torch.Tensor] | tuple[torch.Tensor, ...], counts: list[int], sizes: list[int]
                   ) -> PaddedStages:
    """:class:`PaddedStages` from the stages already stacked per field: (logits, masks, centres, positions[,
    scores]), each (T, B, Q, ...), as the decoder's training CUDA graph returns them (no copy)."""
    logits, masks, centres = fields[:3]
    return PaddedStages(logits, masks, centres, counts, sizes, fields[4] if len(fields) > 4 else None)


def pad_stages(labels: list[list[torch.Tensor]], masks: list[list[torch.Tensor]],
               centres: list[list[torch.Tensor]], scores: list[list[torch.Tensor]] | None = None
               ) -> PaddedStages:
    """Per stage, per scene (Q_b, C+1) / (Q_b, S_b) / (Q_b, 3) [/ (Q_b,) scores] tensors ->
    :class:`PaddedStages` (zeros in the padding). For callers that only have the per-scene lists; the
    decoder hands its padded tensors over directly."""
    counts = [len(x) for x in labels[0]]
    sizes = [m.shape[1] for m in masks[0]]
    num_q, num_s = max(counts), max(sizes)

    def pad(rows: list[torch.Tensor], width: int | None) -> torch.Tensor:
        return torch.stack([F.pad(r, (0, 0 if width is None else width - r.shape[1], 0, num_q - len(r)))
                            for r in rows])

    padded_scores = None
    if scores is not None:
        padded_scores = torch.stack([pad([r[:, None] for r in s], None)[..., 0] for s in scores])
    return PaddedStages(torch.stack([pad(s, None) for s in labels]),
                        torch.stack([pad(s, num_s) for s in masks]),
                        torch.stack([pad(s, None) for s in centres]), counts, sizes, padded_scores)


def _layout(pairs: list[list[tuple[np.ndarray, np.ndarray]]], counts: list[int], sizes: list[int],
            gt_counts: list[int], num_classes: int, cfg, device) -> tuple[torch.Tensor, ...]:
    """The host-side plan of the batched loss, in one int64 and one float32 copy to the device.

    pairs: [T][B] (query_idx, gt_idx) from the matcher. Returns rows (K,) into the flat (T B Q) queries,
    gt rows (K,) into the scenes' concatenated ground truth, each row's S_b and stage (K,), the cross-entropy
    target (T B Q,) before the matched labels go in (background, IGNORE for padding), each query's
    cross-entropy weight (T B Q,) and each row's BCE, Dice and L1 weights (3, K): the factors that
    turn sums into the per-scene means, the mean over scenes and the final stage's Dice factor.
    """
    num_stages, num_scenes, num_q = len(pairs), len(counts), max(counts)
    gt_start = np.cumsum([0, *gt_counts])[:-1]
    with_gt = sum(g > 0 for g in gt_counts)
    denom = with_gt if cfg.fix_mean_loss else num_scenes
    rows, gt_rows, row_size, row_stage, weights = [], [], [], [], []
    target = np.full((num_stages, num_scenes, num_q), IGNORE, dtype=np.int64)
    ce_weight = np.zeros((num_stages, num_scenes, num_q), dtype=np.float64)
    for t, per_stage in enumerate(pairs):
        dice_factor = num_scenes if t == num_stages - 1 and cfg.final_dice_times_batch else 1
        for b, (q, g) in enumerate(per_stage):
            k, num_sp = len(q), sizes[b]
            target[t, b, :counts[b]] = num_classes  # background
            # torch's weighted mean: the weights of matched (1) and unmatched (no_object_weight) queries
            ce_weight[t, b, :counts[b]] = 1.0 / ((k + (counts[b] - k) * cfg.no_object_weight) * num_scenes)
            rows.append((t * num_scenes + b) * num_q + np.asarray(q, np.int64))
            gt_rows.append(gt_start[b] + np.asarray(g, np.int64))
            row_size.append(np.full(k, num_sp, np.int64))
            row_stage.append(np.full(k, t, np.int64))
            if k:
                weights.append(np.repeat([[1 / (k * num_sp * denom)], [dice_factor / (k * denom)],
                                          [1 / (k * num_scenes)]], k, axis=1))
    cat = np.concatenate
    plan = cat([cat(rows), cat(gt_rows), cat(row_size), cat(row_stage), target.ravel()])
    row_weights = cat(weights, axis=1) if weights else np.zeros((3, 0))
    floats = cat([ce_weight.ravel(), row_weights.ravel()]).astype(np.float32)
    plan = torch.from_numpy(plan).to(device, non_blocking=True)
    floats = torch.from_numpy(floats).to(device, non_blocking=True)
    num_rows, num_queries = len(cat(rows)), target.size
    rows, gt_rows, row_size, row_stage, target = plan.split([num_rows] * 4 + [num_queries])
    ce_weight, row_weights = floats.split([num_queries, 3 * num_rows])
    return rows, gt_rows, row_size, row_stage, target, ce_weight, row_weights.view(3, num_rows)


def batched_stage_losses(padded: PaddedStages, gt_labels: list[torch.Tensor], gt_masks: list[torch.Tensor],
                         gt_centres: list[torch.Tensor], pairs: list[list[tuple[np.ndarray, np.ndarray]]],
                         cfg) -> torch.Tensor:
    """(5, T) float32: the cls, bce, dice, box and score terms of every stage, as ``stage_loss`` computes
    them stage by stage (the final stage last; its Dice times B under ``cfg.final_dice_times_batch``; the
    score term 0 without a score head).

    gt_*: per scene (G_b,) labels, (G_b, S_b) bool masks, (G_b, 3) centres; pairs: [T][B] host
    (query_idx, gt_idx) arrays from the matcher.
    """
    logits, masks, centres, counts, sizes, scores = padded
    num_stages, num_scenes, num_q, width = logits.shape
    device = logits.device
    gt_counts = [len(g) for g in gt_labels]
    rows, gt_rows, row_size, row_stage, target, ce_weight, row_weights = _layout(
        pairs, counts, sizes, gt_counts, width - 1, cfg, device)

    # classification: every query of every stage and scene in one cross-entropy (spec 7.2)
    target[rows] = torch.cat(gt_labels)[gt_rows]  # (T B Q,) matched queries take their instance's label
    class_weight = torch.cat([torch.ones(width - 1, device=device),
                              torch.full((1,), cfg.no_object_weight, device=device)])
    ce = F.cross_entropy(logits.reshape(-1, width).float(), target, weight=class_weight, ignore_index=IGNORE,
                         reduction="none")  # (T B Q,) w_y * -log p_y, 0 for padding
    cls = (ce * ce_weight).view(num_stages, -1).sum(1)  # (T,)
    if len(rows) == 0:  # no ground truth in the batch: zeros that still reach the predictions (DDP)
        zero = (masks.float().sum() + centres.float().sum()) * 0.0
        if scores is not None:
            zero = zero + scores.float().sum() * 0.0
        return torch.stack([cls, *zero.expand(4, num_stages)])

    # masks and centres: the K matched rows of all stages and scenes
    num_sp = masks.shape[-1]
    m = masks.reshape(-1, num_sp)[rows].float()  # (K, S)
    gt = masks.new_zeros((sum(gt_counts), num_sp), dtype=torch.float32)  # (G, S) all scenes' instance masks
    for b, (start, g) in enumerate(zip(np.cumsum([0, *gt_counts[:-1]]).tolist(), gt_masks, strict=True)):
        if len(g):
            gt[start:start + len(g), :sizes[b]] = g
    t = gt[gt_rows]  # (K, S)
    valid = torch.arange(num_sp, device=device) < row_size[:, None]  # (K, S) the row's scene's superpoints
    bce = ((F.softplus(m) - m * t) * valid).sum(1)  # (K,) summed BCE with logits
    sig = m.sigmoid() * valid
    dice = 1 - (2 * (sig * t).sum(1) + 1) / (sig.sum(1) + t.sum(1) + 1)  # (K,)
    box = (centres.reshape(-1, 3)[rows].float() - torch.cat(gt_centres).float()[gt_rows]).abs().sum(1)  # (K,)
    weighted = torch.stack([bce, dice, box]) * row_weights  # (3, K)
    terms = weighted.new_zeros(3, num_stages).index_add_(1, row_stage, weighted)  # (3, T) per stage
    score = _score_terms(scores, m, t, valid, rows, num_stages, num_scenes, num_q, cfg.score_min_iou)
    return torch.cat([cls[None], terms, score[None]])


def _score_terms(scores: torch.Tensor | None, m: torch.Tensor, t: torch.Tensor, valid: torch.Tensor,
                 rows: torch.Tensor, num_stages: int, num_scenes: int, num_q: int, min_iou: float
                 ) -> torch.Tensor:
    """(T,) the score head's loss per stage (spec 7, the reference's optional score loss): per scene, the
    MSE between the matched queries' predicted scores and their binarised masks' IoU with the object (no
    gradient), over the rows whose IoU exceeds ``min_iou``; summed over scenes and divided by B. Zeros
    reaching the scores when nothing qualifies, and without a score head."""
    if scores is None:
        return m.new_zeros(num_stages)
    with torch.no_grad():
        inside = (m >= 0) & valid  # (K, S) sigmoid >= 0.5
        inter = (inside * t).sum(1)
        iou = inter / (t.sum(1) + inside.sum(1) - inter + 1e-6)  # (K,)
        keep = (iou > min_iou).float()
    group = rows // num_q  # (K,) the row's (stage, scene)
    error = (scores.reshape(-1)[rows].float() - iou) ** 2 * keep
    total = error.new_zeros(num_stages * num_scenes).index_add_(0, group, error)
    count = keep.new_zeros(num_stages * num_scenes).index_add_(0, group, keep)
    per_scene = (total / count.clamp_min(1)).view(num_stages, num_scenes)
    return per_scene.sum(1) / num_scenes + scores.float().sum() * 0.0
