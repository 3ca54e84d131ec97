"""Point-cloud normals: the numba spanning forest against scipy's, and estimate_normals against the
numpy + scipy code it replaced, bit for bit, on clouds and graphs full of ties."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree

from lassm.data.io import DataError
from lassm.data.normals import (
    estimate_normals,
    knn_neighbours,
    neighbour_offsets,
    spanning_forest,
    spanning_forest_reference,
    umbrella_normals,
)

# ----------------------------------------------------------------------------- the replaced code


def orient_numpy(coord, neighbours, normals, viewpoint):
    """Signs along scipy's minimum spanning tree, breadth-first from each piece's lowest index."""
    rows = np.repeat(np.arange(len(coord)), neighbours.shape[1])
    cols = neighbours.ravel()
    cost = 1.0 - np.abs(np.einsum("ij,ij->i", normals[rows], normals[cols])) + 1e-6
    tree = minimum_spanning_tree(coo_matrix((cost, (rows, cols)), shape=(len(coord),) * 2))
    tree = (tree + tree.T).tocsr()
    sign, piece, n_pieces = np.zeros(len(coord)), np.empty(len(coord), np.int64), 0
    for root in range(len(coord)):
        if sign[root] != 0:
            continue
        sign[root], piece[root], queue = 1, n_pieces, deque([root])
        while queue:
            u = queue.popleft()
            for v in tree.indices[tree.indptr[u]:tree.indptr[u + 1]]:
                if sign[v] == 0:
                    dot = normals[u, 0] * normals[v, 0] + normals[u, 1] * normals[v, 1]
                    dot += normals[u, 2] * normals[v, 2]
                    sign[v], piece[v] = (sign[u] if dot >= 0 else -sign[u]), n_pieces
                    queue.append(v)
        n_pieces += 1
    normals = normals * sign[:, None]
    vote = np.bincount(piece, weights=np.sign(np.einsum("ij,ij->i", normals, viewpoint - coord)))
    return np.where(vote[piece, None] < 0, -normals, normals)


def estimate_normals_numpy(coord, neighbours, viewpoint=None):
    coord = np.asarray(coord, np.float64)
    offsets = coord[neighbours] - coord[:, None]
    centred = offsets - offsets.mean(axis=1, keepdims=True)
    _, eigvec = np.linalg.eigh(np.einsum("nki,nkj->nij", centred, centred))
    if viewpoint is None:
        viewpoint = (coord.min(axis=0) + coord.max(axis=0)) / 2
    pca = orient_numpy(coord, neighbours, eigvec[:, :, 0], np.asarray(viewpoint, np.float64))
    tangent = np.cross(pca, np.where(np.abs(pca[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    angle = np.arctan2(np.einsum("nkj,nj->nk", offsets, np.cross(pca, tangent)),
                       np.einsum("nkj,nj->nk", offsets, tangent))
    return umbrella_numpy(offsets, angle, pca).astype(np.float32)


def umbrella_numpy(offsets, angle, pca):
    order = np.argsort(angle, axis=1)
    offsets = np.take_along_axis(offsets, order[:, :, None], axis=1)
    angle = np.take_along_axis(angle, order, axis=1)
    cross = np.cross(offsets, np.roll(offsets, -1, axis=1))
    length = np.linalg.norm(cross, axis=2)
    valid = ((np.roll(angle, -1, axis=1) - angle) % (2 * np.pi) < np.pi) & (length > 0)
    unit = cross / np.where(valid, length, 1)[:, :, None] * valid[:, :, None]
    count = valid.sum(axis=1, keepdims=True)
    return np.where(count > 0, unit.sum(axis=1) / np.maximum(count, 1), pca)


# ----------------------------------------------------------------------------- clouds


def grid_box(n=24, spacing=0.02):
    """Three noise-free square grids meeting at a corner: equal costs and angles everywhere."""
    g = np.stack(np.meshgrid(np.arange(n), np.arange(n), [0.0], indexing="ij"), -1).reshape(-1, 3)
    g = g * spacing
    return np.concatenate([g, g[:, [0, 2, 1]] + [0, 0, spacing / 2], g[:, [2, 0, 1]]])


def clouds():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(2000, 3))
    yield "sphere", (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32), None
    yield "grid box", grid_box().astype(np.float32), None
    yield "grid box seen from above", grid_box().astype(np.float32), np.array([0.2, 0.3, 2.0])
    noisy = grid_box() + rng.normal(0, 0.002, (len(grid_box()), 3))
    noisy = np.concatenate([noisy, noisy[::7], noisy[::11]])  # exact duplicates: zero offsets
    yield "noisy box with duplicates", noisy.astype(np.float32), None
    far = grid_box(10) + 5.0  # a second piece of the kNN graph
    yield "two pieces", np.concatenate([grid_box(12), far]).astype(np.float32), None


@pytest.mark.parametrize("k", [8, 13])
def test_estimate_normals_bitwise_as_numpy(k):
    for name, coord, viewpoint in clouds():
        neighbours = knn_neighbours(coord, k)
        new = estimate_normals(coord, neighbours, viewpoint)
        old = estimate_normals_numpy(coord, neighbours, viewpoint)
        assert new.dtype == old.dtype == np.float32 and new.tobytes() == old.tobytes(), name


@pytest.mark.parametrize("k", [3, 8, 9, 16])
def test_kernels_bitwise_as_numpy(k):
    """In float64, before the float32 rounding could hide a last-bit difference."""
    rng = np.random.default_rng(k)
    coord = rng.normal(size=(20000, 3)) * rng.uniform(0.01, 10, (20000, 1))
    neighbours = knn_neighbours(coord, k)
    offsets, centred = neighbour_offsets(coord, neighbours)
    expected = coord[neighbours] - coord[:, None]
    assert offsets.tobytes() == expected.tobytes()
    assert centred.tobytes() == (expected - expected.mean(axis=1, keepdims=True)).tobytes()
    angle = rng.uniform(-np.pi, np.pi, neighbours.shape)
    angle[::3, 1] = angle[::3, 0]  # ties
    angle[::4, -1] = angle[::4, 0] + np.pi  # gaps of exactly 180 degrees
    offsets[::5, 0] = 0  # duplicates of the point: empty triangles
    offsets[::7] = 0  # no triangle left: the PCA normal
    pca = rng.normal(size=(len(coord), 3))
    fast = umbrella_normals(offsets, angle, np.argsort(angle, axis=1), pca)
    assert fast.tobytes() == umbrella_numpy(offsets, angle, pca).tobytes()


@pytest.mark.parametrize("levels", [2, 40, None])
def test_spanning_forest_as_scipy(levels):
    rng = np.random.default_rng(levels or 0)
    coord = np.concatenate([rng.random((500, 3)), rng.random((60, 3)) + 4.0])  # two pieces
    neighbours = knn_neighbours(coord, 6)
    cost = rng.random(neighbours.size)
    if levels:  # few distinct costs: long runs of ties
        cost = np.round(cost * levels) / levels + 1e-6
    cost[rng.random(len(cost)) < 0.03] = np.nan
    rows = np.repeat(np.arange(len(coord)), 6)
    fast = spanning_forest(neighbours, cost)
    reference = spanning_forest_reference(len(coord), rows, neighbours.ravel(), cost)
    assert len(fast) == len(reference) == len(coord) - 2

    def edges(forest):
        return set(map(tuple, np.sort(forest, axis=1).tolist()))

    assert edges(fast) == edges(reference)


def test_repeated_neighbours_and_bad_indices():
    coord = grid_box(8).astype(np.float32)
    neighbours = knn_neighbours(coord, 6)
    neighbours[::5, 1] = neighbours[::5, 0]  # scipy sums a repeated edge's costs: its own path
    new, old = estimate_normals(coord, neighbours), estimate_normals_numpy(coord, neighbours)
    assert new.tobytes() == old.tobytes()
    with pytest.raises(DataError, match="neighbours"):
        estimate_normals(coord, neighbours + len(coord))
    with pytest.raises(DataError, match="neighbours"):
        estimate_normals(coord, neighbours[:-1])
