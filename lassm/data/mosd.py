"""mOSD real tabletop scans: organised Kinect PCD files -> processed scenes.

The modified Object Segmentation Database (``../shared/data/mosd/README.md``) holds organised
640x480 clouds with fields ``label x y z rgba``; invalid pixels have NaN coordinates. One
scene is processed like a ScanNet mesh (REFERENCE_SPEC 1.1), with three differences:

1. **Mesh from the pixel grid.** There is no reconstructed mesh, so :func:`grid_mesh` joins
   neighbouring valid pixels into triangles and drops triangles that bridge a depth jump
   (an object's silhouette against the table behind it). Normals (area-weighted) and
   Segmentator superpoints (kThresh 0.01, segMinVerts 20) are then computed on that mesh.
2. **Gravity-aligned table frame.** The raw frame is the camera's (z forward, y down), but
   LaSSM's augmentations rotate about z assuming z is up. :func:`fit_table_plane` fits the
   dominant plane (the table) without labels, by a seeded RANSAC then a least-squares refine,
   and the points are expressed in a frame whose z axis is the table normal pointing to the
   camera's side (objects on the table have z > 0), with the table at z = 0, x along the
   camera's x axis projected onto the table and the origin at the centre of the table inliers.
   The 4x4 camera-to-table transform is saved as ``table_from_camera``.
3. **Labels.** Classes are ``CLASS_LABELS_MOSD = ("table", "object")``: table labels 1-9 ->
   0 (stuff), object labels >= 20 -> 1, anything else -> -1. Two instance views are saved:
   ``instance_object`` (object id = label // 10, the original OSD objects) and
   ``instance_part`` (every distinct label >= 20, mOSD's geometrically disjoint parts);
   ``instance`` is the one chosen by the job option ``instance_view``.

Only valid pixels are kept (finite coordinates, positive depth) that lie in at least one
triangle; the isolated ones (0-12 per scan) are flying pixels. Some scans (learn5,
learn25, learn26) mark invalid pixels as x = y = -0 with only z NaN, so all three coordinates
are checked, not x alone.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from pypcd4 import PointCloud

from .io import DataError
from .mesh import vertex_normals
from .preprocess import SceneJob
from .superpoints import segment_mesh

PCD_FIELDS = ("label", "x", "y", "z", "rgba")  # also accepted: "rgb" for "rgba"
INSTANCE_VIEWS = ("object", "part")
# Scene groups of the learn set by file number (README): every group gets val scenes.
SCENE_GROUPS = {
    "single boxes": range(0, 17),
    "stacked boxes": range(17, 25),
    "occluded": range(25, 33),
    "cylindrical": range(33, 45),
}

# Depth-jump test of grid_mesh: an edge is cut when |dz| > DEPTH_JUMP_REL * z + DEPTH_JUMP_ABS.
# Kinect depth noise and disparity quantisation grow like z^2 (about 5 mm steps at 1.3 m), and
# a surface inclined steeply to the view ray changes depth by a few pixel footprints
# (z / 525 each) per pixel. On the learn scans, 99.99 % of same-label neighbour pairs differ by
# < 1.4-3.3 % of depth, while object/table boundaries jump by 5-80 %; 2 % + 5 mm keeps real
# surfaces connected and cuts silhouettes.
DEPTH_JUMP_REL = 0.02
DEPTH_JUMP_ABS = 0.005  # metres

# RANSAC of the table plane. The table is the largest surface (76-94 % of valid pixels).
PLANE_INLIER_DIST = 0.015  # metres: Kinect noise at 1.7 m plus mild depth-map bowing
PLANE_ITERATIONS = 200
PLANE_SAMPLE = 20_000  # points scored per hypothesis
PLANE_MIN_INLIERS = 0.2  # fraction of valid points the table must cover


# ----------------------------------------------------------------------------- reading


def read_pcd(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read one organised mOSD scan with pypcd4.

    Returns ``coord`` (H, W, 3) float32 in metres (NaN where invalid), ``color`` (H, W, 3)
    uint8 RGB and ``label`` (H, W) uint32. Raises :class:`DataError` naming the file for a
    missing or unreadable file, unexpected fields, a non-organised cloud or a wrong point count.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: PCD file not found")
    try:
        cloud = PointCloud.from_path(path)
    except Exception as err:  # pypcd4 raises pydantic, lzf, struct and numpy errors
        reason = f"{type(err).__name__}: {err}"
        raise DataError(f"{path}: unreadable or truncated PCD ({reason})") from err
    meta, data = cloud.metadata, cloud.pc_data
    fields = tuple("rgba" if f == "rgb" else f for f in meta.fields)
    if sorted(fields) != sorted(PCD_FIELDS) or any(c != 1 for c in meta.count):
        raise DataError(
            f"{path}: fields {list(meta.fields)} (counts {list(meta.count)}); expected exactly "
            f"{list(PCD_FIELDS)} with count 1 each"
        )
    if meta.height < 2:
        raise DataError(
            f"{path}: not an organised cloud (HEIGHT {meta.height}); expected an image grid"
        )
    if meta.points != meta.width * meta.height or len(data) != meta.points:
        raise DataError(
            f"{path}: {len(data)} points read, header POINTS {meta.points}; expected "
            f"WIDTH x HEIGHT = {meta.width * meta.height}"
        )
    color_field = "rgba" if "rgba" in meta.fields else "rgb"
    for name, kind in (("label", "ui"), ("x", "f"), ("y", "f"), ("z", "f")):
        if data.dtype[name].kind not in kind:
            raise DataError(f"{path}: field {name!r} is {data.dtype[name]}; expected kind {kind!r}")
    if data.dtype[color_field].itemsize != 4:
        raise DataError(f"{path}: field {color_field!r} must be a packed 4-byte colour")

    shape = (meta.height, meta.width)
    coord = np.stack([data[k] for k in "xyz"], axis=-1).astype(np.float32).reshape(*shape, 3)
    # PCL packs colour as 0x00RRGGBB; pypcd4 gives the raw bits (uint32 for TYPE U, float32
    # for the "float-packed" TYPE F variant), so reinterpret rather than convert.
    packed = np.ascontiguousarray(data[color_field]).view(np.uint32).reshape(shape)
    color = np.stack([(packed >> s) & 255 for s in (16, 8, 0)], axis=-1).astype(np.uint8)
    label = data["label"].astype(np.uint32).reshape(shape)
    return {"coord": coord, "color": color, "label": label}


def valid_pixels(coord: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with finite camera-frame coordinates and positive depth."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(coord).all(axis=-1) & (coord[..., 2] > 0)


# ----------------------------------------------------------------------------- geometry


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


def _plane_through(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Total-least-squares plane (unit normal n, offset d with n.p + d = 0) of (K, 3) points."""
    centre = points.mean(axis=0)
    normal = np.linalg.svd(points - centre, full_matrices=False)[2][-1]
    return normal, -float(normal @ centre)


def fit_table_plane(points: np.ndarray, name: str = "points", seed: int = 0) -> np.ndarray:
    """Camera-to-table transform (4, 4) float64 from the dominant plane of (N, 3) camera points.

    RANSAC scores ``PLANE_ITERATIONS`` three-point hypotheses on a fixed subsample (seeded, so
    the result is deterministic), then two least-squares refits on all inliers. The table
    normal becomes +z pointing to the camera's side, the table z = 0. Raises DataError naming
    ``name`` if no plane covers ``PLANE_MIN_INLIERS`` of the points.
    """
    points = np.asarray(points, np.float64)
    if len(points) < 3:
        raise DataError(f"{name}: {len(points)} valid points; a table plane needs at least 3")
    rng = np.random.default_rng(seed)
    sample = points[rng.choice(len(points), min(len(points), PLANE_SAMPLE), replace=False)]
    tri = sample[rng.integers(0, len(sample), (PLANE_ITERATIONS, 3))]  # (T, 3, 3)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (T, 3)
    length = np.linalg.norm(normals, axis=1)
    ok = length > 1e-12  # skip collinear triples
    normals = normals[ok] / length[ok, None]
    offsets = -np.einsum("td,td->t", normals, tri[ok, 0])  # (T,)
    if len(normals) == 0:
        raise DataError(f"{name}: points are degenerate (collinear); no table plane found")
    counts = (np.abs(sample @ normals.T + offsets) < PLANE_INLIER_DIST).sum(axis=0)  # (T,)
    normal, offset = normals[np.argmax(counts)], offsets[np.argmax(counts)]
    for _ in range(2):
        inliers = points[np.abs(points @ normal + offset) < PLANE_INLIER_DIST]
        if len(inliers) < max(3, PLANE_MIN_INLIERS * len(points)):
            raise DataError(
                f"{name}: the largest plane holds {len(inliers)} of {len(points)} valid points; "
                f"expected a table covering at least {PLANE_MIN_INLIERS:.0%}"
            )
        normal, offset = _plane_through(inliers)
    if offset < 0:  # camera (the origin) must lie on the +z side: n.0 + d > 0
        normal, offset = -normal, -offset
    # x: the camera axis least aligned with the normal (camera x in practice), on the plane.
    axis = np.eye(3)[np.argmin(np.abs(normal))]
    x_axis = axis - (axis @ normal) * normal
    x_axis /= np.linalg.norm(x_axis)
    rotation = np.stack([x_axis, np.cross(normal, x_axis), normal])  # rows: table axes
    centre = inliers.mean(axis=0)
    origin = centre - (centre @ normal + offset) * normal  # inlier centre projected on plane
    transform = np.eye(4)
    transform[:3, :3] = rotation
    transform[:3, 3] = -rotation @ origin
    return transform


# ----------------------------------------------------------------------------- labels


def semantic_labels(label: np.ndarray) -> np.ndarray:
    """Raw mOSD labels -> class index into CLASS_LABELS_MOSD (0 table, 1 object, -1 other)."""
    label = label.astype(np.int64)
    segment = np.full(label.shape, -1, np.int64)
    segment[(label >= 1) & (label <= 9)] = 0
    segment[label >= 20] = 1
    return segment


def _check_view(view: str) -> str:
    if view not in INSTANCE_VIEWS:
        raise DataError(f"instance_view: expected one of {list(INSTANCE_VIEWS)}, got {view!r}")
    return view


def instance_labels(label: np.ndarray, view: str) -> np.ndarray:
    """Instance ids 0..K-1 (ascending raw id) for labels >= 20; table and other -1.

    ``view="object"`` groups a decade (label // 10) into one object, ``"part"`` keeps each
    distinct label.
    """
    _check_view(view)
    label = label.astype(np.int64)
    thing = label >= 20
    key = label // 10 if view == "object" else label
    instance = np.full(label.shape, -1, np.int64)
    instance[thing] = np.unique(key[thing], return_inverse=True)[1]
    return instance


# ----------------------------------------------------------------------------- protocol


def _scene_number(path: Path) -> int:
    return int(re.fullmatch(r"learn(\d+)\.pcd", path.name).group(1))


def find_jobs(
    raw_root: str | os.PathLike,
    val_fraction: float = 0.2,
    instance_view: str = "object",
    seed: int = 0,
) -> list[SceneJob]:
    """One job per ``<raw_root>/learn/learn<k>.pcd``, in natural order of k.

    The train/val split is stratified over SCENE_GROUPS: in each group ``round(val_fraction
    x size)`` scenes (at least one while ``val_fraction > 0``) go to val, picked by a seeded
    permutation, so val covers every kind of scene. Scene numbers outside the README's groups
    form one more group.
    """
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction: expected a number in [0, 1), got {val_fraction}")
    _check_view(instance_view)
    folder = Path(raw_root) / "learn"
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; expected mOSD's learn/learn<k>.pcd scans")
    files = sorted(
        (p for p in folder.iterdir() if re.fullmatch(r"learn\d+\.pcd", p.name)), key=_scene_number
    )
    if not files:
        raise DataError(f"{folder}: no learn<k>.pcd files; expected mOSD's learn scans")
    groups: dict[str, list[Path]] = {}
    for path in files:
        number = _scene_number(path)
        group = next((g for g, r in SCENE_GROUPS.items() if number in r), "other")
        groups.setdefault(group, []).append(path)
    rng = np.random.default_rng(seed)
    val: set[Path] = set()
    for members in groups.values():
        count = 0 if val_fraction == 0 else max(1, round(val_fraction * len(members)))
        count = min(count, len(members) - 1)  # keep a train scene in every group
        val.update(members[i] for i in rng.permutation(len(members))[:count])
    options = {"instance_view": instance_view}
    return [
        SceneJob(p.stem, "val" if p in val else "train", p, dict(options)) for p in files
    ]


def process(job: SceneJob) -> dict[str, np.ndarray]:
    """Process one scan into the processed-scene arrays (see the module docstring)."""
    view = _check_view(job.options.get("instance_view", "object"))
    scan = read_pcd(job.source)
    vertex_index, faces = grid_mesh(scan["coord"])  # (N,), (M, 3)
    if len(faces) == 0:
        raise DataError(f"{job.source}: no valid neighbouring pixels to build a mesh from")
    # Drop the few valid pixels left in no triangle (flying pixels cut off at silhouettes):
    # they would get no normal and form single-point superpoints.
    used = np.zeros(len(vertex_index), bool)
    used[faces] = True
    faces = (np.cumsum(used) - 1)[faces]
    vertex_index = vertex_index[used]
    camera = scan["coord"].reshape(-1, 3)[vertex_index].astype(np.float64)  # (N, 3)
    transform = fit_table_plane(camera, name=str(job.source))
    coord = (camera @ transform[:3, :3].T + transform[:3, 3]).astype(np.float32)  # (N, 3)
    label = scan["label"].ravel()[vertex_index]  # (N,)
    # vertex_normals keeps the reference's 1e-8 guards, which shorten the normals of these
    # pixel-sized faces (~2e-6 m^2) by up to ~1.5 %; renormalise to unit length.
    normal = vertex_normals(coord, faces)  # (N, 3)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    instance_object = instance_labels(label, "object")
    instance_part = instance_labels(label, "part")
    return {
        "coord": coord,
        "color": scan["color"].reshape(-1, 3)[vertex_index],
        "normal": normal,
        "superpoint": segment_mesh(coord, faces, k_thresh=0.01, seg_min_verts=20),
        "segment": semantic_labels(label),
        "instance": instance_object if view == "object" else instance_part,
        "instance_object": instance_object,
        "instance_part": instance_part,
        "table_from_camera": transform.astype(np.float32),
        "scene_id": np.array(job.name),
    }
