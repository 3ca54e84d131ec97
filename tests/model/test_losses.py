"""The batched loss of every stage and scene (lassm.model.losses) against the per-stage loop (spec 7.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lassm.config import CriterionConfig
from lassm.model.criterion import InstanceTargets, criterion, match_stages, stage_loss, superpoint_ce
from lassm.model.decoder import Stage
from lassm.model.losses import PaddedStages, pad_stages, stack_stages

SIZES = [(6, 9), (4, 5), (5, 7)]  # (Q_b, S_b) of up to three scenes
NUM_CLASSES = 4


def per_stage_criterion(stages, sp_seg, targets, cfg: CriterionConfig) -> dict[str, torch.Tensor]:
    """The criterion as a loop: stage_loss per stage (the final one first), then the superpoint CE."""
    matched = match_stages(stages if cfg.iter_matcher else stages[-1:], targets, cfg)
    final, _ = stage_loss(stages[-1], targets, cfg, final=True, indices=matched[-1])
    total = final["loss"]
    for k, stage in enumerate(stages[:-1]):
        total = total + stage_loss(stage, targets, cfg, final=False,
                                   indices=matched[k if cfg.iter_matcher else -1])[0]["loss"]
    loss_sp = torch.stack([superpoint_ce(s, t.sp_labels, cfg) for s, t in zip(sp_seg, targets, strict=True)])
    total = total + cfg.weight_sp * loss_sp.mean()
    return {"loss_cls": final["cls"], "loss_mask": final["bce"], "loss_dice": final["dice"],
            "loss_bbox": final["box"], "loss_score": final["score"], "loss": total}


def padded_batch(seed: int, inst_counts: tuple[int, ...], num_stages: int = 4, with_scores: bool = False):
    """Padded (T, B, Q, ...) predictions with random values in the padding too (leaves), the per-scene
    stages as slices of them, superpoint logits and targets; ``with_scores``: a score head's (T, B, Q)."""
    g = torch.Generator().manual_seed(seed)
    sizes = SIZES[:len(inst_counts)]
    num_q, num_s, num_b = max(q for q, _ in sizes), max(s for _, s in sizes), len(sizes)
    logits = (torch.randn(num_stages, num_b, num_q, NUM_CLASSES + 1, generator=g) * 2).requires_grad_()
    masks = (torch.randn(num_stages, num_b, num_q, num_s, generator=g) * 3).requires_grad_()
    centres = torch.rand(num_stages, num_b, num_q, 3, generator=g).requires_grad_()
    scores = torch.rand(num_stages, num_b, num_q, generator=g).requires_grad_() if with_scores else None
    stages = [Stage([logits[t, b, :q] for b, (q, _) in enumerate(sizes)],
                    [masks[t, b, :q, :s] for b, (q, s) in enumerate(sizes)],
                    [centres[t, b, :q] for b, (q, _) in enumerate(sizes)], None,
                    None if scores is None else [scores[t, b, :q] for b, (q, _) in enumerate(sizes)])
              for t in range(num_stages)]
    targets = []
    for n, (_, s) in zip(inst_counts, sizes, strict=True):
        sp_labels = torch.randint(0, NUM_CLASSES + 1, (s,), generator=g)
        sp_labels[torch.rand(s, generator=g) < 0.3] = -100
        targets.append(InstanceTargets(torch.randint(0, NUM_CLASSES, (n,), generator=g),
                                       torch.rand(n, s, generator=g) < 0.4, torch.rand(n, 3, generator=g),
                                       sp_labels))
    sp_seg = [torch.randn(s, NUM_CLASSES + 1, generator=g).requires_grad_() for _, s in sizes]
    padded = PaddedStages(logits, masks, centres, [q for q, _ in sizes], [s for _, s in sizes], scores)
    return padded, stages, sp_seg, targets


CONFIGS = [CriterionConfig(), CriterionConfig(iter_matcher=False),
           CriterionConfig(fix_mean_loss=False, final_dice_times_batch=True, no_object_weight=0.3)]
SCORE_CONFIGS = [CriterionConfig(), CriterionConfig(score_min_iou=0.0, weight_score=2.0)]  # with a score head


@pytest.mark.parametrize("cfg,with_scores",
                         [(c, False) for c in CONFIGS] + [(c, True) for c in SCORE_CONFIGS])
@pytest.mark.parametrize("inst_counts", [(3, 0, 2), (8, 1, 5), (0, 0), (2,)])
def test_batched_losses_equal_the_per_stage_loop(cfg, with_scores, inst_counts):
    """Same losses and gradients (padding gets none) as stage_loss stage by stage, with the decoder's
    padded tensors and with padding built from the per-scene lists; scenes without ground truth, more
    instances than queries, one scene; with and without a score head."""
    padded, stages, sp_seg, targets = padded_batch(len(inst_counts), inst_counts, with_scores=with_scores)
    leaves = [padded.logits, padded.masks, padded.centres, *sp_seg]
    if with_scores:
        leaves.append(padded.scores)
    expected = per_stage_criterion(stages, sp_seg, targets, cfg)
    grads = torch.autograd.grad(expected["loss"], leaves, allow_unused=True)
    for given in (padded, None):  # the decoder's tensors; built by pad_stages
        out = criterion(stages, sp_seg, targets, cfg, given)
        for key, value in expected.items():
            torch.testing.assert_close(out[key], value, rtol=1e-5, atol=1e-6, msg=key)
        ours_grads = torch.autograd.grad(out["loss"], leaves, allow_unused=True)
        for ours, theirs in zip(ours_grads, grads, strict=True):
            ours = torch.zeros_like(theirs) if ours is None else ours
            theirs = torch.zeros_like(ours) if theirs is None else theirs
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_pad_and_stack_stages_lay_out_the_same_tensors():
    padded, stages, _, _ = padded_batch(1, (2, 1, 3), num_stages=2)
    built = pad_stages(*zip(*[(s.labels, s.masks, s.centres) for s in stages], strict=True))
    assert built.counts == padded.counts and built.sizes == padded.sizes
    for b, (q, s) in enumerate(SIZES):
        assert torch.equal(built.masks[:, b, :q, :s], padded.masks[:, b, :q, :s])
        assert torch.equal(built.logits[:, b, :q], padded.logits[:, b, :q])
        masks = built.masks.detach()
        assert float(masks[:, b, q:].abs().sum()) == float(masks[:, b, :, s:].abs().sum()) == 0
    stacked = stack_stages([(padded.logits[t], padded.masks[t], padded.centres[t], None) for t in range(2)],
                           padded.counts, padded.sizes)
    assert all(torch.equal(a, b) for a, b in zip(stacked[:3], padded[:3], strict=True))


def test_stages_with_different_numbers_of_matched_pairs_sum_per_stage():
    """Each stage's terms are the sums of its own rows, also when the stages matched different numbers
    of queries (pairs given by hand: 2, then 1, then 3 in one scene): compared with stage_loss per stage."""
    from lassm.model.losses import batched_stage_losses

    cfg = CriterionConfig()
    padded, stages, _, targets = padded_batch(3, (3,), num_stages=3)
    pairs = [[(np.array([0, 4]), np.array([1, 0]))], [(np.array([2]), np.array([2]))],
             [(np.array([1, 3, 5]), np.array([0, 2, 1]))]]
    terms = batched_stage_losses(padded, [t.labels for t in targets], [t.masks for t in targets],
                                 [t.centres for t in targets], pairs, cfg)
    for t, stage in enumerate(stages):
        indices = [tuple(torch.as_tensor(x) for x in pairs[t][0])]
        expected, _ = stage_loss(stage, targets, cfg, final=t == 2, indices=indices)
        for row, key in enumerate(("cls", "bce", "dice", "box")):
            torch.testing.assert_close(terms[row, t], expected[key], rtol=1e-5, atol=1e-6, msg=f"{key} {t}")


def test_score_loss_by_hand():
    """The score term of one stage and scene: (predicted - IoU of the binarised mask)^2 over the matches
    above score_min_iou, the mean over them, divided by B (here 2 scenes, the second without objects)."""
    from lassm.model.losses import batched_stage_losses

    masks = torch.tensor([[[2.0, 1.0, 0.5, -1.0], [-3.0, -1.0, 4.0, -5.0]],
                          [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])[None]  # (T=1, B=2, Q=2, S=4)
    logits, centres = torch.zeros(1, 2, 2, 3), torch.zeros(1, 2, 2, 3)
    scores = torch.tensor([[[0.2, 0.9], [0.5, 0.5]]], requires_grad=True)  # (T, B, Q)
    padded = PaddedStages(logits, masks, centres, [2, 2], [4, 4], scores)
    gt = torch.tensor([[True, True, False, False], [False, False, True, True]])
    targets = [InstanceTargets(torch.zeros(2, dtype=torch.long), gt, torch.zeros(2, 3), torch.zeros(4)),
               InstanceTargets(torch.zeros(0, dtype=torch.long), torch.zeros(0, 4, dtype=torch.bool),
                               torch.zeros(0, 3), torch.zeros(4))]
    pairs = [[(np.array([0, 1]), np.array([0, 1])), (np.array([], np.int64), np.array([], np.int64))]]
    iou = np.array([2 / 3, 1 / 2])  # query 0: {0, 1, 2} against {0, 1}; query 1: {2} against {2, 3}
    for min_iou, kept in ((0.0, [0, 1]), (0.5, [0]), (0.7, [])):  # IoU above min_iou, strictly
        cfg = CriterionConfig(score_min_iou=min_iou)
        terms = batched_stage_losses(padded, [t.labels for t in targets], [t.masks for t in targets],
                                     [t.centres for t in targets], pairs, cfg)
        error = (np.array([0.2, 0.9]) - iou)[kept] ** 2
        expected = (error.mean() if kept else 0.0) / 2
        assert terms.shape == (5, 1)
        torch.testing.assert_close(terms[4, 0].double(), torch.tensor(expected, dtype=torch.float64))
        stage = Stage([logits[0, b] for b in range(2)], [masks[0, b] for b in range(2)],
                      [centres[0, b] for b in range(2)], None, [scores[0, b] for b in range(2)])
        indices = [tuple(torch.as_tensor(x) for x in pair) for pair in pairs[0]]
        looped, _ = stage_loss(stage, targets, cfg, final=True, indices=indices)
        torch.testing.assert_close(looped["score"].double(), torch.tensor(expected, dtype=torch.float64))
        assert torch.autograd.grad(terms[4, 0], scores)[0] is not None  # reaches the head, also at zero
