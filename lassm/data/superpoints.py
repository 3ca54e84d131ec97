"""Superpoints: ScanNet's Felzenszwalb mesh over-segmentation, and a point-cloud variant.

The reference computes superpoints with ScanNet's ``Segmentator`` (kThresh 0.01,
segMinVerts 20; REFERENCE_SPEC 1.1 step 2). :func:`segment_mesh` re-implements it with numba
and returns the same ids:

1. Vertex normals: the running mean of the *unit* normals of the faces around a vertex,
   left unnormalised (not the area-weighted normal saved to ``normal.npy``).
2. Graph: the three edges of every face, (v1, v2), (v1, v3), (v3, v2), with weight
   ``w = 1 - n_a . n_b``, squared when the edge runs "convex" (``n_b . (p_b - p_a) > 0``).
3. Felzenszwalb-Huttenlocher segmentation: edges in ascending weight, merge two components
   when ``w <= min(threshold_a, threshold_b)``, then ``threshold = w + k / size``.
4. Small segments: one more pass over the sorted edges joins any component smaller than
   ``segMinVerts`` with its neighbour. Ids are union-find roots (vertex indices).

Exactness: float32 arithmetic in the C++ order of operations, with IEEE semantics (a
degenerate face gives NaN weights, not an error), so weights are bit-identical. Edges are
ordered by :func:`lassm.data.stdsort.std_argsort`, libstdc++'s ``std::sort`` replayed, so
ties (flat, noise-free surfaces) and NaN weights are visited in the same order; a stable
sort changes the partition there.

:func:`segment_points` runs the same weights and segmentation on a kNN graph of a point
cloud, with the normals of :mod:`lassm.data.normals` (:func:`estimate_normals` and
:func:`knn_neighbours` are importable from here too). ``python -m lassm.data.superpoints
MESH.ply`` writes ScanNet's ``*.segs.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from numba import njit

from ..cli import run_command
from .io import DataError, read_mesh_ply, write_json
from .mesh import warn_degenerate
from .normals import estimate_normals, knn_neighbours
from .stdsort import std_argsort

_ONE = np.float32(1.0)
_JIT = dict(cache=True, error_model="numpy")  # IEEE division: 0/0 -> NaN like the C++ code

# ----------------------------------------------------------------------------- graph weights


@njit(**_JIT)
def _mesh_graph(vertices, faces):
    """Edges (3 per face, Segmentator order) and their weights, float32 throughout."""
    normals = np.zeros((vertices.shape[0], 3), np.float32)  # (N, 3) mean unit face normal
    counts = np.zeros(vertices.shape[0], np.int64)
    edge_a = np.empty(3 * faces.shape[0], np.int64)
    edge_b = np.empty(3 * faces.shape[0], np.int64)
    for f in range(faces.shape[0]):
        i1, i2, i3 = faces[f, 0], faces[f, 1], faces[f, 2]
        edge_a[3 * f], edge_b[3 * f] = i1, i2
        edge_a[3 * f + 1], edge_b[3 * f + 1] = i1, i3
        edge_a[3 * f + 2], edge_b[3 * f + 2] = i3, i2
        ux = vertices[i2, 0] - vertices[i1, 0]
        uy = vertices[i2, 1] - vertices[i1, 1]
        uz = vertices[i2, 2] - vertices[i1, 2]
        vx = vertices[i3, 0] - vertices[i1, 0]
        vy = vertices[i3, 1] - vertices[i1, 1]
        vz = vertices[i3, 2] - vertices[i1, 2]
        cx = uy * vz - uz * vy
        cy = uz * vx - ux * vz
        cz = ux * vy - uy * vx
        length = np.sqrt(cx * cx + cy * cy + cz * cz)
        cx, cy, cz = cx / length, cy / length, cz / length
        # lerp(old, face, 1 / (count + 1)) at the three corners; counts are bumped only
        # afterwards, which matters for faces that repeat a vertex
        for v in (i1, i2, i3):
            t = _ONE / (np.float32(counts[v]) + _ONE)
            s = _ONE - t
            normals[v, 0] = t * cx + s * normals[v, 0]
            normals[v, 1] = t * cy + s * normals[v, 1]
            normals[v, 2] = t * cz + s * normals[v, 2]
        counts[i1] += 1
        counts[i2] += 1
        counts[i3] += 1
    return edge_a, edge_b, _edge_weights(vertices, normals, edge_a, edge_b)


@njit(**_JIT)
def _edge_weights(points, normals, edge_a, edge_b):
    weights = np.empty(edge_a.shape[0], np.float32)
    for e in range(edge_a.shape[0]):
        a, b = edge_a[e], edge_b[e]
        dx = points[b, 0] - points[a, 0]
        dy = points[b, 1] - points[a, 1]
        dz = points[b, 2] - points[a, 2]
        dd = np.sqrt(dx * dx + dy * dy + dz * dz)
        dx, dy, dz = dx / dd, dy / dd, dz / dd
        dot = normals[a, 0] * normals[b, 0] + normals[a, 1] * normals[b, 1]
        dot = dot + normals[a, 2] * normals[b, 2]
        dot2 = normals[b, 0] * dx + normals[b, 1] * dy + normals[b, 2] * dz
        w = _ONE - dot
        if dot2 > 0:  # convex: forgive normal change
            w = w * w
        weights[e] = w
    return weights


# ----------------------------------------------------------------------------- segmentation


@njit(**_JIT)
def _find(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    parent[x] = root  # Felzenszwalb's "sort of" path compression: x only
    return root


@njit(**_JIT)
def _join(parent, rank, size, x, y):
    """Union by rank, the same tie rule as Felzenszwalb's ``universe::join``."""
    if rank[x] > rank[y]:
        parent[y] = x
        size[x] += size[y]
    else:
        parent[x] = y
        size[y] += size[x]
        if rank[x] == rank[y]:
            rank[y] += 1


@njit(**_JIT)
def _segment_graph(n_vertices, edge_a, edge_b, weights, k_thresh, min_size):
    """Felzenszwalb-Huttenlocher over edges given in std::sort order of ``weights``."""
    parent = np.arange(n_vertices)
    rank = np.zeros(n_vertices, np.int64)
    size = np.ones(n_vertices, np.int64)
    threshold = np.full(n_vertices, k_thresh, np.float32)  # k / 1
    for i in range(weights.shape[0]):
        a = _find(parent, edge_a[i])
        b = _find(parent, edge_b[i])
        if a != b and weights[i] <= threshold[a] and weights[i] <= threshold[b]:
            _join(parent, rank, size, a, b)
            a = _find(parent, a)
            threshold[a] = weights[i] + k_thresh / np.float32(size[a])
    for i in range(weights.shape[0]):  # join segments below the minimum size, same order
        a = _find(parent, edge_a[i])
        b = _find(parent, edge_b[i])
        if a != b and (size[a] < min_size or size[b] < min_size):
            _join(parent, rank, size, a, b)
    out = np.empty(n_vertices, np.int64)
    for v in range(n_vertices):
        out[v] = _find(parent, v)
    return out


def _segment(n, edge_a, edge_b, weights, k_thresh, seg_min_verts):
    if not np.isfinite(k_thresh) or k_thresh < 0:
        raise DataError(f"k_thresh: expected a finite number >= 0, got {k_thresh}")
    if not isinstance(seg_min_verts, (int, np.integer)) or seg_min_verts < 0:
        raise DataError(f"seg_min_verts: expected an integer >= 0, got {seg_min_verts!r}")
    order = std_argsort(weights)  # (E,) ties and NaNs where the C++ tool has them
    return _segment_graph(n, edge_a[order], edge_b[order], weights[order],
                          np.float32(k_thresh), int(seg_min_verts))


def _as_points(array, name):
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != 3:
        raise DataError(f"{name}: expected shape (N, 3), got {array.shape}")
    return array


def segment_mesh(
    vertices: np.ndarray, faces: np.ndarray, k_thresh: float = 0.01, seg_min_verts: int = 20
) -> np.ndarray:
    """Over-segment a triangle mesh exactly like ScanNet's Segmentator.

    vertices: (N, 3) coordinates; faces: (M, 3) vertex indices. Returns (N,) int64 segment
    ids (the root vertex of each segment). Vertices in no face form their own segments.
    """
    vertices = _as_points(vertices, "vertices")
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise DataError(f"faces: expected shape (M, 3), got {faces.shape}")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise DataError(f"faces: indices must lie in 0..{len(vertices) - 1}")
    edge_a, edge_b, weights = _mesh_graph(vertices, faces)  # (3M,) each
    return _segment(len(vertices), edge_a, edge_b, weights, k_thresh, seg_min_verts)


# ----------------------------------------------------------------------------- point clouds


def segment_points(
    coord: np.ndarray,
    normals: np.ndarray | None = None,
    k: int = 8,
    k_thresh: float = 0.01,
    seg_min_verts: int = 20,
    viewpoint: np.ndarray | None = None,
    neighbours: np.ndarray | None = None,
) -> np.ndarray:
    """Segmentator superpoints for a point cloud without a mesh.

    The graph has the directed edges (p, q) from every point to its ``k`` nearest neighbours
    (in point order, nearest first); weights, sorting and segmentation are the mesh ones.
    normals: (N, 3), else :func:`estimate_normals` (steered by ``viewpoint``); ``neighbours``: the
    (N, k) graph of :func:`knn_neighbours` when the caller has it already. The default
    k = 8 covers a mesh vertex's one-ring (valence about 6) and gave segment counts close to
    the mesh Segmentator's on the same surfaces. Returns (N,) int64 ids (root point indices).
    """
    coord = _as_points(coord, "coord")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k: expected an integer >= 1, got {k!r}")
    n = len(coord)
    k = min(int(k), n - 1)
    if k < 1:
        return _segment(n, *np.zeros((2, 0), np.int64), np.zeros(0, np.float32),
                        k_thresh, seg_min_verts)
    if neighbours is None:
        neighbours = knn_neighbours(coord, k)  # (N, k)
    elif neighbours.shape != (n, k):
        raise DataError(f"neighbours: expected shape ({n}, {k}), got {neighbours.shape}")
    if normals is None:
        normals = estimate_normals(coord, neighbours, viewpoint)
    normals = _as_points(normals, "normals")
    if len(normals) != n:
        raise DataError(f"normals: expected {n} rows like coord, got {len(normals)}")
    edge_a = np.repeat(np.arange(n, dtype=np.int64), k)  # (N*k,)
    edge_b = neighbours.ravel().astype(np.int64)
    weights = _edge_weights(coord, normals, edge_a, edge_b)
    return _segment(n, edge_a, edge_b, weights, k_thresh, seg_min_verts)


# ----------------------------------------------------------------------------- command line


def segs_json_path(mesh_path, k_thresh: float = 0.01) -> Path:
    """ScanNet's name: ``scene_vh_clean_2.ply`` -> ``scene_vh_clean_2.0.010000.segs.json``
    (``std::to_string`` of the float32 kThresh, i.e. ``%f``)."""
    mesh_path = Path(mesh_path)
    return mesh_path.with_name(f"{mesh_path.stem}.{float(np.float32(k_thresh)):f}.segs.json")


def segment_mesh_file(mesh_path, out=None, k_thresh: float = 0.01,
                      seg_min_verts: int = 20) -> Path:
    """Segment a PLY mesh and write ScanNet's segs JSON (atomically); returns its path.

    ``params`` holds ``kThresh`` as C++ streams the float (``%g``: 0.01) and
    ``segMinVerts``; ``sceneId`` is the mesh file's stem (ScanNet's tool keeps a leading "/"
    when the path has folders; we do not copy that slip); ``segIndices`` one id per vertex.
    """
    mesh = read_mesh_ply(mesh_path, require_faces=True)
    ids = segment_mesh(mesh.vertices, mesh.faces, k_thresh, seg_min_verts)
    warn_degenerate(mesh_path, mesh.vertices, mesh.faces, ids)
    out = Path(out) if out is not None else segs_json_path(mesh_path, k_thresh)
    params = {"kThresh": float(f"{float(np.float32(k_thresh)):g}"),
              "segMinVerts": int(seg_min_verts)}
    write_json(out, {"params": params, "sceneId": Path(mesh_path).stem,
                     "segIndices": ids.tolist()})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lassm.data.superpoints",
        description="Over-segment a PLY triangle mesh like ScanNet's Segmentator and write "
                    "<mesh stem>.<kThresh>.segs.json next to it (or to --out).",
    )
    parser.add_argument("mesh", help="triangle mesh (.ply with x, y, z, red, green, blue)")
    parser.add_argument("--k-thresh", type=float, default=0.01, help="Felzenszwalb k")
    parser.add_argument("--seg-min-verts", type=int, default=20, help="minimum segment size")
    parser.add_argument("--out", default=None, help="output JSON path")
    args = parser.parse_args(argv)
    if not np.isfinite(args.k_thresh) or args.k_thresh < 0:
        parser.error(f"--k-thresh: expected a finite number >= 0, got {args.k_thresh}")
    if args.seg_min_verts < 0:
        parser.error(f"--seg-min-verts: expected an integer >= 0, got {args.seg_min_verts}")
    return run_command(lambda: _command(args))


def _command(args) -> None:
    try:
        out = segment_mesh_file(args.mesh, args.out, args.k_thresh, args.seg_min_verts)
    except OSError as err:  # DataError (bad mesh) is a ValueError and passes through with its own message
        raise ValueError(f"cannot write {args.out or 'the segs JSON'}: {err}") from err
    print(f"Segmentation written to {out}")


if __name__ == "__main__":
    sys.exit(main())
