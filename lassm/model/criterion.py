"""LaSSM's training targets, Hungarian matcher and loss (REFERENCE_SPEC 5.2, 7).

Per scene, :func:`build_targets` turns point labels into superpoint-level targets; per stage,
:func:`hungarian_match` pairs queries with ground-truth instances and :func:`stage_loss` scores
them; :func:`criterion` adds the stages and the superpoint semantic loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from ..config import CriterionConfig
from ..data.labels import labels_out_of_range, train_labels
from .batched import unique_per_scene
from .decoder import Stage
from .losses import PaddedStages, batched_stage_losses, pad_stages
from .stages import MATCHING
from .stages import stage as timed_stage

IGNORE = -100  # superpoint semantic target that cross-entropy ignores


@dataclass
class InstanceTargets:
    """Training targets of one scene at superpoint level (spec 5.2)."""

    labels: torch.Tensor  # (G,) int64 train labels 0..C-1
    masks: torch.Tensor  # (G, S) bool superpoint masks
    centres: torch.Tensor  # (G, 3) float32 box centres, normalised by the scene's point range
    sp_labels: torch.Tensor  # (S,) int64 superpoint semantic target, C = background, IGNORE = none


def _count(index: torch.Tensor, size: int) -> torch.Tensor:
    """How often each value 0..size-1 occurs in index (int64), via index_add_."""
    return torch.zeros(size, dtype=torch.long, device=index.device).index_add_(
        0, index, torch.ones_like(index))


def build_targets(instance: torch.Tensor, segment: torch.Tensor, coord: torch.Tensor,
                  superpoint: torch.Tensor, num_superpoints: int, num_classes: int,
                  stuff_classes: tuple[int, ...], num_classes_total: int,
                  sp_unlabelled_as_class0: bool = False) -> InstanceTargets:
    """Targets of ONE scene from its raw per-point labels (spec 5.2, 7.4).

    instance, segment: (N_pt,) raw ids / semantic labels (-1 = none); coord: (N_pt, 3) point
    coordinates; superpoint: (N_pt,) compact superpoint ids 0..num_superpoints-1.
    """
    return build_batch_targets([(instance, segment, coord, superpoint, num_superpoints)], num_classes,
                               stuff_classes, num_classes_total, sp_unlabelled_as_class0)[0]


def build_batch_targets(scenes: list[tuple], num_classes: int, stuff_classes: tuple[int, ...],
                        num_classes_total: int, sp_unlabelled_as_class0: bool = False
                        ) -> list[InstanceTargets]:
    """:func:`build_targets` of every scene of a batch, ``scenes`` = [(instance, segment, coord,
    superpoint, num_superpoints)], with two host round trips on a GPU for the whole batch (the
    instances' unique, then the input checks with the instance counts) instead of two per scene."""
    num_things = num_classes_total - len(set(stuff_classes))
    if num_classes != num_things:
        raise ValueError(f"num_classes: expected {num_things} (num_classes_total {num_classes_total} minus "
                         f"{len(set(stuff_classes))} stuff classes), got {num_classes}")
    checked, labels, flags = [], [], []
    for instance, segment, coord, superpoint, num_sp in scenes:
        n_pt = segment.shape[0]
        if instance.shape != (n_pt,) or superpoint.shape != (n_pt,):
            raise ValueError(f"instance, superpoint: expected shape ({n_pt},) like segment, got "
                             f"{tuple(instance.shape)} and {tuple(superpoint.shape)}")
        if coord.shape != (n_pt, 3):
            raise ValueError(f"coord: expected shape ({n_pt}, 3), got {tuple(coord.shape)}")
        if n_pt == 0:
            raise ValueError("segment: expected a scene with at least one point, got 0")
        superpoint = superpoint.long()
        checked.append((segment, coord, superpoint, num_sp))
        # (N_pt,) -1 = none; clamped so that a label out of range, raised below, indexes nothing out of range
        labels.append(train_labels(segment.long().clamp(-1, num_classes_total - 1), num_classes_total,
                                   stuff_classes, check=False))
        flags.append(torch.stack([(superpoint < 0).any() | (superpoint >= num_sp).any(),  # (2,) on the GPU
                                  labels_out_of_range(segment.long(), num_classes_total)]))
    # The instance list of a scene is its compacted ids 0..G-1; the reference's "drop the first unique
    # id" is not copied.
    inst, counts = compact_batch_instances([s[0] for s in scenes], labels)
    host = torch.cat([torch.stack(flags).long(), counts[:, None]], 1).tolist()  # (B, 3): the checks, G_b
    per_scene = []
    for (segment, coord, superpoint, num_sp), label, scene_inst, (bad_sp, bad_label, num_inst) in zip(
            checked, labels, inst, host, strict=True):
        if bad_sp:
            raise ValueError(f"superpoint: expected compact ids in 0..{num_sp - 1}, got "
                             f"{int(superpoint.min())}..{int(superpoint.max())}")
        if bad_label:
            train_labels(segment, num_classes_total, stuff_classes)  # raises, naming the labels
        per_scene.append((scene_inst, num_inst, label, coord, superpoint, num_sp))
    return _batch_scene_targets(per_scene, num_classes, sp_unlabelled_as_class0)


def compact_batch_instances(instances: list[torch.Tensor], labels: list[torch.Tensor]
                            ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """:func:`lassm.data.labels.compact_instances` of each scene (ids 0..G_b-1 in ascending raw id, -1 for
    points without a train label or instance) and the counts G_b (B,) on the device, from one unique
    of (scene, id) pairs: one host round trip for the batch."""
    sentinel = torch.iinfo(torch.int64).min  # below every id: each scene's first unique value
    ids, keeps = [], []
    for instance, label in zip(instances, labels, strict=True):
        if instance.shape != label.shape:
            raise ValueError(f"instance: expected the shape of train_label {tuple(label.shape)}, "
                             f"got {tuple(instance.shape)}")
        instance = instance.long()
        keep = (label != -1) & (instance != -1)  # a labelled point with instance -1 stays -1 (not id 0)
        # one sentinel always appended, so that it is the scene's first unique value and the ids rank 1..G
        ids.append(torch.cat([torch.where(keep, instance, sentinel),
                              torch.full((1,), sentinel, device=instance.device)]))
        keeps.append(keep)
    ranks, counts = unique_per_scene(ids)
    return [torch.where(keep, rank[:-1] - 1, -1) for keep, rank in zip(keeps, ranks, strict=True)], counts - 1


def _batch_scene_targets(scenes: list[tuple], num_classes: int, sp_unlabelled_as_class0: bool
                         ) -> list[InstanceTargets]:
    """Every scene's targets from its compacted instances and train labels, ``scenes`` = [(inst (N_b,)
    0..G_b-1 / -1, G_b, train label (N_b,), coord (N_b, 3), superpoint (N_b,), S_b)], computed for all
    scenes at once (each scene's instances and superpoints offset past the previous scenes', so the work
    grows with the points, not with scenes x scenes); the results are views per scene. No host round
    trip: every count is a host int."""
    inst, num_inst, label, coord, superpoint, num_sp = zip(*scenes, strict=True)
    device = label[0].device
    points = [len(t) for t in label]
    rows = [g + 1 for g in num_inst]  # each scene's instances, then its row for points of no instance
    row_start = np.cumsum([0, *rows[:-1]]).tolist()
    sp_start = np.cumsum([0, *num_sp[:-1]]).tolist()
    total_rows, total_sp, n_pt = sum(rows), sum(num_sp), sum(points)
    scene = torch.repeat_interleave(torch.arange(len(points), device=device),
                                    torch.tensor(points).to(device, non_blocking=True), output_size=n_pt)
    # each point's row in its scene: its instance, or the scene's extra row G_b (dropped): no boolean indexing
    local = [torch.where(i >= 0, i, g) for i, g in zip(inst, num_inst, strict=True)]
    row = torch.cat([r + r0 for r, r0 in zip(local, row_start, strict=True)])  # (N,) rows of all scenes
    sp = torch.cat([p.long() + s for p, s in zip(superpoint, sp_start, strict=True)])  # (N,) global ids
    sp_size = _count(sp, total_sp)  # (S,) points per superpoint (all points, ignored ones included)

    # Instance masks: an instance covers strictly more than half of the superpoint's points. Each scene's
    # (G_b + 1, S_b) block of (instance, superpoint) counts lies after the previous scenes' blocks.
    cells = [(g + 1) * k for g, k in zip(num_inst, num_sp, strict=True)]
    cell_start = np.cumsum([0, *cells[:-1]]).tolist()
    cell = torch.cat([r * k + p.long() + c for r, k, p, c in zip(local, num_sp, superpoint, cell_start,
                                                                  strict=True)])
    cover = _count(cell, sum(cells))
    masks = [2 * cover[c:c + n].view(g + 1, k)[:g] > sp_size[s:s + k]  # (G_b, S_b); cover / size > 0.5
             for c, n, g, k, s in zip(cell_start, cells, num_inst, num_sp, sp_start, strict=True)]
    label, coord = torch.cat(label), torch.cat(coord).float()

    # GT label = train label of the instance's lowest-index point (every instance has a point).
    first = torch.full((total_rows,), n_pt - 1, dtype=torch.long, device=device).scatter_reduce(
        0, row, torch.arange(n_pt, device=device), reduce="amin")
    labels = label[first]  # (rows,)

    # Centres: middle of each instance's axis-aligned box, normalised by its scene's point range.
    index3 = row[:, None].expand(-1, 3)
    hi_inst = torch.full((total_rows, 3), -torch.inf, device=device).scatter_reduce(0, index3, coord, "amax")
    lo_inst = torch.full((total_rows, 3), torch.inf, device=device).scatter_reduce(0, index3, coord, "amin")
    scene3 = scene[:, None].expand(-1, 3)
    hi = torch.full((len(points), 3), -torch.inf, device=device).scatter_reduce(0, scene3, coord, "amax")
    lo = torch.full((len(points), 3), torch.inf, device=device).scatter_reduce(0, scene3, coord, "amin")
    row_scene = torch.repeat_interleave(torch.arange(len(points), device=device),
                                        torch.tensor(rows).to(device, non_blocking=True),
                                        output_size=total_rows)
    # The reference has no epsilon; the clamp only guards a flat scene axis.
    centres = ((hi_inst + lo_inst) / 2 - lo[row_scene]) / (hi - lo).clamp_min(1e-12)[row_scene]  # (rows, 3)

    # Superpoint semantic target (spec 7.4): the label held by > 50% of the superpoint's points.
    sem = torch.where(label < 0, num_classes, label)  # (N,) background = C
    width = num_classes + 1
    votes = _count(sp * width + sem, total_sp * width).view(total_sp, width)  # (S, C+1)
    majority = 2 * votes > sp_size[:, None]  # (S, C+1), at most one True per row
    unlabelled = 0 if sp_unlabelled_as_class0 else IGNORE  # 0 = the reference's argmax pitfall (11.1.3)
    sp_labels = torch.where(majority.any(1), majority.long().argmax(1), unlabelled)  # (S,)
    return [InstanceTargets(labels=labels[r:r + g], masks=m, centres=centres[r:r + g],
                            sp_labels=sp_labels[s:s + k])
            for r, g, m, s, k in zip(row_start, num_inst, masks, sp_start, num_sp, strict=True)]


def _match_costs(logits: torch.Tensor, masks: torch.Tensor, centres: torch.Tensor,
                 targets: InstanceTargets, cfg: CriterionConfig) -> torch.Tensor:
    """Matching cost (spec 7.1) of T stages of one scene at once: (T, Q, G) float32.

    logits (T, Q, C+1), masks (T, Q, S) logits, centres (T, Q, 3) normalised; T = 1 for one stage.
    """
    probs = logits.float().softmax(-1)[..., targets.labels]  # (T, Q, G)
    m, t = masks.float(), targets.masks.float()  # (T, Q, S), (G, S)
    cost_bce = (F.softplus(-m) @ t.T + F.softplus(m) @ (1 - t).T) / m.shape[-1]  # mean BCE, (T, Q, G)
    sig = m.sigmoid()
    cost_dice = 1 - (2 * sig @ t.T + 1) / (sig.sum(-1)[..., None] + t.sum(1) + 1)  # (T, Q, G)
    cost_bbox = (centres.float()[..., :, None, :] - targets.centres.float()).abs().sum(-1)  # L1, (T, Q, G)
    return (cfg.cost_class * -probs + cfg.cost_bce * cost_bce + cfg.cost_dice * cost_dice
            + cfg.cost_bbox * cost_bbox)


def _assign(costs: list[np.ndarray | None]) -> list[tuple[np.ndarray, np.ndarray]]:
    """scipy's Hungarian solver on each (Q, G) cost matrix; None (no ground truth) -> no pairs."""
    empty = np.zeros(0, dtype=np.int64)
    return [linear_sum_assignment(c) if c is not None else (empty, empty) for c in costs]


@torch.no_grad()
def hungarian_match(logits: torch.Tensor, masks: torch.Tensor, centres: torch.Tensor,
                    targets: InstanceTargets, cfg: CriterionConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimal one-to-one query/GT pairs of one scene (spec 7.1): (query_idx, gt_idx), int64, by query.

    logits (Q, C+1), masks (Q, S) logits, centres (Q, 3) normalised. :func:`match_stages` does the
    same for every stage and scene of a batch with one device-to-host copy.
    """
    return match_stages([Stage([logits], [masks], [centres])], [targets], cfg)[0][0]


@torch.no_grad()
def match_stages(stages: list[Stage], targets: list[InstanceTargets], cfg: CriterionConfig,
                 ) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Hungarian matching of every stage and scene: ``[stage][scene] -> (query_idx, gt_idx)``.

    The cost matrices of a scene's stages are computed together on the device, all of them cross to
    the host in one copy (one synchronisation for the whole batch instead of one per stage and
    scene), scipy solves each (:func:`solve_stages`), and the pairs return to the device in one copy.
    """
    device = stages[0].labels[0].device
    pairs = solve_stages(stages, targets, cfg)  # [T][B]
    flat = np.concatenate([np.concatenate(pair) for per_stage in pairs for pair in per_stage])
    flat = torch.from_numpy(flat.astype(np.int64)).to(device, non_blocking=True)  # one host-to-device copy
    out, start = [], 0
    for per_stage in pairs:
        row = []
        for q, _ in per_stage:
            row.append((flat[start:start + len(q)], flat[start + len(q):start + 2 * len(q)]))
            start += 2 * len(q)
        out.append(row)
    return out


@torch.no_grad()
def solve_stages(stages: list[Stage], targets: list[InstanceTargets], cfg: CriterionConfig,
                 padded: PaddedStages | None = None) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """:func:`match_stages`' pairs as host arrays, ``[stage][scene] -> (query_idx, gt_idx)``: the costs
    on the device, one device-to-host copy, scipy on each. ``padded``: the same stages as padded
    tensors, whose slices are a scene's stages without a copy."""
    costs = []  # per scene: (T, Q, G) on the device, or None without ground truth
    for b, tgt in enumerate(targets):
        if tgt.labels.numel() == 0:
            costs.append(None)
        elif padded is None:
            costs.append(_match_costs(torch.stack([s.labels[b] for s in stages]),
                                      torch.stack([s.masks[b] for s in stages]),
                                      torch.stack([s.centres[b] for s in stages]), tgt, cfg))
        else:
            q, sp = padded.counts[b], padded.sizes[b]
            costs.append(_match_costs(padded.logits[:, b, :q], padded.masks[:, b, :q, :sp],
                                      padded.centres[:, b, :q], tgt, cfg))
    present = [c for c in costs if c is not None]
    host = torch.cat([c.flatten() for c in present]).cpu().numpy() if present else np.zeros(0)
    if not np.isfinite(host).all():
        raise ValueError("hungarian_match: the cost matrix is not finite; the predictions (logits, masks or "
                         "centres) hold NaN or infinite values")
    pieces, start = [], 0
    for c in costs:  # back to (T, Q, G) arrays on the host
        if c is None:
            pieces.append(None)
            continue
        pieces.append(host[start:start + c.numel()].reshape(c.shape))
        start += c.numel()
    return [_assign([None if p is None else p[t] for p in pieces]) for t in range(len(stages))]  # [T][B]


def _class_weight(num_logits: int, cfg: CriterionConfig, device: torch.device) -> torch.Tensor:
    """[1] * C + [no_object_weight]: background is the last logit (spec 7)."""
    # built from fills on the device: writing a host number into a device tensor waits for the GPU
    return torch.cat([torch.ones(num_logits - 1, device=device),
                      torch.full((1,), cfg.no_object_weight, device=device)])


def stage_loss(stage: Stage, targets: list[InstanceTargets], cfg: CriterionConfig, final: bool,
               indices: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
               ) -> tuple[dict[str, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
    """Loss of one prediction stage over the B scenes (spec 7.2): components and the matches used.

    Components: cls, bce, dice, box, score (0 without a score head) and their weighted sum ``loss``.
    ``indices`` (one (query_idx, gt_idx) pair per scene) skips matching, e.g. to reuse the final stage's.
    """
    num_scenes = len(targets)
    if not (len(stage.labels) == len(stage.masks) == len(stage.centres) == num_scenes):
        raise ValueError(f"stage: expected {num_scenes} scenes like targets, got {len(stage.labels)} labels, "
                         f"{len(stage.masks)} masks and {len(stage.centres)} centres")
    if indices is None:
        with timed_stage(MATCHING):
            indices = [hungarian_match(lg, m, c, t, cfg) for lg, m, c, t in
                       zip(stage.labels, stage.masks, stage.centres, targets, strict=True)]
    cls_terms, bce_terms, dice_terms, box_terms, score_terms = [], [], [], [], []
    scores = stage.scores if stage.scores is not None else [None] * num_scenes
    scenes = zip(stage.labels, stage.masks, stage.centres, scores, targets, indices, strict=True)
    for logits, masks, centres, score, tgt, (q, g) in scenes:
        logits = logits.float()
        num_classes = logits.shape[1] - 1
        target = torch.full((logits.shape[0],), num_classes, dtype=torch.long, device=logits.device)  # (Q,)
        target[q] = tgt.labels[g]
        weight = _class_weight(num_classes + 1, cfg, logits.device)
        cls_terms.append(F.cross_entropy(logits, target, weight=weight))
        if q.numel() == 0:  # scene without ground truth: only the classification term
            continue
        m, t = masks[q].float(), tgt.masks[g].float()  # (K, S)
        bce_terms.append(F.binary_cross_entropy_with_logits(m, t))
        sig = m.sigmoid()
        dice_terms.append((1 - (2 * (sig * t).sum(1) + 1) / (sig.sum(1) + t.sum(1) + 1)).mean())
        box_terms.append((centres[q].float() - tgt.centres[g].float()).abs().sum(1).mean())
        if score is not None:  # the reference's optional score loss: matches above score_min_iou only
            with torch.no_grad():
                inside = (m >= 0).float()  # sigmoid >= 0.5
                inter = (inside * t).sum(1)
                iou = inter / (t.sum(1) + inside.sum(1) - inter + 1e-6)  # (K,)
            keep = iou > cfg.score_min_iou
            if keep.any():
                score_terms.append(F.mse_loss(score[q].float()[keep], iou[keep]))

    cls = torch.stack(cls_terms).mean()
    n = len(bce_terms)
    if n == 0:
        # Zero that still reaches the predictions, so backward works on a batch without ground truth and
        # the mask and centre heads keep a gradient: DDP runs without find_unused_parameters (lassm.train).
        zero = sum(p.float().sum() * 0.0 for p in (*stage.masks, *stage.centres))
        bce = dice = box = zero
    else:
        denom = n if cfg.fix_mean_loss else num_scenes
        bce = torch.stack(bce_terms).sum() / denom
        dice = torch.stack(dice_terms).sum() / denom
        if final and cfg.final_dice_times_batch:
            dice = dice * num_scenes  # the reference's missing division by B (spec 7.2, 11.1.2)
        box = torch.stack(box_terms).sum() / num_scenes  # not renormalised by n, as the reference
    score = cls.new_zeros(())
    if stage.scores is not None:  # summed over scenes, divided by B as the reference; zero still reaches them
        score = sum(score_terms, score) / num_scenes + sum(s.float().sum() for s in stage.scores) * 0.0
    loss = (cfg.weight_class * cls + cfg.weight_bce * bce + cfg.weight_dice * dice + cfg.weight_bbox * box
            + cfg.weight_score * score)
    return {"cls": cls, "bce": bce, "dice": dice, "box": box, "score": score, "loss": loss}, indices


def superpoint_ce(logits: torch.Tensor, sp_labels: torch.Tensor, cfg: CriterionConfig) -> torch.Tensor:
    """Weighted cross-entropy of one scene's superpoint logits (S, C+1) against ``sp_labels`` (S,), IGNORE
    left out (torch's weighted mean, bit for bit), and 0 (still reaching the logits) where every superpoint
    is ignored, chosen on the device: no host round trip to find out which case it is. The mean over
    nothing is NaN, but ``where`` passes it no gradient, and its backward writes none for ignored rows."""
    logits = logits.float()
    weight = _class_weight(logits.shape[1], cfg, logits.device)
    mean = F.cross_entropy(logits, sp_labels, weight=weight, ignore_index=IGNORE)
    return torch.where((sp_labels == IGNORE).all(), logits.sum() * 0.0, mean)


def criterion(stages: list[Stage], sp_seg: list[torch.Tensor], targets: list[InstanceTargets],
              cfg: CriterionConfig, padded: PaddedStages | None = None) -> dict[str, torch.Tensor]:
    """Total training loss (spec 7.2-7.4): final stage + auxiliary stages + weight_sp x superpoint CE.

    stages: decoder stages, the last one final; sp_seg: per scene (S_b, C+1) superpoint logits;
    padded: the same stages as padded tensors (the decoder's ``DecoderOutput.padded``), else built
    here. Every stage and scene is scored at once (:func:`lassm.model.losses.batched_stage_losses`);
    :func:`stage_loss` is the same loss one stage at a time.
    """
    if not stages:
        raise ValueError("stages: expected at least one decoder stage, got none")
    if len(sp_seg) != len(targets):
        raise ValueError(f"sp_seg: expected {len(targets)} scenes like targets, got {len(sp_seg)}")
    for stage in stages:
        if not (len(stage.labels) == len(stage.masks) == len(stage.centres) == len(targets)):
            raise ValueError(f"stage: expected {len(targets)} scenes like targets, got {len(stage.labels)} "
                             f"labels, {len(stage.masks)} masks and {len(stage.centres)} centres")
    if padded is None:
        padded = pad_stages(*zip(*[(s.labels, s.masks, s.centres) for s in stages], strict=True),
                            None if stages[0].scores is None else [s.scores for s in stages])
    with timed_stage(MATCHING):  # every stage's own matching, or the final stage's for all
        if cfg.iter_matcher:
            pairs = solve_stages(stages, targets, cfg, padded)
        else:
            final = padded._replace(logits=padded.logits[-1:], masks=padded.masks[-1:],
                                    centres=padded.centres[-1:])
            pairs = solve_stages(stages[-1:], targets, cfg, final) * len(stages)
    terms = batched_stage_losses(padded, [t.labels for t in targets], [t.masks for t in targets],
                                 [t.centres for t in targets], pairs, cfg)  # (5, T) cls bce dice box score
    cls, bce, dice, box, score = terms.unbind(0)
    total = (cfg.weight_class * cls + cfg.weight_bce * bce + cfg.weight_dice * dice
             + cfg.weight_bbox * box + cfg.weight_score * score).sum()

    # every scene's term reaches its logits, also where all superpoints are ignored (DDP needs a gradient)
    loss_sp = torch.stack([superpoint_ce(logits, tgt.sp_labels, cfg)
                           for logits, tgt in zip(sp_seg, targets, strict=True)]).mean()
    total = total + cfg.weight_sp * loss_sp
    return {"loss_cls": cls[-1], "loss_mask": bce[-1], "loss_dice": dice[-1],
            "loss_score": score[-1], "loss_bbox": box[-1],
            "loss_sp_cls": loss_sp, "loss": total}
