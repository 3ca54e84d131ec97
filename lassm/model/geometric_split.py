"""Geometric splitting of predicted masks on single-view tabletop scans (not in the reference).

On a table, objects that do not touch are apart in space: the points above the support plane fall into
Euclidean clusters (points closer than ``radius`` linked, as PCL's cluster extraction does), and a
mask that spans two clusters spans two objects. LaSSM's masks are dot products of a query with
superpoint features and know nothing of that gap; trained on synthetic frames they merge neighbouring
objects in clutter. :func:`split_prediction` cuts every kept mask along the clusters: each piece of more
than ``npoint_thr`` points becomes an instance scored ``score x piece share of the mask``, the mask's
points on the table are dropped, and a piece whose IoU with a better-scored piece exceeds ``dedup_iou``
is dropped. Objects that touch stay as the model separated them.

:func:`partition_clusters` goes further, the other way round: the clusters are the objects, except where
the model's pieces divide a cluster into two or more sizeable parts (touching objects the model tells
apart). Objects apart are then whole whatever the masks missed of them, and a cluster no mask reached
still comes out, scored low; where one mask holds most of several whole clusters (an object an occluder
cuts in two), their union comes out too.

Used by :func:`lassm.inference.predict_arrays` (validation, evaluation, ``predict``) when
``model.postprocess.split_radius`` > 0 (the ``tabletop`` preset; 0, the reference's behaviour, elsewhere),
``model.postprocess.split_mode`` choosing "cut" (:func:`split_prediction`) or "partition",
on scans in the support plane's frame (z = height above the table). The same clusters, alone, are the
model-free baseline of :mod:`lassm.evaluate.baseline`.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .postprocess import Prediction

HEIGHT = 0.005  # metres above the support plane: lower points are the table
PART_SHARE = 0.2  # partition: a model part counts when it holds this share of its cluster's points
JOIN_SHARE = 0.5  # partition: a mask holding this share of each of 2+ whole clusters adds their union


def euclidean_clusters(coord: np.ndarray, radius: float, height: float = HEIGHT,
                       min_points: int = 1) -> np.ndarray:
    """(N,) cluster id of each point (-1: table or a dropped cluster); ids 0..K-1, largest first.

    coord: (N, 3) in the support plane's frame (z = height above the table, metres); clusters of fewer
    than ``min_points`` points are dropped."""
    for name, value in (("radius", radius), ("height", height)):
        if not value > 0:
            raise ValueError(f"{name}: expected a positive distance in metres, got {value!r}")
    if min_points < 1:
        raise ValueError(f"min_points: expected >= 1, got {min_points!r}")
    coord = np.asarray(coord, dtype=np.float64)
    if coord.ndim != 2 or coord.shape[1] != 3:
        raise ValueError(f"coord: expected (N, 3), got {coord.shape}")
    above = np.flatnonzero(coord[:, 2] > height)
    out = np.full(len(coord), -1, np.int64)
    if above.size == 0:
        return out
    pairs = cKDTree(coord[above]).query_pairs(radius, output_type="ndarray")  # (P, 2)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(above.size,) * 2)
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    kept = np.flatnonzero(sizes >= min_points)
    kept = kept[np.argsort(-sizes[kept], kind="stable")]  # largest first
    rank = np.full(sizes.size, -1, np.int64)
    rank[kept] = np.arange(kept.size)
    out[above] = rank[component]
    return out


def split_prediction(pred: Prediction, coord: np.ndarray, radius: float, npoint_thr: int = 100,
                     height: float = HEIGHT, dedup_iou: float = 0.8, cluster: np.ndarray | None = None
                     ) -> Prediction:
    """``pred`` with every mask cut along the Euclidean clusters of ``coord`` (see the module doc).

    pred: superpoint masks (as ``LaSSM.predict`` gives them); coord: (N, 3) the scene's points in the
    support plane's frame, in the order of ``pred.superpoint``; cluster: its :func:`euclidean_clusters`
    when the caller has them already. Returns a new Prediction, best first."""
    if pred.sp_masks is None or pred.superpoint is None:
        raise ValueError("pred: expected superpoint masks (sp_masks and superpoint), as LaSSM.predict gives")
    superpoint = pred.superpoint.cpu().numpy()
    if len(coord) != len(superpoint):
        raise ValueError(f"coord: expected {len(superpoint)} points (the prediction's), got {len(coord)}")
    num_sp = pred.sp_masks.shape[1]
    if cluster is None:
        cluster = euclidean_clusters(coord, radius, height, min_points=npoint_thr + 1)  # smaller: no piece
    count = int(cluster.max()) + 1
    votes = np.zeros((num_sp, count + 1), np.int64)  # points of each cluster (column 0: none) per superpoint
    np.add.at(votes, (superpoint, cluster + 1), 1)
    sp_cluster = votes.argmax(1) - 1  # (S,) majority cluster, -1 = table / none
    size = votes.sum(1).astype(np.float64)  # (S,) points
    masks = pred.sp_masks.cpu().numpy()
    onehot = sp_cluster[:, None] == np.arange(count)[None, :]  # (S, C)
    piece_size = (masks * size) @ onehot  # (K, C) points of mask k in cluster c
    mask_size = np.maximum(masks @ size, 1.0)
    k, c = np.nonzero(piece_size > npoint_thr)
    pieces = masks[k] & onehot[:, c].T  # (P, S)
    scores = pred.scores.cpu().numpy()[k] * piece_size[k, c] / mask_size[k]
    order = np.argsort(-scores, kind="stable")
    pieces, scores, k = pieces[order], scores[order], k[order]
    weighted = pieces * size  # (P, S)
    inter = weighted @ pieces.T.astype(np.float64)  # (P, P) shared points
    area = weighted.sum(1)
    iou = inter / np.maximum(area[:, None] + area[None, :] - inter, 1.0)
    keep: list[int] = []
    for i in range(len(scores)):
        if not keep or iou[i, keep].max() <= dedup_iou:
            keep.append(i)
    where = pred.scores.device
    source = torch.as_tensor(k[keep], dtype=torch.long, device=where)  # the mask each piece came from
    return Prediction(scores=torch.as_tensor(scores[keep], dtype=pred.scores.dtype, device=where),
                      classes=pred.classes[source], queries=pred.queries[source],
                      sp_masks=torch.as_tensor(pieces[keep], device=pred.sp_masks.device),
                      superpoint=pred.superpoint, semantic=pred.semantic)


def _joins(pred: Prediction, sp_cluster: np.ndarray, size: np.ndarray, whole: np.ndarray,
           join_share: float) -> list[tuple[np.ndarray, float, int, int]]:
    """(superpoint mask, score, class, query) of every distinct union of two or more whole clusters that one
    of ``pred``'s masks holds at least ``join_share`` of each of: an object seen in pieces."""
    if join_share <= 0 or not len(pred.scores):
        return []
    onehot = sp_cluster[:, None] == np.arange(len(whole))[None, :]  # (S, C)
    masks, scores = pred.sp_masks.cpu().numpy(), pred.scores.cpu().numpy()
    held = ((masks * size) @ onehot) / np.maximum(size @ onehot, 1)  # (K, C) share of each cluster
    joins, seen = [], set()
    for k in np.argsort(-scores, kind="stable"):
        clusters = np.flatnonzero(held[k] >= join_share)
        if len(clusters) < 2 or not whole[clusters].all() or tuple(clusters) in seen:
            continue
        seen.add(tuple(clusters))
        joins.append((onehot[:, clusters].any(1), 0.5 * float(scores[k]), int(pred.classes[k]),
                      int(pred.queries[k])))
    return joins


def partition_clusters(pred: Prediction, coord: np.ndarray, radius: float, npoint_thr: int = 100,
                       height: float = HEIGHT, share: float = PART_SHARE, join_share: float = JOIN_SHARE
                       ) -> Prediction:
    """Objects from the Euclidean clusters, divided where the model sees several (see the module doc).

    The masks are first cut along the clusters (:func:`split_prediction`); every superpoint then goes to
    the best-scored piece that holds it. A cluster in which two or more pieces own more than
    ``npoint_thr`` points and at least ``share`` of its points each becomes those parts (touching objects
    the model told apart, each with its piece's score); the cluster's superpoints no part owns go to the
    part nearest them (superpoint centres), so the parts cover the cluster. Any other cluster becomes one
    instance: two witnesses, the gap around it and a mask in it, say it is an object, so it ranks above
    every divided part with ``0.5 + 0.5 x`` the best piece's score; 0.05 when no piece reached it (an
    object the model missed, class 0 and query -1, as on the single-class tabletop scans this is for).
    Where one mask holds at least ``join_share`` of each of two or more whole clusters (an object seen
    in pieces, an occluder in front of it), their union is added as a further instance at half the
    mask's score, below the clusters themselves (0 turns it off). Filling, ranking and joins were chosen
    on the 36 real learn-train scans and our synthetic validation frames (README, "Real single-view
    scans")."""
    cluster = euclidean_clusters(coord, radius, height, min_points=npoint_thr + 1)  # as masks: > npoint_thr
    pieces = split_prediction(pred, coord, radius, npoint_thr, height, cluster=cluster)
    superpoint = pred.superpoint.cpu().numpy()
    count = int(cluster.max()) + 1
    num_sp = pred.sp_masks.shape[1]
    votes = np.zeros((num_sp, count + 1), np.int64)
    np.add.at(votes, (superpoint, cluster + 1), 1)
    sp_cluster = votes.argmax(1) - 1
    size = votes.sum(1)
    masks = pieces.sp_masks.cpu().numpy()  # (P, S), best first
    # (S,) the best piece holding each superpoint (none at all when the model kept no mask)
    owner = np.where(masks.any(0), masks.argmax(0), -1) if len(masks) else np.full(num_sp, -1)
    scores, out = pieces.scores.cpu().numpy(), []  # out: (superpoint mask, score, piece or -1)
    centre = np.zeros((num_sp, 3))
    np.add.at(centre, superpoint, coord)
    centre /= np.maximum(size, 1)[:, None]
    whole = np.zeros(count, bool)  # clusters left undivided
    for c in range(count):
        inside = sp_cluster == c
        points = np.bincount(owner[inside & (owner >= 0)], weights=size[inside & (owner >= 0)],
                             minlength=len(masks))
        parts = np.flatnonzero((points > npoint_thr) & (points >= share * size[inside].sum()))
        if len(parts) >= 2:
            part = np.where(inside & np.isin(owner, parts), owner, -1)
            rest, owned = np.flatnonzero(inside & (part < 0)), np.flatnonzero(part >= 0)
            if rest.size:
                part[rest] = part[owned[cKDTree(centre[owned]).query(centre[rest])[1]]]
            out += [(part == b, float(scores[b]), int(b)) for b in parts]
        else:
            whole[c] = True
            held = np.flatnonzero(points > 0)
            best = int(held[np.argmax(scores[held])]) if len(held) else -1
            out.append((inside, 0.5 + 0.5 * float(scores[best]) if best >= 0 else 0.05, best))
    kind = [pieces.classes[b] if b >= 0 else 0 for _, _, b in out]  # a cluster of no piece: class 0 (object)
    query = [pieces.queries[b] if b >= 0 else -1 for _, _, b in out]  # -1: no query made it
    joins = _joins(pred, sp_cluster, size, whole, join_share)
    out = [(m, s, int(c), int(q)) for (m, s, _), c, q in zip(out, kind, query, strict=True)] + joins
    out.sort(key=lambda item: -item[1])
    where = pred.scores.device
    sp_masks = np.array([m for m, _, _, _ in out]).reshape(len(out), num_sp)
    return Prediction(scores=torch.tensor([s for _, s, _, _ in out], dtype=pred.scores.dtype, device=where),
                      classes=torch.tensor([c for _, _, c, _ in out], dtype=torch.long, device=where),
                      queries=torch.tensor([q for _, _, _, q in out], dtype=torch.long, device=where),
                      sp_masks=torch.as_tensor(sp_masks, device=pred.sp_masks.device),
                      superpoint=pred.superpoint, semantic=pred.semantic)
