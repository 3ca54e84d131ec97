"""What LaSSM computes on the way to its masks, for one scene, as plain numpy arrays (notebook 05).

:func:`trace_scene` runs the model's normal forward (nothing in it changes) and keeps what the
figures of :mod:`lassm.viz` need: the superpoint centroids the decoder works on (captured from the
decoder's own inputs), the confidence query initialisation ranks by and its candidate set
(REFERENCE_SPEC 6.2), the seed superpoints, and per prediction stage (the initial head, then each
layer, 6.3-6.5) the query positions, class probabilities and mask probabilities, and for the
local-aggregation layers the k neighbour superpoints each query gathered (6.4).

The candidates and neighbours are not outputs of the decoder; :func:`candidate_superpoints` and
:func:`layer_neighbours` recompute them exactly as ``select_queries`` and ``LocalAggregation`` do
(the tests check them against the model's internals).

    batch = lassm.predict.prepare_input(arrays, cfg, device)
    trace = trace_scene(model, batch)
    trace.positions.shape  # (num_layers + 1, Q, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import DecoderConfig
from .decoder import superpoint_confidence
from .lassm import LaSSM
from .postprocess import Prediction
from .sampling import knn

INIT, CROSS_ATTENTION, LOCAL_AGGREGATION = "init", "cross-attention", "local aggregation"


@dataclass
class SceneTrace:
    """One scene's path through the decoder. T = num_layers + 1 stages, Q queries, S superpoints."""

    coord: np.ndarray  # (N, 3) float32 the scene's points in the model's frame (after validation's shift)
    superpoint: np.ndarray  # (N,) int64 compact superpoint id 0..S-1 of every point
    sp_coord: np.ndarray  # (S, 3) float32 superpoint centroids the decoder uses (means over points)
    sp_probs: np.ndarray  # (S, C + 1) float32 superpoint semantic probabilities, background last
    sp_confidence: np.ndarray  # (S,) float32 what query initialisation ranks by
    candidates: np.ndarray  # (M,) int64 superpoints FPS samples from, most confident first
    selected: np.ndarray  # (Q,) int64 seed superpoint of every query (the decoder's select_idx)
    seed_positions: np.ndarray  # (Q, 3) float32 positions before the first head: the seeds' centroids
    positions: np.ndarray  # (T, Q, 3) float32 query positions after each stage (predicted centres)
    class_probs: np.ndarray  # (T, Q, C + 1) float32 softmax of the class logits, background last
    mask_probs: np.ndarray  # (T, Q, S) float32 sigmoid of the superpoint mask logits
    kinds: tuple[str, ...]  # (T,) "init", "cross-attention" or "local aggregation"
    neighbours: list[np.ndarray | None]  # per stage (Q, k) int64 kNN superpoints, -1 = empty slot; None
    prediction: Prediction  # the final instances, as model.predict returns them

    @property
    def num_stages(self) -> int:
        return len(self.kinds)

    @property
    def num_queries(self) -> int:
        return len(self.selected)

    def figure_arrays(self) -> dict:
        """The arrays the decoder figures of :mod:`lassm.viz` take, by their parameter names."""
        return {"coord": self.coord, "superpoint": self.superpoint, "sp_coord": self.sp_coord,
                "positions": self.positions, "mask_probs": self.mask_probs, "kinds": self.kinds,
                "neighbours": self.neighbours, "seed_positions": self.seed_positions}


# ------------------------------------------------------------------------------- recomputation


def stage_kinds(cfg: DecoderConfig) -> tuple[str, ...]:
    """(num_layers + 1,) what produced each stage: the initial head, then layers i < t_layer are
    masked cross-attention and the rest kNN local aggregation (spec 6.4, 6.5)."""
    return (INIT, *(CROSS_ATTENTION if i < cfg.t_layer else LOCAL_AGGREGATION for i in range(cfg.num_layers)))


def candidate_superpoints(sp_seg: torch.Tensor, cfg: DecoderConfig) -> torch.Tensor:
    """(M,) the superpoints query initialisation chooses from, as ``select_queries`` does (spec 6.2).

    semantic_fps: with m = floor(alpha S) > num_query, the m most confident (most confident first),
    else every superpoint. The ablations: "fps" samples from every superpoint; "semantic_topk" takes
    the num_query most confident outright (candidates = the selection).
    """
    num_sp = sp_seg.shape[0]
    mode = getattr(cfg, "query_init", "semantic_fps")
    if mode == "semantic_fps":
        count = int(cfg.alpha * num_sp)  # m; FPS runs only when m > num_query
        use_all = count <= cfg.num_query
    else:  # "fps" samples from every superpoint; "semantic_topk" keeps the num_query most confident
        count = cfg.num_query
        use_all = mode == "fps" or num_sp <= cfg.num_query
    if use_all:
        return torch.arange(num_sp, device=sp_seg.device)
    return superpoint_confidence(sp_seg).topk(count, sorted=True).indices  # (M,) most confident first


def layer_neighbours(positions_before: torch.Tensor, sp_coord: torch.Tensor, k: int) -> torch.Tensor:
    """(Q, k) the superpoints a local-aggregation layer gathers for each query (spec 6.4): kNN of the
    query positions BEFORE the layer among the centroids, as ``LocalAggregation`` calls it; the slots
    a scene of fewer than k superpoints cannot fill are -1 (the layer uses a zero row there)."""
    idx, _ = knn(positions_before.float(), sp_coord.float(), k)  # (Q, k), S = missing
    return torch.where(idx >= sp_coord.shape[0], torch.full_like(idx, -1), idx)


# ------------------------------------------------------------------------------- the trace


def _numpy(t: torch.Tensor, dtype=np.float32) -> np.ndarray:
    return t.detach().cpu().numpy().astype(dtype)


@torch.no_grad()
def trace_scene(model: LaSSM, batch: dict) -> SceneTrace:
    """Run ``model`` on a one-scene ``batch`` (as :func:`lassm.predict.prepare_input` makes) in eval
    mode and return its intermediate outputs as a :class:`SceneTrace`. The model is put back in the
    mode it was in."""
    if "offset" not in batch or len(batch["offset"]) != 1:
        raise ValueError(f"batch: expected exactly one scene, got "
                         f"{len(batch['offset']) if 'offset' in batch else 'no offset'}")
    captured = {}

    def keep_inputs(_module, args):  # the decoder's inputs: pooled features and centroids per scene
        captured["sp_coords"] = args[1]

    was_training = model.training
    model.eval()
    handle = model.decoder.register_forward_pre_hook(keep_inputs)
    try:
        output = model(batch)
        prediction = model.predict(batch, output)[0]
    finally:
        handle.remove()
        model.train(was_training)

    cfg = model.cfg.decoder
    dec, scene = output.decoder, output.scenes[0]
    sp_coord = captured["sp_coords"][0].float()  # (S, 3)
    sp_seg = dec.sp_seg[0]  # (S, C + 1)
    selected = dec.select_idx[0]  # (Q,)
    kinds = stage_kinds(cfg)
    seed = sp_coord[selected]  # (Q, 3) where the queries start
    refine = getattr(cfg, "centre_refine", True)  # queries move by the predicted offsets (default)
    neighbours: list[np.ndarray | None] = [None]
    for i, kind in enumerate(kinds[1:], start=1):
        if kind != LOCAL_AGGREGATION:
            neighbours.append(None)
            continue
        before = dec.stages[i - 1].positions[0] if refine else seed  # (Q, 3) the layer's input positions
        neighbours.append(_numpy(layer_neighbours(before, sp_coord, cfg.k), np.int64))
    return SceneTrace(
        coord=_numpy(scene.coord),
        superpoint=_numpy(scene.superpoint, np.int64),
        sp_coord=_numpy(sp_coord),
        sp_probs=_numpy(sp_seg.float().softmax(-1)),
        sp_confidence=_numpy(superpoint_confidence(sp_seg)),
        candidates=_numpy(candidate_superpoints(sp_seg, cfg), np.int64),
        selected=_numpy(selected, np.int64),
        seed_positions=_numpy(seed),
        positions=np.stack([_numpy(s.positions[0]) for s in dec.stages]),  # (T, Q, 3)
        class_probs=np.stack([_numpy(s.labels[0].float().softmax(-1)) for s in dec.stages]),  # (T, Q, C+1)
        mask_probs=np.stack([_numpy(s.masks[0].float().sigmoid()) for s in dec.stages]),  # (T, Q, S)
        kinds=kinds,
        neighbours=neighbours,
        prediction=prediction,
    )
