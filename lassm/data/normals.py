"""Point-cloud normals for the kNN-graph superpoints (:func:`lassm.data.superpoints.segment_points`).

1. :func:`knn_neighbours`: each point's k nearest other points (scipy's cKDTree).
2. :func:`estimate_normals`: PCA normals, their signs made consistent along a minimum spanning tree of
   the kNN graph (Hoppe et al. 1992), then the mean unit normal of an umbrella of triangles around
   each point, the point-cloud stand-in for the Segmentator's vertex normal.

Faster than the numpy + scipy code it replaced (issue 22) and bit for bit the same
(tests/data/test_normals.py keeps that code as the oracle): the kNN queries and the batch of 3x3
``eigh`` run on several threads (each query, each LAPACK call is independent; one thread inside a data
command's worker process, :mod:`lassm.data.workers`); the spanning tree is
Kruskal's over the edges in (cost, row, col) order, the order of scipy's stable sort of its CSR
entries, so it is scipy's forest (:func:`spanning_forest_reference`, still used when a row repeats a
neighbour); the offsets and the umbrella run in numba in numpy's order of operations (np.cross,
sequential sums). The ``einsum`` products, ``eigh`` and ``arctan2`` stay in numpy: numba would not
reproduce their summation order or SIMD code.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import cKDTree

from .io import DataError
from .workers import threads

_JIT = dict(cache=True, error_model="numpy")

# ----------------------------------------------------------------------------- the kNN graph


def knn_neighbours(coord: np.ndarray, k: int) -> np.ndarray:
    """(N, k) int64 indices of each point's ``k`` nearest other points, nearest first (the kNN graph of
    :func:`lassm.data.superpoints.segment_points`; a duplicate of the point may stand in for itself)."""
    coord = np.asarray(coord)
    # (N, k+1), mostly the point itself first; queries are independent, so threads change nothing
    _, found = cKDTree(coord).query(coord, k=k + 1, workers=threads())
    keep = found != np.arange(len(coord))[:, None]
    keep[keep.sum(axis=1) > k, -1] = False  # the point is not among them (duplicates)
    return found[keep].reshape(len(coord), k)


# ----------------------------------------------------------------------------- spanning forest


@njit(**_JIT)
def _kruskal(n, cost, rows, cols):
    """Kruskal's minimum spanning forest, (F, 2) edges, of edges given in ascending ``cost`` (NaNs
    last, as np.argsort leaves them). Runs of equal cost, the NaNs one run, are first put in (row, col)
    order, the order of scipy's stable sort of its CSR entries; ``rows``, ``cols`` are sorted in place."""
    start = 0
    while start < cost.shape[0]:
        end = start + 1
        while end < cost.shape[0] and (cost[start] != cost[start] or cost[end] == cost[start]):
            end += 1
        if end - start > 16:
            by_position = np.argsort(rows[start:end] * n + cols[start:end])
            rows[start:end], cols[start:end] = rows[start:end][by_position], cols[start:end][by_position]
        else:  # mostly an edge and its reverse, whose costs are equal: insertion sort
            for i in range(start + 1, end):
                row, col = rows[i], cols[i]
                j = i
                while j > start and (rows[j - 1] > row or (rows[j - 1] == row and cols[j - 1] > col)):
                    rows[j], cols[j] = rows[j - 1], cols[j - 1]
                    j -= 1
                rows[j], cols[j] = row, col
        start = end
    parent = np.arange(n)
    rank = np.zeros(n, np.int64)
    forest = np.empty((max(n - 1, 0), 2), np.int64)
    size = 0
    for e in range(rows.shape[0]):
        if size == n - 1:
            break
        a, b = rows[e], cols[e]
        while parent[a] != a:  # path halving
            parent[a] = parent[parent[a]]
            a = parent[a]
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        if a != b:  # union by rank
            if rank[a] < rank[b]:
                a, b = b, a
            parent[b] = a
            rank[a] += rank[a] == rank[b]
            forest[size, 0], forest[size, 1] = rows[e], cols[e]
            size += 1
    return forest[:size]


@njit(**_JIT)
def _repeats_a_neighbour(neighbours):
    for i in range(neighbours.shape[0]):
        for j in range(neighbours.shape[1]):
            for m in range(j):
                if neighbours[i, j] == neighbours[i, m]:
                    return True
    return False


def spanning_forest_reference(n: int, rows, cols, cost) -> np.ndarray:
    """scipy's minimum spanning forest of the undirected graph (rows, cols, cost) as (F, 2) edges."""
    tree = minimum_spanning_tree(coo_matrix((cost, (rows, cols)), shape=(n, n))).tocoo()
    return np.stack([tree.row, tree.col], axis=1).astype(np.int64)


def spanning_forest(neighbours: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """The minimum spanning forest of the kNN graph (edges i -> neighbours[i, j], (N*k,) ``cost``) as
    (F, 2) edges: scipy's forest (:func:`spanning_forest_reference`), several times faster."""
    n, k = neighbours.shape
    cols = neighbours.ravel().astype(np.int64)
    if _repeats_a_neighbour(neighbours):  # scipy sums the costs of a repeated edge
        return spanning_forest_reference(n, np.repeat(np.arange(n), k), cols, cost)
    order = np.argsort(cost)  # (E,) fast but unstable: _kruskal puts the ties in scipy's order
    return _kruskal(n, cost[order], order // k, cols[order])


# ----------------------------------------------------------------------------- orientation


@njit(**_JIT)
def _propagate_signs(n, forest, normals):
    """Walk a spanning forest breadth-first, flipping each normal to agree with its parent; each tree's
    root is its lowest point index, so the signs depend only on the forest's edges."""
    indptr = np.zeros(n + 1, np.int64)  # (N+1,) adjacency of the forest, both directions
    for f in range(forest.shape[0]):
        indptr[forest[f, 0] + 1] += 1
        indptr[forest[f, 1] + 1] += 1
    indptr = np.cumsum(indptr)
    fill = indptr[:-1].copy()
    indices = np.empty(indptr[n], np.int64)
    for f in range(forest.shape[0]):
        a, b = forest[f, 0], forest[f, 1]
        indices[fill[a]], indices[fill[b]] = b, a
        fill[a] += 1
        fill[b] += 1
    sign = np.zeros(n, np.float64)  # 0: not reached yet
    piece = np.empty(n, np.int64)
    queue = np.empty(n, np.int64)
    n_pieces = 0
    for root in range(n):
        if sign[root] != 0:
            continue
        sign[root], piece[root], queue[0] = 1, n_pieces, root
        head, tail = 0, 1
        while head < tail:
            u = queue[head]
            head += 1
            for j in range(indptr[u], indptr[u + 1]):
                v = indices[j]
                if sign[v] == 0:
                    dot = normals[u, 0] * normals[v, 0] + normals[u, 1] * normals[v, 1]
                    dot += normals[u, 2] * normals[v, 2]
                    sign[v] = sign[u] if dot >= 0 else -sign[u]
                    piece[v], queue[tail] = n_pieces, v
                    tail += 1
        n_pieces += 1
    return sign, piece


def _orient(coord, neighbours, normals, viewpoint):
    """Consistent signs for PCA normals: flip along a minimum spanning tree of the kNN graph
    weighted by ``1 - |n_a . n_b|`` (Hoppe et al. 1992), then turn each connected piece so
    that most of its normals face ``viewpoint``."""
    rows = np.repeat(np.arange(len(coord)), neighbours.shape[1])
    cols = neighbours.ravel()
    cost = 1.0 - np.abs(np.einsum("ij,ij->i", normals[rows], normals[cols])) + 1e-6  # > 0
    sign, piece = _propagate_signs(len(coord), spanning_forest(neighbours, cost), normals)
    normals = normals * sign[:, None]
    facing = np.sign(np.einsum("ij,ij->i", normals, viewpoint - coord))
    vote = np.bincount(piece, weights=facing)  # (pieces,)
    return np.where(vote[piece, None] < 0, -normals, normals)


# ----------------------------------------------------------------------------- umbrella normals


@njit(**_JIT)
def neighbour_offsets(coord, neighbours):
    """(N, k, 3) float64 offsets q - p from each point to its neighbours, and the same centred on
    their mean, as numpy's ``offsets - offsets.mean(axis=1, keepdims=True)`` computes it (summed from the
    first neighbour, then divided by k). Indices are not checked here; :func:`estimate_normals` does."""
    n, k = neighbours.shape
    offsets = np.empty((n, k, 3))
    centred = np.empty((n, k, 3))
    for i in range(n):
        for d in range(3):
            total = 0.0
            for j in range(k):
                offsets[i, j, d] = coord[neighbours[i, j], d] - coord[i, d]
                total = offsets[i, j, d] if j == 0 else total + offsets[i, j, d]
            mean = total / k
            for j in range(k):
                centred[i, j, d] = offsets[i, j, d] - mean
    return offsets, centred


def _eigenvectors(matrices):
    """np.linalg.eigh's eigenvectors of (M, 3, 3) ``matrices``, the batch split over threads: numpy's
    linalg releases the GIL and makes one LAPACK call per matrix, so the split changes no bit."""
    chunks = np.array_split(matrices, max(1, min(threads(), 4, len(matrices) // 20_000)))
    if len(chunks) == 1:
        return np.linalg.eigh(matrices)[1]
    with ThreadPoolExecutor(len(chunks)) as pool:
        return np.concatenate(list(pool.map(lambda chunk: np.linalg.eigh(chunk)[1], chunks)))


@njit(**_JIT)
def umbrella_normals(offsets, angle, order, pca):
    """(N, 3) float64 mean unit normal of the triangles (p, q_j, q_j+1), neighbours in ``order``
    (ascending ``angle``), leaving out triangles across a gap of 180 degrees or more; ``pca`` where no
    triangle is left. numpy's order of operations: np.cross, then sqrt((x^2 + y^2) + z^2), then the
    unit normals summed from the first."""
    n, k = order.shape
    out = np.empty((n, 3))
    two_pi = 2 * np.pi
    for i in range(n):
        count = 0
        total = np.zeros(3)
        for j in range(k):
            a, b = order[i, j], order[i, (j + 1) % k]
            ax, ay, az = offsets[i, a, 0], offsets[i, a, 1], offsets[i, a, 2]
            bx, by, bz = offsets[i, b, 0], offsets[i, b, 1], offsets[i, b, 2]
            cx = ay * bz - az * by
            cy = az * bx - ax * bz
            cz = ax * by - ay * bx
            length = np.sqrt((cx * cx + cy * cy) + cz * cz)
            valid = (angle[i, b] - angle[i, a]) % two_pi < np.pi and length > 0
            scale = length if valid else 1.0
            keep = 1.0 if valid else 0.0
            count += valid
            unit = (cx / scale * keep, cy / scale * keep, cz / scale * keep)
            for d in range(3):
                total[d] = unit[d] if j == 0 else total[d] + unit[d]
        for d in range(3):
            out[i, d] = total[d] / max(count, 1) if count > 0 else pca[i, d]
    return out


def estimate_normals(coord, neighbours, viewpoint=None) -> np.ndarray:
    """Point-cloud stand-in for the Segmentator's vertex normal; (N, 3) float32.

    coord: (N, 3); neighbours: (N, k) indices. The Segmentator averages the unit normals of
    the faces around a vertex without renormalising, so its normal is shorter where the
    surface bends or is noisy, which raises the weights there. We average the unit normals
    of an umbrella of triangles (p, q_i, q_i+1) over the neighbours in angular order around
    the PCA normal, leaving out triangles across a gap wider than 180 degrees. PCA normals
    have no sign, and a flip would make ``1 - n_a . n_b`` close to 2: :func:`_orient` makes
    them consistent, facing ``viewpoint`` (default: the bounding-box centre, right for a
    room scanned from inside; pass the sensor position for a single view). That side also
    sets which edges count as convex.
    """
    coord = np.asarray(coord, np.float64)
    neighbours = np.asarray(neighbours)
    if neighbours.ndim != 2 or len(neighbours) != len(coord) or neighbours.dtype.kind not in "iu":
        raise DataError(f"neighbours: expected ({len(coord)}, k) integer indices, got {neighbours.dtype} "
                        f"with shape {neighbours.shape}")
    if neighbours.size and (neighbours.min() < 0 or neighbours.max() >= len(coord)):
        raise DataError(f"neighbours: indices must lie in 0..{len(coord) - 1}")
    offsets, centred = neighbour_offsets(coord, neighbours)  # (N, k, 3) each
    eigvec = _eigenvectors(np.einsum("nki,nkj->nij", centred, centred))  # (N, 3, 3)
    if viewpoint is None:
        viewpoint = (coord.min(axis=0) + coord.max(axis=0)) / 2
    pca = _orient(coord, neighbours, eigvec[:, :, 0], np.asarray(viewpoint, np.float64))
    tangent = np.cross(pca, np.where(np.abs(pca[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    angle = np.arctan2(np.einsum("nkj,nj->nk", offsets, np.cross(pca, tangent)),
                       np.einsum("nkj,nj->nk", offsets, tangent))  # (N, k) around pca
    return umbrella_normals(offsets, angle, np.argsort(angle, axis=1), pca).astype(np.float32)
