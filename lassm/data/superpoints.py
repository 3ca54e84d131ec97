"""Superpoints: ScanNet's Felzenszwalb mesh over-segmentation, and a point-cloud variant.

The reference computes superpoints with ScanNet's ``Segmentator`` (kThresh 0.01,
segMinVerts 20; REFERENCE_SPEC 1.1 step 2). This module re-implements that algorithm with
numba so that it gives the same partition:

1. Vertex normals: the running mean of the *unit* normals of the faces around a vertex,
   left unnormalised (this is what the Segmentator does; it is not the area-weighted normal
   that the preprocessing saves to ``normal.npy``).
2. Graph: the three edges of every face, (v1, v2), (v1, v3), (v3, v2), with weight
   ``w = 1 - n_a . n_b``, squared when the edge runs "convex" (``n_b . (p_b - p_a) > 0``).
3. Felzenszwalb-Huttenlocher graph segmentation: edges in ascending weight, merge two
   components when ``w <= min(threshold_a, threshold_b)`` with ``threshold = w + k / size``.
4. Small segments: one more pass over the sorted edges joins any component smaller than
   ``segMinVerts`` with its neighbour.

Arithmetic is float32 in the Segmentator's order of operations, so weights are bit-identical.
Output ids are the union-find roots (vertex indices), as in ScanNet's ``segIndices``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_ONE = np.float32(1.0)


@njit(cache=True)
def _mesh_graph(vertices, faces):
    """Edges (3 per face) and their Segmentator weights, float32 throughout."""
    n_faces = faces.shape[0]
    n_vertices = vertices.shape[0]
    normals = np.zeros((n_vertices, 3), np.float32)  # (N, 3) mean unit face normal
    counts = np.zeros(n_vertices, np.int64)
    edge_a = np.empty(3 * n_faces, np.int64)
    edge_b = np.empty(3 * n_faces, np.int64)
    for f in range(n_faces):
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
        for v in (i1, i2, i3):
            t = _ONE / (np.float32(counts[v]) + _ONE)  # lerp(old, face, t)
            s = _ONE - t
            normals[v, 0] = t * cx + s * normals[v, 0]
            normals[v, 1] = t * cy + s * normals[v, 1]
            normals[v, 2] = t * cz + s * normals[v, 2]
            counts[v] += 1
    weights = _edge_weights(vertices, normals, edge_a, edge_b)
    return edge_a, edge_b, weights


@njit(cache=True)
def _edge_weights(points, normals, edge_a, edge_b):
    weights = np.empty(edge_a.shape[0], np.float32)
    for e in range(edge_a.shape[0]):
        a, b = edge_a[e], edge_b[e]
        dx = points[b, 0] - points[a, 0]
        dy = points[b, 1] - points[a, 1]
        dz = points[b, 2] - points[a, 2]
        dd = np.sqrt(dx * dx + dy * dy + dz * dz)
        dx, dy, dz = dx / dd, dy / dd, dz / dd
        dot = normals[a, 0] * normals[b, 0] + normals[a, 1] * normals[b, 1] + normals[a, 2] * normals[b, 2]
        dot2 = normals[b, 0] * dx + normals[b, 1] * dy + normals[b, 2] * dz
        w = _ONE - dot
        if dot2 > 0:  # convex: forgive normal change
            w = w * w
        weights[e] = w
    return weights


@njit(cache=True)
def _find(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    parent[x] = root
    return root


@njit(cache=True)
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


@njit(cache=True)
def _segment_graph(n_vertices, edge_a, edge_b, weights, order, k_thresh, min_size):
    parent = np.arange(n_vertices)
    rank = np.zeros(n_vertices, np.int64)
    size = np.ones(n_vertices, np.int64)
    threshold = np.full(n_vertices, k_thresh, np.float32)  # k / 1
    for e in order:
        a = _find(parent, edge_a[e])
        b = _find(parent, edge_b[e])
        w = weights[e]
        if a != b and w <= threshold[a] and w <= threshold[b]:
            _join(parent, rank, size, a, b)
            a = _find(parent, a)
            threshold[a] = w + k_thresh / np.float32(size[a])
    for e in order:  # join segments below the minimum size, in the same sorted order
        a = _find(parent, edge_a[e])
        b = _find(parent, edge_b[e])
        if a != b and (size[a] < min_size or size[b] < min_size):
            _join(parent, rank, size, a, b)
    out = np.empty(n_vertices, np.int64)
    for v in range(n_vertices):
        out[v] = _find(parent, v)
    return out


def _segment(n, edge_a, edge_b, weights, k_thresh, seg_min_verts):
    order = np.argsort(weights, kind="stable")  # NaN weights (degenerate faces) sort last
    return _segment_graph(n, edge_a, edge_b, weights, order, np.float32(k_thresh), int(seg_min_verts))


def segment_mesh(
    vertices: np.ndarray, faces: np.ndarray, k_thresh: float = 0.01, seg_min_verts: int = 20
) -> np.ndarray:
    """Over-segment a triangle mesh like ScanNet's Segmentator.

    vertices: (N, 3) coordinates; faces: (M, 3) vertex indices. Returns (N,) int64 segment
    ids (the root vertex of each segment). Vertices in no face form their own segments.
    """
    vertices = np.ascontiguousarray(vertices, dtype=np.float32)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices: expected shape (N, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces: expected shape (M, 3), got {faces.shape}")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"faces: indices must lie in 0..{len(vertices) - 1}")
    edge_a, edge_b, weights = _mesh_graph(vertices, faces)
    return _segment(len(vertices), edge_a, edge_b, weights, k_thresh, seg_min_verts)
