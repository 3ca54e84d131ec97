"""Decoder blocks against direct re-computations (REFERENCE_SPEC 6)."""

from __future__ import annotations

import pytest
import torch

from lassm.config import DecoderConfig
from lassm.model.decoder import (
    CrossAttention,
    DecoderLayer,
    LaSSMDecoder,
    LocalAggregation,
    SelfAttentionBlock,
    SSMBlock,
    normalised_centres,
    select_queries,
)
from lassm.model.serialize import serialization_codes


def small_cfg(**kw) -> DecoderConfig:
    base = dict(d_model=64, ffn_hidden=128, heads=4, d_state=16, head_dim=32, num_query=20, k=4,
                use_kernels=False)
    base.update(kw)
    return DecoderConfig(**base)


@pytest.mark.parametrize("num_sp", [3, 30])  # fewer and more superpoints than k
def test_local_aggregation_matches_a_loop(num_sp):
    torch.manual_seed(0)
    agg = LocalAggregation(16, k=5)
    with torch.no_grad():  # non-zero slot weights, so the slot order matters
        agg.w_k.normal_()
        agg.w_b.normal_()
    query, pos = torch.randn(7, 16), torch.rand(7, 3)
    feats, coords = torch.randn(num_sp, 16), torch.rand(num_sp, 3)
    out = agg(query, pos, feats, coords)
    for i in range(7):
        order = sorted(range(num_sp), key=lambda j: (float(((pos[i] - coords[j]) ** 2).sum()), j))[:5]
        q = agg.w_q @ query[i]
        slots = torch.softmax(agg.w_k @ q + agg.w_b, 0)
        mixed = sum(slots[j] * q * (agg.w_v @ feats[n]) for j, n in enumerate(order))  # missing slots: 0
        expected = torch.nn.functional.layer_norm(query[i] + agg.w_o @ mixed, (16,),
                                                  agg.norm.weight, agg.norm.bias)
        torch.testing.assert_close(out[i], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stable", [True, False])
def test_ssm_block_runs_each_curve_order_and_averages(stable):
    torch.manual_seed(0)
    cfg = small_cfg(stable_order=stable, serialization_grid=0.25)
    block = SSMBlock(cfg).eval()
    query, pos = torch.randn(40, 64), torch.rand(40, 3) * 2
    with torch.no_grad():
        out = block(query, pos)
        y = block.pre_norm(query)
        paths = []
        for name in cfg.order:
            code = serialization_codes(pos, name, 0.25)
            order = torch.argsort(code, stable=True) if stable else torch.argsort(code)
            seq = block.layers[0](y[order][None])[0]  # each path alone, as a batch of one
            back = torch.empty_like(seq)
            back[order] = seq
            paths.append(back)
        expected = block.final_norm(query + (paths[0] + paths[1]) / 2)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_ssm_block_keeps_a_single_query():
    # the reference duplicates one query and returns two (spec 11.2.4); we return one
    block = SSMBlock(small_cfg()).eval()
    out = block(torch.randn(1, 64), torch.rand(1, 3))
    assert out.shape == (1, 64) and torch.isfinite(out).all()


def test_cross_attention_ignores_blocked_superpoints():
    torch.manual_seed(0)
    attn = CrossAttention(32, heads=4).eval()
    query, feats = torch.randn(5, 32), torch.randn(9, 32)
    mask = torch.zeros(5, 9, dtype=torch.bool)
    mask[:, 4:] = True  # every query may only look at superpoints 0..3
    changed = feats.clone()
    changed[4:] = torch.randn(5, 32) * 10
    with torch.no_grad():
        torch.testing.assert_close(attn(query, feats, mask), attn(query, changed, mask))
        assert not torch.allclose(attn(query, feats), attn(query, changed))


def brute_fps(points: torch.Tensor, n: int) -> list[int]:
    chosen = [0]
    for _ in range(n - 1):
        dist = [min(float(((points[i] - points[c]) ** 2).sum()) for c in chosen) for i in range(len(points))]
        chosen.append(max(range(len(points)), key=lambda i: (dist[i], -i)))
    return chosen


def test_select_queries_semantic_top_ratio_then_fps():
    torch.manual_seed(0)
    sp_seg, coords = torch.randn(60, 5), torch.rand(60, 3)
    sel = select_queries(sp_seg, coords, alpha=0.5, num_query=10)  # m = 30 > 10: FPS path
    conf = torch.softmax(sp_seg, -1)[:, :-1].max(-1).values
    ranked = sorted(range(60), key=lambda i: -float(conf[i]))[:30]  # most confident first
    picked = sorted(set(brute_fps(coords[ranked], 10)))  # candidate ranks, ascending
    assert sel.tolist() == [ranked[r] for r in picked]


def test_select_queries_uses_every_superpoint_in_small_scenes():
    sp_seg, coords = torch.randn(25, 5), torch.rand(25, 3)
    # floor(0.8 * 25) = 20 is not above num_query = 20: all 25 superpoints, in order (spec 6.2 step 4)
    assert select_queries(sp_seg, coords, 0.8, 20).tolist() == list(range(25))
    assert select_queries(sp_seg[:1], coords[:1], 0.8, 20).tolist() == [0]


def test_head_attention_mask_blocks_low_masks_and_frees_blocked_rows():
    torch.manual_seed(0)
    dec = LaSSMDecoder(small_cfg(), in_channels=8, num_classes=3)
    query, mask_feats = torch.randn(6, 64), torch.randn(10, 64)
    logits, offset, masks, attn, scores = dec.head(query, mask_feats)
    assert logits.shape == (6, 4) and offset.shape == (6, 3) and masks.shape == (6, 10) and scores is None
    assert torch.equal(attn, masks.sigmoid() < 0.5) and attn.any() and not attn.all(-1).any()
    with torch.no_grad():
        dec.out_norm.bias.fill_(1.0)  # every normalised query sums to 64 ...
    _, _, masks, attn, _ = dec.head(query, -torch.ones(10, 64))  # ... so every mask logit is -64
    assert (masks < 0).all() and not attn.any()  # blocked everywhere -> attends everywhere


@pytest.mark.parametrize("t_layer", [0, 2])
def test_decoder_stages_shapes_and_position_updates(t_layer):
    torch.manual_seed(0)
    cfg = small_cfg(num_layers=3, t_layer=t_layer)
    dec = LaSSMDecoder(cfg, in_channels=8, num_classes=3)
    feats = [torch.randn(50, 8), torch.randn(6, 8)]
    coords = [torch.rand(50, 3) * 4, torch.rand(6, 3)]
    ranges = [(c.min(0).values - 0.1, c.max(0).values + 0.1) for c in coords]
    out = dec(feats, coords, ranges)
    assert len(out.stages) == 4 and [len(i) for i in out.select_idx] == [20, 6]
    for b, (num_sp, q) in enumerate([(50, 20), (6, 6)]):
        assert out.sp_seg[b].shape == (num_sp, 4)
        start = coords[b][out.select_idx[b]]
        for stage in out.stages:
            assert stage.labels[b].shape == (q, 4) and stage.masks[b].shape == (q, num_sp)
            lo, hi = ranges[b]
            torch.testing.assert_close(stage.centres[b], (stage.positions[b] - lo) / (hi - lo))
        # the first stage moved the seeds by the head's offset of the initial queries
        z = dec.out_norm(dec.query_proj(feats[b][out.select_idx[b]]))
        torch.testing.assert_close(out.stages[0].positions[b], start + dec.out_center(z))
    loss = sum(s.masks[0].mean() + s.centres[0].sum() for s in out.stages)
    loss.backward()  # centres of later stages reach the first offset head (spec 11.1.10)
    assert dec.out_center[2].weight.grad.abs().sum() > 0


def test_reference_centre_range_uses_superpoint_centroids():
    lo, hi = torch.zeros(3), torch.tensor([2.0, 4.0, 0.0])
    pos = torch.tensor([[1.0, 1.0, 0.0]])
    torch.testing.assert_close(normalised_centres(pos, lo, hi, reference=True),
                               pos / (hi + 1e-6))
    assert torch.isfinite(normalised_centres(pos, lo, hi, reference=False)).all()


def test_decoder_config_rejects_bad_values():
    with pytest.raises(ValueError, match="decoder.t_layer"):
        DecoderConfig(t_layer=7)
    with pytest.raises(ValueError, match="decoder.centre_range"):
        DecoderConfig(centre_range="voxels")
    with pytest.raises(ValueError, match="decoder.d_model"):
        DecoderConfig(d_model=100)


# ------------------------------------------------------------------------------- ablation axes


def test_select_queries_ablation_modes():
    torch.manual_seed(1)
    sp_seg, coords = torch.randn(60, 5), torch.rand(60, 3)
    conf = torch.softmax(sp_seg, -1)[:, :-1].max(-1).values
    ranked = sorted(range(60), key=lambda i: -float(conf[i]))
    topk = select_queries(sp_seg, coords, 0.8, 10, mode="semantic_topk")
    assert topk.tolist() == ranked[:10]  # the ten most confident, most confident first
    fps = select_queries(sp_seg, coords, 0.8, 10, mode="fps")
    assert fps.tolist() == sorted(set(brute_fps(coords, 10)))  # all superpoints, from superpoint 0
    for mode in ("fps", "semantic_topk"):  # S <= num_query: every superpoint
        assert select_queries(sp_seg[:8], coords[:8], 0.8, 10, mode=mode).tolist() == list(range(8))


def test_mixer_none_and_attention_layers():
    torch.manual_seed(0)
    query, pos = torch.randn(7, 64), torch.rand(7, 3)
    inst, sp = torch.randn(12, 64), torch.rand(12, 3)
    none = DecoderLayer(small_cfg(mixer="none"), cross_attention=False)
    assert none.ssm is None and none.self_attn is None
    assert not any("ssm" in name for name, _ in none.named_parameters())
    torch.testing.assert_close(none(query, pos, inst, sp), none.ffn(none.aggregation(query, pos, inst, sp)))
    block = SelfAttentionBlock(small_cfg(mixer="attention"))
    y = block.pre_norm(query)
    q_b, k_b, v_b = block.attn.in_proj_bias.view(3, 4, 16)
    heads = []
    for h in range(4):  # one attention head by hand, biases included
        qh = y @ block.attn.in_proj_weight[h * 16:(h + 1) * 16].T + q_b[h]
        kh = y @ block.attn.in_proj_weight[64 + h * 16:64 + (h + 1) * 16].T + k_b[h]
        vh = y @ block.attn.in_proj_weight[128 + h * 16:128 + (h + 1) * 16].T + v_b[h]
        heads.append(torch.softmax(qh @ kh.T / 4.0, -1) @ vh)
    expected = block.final_norm(query + block.attn.out_proj(torch.cat(heads, 1)))
    torch.testing.assert_close(block(query, pos), expected, rtol=1e-5, atol=1e-5)
    perm = torch.randperm(7)  # no positions: permuting the queries permutes the output
    torch.testing.assert_close(block(query[perm], pos[perm]), block(query, pos)[perm], rtol=1e-5, atol=1e-5)


def test_without_centre_refinement_queries_stay_at_their_seeds():
    torch.manual_seed(0)
    cfg = small_cfg(num_layers=2, t_layer=0, centre_refine=False)
    dec = LaSSMDecoder(cfg, in_channels=8, num_classes=3)
    feats, coords = [torch.randn(40, 8)], [torch.rand(40, 3) * 4]
    seen = []
    for layer in dec.layers:  # the positions each layer's local aggregation receives
        layer.aggregation.register_forward_hook(lambda m, args, out: seen.append(args[1][0].clone()))
    out = dec(feats, coords, [(torch.zeros(3), torch.ones(3) * 4)])
    seeds = coords[0][out.select_idx[0]]
    assert len(seen) == 2 and all(torch.equal(p, seeds) for p in seen)
    offsets = []
    dec.out_center.register_forward_hook(lambda m, args, out: offsets.append(out.detach()))
    out = dec(feats, coords, [(torch.zeros(3), torch.ones(3) * 4)])
    for stage, offset in zip(out.stages, offsets, strict=True):  # each head predicts seed + its own offset
        torch.testing.assert_close(stage.positions[0], seeds + offset[0])


def test_ablation_config_values_are_checked():
    for field, value in (("query_init", "random"), ("mixer", "lstm"), ("order", ("peano",)), ("order", ())):
        with pytest.raises(ValueError, match=f"decoder.{field}"):
            small_cfg(**{field: value})


@pytest.mark.parametrize("t_layer,mixer,use_score", [(2, "ssm", False), (0, "ssm", False),
                                                     (1, "attention", False), (1, "none", False),
                                                     (1, "ssm", True)])
def test_batched_scenes_equal_each_scene_alone(t_layer, mixer, use_score):
    """The decoder runs the scenes of a batch together (padded); that must give what each scene gives
    alone, including a small scene whose queries are all its superpoints (fewer than the others'); with
    the score head, its scores too."""
    torch.manual_seed(0)
    cfg = small_cfg(num_layers=3, t_layer=t_layer, mixer=mixer, stable_order=True, num_query=12,
                    use_score=use_score)
    dec = LaSSMDecoder(cfg, in_channels=8, num_classes=3).eval()
    sizes = (40, 9, 33)  # scene 1: floor(0.8 x 9) <= 12, so its 9 superpoints are its 9 queries
    feats = [torch.randn(n, 8) for n in sizes]
    coords = [torch.rand(n, 3) * torch.tensor([6.0, 4.0, 2.5]) for n in sizes]
    ranges = [(c.min(0).values - 0.1, c.max(0).values + 0.1) for c in coords]
    with torch.no_grad():
        together = dec(feats, coords, ranges)
        alone = [dec([f], [c], [r]) for f, c, r in zip(feats, coords, ranges, strict=True)]
    assert [len(i) for i in together.select_idx] == [12, 9, 12]
    for b, single in enumerate(alone):
        assert torch.equal(together.select_idx[b], single.select_idx[0])
        torch.testing.assert_close(together.sp_seg[b], single.sp_seg[0])
        for mine, theirs in zip(together.stages, single.stages, strict=True):
            for field in ("labels", "masks", "centres", "positions") + (("scores",) if use_score else ()):
                torch.testing.assert_close(getattr(mine, field)[b], getattr(theirs, field)[0],
                                           rtol=1e-4, atol=1e-5)
            assert (mine.scores is None) != use_score
    if use_score:  # (Q_b,) per scene; the padded stages carry (B, Q) scores fifth, what the loss reads
        assert together.stages[-1].scores[1].shape == (9,) and together.padded[-1][4].shape == (3, 12)
        assert not any(name.startswith("out_score") for name, _ in
                       LaSSMDecoder(small_cfg(), in_channels=8, num_classes=3).named_parameters())


@pytest.mark.parametrize("mode", ["semantic_fps", "fps", "semantic_topk"])
def test_batch_query_selection_equals_each_scene_alone(mode):
    from lassm.model.decoder import select_batch_queries
    g = torch.Generator().manual_seed(4)
    segs = [torch.randn(n, 19, generator=g) for n in (12, 300, 90)]  # small: every superpoint; large: FPS
    coords = [torch.rand(n, 3, generator=g) * 5 for n in (12, 300, 90)]
    coords[2] = coords[2][torch.arange(90) % 6]  # 6 places for 20 queries: FPS samples places twice
    from lassm.model.decoder import superpoint_confidence
    from lassm.model.sampling import farthest_point_sampling

    def alone(seg, xyz):  # each scene by torch.unique, as the selection did one scene at a time
        m = int(0.8 * len(seg)) if mode == "semantic_fps" else len(seg)
        if m <= 20:
            return torch.arange(len(seg))
        if mode == "semantic_topk":
            return superpoint_confidence(seg).topk(20).indices
        candidates = superpoint_confidence(seg).topk(m).indices if mode == "semantic_fps" else torch.arange(m)
        return candidates[torch.unique(farthest_point_sampling(xyz[candidates], 20))]

    together = select_batch_queries(segs, coords, 0.8, 20, mode=mode)
    for seg, xyz, chosen in zip(segs, coords, together, strict=True):
        assert torch.equal(chosen, alone(seg, xyz))
        assert torch.equal(chosen, select_queries(seg, xyz, 0.8, 20, mode=mode))
        assert len(torch.unique(chosen)) == len(chosen)
    assert len(together[2]) < 20 if mode != "semantic_topk" else len(together[2]) == 20  # duplicates dropped


@pytest.mark.parametrize("t_layer,use_score", [(2, False), (1, True)])
def test_training_graph_padding_changes_no_output_and_no_gradient(t_layer, use_score):
    """The training CUDA graph runs the layer stack on inputs padded beyond the batch's largest scene (more
    queries and superpoints, zeros masked off; lassm.model.graphs). The same module on the CPU, op by op:
    its outputs cut back to the real sizes, and the gradients of every input and parameter, equal the
    unpadded stack's."""
    from lassm.model.graphs import _LayerStack, train_bucket, training_inputs

    torch.manual_seed(1)
    cfg = small_cfg(num_layers=3, t_layer=t_layer, stable_order=True, num_query=12, use_score=use_score)
    dec = LaSSMDecoder(cfg, in_channels=8, num_classes=3).train()
    sizes = (40, 9, 33)  # scene 1 has 9 queries, the others 12
    feats = [torch.randn(n, 8) for n in sizes]
    coords = [torch.rand(n, 3) * torch.tensor([6.0, 4.0, 2.5]) for n in sizes]
    prepared, _, _ = dec.prepare(feats, coords, [(c.min(0).values, c.max(0).values) for c in coords])
    stack = _LayerStack(dec, prepared)
    num_query, num_sp = prepared.query.shape[1], prepared.inst_feats.shape[1]
    assert (num_query, num_sp) == (12, 40) and train_bucket(num_sp, 256) == 256
    weights = None
    results = []
    for pad_q, pad_s in ((num_query, num_sp), (train_bucket(num_query, 64), train_bucket(num_sp, 256))):
        leaves = [t.detach().requires_grad_()
                  for t in (prepared.query, prepared.inst_feats, prepared.mask_feats)]
        p = prepared._replace(query=leaves[0], inst_feats=leaves[1], mask_feats=leaves[2])
        *fields, overflow = stack(*training_inputs(p, pad_q, pad_s))
        assert fields[1].shape[2:] == (pad_q, pad_s) and not overflow
        cut = [f[:, :, :num_query, :num_sp] if i == 1 else f[:, :, :num_query] for i, f in enumerate(fields)]
        if weights is None:
            weights = [torch.randn_like(f) for f in cut]
        # what the loss sees: the real rows only (padding rows would be ignored by the loss as well)
        valid = training_inputs(prepared, num_query, num_sp)[7][None, :, :]  # (1, B, Q)
        loss = sum(((f * w).reshape(*f.shape[:3], -1).sum(-1) * valid).sum()
                   for f, w in zip(cut, weights, strict=True))
        grads = torch.autograd.grad(loss, [*leaves, *stack.parameters()], allow_unused=True)
        results.append(([f.detach() for f in cut], grads))
    (out_a, grad_a), (out_b, grad_b) = results
    for a, b in zip(out_a, out_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # float rounding of other shapes
    assert len(out_a) == 5 if use_score else len(out_a) == 4
    for a, b in zip(grad_a, grad_b, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert sum(g is not None for g in grad_a) > 10
