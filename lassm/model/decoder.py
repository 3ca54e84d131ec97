"""LaSSM's query decoder (REFERENCE_SPEC 6), top to bottom: small blocks, then the decoder.

Per scene (the decoder loops over the scenes of a batch, as the reference does):

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
from .sampling import farthest_point_sampling, knn
from .serialize import serialization_order
from .ssm import Mamba2Mixer


class Stage(NamedTuple):
    """One prediction stage of the decoder: per-scene lists (spec 6.3, 6.8)."""

    labels: list[torch.Tensor]  # (Q_b, C + 1) class logits, background last
    masks: list[torch.Tensor]  # (Q_b, S_b) superpoint mask logits
    centres: list[torch.Tensor]  # (Q_b, 3) predicted centres, normalised to [0, 1] of the scene range
    # (Q_b, 3) predicted centres in metres after this stage: where the queries move (centre_refine)
    positions: list[torch.Tensor] | None = None


class DecoderOutput(NamedTuple):
    stages: list[Stage]  # num_layers + 1 stages; the last is the final prediction
    sp_seg: list[torch.Tensor]  # (S_b, C + 1) superpoint semantic logits
    select_idx: list[torch.Tensor]  # (Q_b,) which superpoints seeded the queries


# ------------------------------------------------------------------------------- blocks


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

    def forward(self, query, pos, inst_feats, sp_coord):
        """query (Q, D), pos (Q, 3), inst_feats (S, D), sp_coord (S, 3) -> (Q, D)."""
        idx, _ = knn(pos.float(), sp_coord.float(), self.k)  # (Q, k) ascending; S = missing slot
        padded = torch.cat([inst_feats, inst_feats.new_zeros(1, inst_feats.shape[1])])  # (S + 1, D)
        neighbours = padded[idx]  # (Q, k, D)
        q = F.linear(query, self.w_q)  # (Q, D)
        v = F.linear(neighbours, self.w_v)  # (Q, k, D)
        slot_weights = F.linear(q, self.w_k, self.w_b).softmax(-1)  # (Q, k)
        mixed = torch.einsum("qk,qkd->qd", slot_weights, q[:, None] * v)  # (Q, D)
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

    def forward(self, query, inst_feats, attn_mask=None):
        """query (Q, D), inst_feats (S, D), attn_mask (Q, S) bool, True = blocked -> (Q, D)."""
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

    def forward(self, query, pos):
        """query (Q, D), pos (Q, 3) metres -> (Q, D)."""
        # The reference duplicates a single query and returns two (spec 11.2.4); the mixer is causal,
        # so the first of the two equals what one query gives: we simply run the one.
        orders = [serialization_order(pos.detach(), o, self.grid, self.stable) for o in self.order]
        for mixer in self.layers:  # the reference reuses one pre/final norm pair for every mixer
            shortcut, y = query, self.pre_norm(query)
            paths = mixer(torch.stack([y[idx] for idx, _ in orders]))  # (paths, Q, D)
            y = sum(path[inverse] for path, (_, inverse) in zip(paths, orders, strict=True)) / len(orders)
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

    def forward(self, query, pos):
        """query (Q, D), pos (unused) -> (Q, D)."""
        y = self.pre_norm(query)[None]  # (1, Q, D)
        y = self.attn(y, y, y, need_weights=False)[0][0]  # (Q, D)
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

    def forward(self, query, pos, inst_feats, sp_coord, attn_mask=None):
        if hasattr(self, "cross_attn"):  # positions only enter through the serialization (11.1.15)
            query = self.cross_attn(query, inst_feats, attn_mask)
        else:  # the attention mask is ignored here, as in the reference
            query = self.aggregation(query, pos, inst_feats, sp_coord)
        if self.ssm is not None:
            query = self.ssm(query, pos)
        elif self.self_attn is not None:
            query = self.self_attn(query, pos)
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
    superpoint when S <= num_query.
    """
    num_sp = sp_seg.shape[0]
    if mode != "semantic_fps":
        if num_sp <= num_query:
            return torch.arange(num_sp, device=sp_seg.device)
        with torch.no_grad():
            if mode == "semantic_topk":
                return superpoint_confidence(sp_seg).topk(num_query, sorted=True).indices
            sampled = farthest_point_sampling(sp_coord.float(), num_query, use_kernel=use_kernel)
            return torch.unique(sampled)
    m = int(alpha * num_sp)
    if m <= num_query:
        return torch.arange(num_sp, device=sp_seg.device)
    with torch.no_grad():
        confidence = superpoint_confidence(sp_seg)  # (S,)
        _, candidates = confidence.topk(m, sorted=True)  # (m,) most confident first
        sampled = farthest_point_sampling(sp_coord[candidates].float(), num_query,
                                          use_kernel=use_kernel)  # (num_query,)
        return candidates[torch.unique(sampled)]  # unique sorts: confidence-rank order, no duplicates


def normalised_centres(pos: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, reference: bool):
    """Positions in [0, 1] of the scene range (spec 6.3): the reference adds 1e-6 to the extent;
    otherwise the extent is only kept off zero, matching how targets are normalised."""
    extent = hi - lo + 1e-6 if reference else (hi - lo).clamp_min(1e-6)
    return (pos - lo) / extent


# ------------------------------------------------------------------------------- the decoder


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
        self.x_mask = _mlp(in_channels, d, d)  # mask features MF

    def head(self, query, mask_feats):
        """Shared prediction head (spec 6.3): logits (Q, C+1), centre offsets (Q, 3), masks (Q, S)."""
        z = self.out_norm(query)
        masks = z @ mask_feats.T  # (Q, S), no scaling
        attn_mask = None
        if self.cfg.attn_mask:
            with torch.no_grad():
                attn_mask = masks.sigmoid() < 0.5  # True = blocked
                attn_mask[attn_mask.all(-1)] = False  # a query blocked everywhere sees everything
        return self.out_cls(z), self.out_center(z), masks, attn_mask

    def forward(self, sp_feats: list[torch.Tensor], sp_coords: list[torch.Tensor],
                point_ranges: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> DecoderOutput:
        """sp_feats: per scene (S_b, F) pooled features; sp_coords: (S_b, 3) centroids in metres;
        point_ranges: per scene (min, max) of the point coordinates, used for centre normalisation
        unless ``centre_range == "superpoints"`` (the reference, spec 11.1.9)."""
        cfg = self.cfg
        sp_seg = [self.sp_seg_head(f) for f in sp_feats]
        inst_feats = [self.input_proj(f) for f in sp_feats]  # (S, D)
        mask_feats = [self.x_mask(f) for f in sp_feats]  # (S, D)
        reference_range = cfg.centre_range == "superpoints" or point_ranges is None
        if reference_range:
            point_ranges = [(c.min(0).values, c.max(0).values) for c in sp_coords]

        select_idx = [select_queries(seg, xyz, cfg.alpha, cfg.num_query, cfg.use_kernels, cfg.query_init)
                      for seg, xyz in zip(sp_seg, sp_coords, strict=True)]
        query = [self.query_proj(f[i]) for f, i in zip(sp_feats, select_idx, strict=True)]  # (Q, D)
        pos = [c[i] for c, i in zip(sp_coords, select_idx, strict=True)]  # (Q, 3) metres

        stages, attn_masks = [], [None] * len(sp_feats)
        for layer in [None, *self.layers]:
            labels, masks, predicted = [], [], []
            for b in range(len(sp_feats)):
                if layer is not None:
                    query[b] = layer(query[b], pos[b], inst_feats[b], sp_coords[b], attn_masks[b])
                logits, offset, mask, attn_masks[b] = self.head(query[b], mask_feats[b])
                predicted.append(pos[b] + offset)  # accumulated and not detached (spec 11.1.10)
                if cfg.centre_refine:  # the queries move to their predicted centres
                    pos[b] = predicted[b]
                labels.append(logits)
                masks.append(mask)
            centres = [normalised_centres(p, lo, hi, reference_range)
                       for p, (lo, hi) in zip(predicted, point_ranges, strict=True)]
            stages.append(Stage(labels, masks, centres, predicted))
        return DecoderOutput(stages, sp_seg, select_idx)
