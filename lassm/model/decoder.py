"""LaSSM's query decoder (REFERENCE_SPEC 6), top to bottom: small blocks, then the decoder.

The reference loops over the scenes of a batch; we run them together (a batch dimension B, queries
and superpoints padded to the largest scene with masks that keep padding out of every result), which
gives the same numbers as one scene at a time with a third of the kernel launches for three scenes
(``tests/model/test_decoder.py`` compares the two). Per scene:

1. superpoint heads on the pooled features: semantic logits, instance features (keys/values of
   the layers), mask features, and the query projection (6.1);
2. semantic-spatial query initialisation: the floor(alpha S) most confident superpoints, then
   farthest point sampling to ``num_query``; small scenes use every superpoint (6.2);
3. a shared prediction head (class logits, mask logits = queries x mask features, a centre offset
   that moves every query's position) after the initial queries and after each layer (6.3);
4. ``num_layers`` layers: masked cross-attention (the first ``t_layer``) or kNN local aggregation,
   then the dual-path serialized Mamba2 block, then an FFN (6.4-6.6).

Parameter names follow the reference so that its checkpoints load unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DecoderConfig
from .batched import unique_sorted_per_scene
from .sampling import farthest_point_sampling, knn_batched
from .serialize import batched_orders, table_only
from .ssm import Mamba2Mixer
from .stages import LAYERS_GRAPH, QUERY_INIT, layer_stage, stage


class Stage(NamedTuple):
    """One prediction stage of the decoder: per-scene lists (spec 6.3, 6.8)."""

    labels: list[torch.Tensor]  # (Q_b, C + 1) class logits, background last
    masks: list[torch.Tensor]  # (Q_b, S_b) superpoint mask logits
    centres: list[torch.Tensor]  # (Q_b, 3) predicted centres, normalised to [0, 1] of the scene range
    # (Q_b, 3) predicted centres in metres after this stage: where the queries move (centre_refine)
    positions: list[torch.Tensor] | None = None
    scores: list[torch.Tensor] | None = None  # (Q_b,) predicted mask IoU (decoder.use_score), else None


class Prepared(NamedTuple):
    """The decoder's batched state after query initialisation: B scenes padded to the largest."""

    query: torch.Tensor  # (B, Q, D) initial queries
    pos: torch.Tensor  # (B, Q, 3) their positions in metres (the seed centroids)
    inst_feats: torch.Tensor  # (B, S, D) instance features (keys, values, kNN features)
    mask_feats: torch.Tensor  # (B, S, D) mask features
    coords: torch.Tensor  # (B, S, 3) superpoint centroids
    lo: torch.Tensor  # (B, 1, 3) per-scene range used to normalise centres
    hi: torch.Tensor  # (B, 1, 3)
    valid: torch.Tensor | None  # (B, Q) False for padding queries; None when no scene is padded
    sp_valid: torch.Tensor | None  # (B, S) False for padding superpoints; None likewise
    counts: list[int]  # Q_b
    sizes: list[int]  # S_b
    reference_range: bool  # centres normalised as the reference (+1e-6 extent)


class DecoderOutput(NamedTuple):
    stages: list[Stage]  # num_layers + 1 stages; the last is the final prediction
    sp_seg: list[torch.Tensor]  # (S_b, C + 1) superpoint semantic logits
    select_idx: list[torch.Tensor]  # (Q_b,) which superpoints seeded the queries
    # the stages before the padding is cut off: per stage (logits (B, Q, C+1), masks (B, Q, S), centres
    # (B, Q, 3), positions (B, Q, 3)[, scores (B, Q) with use_score]), with Q_b and S_b: what the batched
    # loss takes (lassm.model.losses)
    padded: list[tuple[torch.Tensor, ...]] | None = None
    counts: list[int] | None = None
    sizes: list[int] | None = None
    # the same stacked per field, (T, B, Q, ...), when the layers ran as a training CUDA graph, else None
    stacked: tuple[torch.Tensor, ...] | None = None


# ------------------------------------------------------------------------------- blocks


def _one_or_many(forward):
    """Let a batched block (B, ...) also take one scene without its B dimension (its first argument,
    the queries, tells): the unbatched arguments get a leading 1 and the result loses it."""
    def wrapper(self, query, *args):
        if query.dim() == 3:
            return forward(self, query, *args)
        args = [a[None] if torch.is_tensor(a) else a for a in args]
        return forward(self, query[None], *args)[0]

    wrapper.__doc__ = forward.__doc__
    return wrapper


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out))


def _proj(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.LayerNorm(d_out), nn.ReLU())


class LocalAggregation(nn.Module):
    """kNN local aggregation with one learnt weight per neighbour slot (spec 6.4).

    The slot weights come from the query alone: softmax_j(q W_k^T + b_k) weighs the j-th nearest
    neighbour whatever it is; each neighbour contributes q * (W_v f_j) elementwise.
    """

    def __init__(self, d_model: int, k: int):
        super().__init__()
        self.k = k
        self.w_q = nn.Parameter(torch.empty(d_model, d_model))
        self.w_v = nn.Parameter(torch.empty(d_model, d_model))
        self.w_o = nn.Parameter(torch.empty(d_model, d_model))
        self.w_k = nn.Parameter(torch.zeros(k, d_model))  # zero: uniform 1/k slot weights at start
        self.w_b = nn.Parameter(torch.zeros(k))
        self.norm = nn.LayerNorm(d_model)
        for w in (self.w_q, self.w_v, self.w_o):
            nn.init.xavier_uniform_(w)

    @_one_or_many
    def forward(self, query, pos, inst_feats, sp_coord, sp_valid=None):
        """query (B, Q, D), pos (B, Q, 3), inst_feats (B, S, D), sp_coord (B, S, 3), sp_valid (B, S)
        (False = padding) -> (B, Q, D); one scene may drop the B dimension everywhere."""
        idx, _ = knn_batched(pos.float(), sp_coord.float(), self.k, sp_valid)  # (B, Q, k); S = missing
        padded = F.pad(inst_feats, (0, 0, 0, 1))  # (B, S + 1, D): the zero row for missing slots
        neighbours = padded[torch.arange(len(idx), device=idx.device)[:, None, None], idx]  # (B, Q, k, D)
        q = F.linear(query, self.w_q)  # (B, Q, D)
        v = F.linear(neighbours, self.w_v)  # (B, Q, k, D)
        slot_weights = F.linear(q, self.w_k, self.w_b).softmax(-1)  # (B, Q, k)
        mixed = torch.einsum("bqk,bqkd->bqd", slot_weights, q[:, :, None] * v)  # (B, Q, D)
        return self.norm(query + F.linear(mixed, self.w_o))


class CrossAttention(nn.Module):
    """Masked multi-head cross-attention from queries to all superpoints (spec 6.5)."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.norm = nn.LayerNorm(d_model)
        for p in self.attn.parameters():  # the reference re-inits every matrix, out_proj included
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    @_one_or_many
    def forward(self, query, inst_feats, attn_mask=None):
        """query (B, Q, D), inst_feats (B, S, D), attn_mask (B, Q, S) bool, True = blocked -> (B, Q, D);
        one scene may drop the B dimension. Padding superpoints must be blocked in ``attn_mask``."""
        if attn_mask is not None:  # one mask per (scene, head), scene-major as nn.MultiheadAttention wants
            attn_mask = attn_mask.repeat_interleave(self.attn.num_heads, dim=0)  # (B * heads, Q, S)
        out, _ = self.attn(query, inst_feats, inst_feats, attn_mask=attn_mask, need_weights=False)
        return self.norm(query + out)


class SSMBlock(nn.Module):
    """Dual-path serialized Mamba2 (spec 6.6).

    The queries are ordered along each space-filling curve of their current positions, the paths
    run as one batch through the shared mixer, are put back in query order and averaged.
    """

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.order, self.grid, self.stable = tuple(cfg.order), cfg.serialization_grid, cfg.stable_order
        self.layers = nn.ModuleList(
            Mamba2Mixer(cfg.d_model, cfg.d_state, cfg.head_dim, use_kernels=cfg.use_kernels)
            for _ in range(cfg.ssm_layers))
        self.pre_norm = nn.LayerNorm(cfg.d_model)
        self.final_norm = nn.LayerNorm(cfg.d_model)

    @_one_or_many
    def forward(self, query, pos, valid=None):
        """query (B, Q, D), pos (B, Q, 3) metres, valid (B, Q) (False = padding) -> (B, Q, D); one scene
        may drop the B dimension. Padding queries are ordered last on every curve, so the causal mixer
        runs each scene's real queries exactly as it would alone."""
        # The reference duplicates a single query and returns two (spec 11.2.4); the mixer is causal,
        # so the first of the two equals what one query gives: we simply run the one.
        orders = batched_orders(pos.detach(), valid, self.order, self.grid, self.stable)  # [(B, Q)] x paths
        num_scenes, _, width = query.shape
        for mixer in self.layers:  # the reference reuses one pre/final norm pair for every mixer
            shortcut, y = query, self.pre_norm(query)
            sequences = torch.cat([y.gather(1, idx[..., None].expand(-1, -1, width)) for idx, _ in orders])
            paths = mixer(sequences).split(num_scenes)  # paths x (B, Q, D), all paths in one mixer call
            y = sum(path.gather(1, inverse[..., None].expand(-1, -1, width))
                    for path, (_, inverse) in zip(paths, orders, strict=True)) / len(orders)
            query = self.final_norm(shortcut + y)
        return query


class SelfAttentionBlock(nn.Module):
    """Ablation ``mixer="attention"``: self-attention among the queries in place of the SSM block.

    The same pre-norm residual form as :class:`SSMBlock`; like it, no positional encoding is added
    (there positions enter only through the curve order; here they do not enter at all).
    """

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.attn = nn.MultiheadAttention(cfg.d_model, cfg.heads, batch_first=True)
        self.pre_norm = nn.LayerNorm(cfg.d_model)
        self.final_norm = nn.LayerNorm(cfg.d_model)

    @_one_or_many
    def forward(self, query, pos, valid=None):
        """query (B, Q, D), pos (unused), valid (B, Q) (False = padding) -> (B, Q, D)."""
        y = self.pre_norm(query)  # (B, Q, D)
        padding = None if valid is None else ~valid
        y = self.attn(y, y, y, key_padding_mask=padding, need_weights=False)[0]  # (B, Q, D)
        return self.final_norm(query + y)


class FFN(nn.Module):
    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        # Identity slots keep the reference's indices (ffn.0 and ffn.3) for its dropout layers (p = 0).
        self.ffn = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Identity(),
                                 nn.Linear(hidden, d_model), nn.Identity())
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x):
        return self.norm(x + self.ffn(x))


class DecoderLayer(nn.Module):
    """Cross-attention (``cross_attn``) or local aggregation (``aggregation``), then the query mixer
    (``ssm``; the ablations' ``self_attn`` or none, ``cfg.mixer``), then FFN."""

    def __init__(self, cfg: DecoderConfig, cross_attention: bool):
        super().__init__()
        if cross_attention:
            self.cross_attn = CrossAttention(cfg.d_model, cfg.heads)
        else:
            self.aggregation = LocalAggregation(cfg.d_model, cfg.k)
        self.ssm = SSMBlock(cfg) if cfg.mixer == "ssm" else None
        self.self_attn = SelfAttentionBlock(cfg) if cfg.mixer == "attention" else None
        self.ffn = FFN(cfg.d_model, cfg.ffn_hidden)

    @_one_or_many
    def forward(self, query, pos, inst_feats, sp_coord, attn_mask=None, valid=None, sp_valid=None):
        """query (B, Q, D), pos (B, Q, 3), inst_feats (B, S, D), sp_coord (B, S, 3), attn_mask (B, Q, S),
        valid (B, Q), sp_valid (B, S) -> (B, Q, D); one scene may drop the B dimension everywhere."""
        if hasattr(self, "cross_attn"):  # positions only enter through the serialization (11.1.15)
            query = self.cross_attn(query, inst_feats, attn_mask)
        else:  # the attention mask is ignored here, as in the reference
            query = self.aggregation(query, pos, inst_feats, sp_coord, sp_valid)
        if self.ssm is not None:
            query = self.ssm(query, pos, valid)
        elif self.self_attn is not None:
            query = self.self_attn(query, pos, valid)
        return self.ffn(query)


# ------------------------------------------------------------------------------- query init


def superpoint_confidence(sp_seg: torch.Tensor) -> torch.Tensor:
    """(S,) the query-initialisation confidence: the largest non-background class probability."""
    return sp_seg.detach().float().softmax(-1)[:, :-1].max(-1).values


def select_queries(sp_seg: torch.Tensor, sp_coord: torch.Tensor, alpha: float, num_query: int,
                   use_kernel: bool = True, mode: str = "semantic_fps"):
    """Semantic-spatial query initialisation (spec 6.2): indices of the seed superpoints.

    sp_seg (S, C + 1) logits, sp_coord (S, 3). With m = floor(alpha S) > num_query: the m most
    confident superpoints (sorted by confidence), FPS from the most confident one, the sampled
    candidates in confidence order without duplicates. Otherwise every superpoint, in order.
    Ablations (``mode``): "fps" samples num_query of all S superpoints from superpoint 0 (index
    order); "semantic_topk" takes the num_query most confident (confidence order); both use every
    superpoint when S <= num_query. :func:`select_batch_queries` does every scene of a batch.
    """
    return select_batch_queries([sp_seg], [sp_coord], alpha, num_query, use_kernel, mode)[0]


@torch.no_grad()
def select_batch_queries(sp_segs: list[torch.Tensor], sp_coords: list[torch.Tensor], alpha: float,
                         num_query: int, use_kernel: bool = True, mode: str = "semantic_fps"
                         ) -> list[torch.Tensor]:
    """:func:`select_queries` of each scene, with one host round trip on a GPU for the whole batch (the
    count of distinct FPS samples) instead of one per scene."""
    chosen, pending = [], []  # pending: (scene, candidates or None, FPS samples) still to deduplicate
    for b, (sp_seg, sp_coord) in enumerate(zip(sp_segs, sp_coords, strict=True)):
        num_sp = sp_seg.shape[0]
        m = num_sp if mode != "semantic_fps" else int(alpha * num_sp)
        if m <= num_query:
            chosen.append(torch.arange(num_sp, device=sp_seg.device))
        elif mode == "semantic_topk":
            chosen.append(superpoint_confidence(sp_seg).topk(num_query, sorted=True).indices)
        elif mode == "fps":
            chosen.append(None)
            sampled = farthest_point_sampling(sp_coord.float(), num_query, use_kernel=use_kernel)
            pending.append((b, None, sampled))
        else:
            _, candidates = superpoint_confidence(sp_seg).topk(m, sorted=True)  # (m,) most confident first
            chosen.append(None)
            pending.append((b, candidates, farthest_point_sampling(sp_coord[candidates].float(), num_query,
                                                                   use_kernel=use_kernel)))  # (num_query,)
    if pending:
        distinct = unique_sorted_per_scene([sampled for _, _, sampled in pending])
        for (b, candidates, _), samples in zip(pending, distinct, strict=True):
            # sorted: confidence-rank order for the candidates, no duplicates
            chosen[b] = samples if candidates is None else candidates[samples]
    return chosen


def normalised_centres(pos: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, reference: bool):
    """Positions in [0, 1] of the scene range (spec 6.3): the reference adds 1e-6 to the extent;
    otherwise the extent is only kept off zero, matching how targets are normalised."""
    extent = hi - lo + 1e-6 if reference else (hi - lo).clamp_min(1e-6)
    return (pos - lo) / extent


# ------------------------------------------------------------------------------- the decoder


def _pad(rows: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Per-scene (N_b, ...) tensors -> (B, max N_b, ...), zero-padded (a stack when all N_b agree)."""
    if all(len(r) == len(rows[0]) for r in rows):
        return torch.stack(list(rows))
    return torch.nn.utils.rnn.pad_sequence(list(rows), batch_first=True)


def _valid(counts: list[int], device) -> torch.Tensor | None:
    """(B, max count) True for real rows, False for padding; None when no scene needs padding."""
    if all(c == counts[0] for c in counts):
        return None
    rows = torch.arange(max(counts), device=device)
    return torch.stack([rows < c for c in counts])  # comparisons with host ints: no host-to-device copy


class LaSSMDecoder(nn.Module):
    """Heads, query initialisation and the layer stack (spec 6); module names as the reference."""

    def __init__(self, cfg: DecoderConfig, in_channels: int, num_classes: int):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.layers = nn.ModuleList(DecoderLayer(cfg, cross_attention=i < cfg.t_layer)
                                    for i in range(cfg.num_layers))
        self.input_proj = _proj(in_channels, d)  # instance features IF: keys / values / kNN features
        self.query_proj = _proj(in_channels, d)  # initial queries from the seed superpoints
        self.sp_seg_head = _mlp(in_channels, d, num_classes + 1)
        self.out_norm = nn.LayerNorm(d)
        self.out_cls = _mlp(d, d, num_classes + 1)
        self.out_center = _mlp(d, d, 3)
        if cfg.use_score:  # only then: the reference's checkpoints have no such head
            self.out_score = _mlp(d, d, 1)
        self.x_mask = _mlp(in_channels, d, d)  # mask features MF

    def head(self, query, mask_feats, sp_valid=None):
        """Shared prediction head (spec 6.3) on (B, Q, D) queries and (B, S, D) mask features (or one
        scene without B): logits (B, Q, C+1), centre offsets (B, Q, 3), masks (B, Q, S), the
        attention mask of the next cross-attention (True = blocked; padding superpoints, False in
        ``sp_valid`` (B, S), always blocked) and the predicted mask IoU (B, Q), None without use_score."""
        z = self.out_norm(query)
        masks = z @ mask_feats.transpose(-1, -2)  # (B, Q, S), no scaling
        attn_mask = None
        if self.cfg.attn_mask:
            with torch.no_grad():
                attn_mask = masks.sigmoid() < 0.5  # True = blocked
                free = False  # a query blocked everywhere sees everything (every real superpoint)
                if sp_valid is not None:
                    free = ~sp_valid[..., None, :]  # (B, 1, S)
                    attn_mask = attn_mask | free
                attn_mask = torch.where(attn_mask.all(-1, keepdim=True), free, attn_mask)
        scores = self.out_score(z)[..., 0] if self.cfg.use_score else None  # no sigmoid, as the reference
        return self.out_cls(z), self.out_center(z), masks, attn_mask, scores

    def prepare(self, sp_feats: list[torch.Tensor], sp_coords: list[torch.Tensor],
                point_ranges: list[tuple[torch.Tensor, torch.Tensor]] | None = None):
        """Superpoint heads and query initialisation (spec 6.1, 6.2) -> (Prepared, sp_seg, select_idx)."""
        cfg = self.cfg
        sizes = [len(f) for f in sp_feats]
        feats = torch.cat(sp_feats)  # (sum S, F) the heads run once on every scene's superpoints
        sp_seg = list(self.sp_seg_head(feats).split(sizes))  # (S_b, C + 1) per scene
        reference_range = cfg.centre_range == "superpoints" or point_ranges is None
        if reference_range:
            point_ranges = [(c.min(0).values, c.max(0).values) for c in sp_coords]
        select_idx = select_batch_queries(sp_seg, sp_coords, cfg.alpha, cfg.num_query, cfg.use_kernels,
                                          cfg.query_init)
        counts = [len(i) for i in select_idx]  # Q_b
        starts = [sum(sizes[:b]) for b in range(len(sizes))]
        seeds = torch.cat([i + s for i, s in zip(select_idx, starts, strict=True)])  # (sum Q,) packed
        prepared = Prepared(
            query=_pad(self.query_proj(feats[seeds]).split(counts)),  # (B, Q, D)
            pos=_pad([c[i] for c, i in zip(sp_coords, select_idx, strict=True)]),  # (B, Q, 3) metres
            inst_feats=_pad(self.input_proj(feats).split(sizes)),  # (B, S, D) instance features IF
            mask_feats=_pad(self.x_mask(feats).split(sizes)),  # (B, S, D) mask features MF
            coords=_pad(sp_coords),  # (B, S, 3)
            lo=torch.stack([r[0] for r in point_ranges])[:, None],  # (B, 1, 3)
            hi=torch.stack([r[1] for r in point_ranges])[:, None],
            valid=_valid(counts, feats.device),  # (B, Q) or None when no scene is padded
            sp_valid=_valid(sizes, feats.device),  # (B, S) or None
            counts=counts, sizes=sizes, reference_range=reference_range)
        return prepared, sp_seg, select_idx

    def run_layers(self, p: Prepared) -> list[tuple[torch.Tensor, ...]]:
        """The initial head and the layer stack (spec 6.3-6.6) on the batched queries: per stage
        (logits (B, Q, C+1), masks (B, Q, S), centres (B, Q, 3), positions (B, Q, 3)[, scores (B, Q) with
        use_score]), padding included."""
        stages, attn_mask, query, pos = [], None, p.query, p.pos
        for i, layer in enumerate([None, *self.layers]):
            with stage(layer_stage(i)):
                if layer is not None:
                    query = layer(query, pos, p.inst_feats, p.coords, attn_mask, p.valid, p.sp_valid)
                logits, offset, masks, attn_mask, scores = self.head(query, p.mask_feats, p.sp_valid)
                predicted = pos + offset  # (B, Q, 3) accumulated and not detached (spec 11.1.10)
                if self.cfg.centre_refine:  # the queries move to their predicted centres
                    pos = predicted
                centres = normalised_centres(predicted, p.lo, p.hi, p.reference_range)
                stages.append((logits, masks, centres, predicted) + (() if scores is None else (scores,)))
        return stages

    def forward(self, sp_feats: list[torch.Tensor], sp_coords: list[torch.Tensor],
                point_ranges: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> DecoderOutput:
        """sp_feats: per scene (S_b, F) pooled features; sp_coords: (S_b, 3) centroids in metres;
        point_ranges: per scene (min, max) of the point coordinates, used for centre normalisation
        unless ``centre_range == "superpoints"`` (the reference, spec 11.1.9)."""
        with stage(QUERY_INIT):
            prepared, sp_seg, select_idx = self.prepare(sp_feats, sp_coords, point_ranges)
        batched = stacked = None
        if self.cfg.cuda_graphs and prepared.query.is_cuda:
            from .graphs import DEEPER, run_graphed  # CUDA graphs of the layer stack

            with stage(LAYERS_GRAPH):
                graphed = run_graphed(self, prepared)
            if isinstance(graphed, str) and graphed == DEEPER:  # deeper than the curve tables: exact path
                batched = self.run_layers(prepared)
            elif isinstance(graphed, tuple):  # training: the stacked fields; per stage, views of them
                stacked, batched = graphed, [tuple(f[t] for f in graphed) for t in range(len(graphed[0]))]
            else:
                batched = graphed
        if batched is None:
            # The curve tables serve every scene up to TABLE_DEPTH bits per axis without a host round trip
            # per layer; a device flag says whether some scene was deeper (or its positions not finite),
            # and then the layers run again on the exact path, which handles or reports it.
            with table_only() as deeper:
                batched = self.run_layers(prepared)
            if deeper and bool(torch.stack(deeper).any()):
                batched = self.run_layers(prepared)
        scenes = list(enumerate(zip(prepared.counts, prepared.sizes, strict=True)))  # padding cut off
        stages = [Stage([logits[b, :q] for b, (q, _) in scenes], [masks[b, :q, :s] for b, (q, s) in scenes],
                        [centres[b, :q] for b, (q, _) in scenes], [positions[b, :q] for b, (q, _) in scenes],
                        [scores[0][b, :q] for b, (q, _) in scenes] if scores else None)
                  for logits, masks, centres, positions, *scores in batched]
        return DecoderOutput(stages, sp_seg, select_idx, batched, prepared.counts, prepared.sizes, stacked)
