"""The LaSSM model (REFERENCE_SPEC 5): backbone -> superpoint pooling -> decoder -> losses / instances.

A batch is the packed dictionary of spec 3.2 (Pointcept's key names; :mod:`lassm.data.batch`):

- voxels: ``feat`` (sum N_vx, F_in), ``grid_coord`` (sum N_vx, 3) int, ``coord`` (sum N_vx, 3) the
  representative point of each voxel, ``offset`` (B,) cumulative voxel counts;
- points: ``inverse`` (sum N_pt,) the voxel of each point (local to its scene), ``superpoint``
  (sum N_pt,) raw superpoint ids, ``origin_coord`` (sum N_pt, 3), ``origin_offset`` (B,);
- labels, when present (training and validation): ``origin_segment`` and ``origin_instance``
  (sum N_pt,) raw semantic labels and instance ids.

    model = LaSSM(lassm.config.synthetic().model)
    out = model(batch)            # out.losses when labels are present
    instances = model.predict(batch)  # eval mode: one Prediction per scene (masks and point semantics)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..config import ModelConfig
from ..data.batch import MODEL_KEYS
from .backbone import build_backbone
from .batched import unique_per_scene
from .criterion import build_batch_targets, criterion
from .decoder import DecoderOutput, LaSSMDecoder
from .losses import stack_stages, stacked_stages
from .postprocess import Prediction, point_semantics, predict_instances
from .stages import BACKBONE, LOSSES, POOLING, POSTPROCESS, TARGETS, stage

REQUIRED_KEYS = MODEL_KEYS  # the packed batch of lassm.data.batch


class Scene(NamedTuple):
    """One scene's point-level view after pooling (what targets and post-processing need)."""

    superpoint: torch.Tensor  # (N_pt,) compact superpoint ids 0..S-1
    num_superpoints: int
    coord: torch.Tensor  # (N_pt, 3) point coordinates
    point_range: tuple[torch.Tensor, torch.Tensor]  # per-axis (min, max) of the points


class ModelOutput(NamedTuple):
    decoder: DecoderOutput
    scenes: list[Scene]
    losses: dict[str, torch.Tensor] | None  # None without labels in the batch


def scatter_mean(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of the rows of ``values`` (N, C) per index (N,) -> (size, C), accumulated in float32."""
    sums = torch.zeros(size, values.shape[1], dtype=torch.float32, device=values.device)
    sums.index_add_(0, index, values.float())
    # counted with index_add_: a CUDA bincount with minlength waits for the device to size its output
    counts = torch.zeros(size, dtype=torch.long, device=index.device).index_add_(
        0, index, torch.ones_like(index)).clamp_min(1)  # (size,)
    return sums / counts[:, None]


def _bounds(ends: list[int], name: str) -> list[tuple[int, int]]:
    starts = [0, *ends[:-1]]
    if any(e < s for s, e in zip(starts, ends, strict=True)):
        raise ValueError(f"{name}: expected non-decreasing cumulative counts, got {ends}")
    return list(zip(starts, ends, strict=True))


Bounds = list[tuple[tuple[int, int], tuple[int, int]]]


def scene_bounds(batch: dict) -> Bounds:
    """Per scene ((first voxel, end), (first point, end)), checked: every scene has points. Both offset
    tensors reach the host in one copy."""
    offset, origin = batch["offset"], batch["origin_offset"]
    ends = torch.cat([offset.reshape(-1), origin.reshape(-1).to(offset.device)]).tolist()
    voxels = _bounds(ends[:offset.numel()], "offset")
    points = _bounds(ends[offset.numel():], "origin_offset")
    if len(voxels) != len(points):
        raise ValueError(f"offset and origin_offset: expected one entry per scene each, got "
                         f"{len(voxels)} and {len(points)}")
    for b, ((v0, v1), (p0, p1)) in enumerate(zip(voxels, points, strict=True)):
        if p1 == p0 or v1 == v0:
            raise ValueError(f"scene {b} of the batch has no points: no superpoints to segment")
    return list(zip(voxels, points, strict=True))


class LaSSM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone)
        self.decoder = LaSSMDecoder(cfg.decoder, cfg.backbone.out_channels, cfg.num_classes)

    # -------------------------------------------------------------------------- pooling

    def pool(self, feats: torch.Tensor, batch: dict, bounds: Bounds | None = None
             ) -> tuple[list, list, list[Scene]]:
        """Superpoint features and centroids per scene (spec 5.1 step 3, 6.1).

        Both are means over the POINTS of a superpoint of their voxel's feature / coordinate, so a
        voxel counts as often as the superpoint's points that fall in it. ``bounds``: the batch's
        :func:`scene_bounds`, when the caller has them.
        """
        bounds = scene_bounds(batch) if bounds is None else bounds
        # each scene's superpoint ids as 0..S-1 (N_pt,), from one unique for the batch
        superpoints, num_sps = unique_per_scene([batch["superpoint"][p0:p1] for _, (p0, p1) in bounds])
        bad = []
        for (v0, v1), (p0, p1) in bounds:
            inverse, coord = batch["inverse"][p0:p1], batch["origin_coord"][p0:p1]
            # the input checks stay on the device; one host round trip for the batch below
            finite = torch.isfinite(coord).all() & torch.isfinite(batch["coord"][v0:v1]).all()
            bad.append(torch.stack([(inverse < 0).any() | (inverse >= v1 - v0).any(), ~finite]).long())
        host = torch.cat([torch.stack(bad), num_sps[:, None]], 1).tolist()  # (B, 3): the checks, S
        for b, ((v0, v1), _) in enumerate(bounds):
            if host[b][0]:
                raise ValueError(f"inverse: scene {b} indexes voxels outside 0..{v1 - v0 - 1}")
            if host[b][1]:
                raise ValueError(f"coord: scene {b} has NaN or infinite coordinates")
        sp_feats, sp_coords, scenes = [], [], []
        for ((v0, v1), (p0, p1)), superpoint, (_, _, num_sp) in zip(bounds, superpoints, host, strict=True):
            voxel = batch["inverse"][p0:p1].long()  # (N_pt,) voxel of each point, checked above
            coord = batch["origin_coord"][p0:p1]
            sp_feats.append(scatter_mean(feats[v0:v1][voxel], superpoint, num_sp).to(feats.dtype))
            sp_coords.append(scatter_mean(batch["coord"][v0:v1][voxel], superpoint, num_sp))
            scenes.append(Scene(superpoint, num_sp, coord, (coord.min(0).values, coord.max(0).values)))
        return sp_feats, sp_coords, scenes

    # -------------------------------------------------------------------------- forward

    def forward(self, batch: dict) -> ModelOutput:
        missing = [k for k in REQUIRED_KEYS if k not in batch]
        if missing:
            raise ValueError(f"batch: missing keys {missing}; expected {list(REQUIRED_KEYS)}")
        bounds = scene_bounds(batch)  # clear errors before the backbone sees an empty scene
        with stage(BACKBONE):
            feats = self.backbone(batch["feat"], batch["grid_coord"], batch["offset"])  # (sum N_vx, F)
        return self.decode(feats, batch, bounds)

    def decode(self, feats: torch.Tensor, batch: dict, bounds: Bounds | None = None) -> ModelOutput:
        """Everything after the backbone: pooling, decoder and, with labels in the batch, the losses."""
        bounds = scene_bounds(batch) if bounds is None else bounds
        with stage(POOLING):
            sp_feats, sp_coords, scenes = self.pool(feats, batch, bounds)
        out = self.decoder(sp_feats, sp_coords, [s.point_range for s in scenes])
        losses = None
        if "origin_instance" in batch and "origin_segment" in batch:
            with stage(TARGETS):
                targets = self.targets(batch, scenes, bounds)
            with stage(LOSSES):
                padded = (stack_stages(out.padded, out.counts, out.sizes) if out.stacked is None
                          else stacked_stages(out.stacked, out.counts, out.sizes))  # (T, B, Q, ...) stages
                losses = criterion(out.stages, out.sp_seg, targets, self.cfg.criterion, padded)
        return ModelOutput(out, scenes, losses)

    def targets(self, batch: dict, scenes: list[Scene], bounds: Bounds | None = None) -> list:
        """Per-scene instance targets on superpoints (spec 5.2)."""
        cfg = self.cfg
        bounds = scene_bounds(batch) if bounds is None else bounds
        per_scene = [(batch["origin_instance"][p0:p1], batch["origin_segment"][p0:p1], scene.coord,
                      scene.superpoint, scene.num_superpoints)
                     for (_, (p0, p1)), scene in zip(bounds, scenes, strict=True)]
        return build_batch_targets(per_scene, cfg.num_classes, cfg.stuff_classes,
                                   cfg.num_classes + len(cfg.stuff_classes),
                                   cfg.criterion.sp_unlabelled_as_class0)

    @torch.no_grad()
    def predict(self, batch: dict, output: ModelOutput | None = None) -> list[Prediction]:
        """Scored point masks per scene from the final stage (spec 5.3), and each point's semantic label from
        the superpoint semantic head (``Prediction.semantic``); pass ``output`` to reuse it."""
        output = self(batch) if output is None else output
        final = output.decoder.stages[-1]
        with stage(POSTPROCESS):
            scores = final.scores if final.scores is not None else [None] * len(final.labels)
            preds = [predict_instances(logits, masks, scene.superpoint, self.cfg.postprocess, score)
                     for logits, masks, score, scene in zip(final.labels, final.masks, scores, output.scenes,
                                                            strict=True)]
            for pred, sp_seg, scene in zip(preds, output.decoder.sp_seg, output.scenes, strict=True):
                pred.semantic = point_semantics(sp_seg, scene.superpoint, self.cfg.stuff_classes)  # (N_pt,)
        return preds
