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
cuts in two), their union comes out too. Objects that touch leave no gap; with ``convex_degrees`` the
partition first divides each cluster along the concave creases between its superpoints
(:func:`convex_segments`, after LCCP), where two touching objects meet.

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
# partition: a divided cluster, whole, as an alternative to its parts (and a Euclidean cluster the convex
# division cut, whole, at half this). Ranked among the whole clusters of weakly scored masks, above most
# parts: a division is wrong about as often as it is right (README, "Real single-view scans")
UNDIVIDED_SCORE = 0.6
ADJACENT = 0.01  # convex segments: superpoints with points this close (metres) are neighbours ...
ADJACENT_PAIRS = 3  # ... when at least this many point pairs are
SANITY_MAX_DEGREES = 60.0  # LCCP's sanity threshold for sharply bent joints (Stein et al. 2014)
SANITY_MIN_SINE = 0.2  # ... checked where the normals' crossing line is defined (sin of the bend above this)


def _superpoint_sums(superpoint: np.ndarray, values: np.ndarray, num_sp: int) -> np.ndarray:
    """(num_sp, C) the sum of ``values`` (N, C) over each superpoint's points (``superpoint`` (N,) ids)."""
    return np.stack([np.bincount(superpoint, weights=values[:, k], minlength=num_sp)
                     for k in range(values.shape[1])], axis=1)


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


def convex_segments(coord: np.ndarray, normal: np.ndarray, superpoint: np.ndarray, cluster: np.ndarray,
                    smooth_degrees: float, min_points: int = 1, colour: np.ndarray | None = None,
                    colour_cut: float = 0.0) -> np.ndarray:
    """(N,) ``cluster`` divided along concave creases (ids 0..K-1, largest first; -1 where ``cluster`` is).

    Neighbouring superpoints (ADJACENT_PAIRS point pairs within ADJACENT) join when their joint is convex
    or smooth, as in locally convex connected patches (LCCP, Stein et al. 2014): with centres x_a, x_b and
    mean normals n_a, n_b facing the camera, convex when (n_a - n_b) . (x_a - x_b) > 0, smooth when the
    normals lie within ``smooth_degrees``. Two objects that touch meet in a concave crease; one convex
    object has none. Segments of fewer than ``min_points`` points go to the nearest larger segment of their
    cluster (superpoint centres; a cluster with none stays whole). coord, normal: (N, 3) in one frame,
    normals unit and facing the camera; superpoint, cluster: (N,) ids (cluster -1: table / dropped).

    ``colour_cut`` > 0 (not in LCCP): a smooth joint that is not convex holds only where the two
    superpoints' mean colours (``colour`` (N, 3) RGB 0-255, as the scenes store it) lie within
    ``colour_cut`` of each other (Euclidean, RGB scaled to 0-1): two objects side by side whose faces meet
    flush, or at a shallow concave angle, differ in colour far more often than one object's faces do. A
    convex joint holds whatever the colours."""
    if not 0 < smooth_degrees < 180:
        raise ValueError(f"smooth_degrees: expected degrees in (0, 180), got {smooth_degrees!r}")
    if colour_cut < 0 or (colour_cut > 0 and colour is None):
        raise ValueError(f"colour_cut: expected 0 (off) or a colour distance > 0 with the points' colour, "
                         f"got {colour_cut!r}{' without colour' if colour is None else ''}")
    coord, normal = np.asarray(coord, np.float64), np.asarray(normal, np.float64)
    if normal.shape != coord.shape:
        raise ValueError(f"normal: expected {coord.shape} (one per point), got {normal.shape}")
    superpoint = np.asarray(superpoint)
    out = np.full(len(coord), -1, np.int64)
    above = np.flatnonzero(cluster >= 0)
    if above.size == 0:
        return out
    num_sp = int(superpoint.max()) + 1
    sp = superpoint[above]
    size = np.bincount(sp, minlength=num_sp).astype(np.float64)
    centre = _superpoint_sums(sp, coord[above], num_sp) / np.maximum(size, 1)[:, None]
    mean_normal = _superpoint_sums(sp, normal[above], num_sp)
    mean_normal /= np.maximum(np.linalg.norm(mean_normal, axis=1), 1e-9)[:, None]
    pairs = cKDTree(coord[above]).query_pairs(ADJACENT, output_type="ndarray")
    a, b = sp[pairs[:, 0]], sp[pairs[:, 1]]
    a, b = np.minimum(a[a != b], b[a != b]), np.maximum(a[a != b], b[a != b])
    key, count = np.unique(a * num_sp + b, return_counts=True)
    key = key[count >= ADJACENT_PAIRS]
    a, b = key // num_sp, key % num_sp
    direction = centre[a] - centre[b]
    direction /= np.maximum(np.linalg.norm(direction, axis=1), 1e-9)[:, None]
    cos = np.clip(np.einsum("ij,ij->i", mean_normal[a], mean_normal[b]), -1.0, 1.0)
    smooth = cos > np.cos(np.radians(smooth_degrees))
    convex = np.einsum("ij,ij->i", mean_normal[a] - mean_normal[b], direction) > 0
    # LCCP's sanity check: a joint whose centre line runs along the normals' crossing line (two faces
    # meeting side by side, offset along the crease) is no evidence of convexity
    cross = np.cross(mean_normal[a], mean_normal[b])
    sine = np.linalg.norm(cross, axis=1)
    cross /= np.maximum(sine, 1e-9)[:, None]
    along = np.degrees(np.arccos(np.clip(np.abs(np.einsum("ij,ij->i", cross, direction)), 0.0, 1.0)))
    along[sine < SANITY_MIN_SINE] = 90.0  # nearly opposite normals (a thin wall's rim): no crossing line
    bend = np.degrees(np.arccos(cos))
    convex &= along >= SANITY_MAX_DEGREES / (1 + np.exp(-0.25 * (bend - 25.0)))
    if colour_cut > 0:
        colour = np.asarray(colour, np.float64)
        if colour.shape != coord.shape:
            raise ValueError(f"colour: expected {coord.shape} (RGB per point), got {colour.shape}")
        mean_colour = _superpoint_sums(sp, colour[above] / 255.0, num_sp) / np.maximum(size, 1)[:, None]
        smooth &= convex | (np.linalg.norm(mean_colour[a] - mean_colour[b], axis=1) < colour_cut)
    join = smooth | convex
    graph = coo_matrix((np.ones(int(join.sum()), np.int8), (a[join], b[join])), shape=(num_sp, num_sp))
    segment = connected_components(graph, directed=False)[1][superpoint]  # (N,) per point
    segment = np.where(cluster >= 0, segment, -1)
    # per point (cluster, segment) labels, small segments absorbed by the nearest large one of their cluster
    ids, label, points = np.unique(segment[above] + (cluster[above] * num_sp), return_inverse=True,
                                   return_counts=True)
    big = points >= min_points
    seg_cluster = ids // num_sp
    sp_label = np.full(num_sp, -1)
    sp_label[sp] = label  # each superpoint's (cluster, segment); a superpoint lies in one segment
    for c in np.unique(seg_cluster[~big]):
        small = np.flatnonzero((seg_cluster == c) & ~big)
        large = np.flatnonzero((seg_cluster == c) & big)
        if not large.size:  # the cluster whole
            sp_label[np.isin(sp_label, small)] = small[0]
            continue
        target = np.flatnonzero(np.isin(sp_label, large))
        source = np.flatnonzero(np.isin(sp_label, small))
        sp_label[source] = sp_label[target[cKDTree(centre[target]).query(centre[source])[1]]]
    label = sp_label[sp]
    points = np.bincount(label, minlength=len(ids))
    kept = np.flatnonzero(points >= min_points)
    kept = kept[np.argsort(-points[kept], kind="stable")]
    rank = np.full(len(ids), -1, np.int64)
    rank[kept] = np.arange(kept.size)
    out[above] = rank[label]
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


def _undivided(sp_cluster: np.ndarray, whole: np.ndarray, superpoint: np.ndarray, euclidean: np.ndarray,
               num_sp: int) -> list[tuple[np.ndarray, float, int, int]]:
    """Alternatives to the divisions: each divided cluster whole (UNDIVIDED_SCORE), and each Euclidean
    cluster that the convex division cut into several whole (UNDIVIDED_SCORE / 2): (superpoint mask,
    score, class 0, query -1). Where a division was wrong (a shared face plane the model cut wrongly, a
    cup's rim taken for a crease) they recover the object; where it was right, they are one false
    positive each, ranked below every confident claim."""
    alternatives = [(sp_cluster == c, UNDIVIDED_SCORE, 0, -1) for c in np.flatnonzero(~whole)]
    votes = np.zeros((num_sp, int(euclidean.max()) + 2), np.int64)
    np.add.at(votes, (superpoint, euclidean + 1), 1)
    sp_euclidean = votes.argmax(1) - 1
    for e in range(int(euclidean.max()) + 1):
        inside = sp_euclidean == e
        if len(np.unique(sp_cluster[inside & (sp_cluster >= 0)])) >= 2:
            alternatives.append((inside, UNDIVIDED_SCORE / 2, 0, -1))
    return alternatives


def partition_clusters(pred: Prediction, coord: np.ndarray, radius: float, npoint_thr: int = 100,
                       height: float = HEIGHT, share: float = PART_SHARE, join_share: float = JOIN_SHARE,
                       normal: np.ndarray | None = None, convex_degrees: float = 0.0,
                       colour: np.ndarray | None = None, colour_cut: float = 0.0) -> Prediction:
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
    mask's score, below the clusters themselves (0 turns it off). Every divided cluster, whole, is added too,
    as an alternative to its parts (:func:`_undivided`). Every instance holds more than ``npoint_thr``
    points (its superpoints'). Filling, ranking and joins were chosen on the 36
    real learn-train scans and our synthetic validation frames, the alternatives' score on the learn-train
    scans and 56 synthetic touching frames apart from the validation sets (README, "Real single-view
    scans").

    ``convex_degrees`` > 0: the clusters are first divided along concave creases (:func:`convex_segments`,
    joints within that many degrees smooth), so that objects touching each other, which no gap separates,
    are apart before the masks are read; ``normal`` (N, 3), facing the camera, is then required, and
    with ``colour_cut`` > 0 ``colour`` (N, 3): smooth concave joints between superpoints of different
    colour are cut too (:func:`convex_segments`)."""
    cluster = euclidean_clusters(coord, radius, height, min_points=npoint_thr + 1)  # as masks: > npoint_thr
    euclidean = cluster
    superpoint = pred.superpoint.cpu().numpy()
    if convex_degrees > 0:
        if normal is None:
            raise ValueError("normal: the convex division of the clusters (convex_degrees > 0) needs the "
                             "scan's point normals")
        cluster = convex_segments(coord, normal, superpoint, cluster, convex_degrees,
                                  min_points=npoint_thr + 1, colour=colour, colour_cut=colour_cut)
    pieces = split_prediction(pred, coord, radius, npoint_thr, height, cluster=cluster)
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
    centre = _superpoint_sums(superpoint, coord, num_sp) / np.maximum(size, 1)[:, None]
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
    seen = {m.tobytes() for m, _, _, _ in out}
    alternatives = _undivided(sp_cluster, whole, superpoint, euclidean, num_sp)
    out += [t for t in alternatives if t[0].tobytes() not in seen]
    # Instances are read at superpoint level: a cluster whose points are the minority of every superpoint
    # they share (table points a few millimetres up, in the table's superpoints) keeps few or none. Like
    # the masks, an instance needs more than npoint_thr points.
    out = [t for t in out if size[t[0]].sum() > npoint_thr]
    out.sort(key=lambda item: -item[1])
    where = pred.scores.device
    sp_masks = np.array([m for m, _, _, _ in out]).reshape(len(out), num_sp)
    return Prediction(scores=torch.tensor([s for _, s, _, _ in out], dtype=pred.scores.dtype, device=where),
                      classes=torch.tensor([c for _, _, c, _ in out], dtype=torch.long, device=where),
                      queries=torch.tensor([q for _, _, _, q in out], dtype=torch.long, device=where),
                      sp_masks=torch.as_tensor(sp_masks, device=pred.sp_masks.device),
                      superpoint=pred.superpoint, semantic=pred.semantic)
