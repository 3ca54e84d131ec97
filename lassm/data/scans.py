"""Reading scans of your own: mesh or point-cloud PLY, PCD and NPY files -> arrays for preprocessing.

:func:`read_scan` returns ``coord`` (N, 3) float32, ``color`` (N, 3) uint8, ``faces`` (M, 3) or None,
``has_color``, ``point_index`` (the file rows kept: non-finite points are dropped) and ``num_input``.
:func:`scan_superpoints` gives its superpoints as preprocessing computes them: ScanNet's Segmentator on
a mesh, its kNN-graph variant on a point cloud (:mod:`lassm.data.superpoints`).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
from plyfile import PlyData

from .io import DataError, read_mesh_ply
from .mesh import warn_degenerate
from .superpoints import segment_mesh, segment_points

SCAN_SUFFIXES = (".ply", ".pcd", ".npy")
GREY = 128  # colour of scans without colour, and of points in no instance
MILLIMETRE_EXTENT = 100.0  # metres: a room or tabletop scan wider than this is likely in millimetres
MAX_EXTENT = 10_000.0  # metres: wider scans are refused (no indoor scene; the voxel grid overflows)

# ----------------------------------------------------------------------------- reading a scan


def _ply_vertex_properties(path: Path) -> list[str]:
    """The vertex property names from a PLY header (read as text; the body may be binary)."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if not head.startswith(b"ply"):
        raise DataError(f"{path}: not a PLY file (no 'ply' magic line)")
    header = head.split(b"end_header")[0].decode("ascii", "replace").splitlines()
    props, in_vertex = [], False
    for line in header:
        words = line.split()
        if words[:1] == ["element"]:
            in_vertex = words[1:2] == ["vertex"]
        elif in_vertex and words[:1] == ["property"]:
            props.append(words[-1])
    return props


def _read_ply(path: Path) -> dict:
    """A PLY mesh or cloud; colour is optional (read_mesh_ply requires it, so read xyz ourselves)."""
    if {"red", "green", "blue"} <= set(_ply_vertex_properties(path)):
        mesh = read_mesh_ply(path, require_faces=False, finite=False)  # read_scan drops / refuses NaN
        return {"coord": mesh.vertices, "color": mesh.colors, "faces": mesh.faces, "has_color": True}
    try:
        return _read_ply_xyz(path)
    except DataError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, OverflowError) as err:  # odd property types
        raise DataError(f"{path}: unexpected PLY vertex or face layout ({type(err).__name__}: {err}); "
                        "expected float x, y, z and int triangle lists") from err


def _read_ply_xyz(path: Path) -> dict:
    try:
        ply = PlyData.read(str(path))
        vertex = ply["vertex"].data
        coord = np.stack([vertex[k] for k in "xyz"], axis=1).astype(np.float32)  # (N, 3)
    except Exception as err:  # plyfile raises several types for broken files
        raise DataError(f"{path}: unreadable PLY or no x, y, z vertex properties "
                        f"({type(err).__name__}: {err})") from err
    faces = np.zeros((0, 3), np.int64)
    if "face" in [e.name for e in ply.elements] and len(ply["face"].data):
        lists = ply["face"].data[ply["face"].data.dtype.names[0]]
        if lists.dtype != object or any(np.ndim(f) != 1 or len(f) != 3 for f in lists):
            raise DataError(f"{path}: only triangle faces are supported")
        faces = np.stack(lists)
        if faces.dtype.kind not in "iu":
            raise DataError(f"{path}: face lists must hold integer vertex indices, found {faces.dtype}")
        faces = faces.astype(np.int64)  # (M, 3)
        if faces.min() < 0 or faces.max() >= len(coord):
            raise DataError(f"{path}: face indices outside 0..{len(coord) - 1}")
    return {"coord": coord, "color": None, "faces": faces, "has_color": False}


def _read_pcd(path: Path) -> dict:
    """A PCD file (organised or not, any field order) as one row per point, NaN rows kept."""
    from .mosd import read_pcd

    cloud = read_pcd(path)
    return {"coord": cloud["coord"].reshape(-1, 3), "color": cloud["color"].reshape(-1, 3), "faces": None,
            "has_color": cloud["has_color"], "grid_shape": cloud["grid_shape"]}


def _read_npy(path: Path) -> dict:
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataError(f"{path}: unreadable .npy file ({type(err).__name__}: {err})") from err
    if array.ndim != 2 or array.shape[1] not in (3, 6) or array.dtype.kind not in "fiu":
        raise DataError(f"{path}: array of shape {array.shape} and dtype {array.dtype}; expected "
                        f"numbers of shape (N, 3) xyz or (N, 6) xyz + rgb in 0..255")
    coord = array[:, :3].astype(np.float32)
    if array.shape[1] == 3:
        return {"coord": coord, "color": None, "faces": None, "has_color": False}
    color = array[:, 3:].astype(np.float64)  # (N, 3)
    finite = np.isfinite(coord).all(axis=1)
    kept = color[finite]
    if len(kept) and (not np.isfinite(kept).all() or kept.min() < 0 or kept.max() > 255):
        raise DataError(f"{path}: colour columns 3..5 must be finite and in 0..255 (got range "
                        f"{np.nanmin(kept):g}..{np.nanmax(kept):g})")
    if array.dtype.kind == "f" and len(kept) and kept.max() <= 1 and kept.max() > 0:
        # float colours all within 0..1 are Open3D-style fractions; as 0..255 they would be black
        warnings.warn(f"{path}: colours (columns 3..5) are all within 0..1; reading them as 0..1 "
                      "fractions and scaling by 255 (save 0..255 values to avoid this guess)", stacklevel=3)
        color = np.round(color * 255)
    color = np.clip(np.nan_to_num(color), 0, 255).astype(np.uint8)
    return {"coord": coord, "color": color, "faces": None, "has_color": True}


def check_extent(path, coord: np.ndarray, warn_above: float = MILLIMETRE_EXTENT) -> None:
    """Refuse scans wider than ``MAX_EXTENT`` and warn above ``warn_above`` metres (finite rows only)."""
    coord = coord[np.isfinite(coord).all(axis=1)]
    if len(coord) == 0:
        return
    extent = float((coord.astype(np.float64).max(0) - coord.min(0)).max())  # metres along the widest axis
    if extent > MAX_EXTENT:
        raise DataError(f"{path}: the scan is {extent:.4g} m across, more than {MAX_EXTENT:g} m; expected "
                        "coordinates in metres (millimetres? divide by 1000)")
    if extent > warn_above:
        warnings.warn(f"{path}: the scan is {extent:.4g} m across, which looks like millimetres; divide "
                      "the coordinates by 1000 if so (the model expects metres)", stacklevel=3)


def read_raw(path: str | Path, warn_extent: float = MILLIMETRE_EXTENT) -> dict:
    """A scan file's rows as stored: ``coord`` (N, 3) float32 with NaN rows kept, ``color`` (N, 3) uint8
    (grey without colour), ``has_color``, ``faces`` or None, ``grid_shape`` (H, W) for an organised PCD
    (rows in image order) else None, ``point_index`` (N,) = 0..N-1 and ``num_input`` N. A scan wider
    than ``warn_extent`` metres warns (millimetres?); one wider than ``MAX_EXTENT`` is refused."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SCAN_SUFFIXES:
        raise DataError(f"{path}: unknown scan format {suffix!r}; expected one of {list(SCAN_SUFFIXES)}")
    if not path.is_file():
        raise DataError(f"{path}: scan file not found")
    scan = {".ply": _read_ply, ".pcd": _read_pcd, ".npy": _read_npy}[suffix](path)
    n = len(scan["coord"])
    if n == 0:
        raise DataError(f"{path}: the scan has no points")
    check_extent(path, scan["coord"], warn_extent)
    if not scan["has_color"]:
        scan["color"] = np.full((n, 3), GREY, np.uint8)
    return {**scan, "grid_shape": scan.get("grid_shape"), "point_index": np.arange(n), "num_input": n}


def read_scan(path: str | Path, warn_extent: float = MILLIMETRE_EXTENT) -> dict:
    """Read a scan: ``coord`` (N, 3) float32, ``color`` (N, 3) uint8, ``faces`` (M, 3) int64 or None,
    ``has_color``, ``point_index`` (N,) the kept rows of the file (non-finite points dropped) and
    ``num_input`` the file's point count.

    A PLY with faces is a mesh (faces kept, non-finite vertices are an error); one without is a cloud.
    """
    scan = read_raw(path, warn_extent)
    coord = scan["coord"]
    finite = np.isfinite(coord).all(axis=1)  # (N,)
    if not finite.any():
        raise DataError(f"{path}: all {len(coord)} points have NaN or infinite coordinates")
    faces = scan["faces"]
    is_mesh = faces is not None and len(faces) > 0
    if is_mesh and not finite.all():
        raise DataError(f"{path}: {int((~finite).sum())} mesh vertices have NaN or infinite coordinates")
    keep = np.flatnonzero(finite)  # (N_kept,)
    return {"coord": coord[keep], "color": scan["color"][keep], "faces": faces if is_mesh else None,
            "has_color": scan["has_color"], "point_index": keep, "num_input": len(coord)}


def scan_superpoints(scan: dict, viewpoint=None, scan_cfg=None) -> np.ndarray:
    """(N,) int64 compact superpoint ids 0..S-1: mesh Segmentator, or its kNN variant for clouds, with the
    thresholds of ``scan_cfg`` (a ``lassm.config.ScanConfig``; None: ScanNet's 0.01 / 20, k = 8)."""
    k_thresh, min_verts, knn = ((scan_cfg.k_thresh, scan_cfg.seg_min_verts, scan_cfg.knn) if scan_cfg
                                else (0.01, 20, 8))
    if scan["faces"] is not None:
        raw = segment_mesh(scan["coord"], scan["faces"], k_thresh=k_thresh, seg_min_verts=min_verts)
    else:
        raw = segment_points(scan["coord"], k=knn, k_thresh=k_thresh, seg_min_verts=min_verts,
                             viewpoint=viewpoint)
    return np.unique(raw, return_inverse=True)[1].astype(np.int64).reshape(-1)


# ----------------------------------------------------------------------------- a scan as the model's input


def load_scan(path: str | Path, scan_cfg, frame: str | None = None, viewpoint=None) -> dict:
    """A scan file -> scene arrays, preprocessed as ``scan_cfg`` (a ``lassm.config.ScanConfig``) says the
    checkpoint's training data was, so a scan gets what the dataset path would give the same file.

    ``frame`` overrides ``scan_cfg.frame``: "dataset" keeps the file's coordinates (meshes: ScanNet's
    Segmentator on the faces; clouds: its kNN-graph variant steered by ``viewpoint``); "support_plane"
    treats the scan as one RGB-D view in its camera frame (:mod:`lassm.data.singleview`: support-plane
    frame, pixel-grid mesh superpoints for organised PCDs, kNN-graph ones otherwise).

    Returns ``coord`` (N, 3) in the model's frame, ``color``, ``superpoint``, ``source_coord`` (N, 3) the
    file's coordinates of those points, ``point_index`` (N,) their rows in the file, ``num_input``,
    ``has_color``, ``faces`` (mesh faces over the N points, or None), ``kind`` ("mesh", "organised cloud"
    or "cloud") and ``plane`` (support-plane fit: ``table_from_camera``, ``inlier_fraction``,
    ``tilt_degrees``; None in the dataset frame).
    """
    path = Path(path)
    frame = frame or scan_cfg.frame
    if frame not in ("dataset", "support_plane"):
        raise ValueError(f"frame: expected 'dataset' or 'support_plane', got {frame!r}")
    if frame == "dataset":
        scan = read_scan(path, scan_cfg.warn_extent)
        superpoint = scan_superpoints(scan, viewpoint, scan_cfg)
        warn_degenerate(path, scan["coord"], scan["faces"], superpoint)
        return {**scan, "superpoint": superpoint, "source_coord": scan["coord"], "plane": None,
                "kind": "mesh" if scan["faces"] is not None else "cloud"}
    from .singleview import NoSupportPlane, process_single_view

    view = read_raw(path, scan_cfg.warn_extent)
    try:
        arrays = process_single_view(view["coord"], view["color"], grid_shape=view["grid_shape"],
                                     scan=scan_cfg, name=str(path))
    except NoSupportPlane as err:
        if not scan_cfg.max_tilt_degrees < scan_cfg.fallback_tilt_degrees:
            raise
        warnings.warn(f"{err}; fitted again up to {scan_cfg.fallback_tilt_degrees:g} degrees "
                      f"(data.scan.fallback_tilt_degrees): a view from further above than the training "
                      f"frames", stacklevel=2)
        steeper = dataclasses.replace(scan_cfg, max_tilt_degrees=scan_cfg.fallback_tilt_degrees)
        arrays = process_single_view(view["coord"], view["color"], grid_shape=view["grid_shape"],
                                     scan=steeper, name=str(path))
    keep = arrays["point_index"]
    return {"coord": arrays["coord"], "color": arrays["color"], "superpoint": arrays["superpoint"],
            "normal": arrays["normal"], "source_coord": view["coord"][keep],
            "point_index": view["point_index"][keep],
            "num_input": view["num_input"], "has_color": view["has_color"], "faces": None,
            "kind": "organised cloud" if view["grid_shape"] is not None else "cloud",
            "plane": {"table_from_camera": np.asarray(arrays["table_from_camera"]),
                      "inlier_fraction": float(arrays["plane_inlier_fraction"]),
                      "tilt_degrees": float(arrays["plane_tilt_degrees"])}}
