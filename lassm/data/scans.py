"""Reading scans of your own: mesh or point-cloud PLY, PCD and NPY files -> arrays for preprocessing.

:func:`read_scan` returns ``coord`` (N, 3) float32, ``color`` (N, 3) uint8, ``faces`` (M, 3) or None,
``has_color``, ``point_index`` (the file rows kept: non-finite points are dropped) and ``num_input``.
:func:`scan_superpoints` gives its superpoints as preprocessing computes them: ScanNet's Segmentator on
a mesh, its kNN-graph variant on a point cloud (:mod:`lassm.data.superpoints`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from plyfile import PlyData

from .io import DataError, read_mesh_ply
from .superpoints import segment_mesh, segment_points

SCAN_SUFFIXES = (".ply", ".pcd", ".npy")
GREY = 128  # colour of scans without colour, and of points in no instance

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
        mesh = read_mesh_ply(path, require_faces=False)
        return {"coord": mesh.vertices, "color": mesh.colors, "faces": mesh.faces, "has_color": True}
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
        if any(len(f) != 3 for f in lists):
            raise DataError(f"{path}: only triangle faces are supported")
        faces = np.stack(lists).astype(np.int64)  # (M, 3)
        if faces.min() < 0 or faces.max() >= len(coord):
            raise DataError(f"{path}: face indices outside 0..{len(coord) - 1}")
    return {"coord": coord, "color": None, "faces": faces, "has_color": False}


def _read_pcd(path: Path) -> dict:
    from pypcd4 import PointCloud

    try:
        data = PointCloud.from_path(path).pc_data
    except Exception as err:  # pypcd4 raises pydantic, lzf, struct and numpy errors
        raise DataError(f"{path}: unreadable or truncated PCD ({type(err).__name__}: {err})") from err
    names = data.dtype.names or ()
    if not {"x", "y", "z"} <= set(names):
        raise DataError(f"{path}: PCD fields {list(names)}; expected at least x, y, z")
    coord = np.stack([data[k] for k in "xyz"], axis=1).astype(np.float32).reshape(-1, 3)
    packed_name = next((k for k in ("rgb", "rgba") if k in names), None)
    if packed_name is None or data.dtype[packed_name].itemsize != 4:
        return {"coord": coord, "color": None, "faces": None, "has_color": False}
    # PCL packs colour as 0x00RRGGBB, in a uint32 or the bits of a float32: reinterpret, not convert
    packed = np.ascontiguousarray(data[packed_name]).view(np.uint32).reshape(-1)
    color = np.stack([(packed >> s) & 255 for s in (16, 8, 0)], axis=1).astype(np.uint8)  # (N, 3)
    return {"coord": coord, "color": color, "faces": None, "has_color": True}


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
    color = array[:, 3:].astype(np.float64)
    finite = np.isfinite(coord).all(axis=1)
    if len(color[finite]) and (not np.isfinite(color[finite]).all() or color[finite].min() < 0
                               or color[finite].max() > 255):
        raise DataError(f"{path}: colour columns 3..5 must be finite and in 0..255 (got range "
                        f"{np.nanmin(color):g}..{np.nanmax(color):g}); scale 0..1 colours by 255")
    return {"coord": coord, "color": np.clip(np.nan_to_num(color), 0, 255).astype(np.uint8),
            "faces": None, "has_color": True}


def read_scan(path: str | Path) -> dict:
    """Read a scan: ``coord`` (N, 3) float32, ``color`` (N, 3) uint8, ``faces`` (M, 3) int64 or None,
    ``has_color``, ``point_index`` (N,) the kept rows of the file (non-finite points dropped) and
    ``num_input`` the file's point count.

    A PLY with faces is a mesh (faces kept, non-finite vertices are an error); one without is a cloud.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SCAN_SUFFIXES:
        raise DataError(f"{path}: unknown scan format {suffix!r}; expected one of {list(SCAN_SUFFIXES)}")
    if not path.is_file():
        raise DataError(f"{path}: scan file not found")
    scan = {".ply": _read_ply, ".pcd": _read_pcd, ".npy": _read_npy}[suffix](path)
    coord = scan["coord"]
    if len(coord) == 0:
        raise DataError(f"{path}: the scan has no points")
    finite = np.isfinite(coord).all(axis=1)  # (N,)
    if not finite.any():
        raise DataError(f"{path}: all {len(coord)} points have NaN or infinite coordinates")
    faces = scan["faces"]
    is_mesh = faces is not None and len(faces) > 0
    if is_mesh and not finite.all():
        raise DataError(f"{path}: {int((~finite).sum())} mesh vertices have NaN or infinite coordinates")
    color = scan["color"] if scan["has_color"] else np.full((len(coord), 3), GREY, np.uint8)
    keep = np.flatnonzero(finite)  # (N_kept,)
    return {"coord": coord[keep], "color": color[keep], "faces": faces if is_mesh else None,
            "has_color": scan["has_color"], "point_index": keep, "num_input": len(coord)}


def scan_superpoints(scan: dict, viewpoint=None) -> np.ndarray:
    """(N,) int64 compact superpoint ids 0..S-1: mesh Segmentator, or its kNN variant for clouds."""
    if scan["faces"] is not None:
        raw = segment_mesh(scan["coord"], scan["faces"])
    else:
        raw = segment_points(scan["coord"], viewpoint=viewpoint)
    return np.unique(raw, return_inverse=True)[1].astype(np.int64).reshape(-1)
