"""Single-view RGB-D scans (camera frame) -> processed scene arrays.

One home for what a Kinect-style view needs before it looks like a processed ScanNet scene
(REFERENCE_SPEC 1.1): mOSD (:mod:`.mosd`), the synthetic tabletops that write mOSD-format
PCDs, and a user's own scans (``lassm.predict``) all call :func:`process_single_view`, so a
scan gets the same preprocessing whichever door it enters by.

1. **Valid points**: finite coordinates and positive depth (z > 0, camera z forward, y down).
   Points with NaN coordinates are dropped whatever their label.
2. **Support plane** (:func:`fit_support_plane`): the surface the objects stand on, found
   without labels. The dominant plane is not enough: in cluttered scenes the table covers a
   quarter of the points and a wall or a big box top can hold more. Candidates must face the
   camera within ``MAX_TILT_DEGREES`` of the sensor's up direction (camera -y; the 45 mOSD
   learn tables are 34-44 degrees from it), and are scored by MSAC inlier weights minus
   ``BELOW_WEIGHT`` per point below: a box top has the table and its own sides below it, the
   table has almost nothing. Limit: a table seen only as a 1 cm ring around objects (< ~10 %
   of the points) can lose to a plane slanted across it and a flat box top.
3. **Table frame**: z = the plane normal toward the camera, table at z = 0, x = camera x
   projected onto the plane, origin = the inlier centre projected (``table_from_camera``).
4. **Mesh and superpoints**: an organised image grid is meshed by :func:`grid_mesh`
   (area-weighted normals, Segmentator on the mesh); an unorganised cloud gets kNN-graph
   superpoints (:func:`~lassm.data.superpoints.segment_points`) with normals facing the camera.
5. **Labels** (optional): the mOSD scheme. Classes ``("table", "object")``: table labels 1-9
   -> 0 (stuff), object labels >= 20 -> 1, anything else -> -1; instances ``instance_object``
   (label // 10, the original OSD objects) and ``instance_part`` (each label >= 20).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial import cKDTree

from ..config.schema import ScanConfig
from .io import DataError
from .mesh import vertex_normals
from .superpoints import estimate_normals, knn_neighbours, segment_mesh, segment_points

INSTANCE_VIEWS = ("object", "part")
UP = np.array([0.0, -1.0, 0.0])  # the sensor's up direction in the camera frame (y down)

# Depth-jump test of grid_mesh: an edge is cut when |dz| > DEPTH_JUMP_REL * z + DEPTH_JUMP_ABS.
# Kinect depth noise and disparity steps grow like z^2 (5 mm at 1.3 m) and steep surfaces change
# depth by a few pixel footprints (z / 525) per pixel. On the mOSD learn scans, 99.99 % of
# same-label neighbour pairs differ by < 1.4-3.3 % of depth, object/table boundaries by 5-80 %.
DEPTH_JUMP_REL = 0.02
DEPTH_JUMP_ABS = 0.005  # metres

# Support-plane RANSAC.
PLANE_INLIER_DIST = 0.015  # metres: Kinect noise at 1.7 m plus mild depth-map bowing
PLANE_TIGHT_MIN = 0.005  # metres: the final refit's band is 2.5 x the plane's noise, at least this
PLANE_BELOW_DIST = 0.02  # metres: a point this far on the far side of a plane is "below" it
BELOW_WEIGHT = 2.0  # score = MSAC inlier weights - BELOW_WEIGHT * points below
MAX_TILT_DEGREES = 60.0  # plane normal vs the sensor's up; mOSD learn tables: 34.1-43.5
PLANE_MIN_INLIERS = 0.1  # fraction of valid points the support plane must hold
PLANE_HYPOTHESES = 800  # three-point hypotheses: half spread over the scan, half local
PLANE_SAMPLE = 10_000  # points that score each hypothesis
PLANE_LOCAL_K = 100  # local hypotheses take 3 points among this many sample neighbours
PLANE_REFINE = 8  # best hypotheses refined by least squares before the final choice


# ----------------------------------------------------------------------------- organised grids


def valid_pixels(coord: np.ndarray) -> np.ndarray:
    """(...,) bool: points with finite camera-frame coordinates and positive depth."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(coord).all(axis=-1) & (coord[..., 2] > 0)


def grid_mesh(coord: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate an organised camera-frame cloud (H, W, 3).

    Returns ``vertex_index`` (N,) int64, the flat pixel index of each valid pixel (the mesh
    vertices, in row-major order) and ``faces`` (M, 3) int64 into those vertices. Each 2x2
    block a b / c d gives triangles (a, c, b) and (b, c, d) when all four pixels are valid, or
    the one triangle of its three valid pixels; triangles with an edge across a depth jump
    (see ``DEPTH_JUMP_REL``) are dropped. Winding makes face normals point to the camera.
    """
    height, width = coord.shape[:2]
    valid = valid_pixels(coord)
    vertex_index = np.flatnonzero(valid)
    index = np.full((height, width), -1, np.int64)
    index[valid] = np.arange(len(vertex_index))
    a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()  # (B,) corners of each 2x2 block
    c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()
    va, vb, vc, vd = a >= 0, b >= 0, c >= 0, d >= 0
    faces = np.concatenate([
        np.stack([a, c, b], 1)[va & vb & vc],
        np.stack([b, c, d], 1)[vb & vc & vd],
        np.stack([a, c, d], 1)[va & vc & vd & ~vb],  # b missing: use the other diagonal
        np.stack([a, d, b], 1)[va & vb & vd & ~vc],  # c missing
    ])  # (M, 3)
    depth = coord[..., 2].ravel()[vertex_index].astype(np.float64)  # (N,)
    z = depth[faces]  # (M, 3)
    keep = np.ones(len(faces), bool)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        near = np.minimum(z[:, i], z[:, j])
        keep &= np.abs(z[:, i] - z[:, j]) <= DEPTH_JUMP_REL * near + DEPTH_JUMP_ABS
    return vertex_index, faces[keep]


# ----------------------------------------------------------------------------- support plane


class NoSupportPlane(DataError):
    """:func:`fit_support_plane` found no plane within its tilt limit holding enough of the points."""


class PlaneFit(NamedTuple):
    """A fitted support plane ``normal . p + offset = 0`` in the camera frame."""

    table_from_camera: np.ndarray  # (4, 4) float64 camera -> table frame (z up, table z = 0)
    normal: np.ndarray  # (3,) unit normal, toward the camera's side
    offset: float  # > 0: the camera's height above the plane in metres
    inlier_fraction: float  # points within PLANE_INLIER_DIST of the plane / all points
    below_fraction: float  # points more than PLANE_BELOW_DIST below it / all points
    tilt_degrees: float  # angle between the normal and the sensor's up direction (camera -y)


def _plane_through(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Total-least-squares plane (unit normal n, offset d with n.p + d = 0) of (K, 3) points,
    oriented so that the camera (the origin) lies on the +n side (d >= 0)."""
    centre = points.mean(axis=0)
    normal = np.linalg.svd(points - centre, full_matrices=False)[2][-1]
    offset = -float(normal @ centre)
    return (-normal, -offset) if offset < 0 else (normal, offset)


def _hypotheses(sample: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) unit normals toward the camera and (T,) offsets from three-point samples.

    Half the triples are spread over the whole sample (precise when they hit one surface,
    likely only if it is large); half are local (a point and two of its PLANE_LOCAL_K
    neighbours), which hit a minority surface about as often as that surface's share.
    """
    count = PLANE_HYPOTHESES // 2
    spread = rng.integers(0, len(sample), (count, 3))
    k = min(PLANE_LOCAL_K, len(sample))
    seeds = rng.integers(0, len(sample), count)
    near = cKDTree(sample).query(sample[seeds], k=k)[1].reshape(count, k)  # (T/2, k)
    pick = np.sort(rng.random((count, k - 1)).argsort(axis=1)[:, :2], axis=1) + 1  # 2 distinct
    local = np.c_[seeds, np.take_along_axis(near, pick, axis=1)] if k > 2 else spread
    tri = sample[np.concatenate([spread, local])]  # (T, 3, 3)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (T, 3)
    length = np.linalg.norm(normals, axis=1)
    ok = length > 1e-12  # skip collinear triples
    normals = normals[ok] / length[ok, None]
    offsets = -np.einsum("td,td->t", normals, tri[ok, 0])
    flip = offsets < 0  # camera on the + side
    normals[flip], offsets[flip] = -normals[flip], -offsets[flip]
    return normals, offsets


def _score(points: np.ndarray, normals: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Support scores (T,) of planes (T, 3), (T,) over (K, 3) points: MSAC inlier weights
    ``1 - (d / PLANE_INLIER_DIST)^2`` minus BELOW_WEIGHT per point below the plane.

    The truncated quadratic (Torr and Zisserman's MSAC) rather than an inlier count: a plane
    slanted across the table ring and a box top collects many points within the band, but
    spread over it, while the true table's residuals stay within the sensor noise.
    """
    score = np.zeros(len(normals))
    for start in range(0, len(normals), 128):
        dist = points @ normals[start:start + 128].T + offsets[start:start + 128]  # (K, t)
        weight = np.maximum(0.0, 1.0 - (dist / PLANE_INLIER_DIST) ** 2)
        score[start:start + 128] = weight.sum(axis=0) - BELOW_WEIGHT * (dist < -PLANE_BELOW_DIST).sum(axis=0)
    return score


def _tilt(normals: np.ndarray) -> np.ndarray:  # degrees from the sensor's up
    return np.degrees(np.arccos(np.clip(normals @ UP, -1.0, 1.0)))


def _refine(points: np.ndarray, normal: np.ndarray, offset: float, band: float = PLANE_INLIER_DIST,
            steps: int = 3):
    """Least-squares refits on the points within ``band`` of the plane; None if fewer than 3."""
    for _ in range(steps):
        inliers = points[np.abs(points @ normal + offset) < band]
        if len(inliers) < 3:
            return None
        normal, offset = _plane_through(inliers)
    return normal, offset


def _distinct(normals: np.ndarray, offsets: np.ndarray, score: np.ndarray) -> list[int]:
    """Indices of the PLANE_REFINE best-scoring planes, skipping near-copies of a better one
    (normals within 5 degrees and offsets within PLANE_INLIER_DIST): a large slanted surface
    otherwise fills every slot with its variants and a smaller true table is never refined."""
    kept: list[int] = []
    for t in np.argsort(-score, kind="stable"):
        if len(kept) == PLANE_REFINE:
            break
        if not kept or not ((normals[kept] @ normals[t] > np.cos(np.radians(5)))
                            & (np.abs(offsets[kept] - offsets[t]) < PLANE_INLIER_DIST)).any():
            kept.append(int(t))
    return kept


def _tighten(points: np.ndarray, normal: np.ndarray, offset: float):
    """Refit within 2.5 x the plane's own noise (MAD scale): with the table a minority, the
    bottoms of the objects within PLANE_INLIER_DIST above it tilt a plain fit by ~1 degree."""
    resid = np.abs(points @ normal + offset)
    band = 2.5 * 1.4826 * np.median(resid[resid < PLANE_INLIER_DIST])
    return _refine(points, normal, offset, band=float(np.clip(band, PLANE_TIGHT_MIN, PLANE_INLIER_DIST)))


def fit_support_plane(
    points: np.ndarray,
    name: str = "points",
    seed: int = 0,
    max_tilt_degrees: float = MAX_TILT_DEGREES,
) -> PlaneFit:
    """The plane the objects stand on, from (N, 3) camera-frame points; deterministic (seeded).

    RANSAC hypotheses facing the camera within ``max_tilt_degrees`` of camera -y are scored on
    a subsample (:func:`_score`); the PLANE_REFINE best distinct ones are refined by least
    squares and rescored on all points; the winner is refined on all points, then within its
    noise band. Raises NoSupportPlane (a DataError) naming ``name`` when no such plane holds
    PLANE_MIN_INLIERS.
    """
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 3:
        raise DataError(f"{name}: {points.shape} points; a support plane needs (N >= 3, 3)")
    rng = np.random.default_rng(seed)
    sample = points[rng.choice(len(points), min(len(points), PLANE_SAMPLE), replace=False)]
    normals, offsets = _hypotheses(sample, rng)
    upright = _tilt(normals) <= max_tilt_degrees
    normals, offsets = normals[upright], offsets[upright]
    best, best_score = None, -np.inf
    for t in _distinct(normals, offsets, _score(sample, normals, offsets)):
        plane = _refine(sample, normals[t], offsets[t])
        score = -np.inf if plane is None else _score(points, plane[0][None], np.array([plane[1]]))[0]
        if score > best_score and _tilt(plane[0]) <= max_tilt_degrees:
            best, best_score = plane, score
    best = best and _refine(points, *best)
    best = best and _tighten(points, *best)
    count = 0 if best is None else int((np.abs(points @ best[0] + best[1]) < PLANE_INLIER_DIST).sum())
    if count >= max(3, PLANE_MIN_INLIERS * len(points)) and _tilt(best[0]) > max_tilt_degrees:
        raise NoSupportPlane(  # refined on every point, the best plane leant past the limit
            f"{name}: no support plane found: the best plane ({count} of {len(points)} valid points) is "
            f"tilted {float(_tilt(best[0])):.1f} degrees from the sensor's up direction (camera -y), more "
            f"than {max_tilt_degrees:g}; for views from more steeply above raise data.scan.max_tilt_degrees"
        )
    if count < max(3, PLANE_MIN_INLIERS * len(points)):
        raise NoSupportPlane(
            f"{name}: no support plane found: the best plane within {max_tilt_degrees:g} degrees "
            f"of the sensor's up direction (camera -y) holds {count} of {len(points)} valid points; "
            f"expected a table or floor covering at least {PLANE_MIN_INLIERS:.0%}"
        )
    normal, offset = best
    dist = points @ normal + offset
    inliers = points[np.abs(dist) < PLANE_INLIER_DIST]
    # x: camera x projected onto the plane (camera z if the normal is nearly along x)
    axis = np.eye(3)[0] if abs(normal[0]) < 0.9 else np.eye(3)[2]
    x_axis = axis - (axis @ normal) * normal
    x_axis /= np.linalg.norm(x_axis)
    rotation = np.stack([x_axis, np.cross(normal, x_axis), normal])  # rows: table axes
    centre = inliers.mean(axis=0)
    origin = centre - (centre @ normal + offset) * normal  # inlier centre projected on plane
    transform = np.eye(4)
    transform[:3, :3] = rotation
    transform[:3, 3] = -rotation @ origin
    return PlaneFit(transform, normal, float(offset), len(inliers) / len(points),
                    float((dist < -PLANE_BELOW_DIST).mean()), float(_tilt(normal)))


# ----------------------------------------------------------------------------- labels


def check_view(view: str) -> str:
    if view not in INSTANCE_VIEWS:
        raise DataError(f"instance_view: expected one of {list(INSTANCE_VIEWS)}, got {view!r}")
    return view


def semantic_labels(label: np.ndarray) -> np.ndarray:
    """Raw mOSD labels -> class index into CLASS_LABELS_MOSD (0 table, 1 object, -1 other)."""
    label = label.astype(np.int64)
    segment = np.full(label.shape, -1, np.int64)
    segment[(label >= 1) & (label <= 9)] = 0
    segment[label >= 20] = 1
    return segment


def instance_labels(label: np.ndarray, view: str) -> np.ndarray:
    """Instance ids 0..K-1 (ascending raw id) for labels >= 20; table and other -1.

    ``view="object"`` groups a decade (label // 10) into one object, ``"part"`` keeps each
    distinct label.
    """
    check_view(view)
    label = label.astype(np.int64)
    thing = label >= 20
    key = label // 10 if view == "object" else label
    instance = np.full(label.shape, -1, np.int64)
    instance[thing] = np.unique(key[thing], return_inverse=True)[1]
    return instance


# ----------------------------------------------------------------------------- one view


def _check_inputs(coord, color, grid_shape, label, name):
    coord = np.asarray(coord)
    if coord.ndim != 2 or coord.shape[1] != 3:
        raise DataError(f"{name}: coord of shape {coord.shape}; expected (N, 3)")
    n = len(coord)
    color = np.asarray(color)
    if color.shape != (n, 3) or color.dtype != np.uint8:
        raise DataError(f"{name}: color {color.shape} {color.dtype}; expected ({n}, 3) uint8")
    if label is not None and np.shape(label) != (n,):
        raise DataError(f"{name}: label of shape {np.shape(label)}; expected ({n},)")
    if grid_shape is not None and (len(grid_shape) != 2 or int(np.prod(grid_shape)) != n):
        raise DataError(f"{name}: grid_shape {tuple(grid_shape)} does not hold {n} points")
    return coord, color


def process_single_view(
    coord: np.ndarray,
    color: np.ndarray,
    *,
    grid_shape: tuple[int, int] | None = None,
    label: np.ndarray | None = None,
    scan: ScanConfig,
    name: str,
    instance_view: str = "object",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """One camera-frame view -> processed-scene arrays (see the module docstring).

    coord: (N, 3) camera-frame points (NaN allowed); color: (N, 3) uint8; grid_shape: (H, W)
    when the points are an organised image in row-major order (pixel-grid mesh), else a kNN
    graph; label: (N,) raw mOSD labels or None. ``scan.frame == "support_plane"`` re-expresses
    the points in the fitted table frame; ``"dataset"`` keeps the coordinates as given
    (identity ``table_from_camera``, NaN plane statistics; a cloud drops only non-finite
    points, while a grid still needs z > 0, as the depth its mesh's jump test reads).

    Returns ``coord`` (K, 3) float32, ``color`` (K, 3) uint8, ``normal`` (K, 3) float32 unit,
    ``superpoint`` (K,) int64 raw Segmentator ids (root point indices), ``point_index`` (K,)
    int64 rows of the input kept, ``table_from_camera`` (4, 4) float32,
    ``plane_inlier_fraction`` and ``plane_tilt_degrees`` (0-d float32), and with ``label``
    ``segment``, ``instance`` (the ``instance_view``), ``instance_object``, ``instance_part``.
    """
    coord, color = _check_inputs(coord, color, grid_shape, label, name)
    check_view(instance_view)
    support = scan.frame == "support_plane"
    if grid_shape is not None:
        point_index, faces = grid_mesh(coord.reshape(*grid_shape, 3))
        if len(faces) == 0:
            raise DataError(f"{name}: no valid neighbouring pixels to build a mesh from")
        # Drop the valid pixels in no triangle (flying pixels cut off at silhouettes): they
        # would get no normal and form single-point superpoints.
        used = np.zeros(len(point_index), bool)
        used[faces] = True
        faces = (np.cumsum(used) - 1)[faces]
        point_index = point_index[used]
    else:
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(coord).all(axis=1) & ((coord[:, 2] > 0) | (not support))
        point_index = np.flatnonzero(valid)
        if len(point_index) <= scan.knn:
            raise DataError(f"{name}: {len(point_index)} valid points; expected more than "
                            f"knn = {scan.knn} (finite coordinates, positive depth)")
    camera = coord[point_index].astype(np.float64)  # (K, 3)
    transform = np.eye(4)
    inlier_fraction = tilt = np.nan
    if support:
        plane = fit_support_plane(camera, name=name, seed=seed, max_tilt_degrees=scan.max_tilt_degrees)
        transform, inlier_fraction, tilt = plane.table_from_camera, plane.inlier_fraction, plane.tilt_degrees
    points = (camera @ transform[:3, :3].T + transform[:3, 3]).astype(np.float32)  # (K, 3)
    if grid_shape is not None:  # vertex_normals' 1e-8 guards shorten these tiny faces' normals
        normal = vertex_normals(points, faces)
        superpoint = segment_mesh(points, faces, k_thresh=scan.k_thresh, seg_min_verts=scan.seg_min_verts)
    else:
        viewpoint = transform[:3, 3] if support else None  # the camera, in the table frame
        neighbours = knn_neighbours(points, scan.knn)  # (K, knn), shared by the normals and the graph
        normal = estimate_normals(points, neighbours, viewpoint)  # (K, 3) not unit
        superpoint = segment_points(points, normal, k=scan.knn, k_thresh=scan.k_thresh,
                                    seg_min_verts=scan.seg_min_verts, neighbours=neighbours)
    normal = normal / (np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12)  # unit length
    out = {
        "coord": points,
        "color": color[point_index],
        "normal": normal.astype(np.float32),
        "superpoint": superpoint,
        "point_index": point_index.astype(np.int64),
        "table_from_camera": transform.astype(np.float32),
        "plane_inlier_fraction": np.array(inlier_fraction, np.float32),
        "plane_tilt_degrees": np.array(tilt, np.float32),
    }
    if label is not None:
        kept = np.asarray(label)[point_index]
        out["segment"] = semantic_labels(kept)
        out["instance_object"] = instance_labels(kept, "object")
        out["instance_part"] = instance_labels(kept, "part")
        out["instance"] = out[f"instance_{instance_view}"]
    return out
