"""Training targets, Hungarian matcher and loss against slow direct implementations (spec 2.3, 5.2, 7)."""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from lassm.config import CriterionConfig
from lassm.data.labels import compact_instances, train_labels
from lassm.model import criterion as crit
from lassm.model.criterion import InstanceTargets, build_targets, criterion, hungarian_match, stage_loss
from lassm.model.decoder import Stage

GOLDEN = Path(os.environ.get("LASSM_GOLDEN", "/work/shared/golden/golden_t3.pt"))


# --- labels (spec 2.3) ------------------------------------------------------------------------------------


def shift_loop(labels: list[int], ignore: tuple[int, ...]) -> list[int]:
    """The reference's shift, literally: for v in the ignore set (not -1), largest first, labels >= v -= 1."""
    out = list(labels)
    for v in sorted((v for v in ignore if v != -1), reverse=True):
        out = [x - 1 if x >= v else x for x in out]
    return out


@pytest.mark.parametrize("dtype", [torch.int16, torch.int32, torch.int64])
def test_train_labels_stuff_01_is_shift(dtype):
    raw = torch.randint(-1, 20, (500,), generator=torch.Generator().manual_seed(0))
    got = train_labels(raw.to(dtype), 20, (0, 1))
    assert got.dtype == torch.int64
    assert got.tolist() == shift_loop(raw.tolist(), (-1, 0, 1))


def test_train_labels_stuff_02_is_swap_then_shift():
    raw = torch.randint(-1, 200, (2000,), generator=torch.Generator().manual_seed(1))
    swapped = [{1: 2, 2: 1}.get(x, x) for x in raw.tolist()]  # the reference's chair/floor swap
    got = train_labels(raw.to(torch.int32), 200, (0, 2))
    assert got.tolist() == shift_loop(swapped, (-1, 0, 1))


def test_train_labels_rejects_out_of_range():
    with pytest.raises(ValueError, match="segment"):
        train_labels(torch.tensor([0, 20]), 20, (0, 1))
    with pytest.raises(ValueError, match="segment"):
        train_labels(torch.tensor([-2, 3]), 20, (0, 1))


@pytest.mark.parametrize("dtype", [torch.int16, torch.int32, torch.int64])
def test_compact_instances_against_loop(dtype):
    g = torch.Generator().manual_seed(2)
    instance = torch.randint(-1, 30, (400,), generator=g) * 7
    instance[instance < 0] = -1
    label = torch.randint(-1, 5, (400,), generator=g)
    got = compact_instances(instance.to(dtype), label)
    kept = sorted({i for i, t in zip(instance.tolist(), label.tolist(), strict=True) if t != -1 and i != -1})
    rank = {v: k for k, v in enumerate(kept)}
    expected = [rank[i] if t != -1 and i != -1 else -1
                for i, t in zip(instance.tolist(), label.tolist(), strict=True)]
    assert got.dtype == torch.int64
    assert got.tolist() == expected


# --- targets (spec 5.2, 7.4) ------------------------------------------------------------------------------

# Hand-made scene: 5 raw classes, stuff (0, 1) -> C = 3 (raw 2, 3, 4 -> 0, 1, 2), background = 3.
#        superpoint 0       | superpoint 1       | superpoint 2  | superpoint 3
SP = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3]
SEG = [2, 2, 2, 0, 2, 2, 3, 4, 0, 1, 0, 4, 4, 4]
INST = [5, 5, 5, -1, 5, 5, 7, 7, -1, -1, -1, 9, 9, -1]
COORD = [[0.0, 0.0, 0.0], [1.0, 0.5, 0.2], [0.3, 2.0, 0.1], [4.0, 0.0, 0.0], [0.2, 0.1, 0.9],
         [0.5, 0.5, 0.5], [2.0, 1.0, 0.0], [3.0, 1.5, 1.0], [0.0, 4.0, 2.0], [1.0, 1.0, 1.0],
         [2.0, 2.0, 2.0], [3.0, 3.0, 0.5], [3.5, 2.5, 1.5], [1.0, 1.0, 1.0]]


def hand_targets(**kw) -> InstanceTargets:
    return build_targets(torch.tensor(INST, dtype=torch.int16), torch.tensor(SEG, dtype=torch.int16),
                         torch.tensor(COORD), torch.tensor(SP, dtype=torch.int32), 4, 3, (0, 1), 5, **kw)


def test_build_targets_hand_scene():
    t = hand_targets()
    # Instances 5, 7, 9 -> 0, 1, 2; label of the first point: raw 2, 3, 4 -> 0, 1, 2.
    assert t.labels.tolist() == [0, 1, 2]
    # Instance 5 covers 3/4 of sp0 and 2/4 of sp1 (not > 0.5); 7 covers 2/4 of sp1; 9 covers 2/3 of sp3.
    assert t.masks.dtype == torch.bool
    assert t.masks.tolist() == [[True, False, False, False], [False] * 4, [False, False, False, True]]
    coord = torch.tensor(COORD)
    lo, hi = coord.min(0).values, coord.max(0).values
    for g, points in enumerate(([0, 1, 2, 4, 5], [6, 7], [11, 12])):
        box = coord[points]
        expected = ((box.max(0).values + box.min(0).values) / 2 - lo) / (hi - lo)
        torch.testing.assert_close(t.centres[g], expected)
    assert t.centres.dtype == torch.float32
    # sp0: raw 2 on 3/4 -> 0; sp1: no majority; sp2: all background -> C = 3; sp3: raw 4 -> 2.
    assert t.sp_labels.tolist() == [0, -100, 3, 2]
    assert hand_targets(sp_unlabelled_as_class0=True).sp_labels.tolist() == [0, 0, 3, 2]


def test_build_targets_without_instances():
    seg = torch.tensor([0, 1, 1, -1, 0])
    t = build_targets(torch.tensor([-1, 3, 3, 4, -1]), seg, torch.rand(5, 3), torch.tensor([0, 0, 1, 1, 2]),
                      3, 3, (0, 1), 5)
    assert t.labels.shape == (0,) and t.labels.dtype == torch.int64
    assert t.masks.shape == (0, 3) and t.masks.dtype == torch.bool
    assert t.centres.shape == (0, 3)
    assert t.sp_labels.tolist() == [3, 3, 3]


def test_build_targets_without_ignored_points():
    # The reference drops the first unique id here (spec 11.2.3); every instance must survive.
    seg = torch.tensor([2, 2, 3, 3, 4, 4])
    inst = torch.tensor([10, 10, 20, 20, 30, 30])
    t = build_targets(inst, seg, torch.rand(6, 3), torch.tensor([0, 0, 1, 1, 2, 2]), 3, 3, (0, 1), 5)
    assert t.labels.tolist() == [0, 1, 2]
    assert t.masks.tolist() == [[True, False, False], [False, True, False], [False, False, True]]
    assert t.centres.shape == (3, 3)


def test_batch_instances_equal_each_scene_compacted_alone():
    from lassm.data.labels import compact_instances_counted
    g = torch.Generator().manual_seed(0)
    for trial in range(30):
        instances, labels = [], []
        for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
            n = int(torch.randint(1, 60, (1,), generator=g))
            scale = int(torch.randint(1, 1000, (1,), generator=g)) if trial % 2 else 1  # sparse raw ids
            instances.append(torch.randint(-1, 7, (n,), generator=g) * scale)
            labels.append(torch.randint(-1, 3, (n,), generator=g))
        compacted, counts = crit.compact_batch_instances(instances, labels)
        for b, (instance, label) in enumerate(zip(instances, labels, strict=True)):
            alone, count = compact_instances_counted(instance, label)
            assert torch.equal(compacted[b], alone) and int(counts[b]) == count, (trial, b)


def test_batch_targets_equal_each_scene_alone():
    g = torch.Generator().manual_seed(1)
    scenes = [(torch.tensor(INST, dtype=torch.int16), torch.tensor(SEG, dtype=torch.int16),
               torch.tensor(COORD), torch.tensor(SP), 4)]
    for n, num_sp in ((40, 6), (25, 3)):
        scenes.append((torch.randint(-1, 5, (n,), generator=g) * 3, torch.randint(-1, 5, (n,), generator=g),
                       torch.rand(n, 3, generator=g), torch.randint(0, num_sp, (n,), generator=g), num_sp))
    batch = crit.build_batch_targets(scenes, 3, (0, 1), 5)
    for scene, together in zip(scenes, batch, strict=True):
        alone = build_targets(*scene, 3, (0, 1), 5)
        for field in ("labels", "masks", "centres", "sp_labels"):
            assert torch.equal(getattr(together, field), getattr(alone, field)), field
    bad = scenes[:2] + [scenes[2][:3] + (scenes[2][3] + 3, scenes[2][4])]  # ids past num_superpoints
    with pytest.raises(ValueError, match="superpoint: expected compact ids in 0..2"):
        crit.build_batch_targets(bad, 3, (0, 1), 5)
    bad = scenes[:1] + [(scenes[1][0], scenes[1][1] + 9) + scenes[1][2:]]  # labels past num_classes_total
    with pytest.raises(ValueError, match="segment"):
        crit.build_batch_targets(bad, 3, (0, 1), 5)


# --- matching (spec 7.1) ----------------------------------------------------------------------------------


def cost_loop(logits, masks, centres, t: InstanceTargets, cfg: CriterionConfig) -> torch.Tensor:
    """Cost matrix (Q, G) entry by entry."""
    q_count, g_count = logits.shape[0], t.labels.shape[0]
    cost = torch.zeros(q_count, g_count, dtype=torch.float64)
    for q, g in itertools.product(range(q_count), range(g_count)):
        m, tg = masks[q], t.masks[g].float()
        bce = F.binary_cross_entropy_with_logits(m, tg)
        sig = m.sigmoid()
        dice = 1 - (2 * (sig * tg).sum() + 1) / (sig.sum() + tg.sum() + 1)
        cls = -logits[q].softmax(0)[t.labels[g]]
        box = (centres[q] - t.centres[g]).abs().sum()
        cost[q, g] = float(cfg.cost_class * cls + cfg.cost_bce * bce + cfg.cost_dice * dice
                           + cfg.cost_bbox * box)
    return cost


def random_targets(g: torch.Generator, num_inst: int, num_sp: int, num_classes: int) -> InstanceTargets:
    sp_labels = torch.randint(0, num_classes + 1, (num_sp,), generator=g)
    sp_labels[torch.rand(num_sp, generator=g) < 0.3] = -100
    return InstanceTargets(labels=torch.randint(0, num_classes, (num_inst,), generator=g),
                           masks=torch.rand(num_inst, num_sp, generator=g) < 0.4,
                           centres=torch.rand(num_inst, 3, generator=g), sp_labels=sp_labels)


def random_predictions(g: torch.Generator, num_query: int, num_sp: int, num_classes: int):
    return (torch.randn(num_query, num_classes + 1, generator=g) * 2,  # (Q, C+1)
            torch.randn(num_query, num_sp, generator=g) * 3, torch.rand(num_query, 3, generator=g))


def test_hungarian_match_against_brute_force():
    cfg = CriterionConfig()
    g = torch.Generator().manual_seed(3)
    for trial in range(30):
        num_query, num_inst = 1 + trial % 5, trial % 5  # includes G = 0 and Q < G
        t = random_targets(g, num_inst, 7, 4)
        logits, masks, centres = random_predictions(g, num_query, 7, 4)
        q, gt = hungarian_match(logits, masks, centres, t, cfg)
        assert q.dtype == gt.dtype == torch.int64
        assert len(q) == len(gt) == min(num_query, num_inst)
        assert q.tolist() == sorted(q.tolist()) and len(set(q.tolist())) == len(q) == len(set(gt.tolist()))
        cost = cost_loop(logits, masks, centres, t, cfg)
        if num_inst == 0:
            continue
        if num_query >= num_inst:
            best = min(sum(cost[p[k], k] for k in range(num_inst))
                       for p in itertools.permutations(range(num_query), num_inst))
        else:
            best = min(sum(cost[k, p[k]] for k in range(num_query))
                       for p in itertools.permutations(range(num_inst), num_query))
        assert float(cost[q, gt].sum()) == pytest.approx(float(best), rel=1e-5, abs=1e-6)


def test_hungarian_match_rejects_nan():
    g = torch.Generator().manual_seed(4)
    logits, masks, centres = random_predictions(g, 3, 5, 2)
    masks[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        hungarian_match(logits, masks, centres, random_targets(g, 2, 5, 2), CriterionConfig())


# --- loss (spec 7.2-7.4) ----------------------------------------------------------------------------------


def weighted_ce(logits: torch.Tensor, target: list[int], no_object: float) -> float:
    """PyTorch's weighted-mean CE written out, skipping target -100."""
    num, den = 0.0, 0.0
    for row, y in zip(logits, target, strict=True):
        if y == -100:
            continue
        w = no_object if y == logits.shape[1] - 1 else 1.0
        num += -w * float(row.log_softmax(0)[y])
        den += w
    return num / den if den else 0.0


def scene_preds(stage: Stage) -> tuple[list, list, list]:
    return stage.labels, stage.masks, stage.centres


def stage_direct(stage: Stage, targets, cfg: CriterionConfig, final: bool, indices) -> dict[str, float]:
    """One stage's components from loops, given the matches."""
    num_scenes = len(targets)
    cls, bce, dice, box = [], [], [], []
    for logits, masks, centres, t, (q, g) in zip(*scene_preds(stage), targets, indices, strict=True):
        target = [logits.shape[1] - 1] * logits.shape[0]
        for qk, gk in zip(q.tolist(), g.tolist(), strict=True):
            target[qk] = int(t.labels[gk])
        cls.append(weighted_ce(logits, target, cfg.no_object_weight))
        if len(q) == 0:
            continue
        pairs = list(zip(q.tolist(), g.tolist(), strict=True))
        entries = [float(F.binary_cross_entropy_with_logits(masks[a], t.masks[b].float(), reduction="sum"))
                   for a, b in pairs]
        bce.append(sum(entries) / (len(pairs) * masks.shape[1]))
        d = []
        for a, b in pairs:
            sig, tg = masks[a].sigmoid(), t.masks[b].float()
            d.append(1 - float((2 * (sig * tg).sum() + 1) / (sig.sum() + tg.sum() + 1)))
        dice.append(sum(d) / len(d))
        box.append(sum(float((centres[a] - t.centres[b]).abs().sum()) for a, b in pairs) / len(pairs))
    n = len(bce)
    out = {"cls": sum(cls) / num_scenes, "bce": sum(bce) / n if n else 0.0, "box": sum(box) / num_scenes,
           "dice": sum(dice) / n * (num_scenes if final and cfg.final_dice_times_batch else 1) if n else 0.0}
    out["loss"] = (cfg.weight_class * out["cls"] + cfg.weight_bce * out["bce"] + cfg.weight_dice * out["dice"]
                   + cfg.weight_bbox * out["box"])
    return out


def random_batch(seed: int, inst_counts=(3, 0, 2), num_stages: int = 3, num_classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    sizes = [(6, 9), (4, 5), (5, 7)][:len(inst_counts)]  # (Q_b, S_b)
    targets = [random_targets(g, n, s, num_classes) for n, (_, s) in zip(inst_counts, sizes, strict=True)]
    stages = []
    for _ in range(num_stages):
        preds = [random_predictions(g, q, s, num_classes) for q, s in sizes]
        stages.append(Stage(*[list(x) for x in zip(*preds, strict=True)]))
    sp_seg = [torch.randn(s, num_classes + 1, generator=g) for _, s in sizes]
    return stages, sp_seg, targets


@pytest.mark.parametrize("final_dice_times_batch", [False, True])
def test_criterion_against_direct(final_dice_times_batch):
    cfg = CriterionConfig(final_dice_times_batch=final_dice_times_batch)
    stages, sp_seg, targets = random_batch(5)
    out = criterion(stages, sp_seg, targets, cfg)
    total = 0.0
    for k, stage in enumerate(stages):
        final = k == len(stages) - 1
        scenes = zip(*scene_preds(stage), targets, strict=True)
        indices = [hungarian_match(*pred, t, cfg) for *pred, t in scenes]
        direct = stage_direct(stage, targets, cfg, final, indices)
        total += direct["loss"]
        if final:
            names = {"cls": "loss_cls", "bce": "loss_mask", "dice": "loss_dice", "box": "loss_bbox"}
            for key, name in names.items():
                assert float(out[name]) == pytest.approx(direct[key], rel=1e-5), name
    sp = sum(weighted_ce(s, t.sp_labels.tolist(), cfg.no_object_weight)
             for s, t in zip(sp_seg, targets, strict=True))
    assert float(out["loss_sp_cls"]) == pytest.approx(sp / len(targets), rel=1e-5)
    assert float(out["loss"]) == pytest.approx(total + cfg.weight_sp * sp / len(targets), rel=1e-5)
    assert float(out["loss_score"]) == 0.0


def test_final_dice_times_batch_doubles_final_dice():
    stages, sp_seg, targets = random_batch(6, inst_counts=(3, 2))
    plain = criterion(stages, sp_seg, targets, CriterionConfig())
    reference = criterion(stages, sp_seg, targets, CriterionConfig(final_dice_times_batch=True))
    assert float(reference["loss_dice"]) == pytest.approx(2 * float(plain["loss_dice"]), rel=1e-6)
    # Only the final stage's Dice changes (weight 1): the total grows by exactly one final Dice.
    assert float(reference["loss"] - plain["loss"]) == pytest.approx(float(plain["loss_dice"]), rel=1e-5)


def test_fix_mean_loss_false_divides_by_batch():
    stages, sp_seg, targets = random_batch(7)  # 3 scenes, 2 with ground truth
    mean = stage_loss(stages[-1], targets, CriterionConfig(), final=True)[0]
    per_batch = stage_loss(stages[-1], targets, CriterionConfig(fix_mean_loss=False), final=True)[0]
    assert float(per_batch["bce"]) == pytest.approx(float(mean["bce"]) * 2 / 3, rel=1e-6)
    assert float(per_batch["dice"]) == pytest.approx(float(mean["dice"]) * 2 / 3, rel=1e-6)


def test_iter_matcher_false_reuses_final_indices(monkeypatch):
    stages, sp_seg, targets = random_batch(8)
    cfg = CriterionConfig(iter_matcher=False)
    calls = []
    real = crit.solve_stages
    monkeypatch.setattr(crit, "solve_stages", lambda st, *a: calls.append(len(st)) or real(st, *a))
    out = criterion(stages, sp_seg, targets, cfg)
    assert calls == [1]  # only the final stage is matched
    final, indices = stage_loss(stages[-1], targets, cfg, final=True)
    expected = final["loss"] + sum(stage_loss(s, targets, cfg, final=False, indices=indices)[0]["loss"]
                                   for s in stages[:-1])
    weight = torch.tensor([1.0] * 4 + [cfg.no_object_weight])
    sp = torch.stack([F.cross_entropy(s, t.sp_labels, weight=weight, ignore_index=-100)
                      for s, t in zip(sp_seg, targets, strict=True)]).mean()
    torch.testing.assert_close(out["loss"], expected + cfg.weight_sp * sp)
    # And re-matching gives a different aux loss here (the stages' predictions are independent).
    rematched = criterion(stages, sp_seg, targets, CriterionConfig())
    assert not math.isclose(float(rematched["loss"]), float(out["loss"]))


def test_backward_without_ground_truth():
    stages, sp_seg, targets = random_batch(9, inst_counts=(0, 0))
    targets[1].sp_labels.fill_(-100)  # a scene whose superpoints are all ignored contributes 0
    leaves = [p.requires_grad_() for s in stages for field in scene_preds(s) for p in field]
    leaves += [s.requires_grad_() for s in sp_seg]
    out = criterion(stages, sp_seg, targets, CriterionConfig())
    assert all(out[k].item() == 0.0 for k in ("loss_mask", "loss_dice", "loss_bbox"))
    assert torch.isfinite(out["loss"]) and torch.isfinite(out["loss_sp_cls"])
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in leaves)
    assert float(sp_seg[1].grad.abs().sum()) == 0.0


# --- golden data (the authors' criterion on two scenes) ---------------------------------------------------


@pytest.mark.skipif(not GOLDEN.is_file(), reason=f"golden data not found at {GOLDEN}")
def test_golden_losses():
    golden = torch.load(GOLDEN, weights_only=False)
    inputs, decoder = golden["inputs"], golden["decoder"]
    ends = inputs["origin_offset"].tolist()
    targets = []
    for start, end in zip([0, *ends[:-1]], ends, strict=True):
        _, sp = torch.unique(inputs["superpoint"][start:end], return_inverse=True)
        scene = {k: inputs[f"origin_{k}"][start:end] for k in ("instance", "segment", "coord")}
        targets.append(build_targets(scene["instance"], scene["segment"], scene["coord"], sp,
                                     int(sp.max()) + 1, 18, (0, 1), 20, sp_unlabelled_as_class0=True))
    stages = [Stage(s["labels"], [m.float() for m in s["masks"]], s["bboxes"]) for s in decoder["stages"]]
    cfg = CriterionConfig(final_dice_times_batch=True, sp_unlabelled_as_class0=True)
    out = criterion(stages, decoder["sp_seg"], targets, cfg)
    for key, value in golden["losses"].items():
        assert float(out[key]) == pytest.approx(value, rel=2e-2, abs=1e-7), key


def test_match_stages_equals_matching_each_stage_and_scene():
    """The batched matcher (one host copy) pairs exactly as scipy on each stage's own cost matrix."""
    stages, _, targets = random_batch(9, inst_counts=(3, 0, 2))
    cfg = CriterionConfig()
    matched = crit.match_stages(stages, targets, cfg)
    assert len(matched) == len(stages) and all(len(row) == len(targets) for row in matched)
    for stage, row in zip(stages, matched, strict=True):
        for logits, masks, centres, tgt, (q, g) in zip(*scene_preds(stage), targets, row, strict=True):
            if tgt.labels.numel() == 0:
                assert q.numel() == g.numel() == 0
                continue
            cost = (cfg.cost_class * -logits.softmax(-1)[:, tgt.labels]
                    + cfg.cost_bce * torch.stack([F.binary_cross_entropy_with_logits(
                        masks, t.float().expand_as(masks), reduction="none").mean(1) for t in tgt.masks], 1)
                    + cfg.cost_dice * torch.stack([1 - (2 * (masks.sigmoid() * t).sum(1) + 1)
                                                   / (masks.sigmoid().sum(1) + t.sum() + 1)
                                                   for t in tgt.masks.float()], 1)
                    + cfg.cost_bbox * torch.cdist(centres, tgt.centres, p=1))
            rows, cols = linear_sum_assignment(cost.numpy())
            assert q.tolist() == rows.tolist() and g.tolist() == cols.tolist()


def test_superpoint_ce_is_torchs_weighted_mean_and_zero_when_all_ignored():
    """Bit for bit torch's weighted, ignoring cross-entropy (training stays exactly as before the device-side
    choice); where every superpoint is ignored, 0 with finite (zero) gradients instead of NaN."""
    from lassm.config import CriterionConfig
    from lassm.model.criterion import IGNORE, superpoint_ce

    cfg = CriterionConfig()
    torch.manual_seed(0)
    logits = torch.randn(40, 5, requires_grad=True)
    labels = torch.randint(0, 5, (40,))
    labels[::3] = IGNORE
    weight = torch.tensor([1.0, 1, 1, 1, cfg.no_object_weight])
    expected = F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORE)
    assert torch.equal(superpoint_ce(logits, labels, cfg), expected)
    value = superpoint_ce(logits, torch.full((40,), IGNORE), cfg)
    value.backward()
    assert float(value.detach()) == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_unique_per_scene_equals_torch_unique_of_each_scene():
    from lassm.model.batched import unique_per_scene
    g = torch.Generator().manual_seed(0)
    for trial in range(60):
        low, high = (-5, 9) if trial % 3 else (-2**62, 2**62)  # small ids with repeats, or spread ids
        values = [torch.randint(low, high, (int(torch.randint(1, 80, (1,), generator=g)),), generator=g)
                  for _ in range(int(torch.randint(1, 6, (1,), generator=g)))]
        if trial % 7 == 0:
            values[0][:] = torch.iinfo(torch.int64).min  # one value only, the sentinel the targets use
        inverses, counts = unique_per_scene(values)
        assert counts.tolist() == [len(torch.unique(v)) for v in values]
        for v, inverse in zip(values, inverses, strict=True):
            assert torch.equal(inverse, torch.unique(v, return_inverse=True)[1]), trial
    with pytest.raises(ValueError, match="values: expected at least one scene"):
        unique_per_scene([])


def test_unique_sorted_per_scene_equals_torch_unique():
    from lassm.model.batched import unique_sorted_per_scene
    g = torch.Generator().manual_seed(2)
    values = [torch.randint(0, n, (n,), generator=g) for n in (1, 5, 40, 400)]  # repeats in every scene
    assert [u.tolist() for u in unique_sorted_per_scene(values)] == [torch.unique(v).tolist() for v in values]
