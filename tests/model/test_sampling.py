"""Tests for lassm.model.sampling against slow loop and brute-force references (REFERENCE_SPEC 6.2, 6.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lassm.model import sampling
from lassm.model.sampling import farthest_point_sampling, knn

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ----------------------------------------------------------------------------- slow references
def _slow_fps(points: np.ndarray, num_samples: int, start: int = 0) -> list[int]:
    """D-FPS one point at a time: float64 squared distances, the first maximum wins."""
    pts = points.astype(np.float64).tolist()
    min_d = [float("inf")] * len(pts)
    chosen = [start]
    for _ in range(num_samples - 1):
        c = pts[chosen[-1]]
        best, best_d = -1, -1.0
        for j, p in enumerate(pts):
            d = (p[0] - c[0]) ** 2 + (p[1] - c[1]) ** 2 + (p[2] - c[2]) ** 2
            min_d[j] = min(min_d[j], d)
            if min_d[j] > best_d:  # strict: an equal later value never replaces the first maximum
                best, best_d = j, min_d[j]
        chosen.append(best)
    return chosen


def _brute_knn(query: np.ndarray, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Full distance matrix, stable argsort, pad with index S and +inf."""
    q = query[:, None, :]
    p = points[None, :, :]
    d = (q[..., 0] - p[..., 0]) ** 2 + (q[..., 1] - p[..., 1]) ** 2 + (q[..., 2] - p[..., 2]) ** 2
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    idx = np.full((len(query), k), len(points), dtype=np.int64)
    dist = np.full((len(query), k), np.inf, dtype=d.dtype)
    idx[:, : order.shape[1]] = order
    dist[:, : order.shape[1]] = np.take_along_axis(d, order, axis=1)
    return idx, dist


def _grid_points(n: int, seed: int) -> torch.Tensor:
    """Integer grid points in a 4^3 box: many exact distance ties and duplicates."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, (n, 3), generator=g).to(torch.float32)


# ----------------------------------------------------------------------------- D-FPS
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fps_matches_slow_loop_on_random_points(device: str, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(300, 3, generator=g) * 5.0
    got = farthest_point_sampling(points.to(device), 60)
    assert got.dtype == torch.int64 and got.shape == (60,) and got.device.type == device
    assert got.tolist() == _slow_fps(points.numpy(), 60)
    assert len(set(got.tolist())) == 60  # distinct points give distinct samples


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fps_matches_slow_loop_with_ties_and_duplicates(seed: int) -> None:
    points = _grid_points(120, seed)  # 64 cells for 120 points: duplicates and equal distances
    got = farthest_point_sampling(points, 100)
    assert got.tolist() == _slow_fps(points.numpy(), 100)
    # Once the 64-cell grid is exhausted every distance is 0 and the first maximum is index 0.
    assert got.tolist()[-1] == 0


def test_fps_start_and_first_max_tie_rule() -> None:
    # From the origin, points 1 and 2 are equally far; the first maximum (index 1) must win.
    points = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0]])
    assert farthest_point_sampling(points, 3).tolist() == [0, 1, 2]
    assert farthest_point_sampling(points, 2, start=3).tolist() == [3, 0]
    assert farthest_point_sampling(points, 4, start=2).tolist() == _slow_fps(points.numpy(), 4, start=2)


def test_fps_uses_float64_distances() -> None:
    # Exact squared distances from the origin: 4096^2 + 64^2 + 64^2 = 16785408 < 4097^2 = 16785409, but
    # float32 rounds 16785409 to 16785408, so float32 arithmetic would tie and take index 1 first.
    points = torch.tensor([[0.0, 0.0, 0.0], [4096.0, 64.0, 64.0], [4097.0, 0.0, 0.0]], dtype=torch.float32)
    assert farthest_point_sampling(points, 2).tolist() == [0, 2]


def test_fps_bad_arguments() -> None:
    points = torch.rand(5, 3)
    with pytest.raises(ValueError, match="num_samples"):
        farthest_point_sampling(points, 6)
    with pytest.raises(ValueError, match="num_samples"):
        farthest_point_sampling(points, 0)
    with pytest.raises(ValueError, match="num_samples"):
        farthest_point_sampling(points, -2)
    with pytest.raises(ValueError, match="start"):
        farthest_point_sampling(points, 2, start=5)
    with pytest.raises(ValueError, match="points must have shape"):
        farthest_point_sampling(torch.rand(5, 2), 2)
    with pytest.raises(ValueError, match="num_samples"):
        farthest_point_sampling(torch.zeros(0, 3), 1)


# ----------------------------------------------------------------------------- kNN
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1, 8, 20])
def test_knn_matches_brute_force(device: str, k: int) -> None:
    g = torch.Generator().manual_seed(k)
    query = torch.rand(50, 3, generator=g) * 4.0
    points = torch.rand(70, 3, generator=g) * 4.0
    idx, dist2 = knn(query.to(device), points.to(device), k)
    ref_idx, ref_dist = _brute_knn(query.numpy(), points.numpy(), k)
    assert idx.dtype == torch.int64 and idx.shape == (50, k) and dist2.shape == (50, k)
    np.testing.assert_array_equal(idx.cpu().numpy(), ref_idx)
    np.testing.assert_allclose(dist2.cpu().numpy(), ref_dist, rtol=1e-6, atol=1e-6)
    assert bool((dist2[:, 1:] >= dist2[:, :-1]).all())  # ascending


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_knn_ties_lower_index_first(seed: int) -> None:
    query = _grid_points(40, seed + 100)
    points = _grid_points(90, seed)  # integer coordinates: exact distances, many ties and duplicates
    idx, dist2 = knn(query, points, 8)
    ref_idx, ref_dist = _brute_knn(query.numpy(), points.numpy(), 8)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    np.testing.assert_array_equal(dist2.numpy(), ref_dist)


def test_knn_pads_small_scenes() -> None:
    query = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    points = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.5], [2.0, 0.0, 0.0]])
    idx, dist2 = knn(query, points, 5)
    assert idx.tolist() == [[1, 0, 2, 3, 3], [2, 0, 1, 3, 3]]
    assert dist2[:, :3].tolist() == [[0.25, 1.0, 4.0], [1.0, 4.0, 9.25]]
    assert bool(torch.isinf(dist2[:, 3:]).all())
    ref_idx, _ = _brute_knn(query.numpy(), points.numpy(), 5)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)


def test_knn_empty_inputs() -> None:
    idx, dist2 = knn(torch.rand(4, 3), torch.zeros(0, 3), 3)
    assert idx.tolist() == [[0, 0, 0]] * 4
    assert bool(torch.isinf(dist2).all())
    idx, dist2 = knn(torch.zeros(0, 3), torch.rand(6, 3), 3)
    assert idx.shape == (0, 3) and dist2.shape == (0, 3)


@pytest.mark.parametrize("chunk_elements", [1, 7, 70, 71, 10**6])
def test_knn_chunking_is_invisible(chunk_elements: int, monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(5)
    query = torch.cat([torch.rand(23, 3, generator=g), _grid_points(10, 3)])  # ties across chunk borders
    points = torch.cat([torch.rand(60, 3, generator=g), _grid_points(10, 4)])  # S = 70
    ref_idx, ref_dist = knn(query, points, 8, chunk_elements=10**9)
    idx, dist2 = knn(query, points, 8, chunk_elements=chunk_elements)
    assert torch.equal(idx, ref_idx) and torch.equal(dist2, ref_dist)
    # The module constant is the default chunk size.
    monkeypatch.setattr(sampling, "KNN_CHUNK_ELEMENTS", chunk_elements)
    idx, dist2 = knn(query, points, 8)
    assert torch.equal(idx, ref_idx) and torch.equal(dist2, ref_dist)
    np.testing.assert_array_equal(idx.numpy(), _brute_knn(query.numpy(), points.numpy(), 8)[0])


def test_knn_bad_arguments() -> None:
    query, points = torch.rand(4, 3), torch.rand(6, 3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        knn(query, points, 0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        knn(query, points, -1)
    with pytest.raises(ValueError, match="query must have shape"):
        knn(torch.rand(4, 2), points, 2)
    with pytest.raises(ValueError, match="points must have shape"):
        knn(query, torch.rand(6), 2)
    with pytest.raises(ValueError, match="points must be a floating-point"):
        knn(query, torch.ones(6, 3, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match="chunk_elements"):
        knn(query, points, 2, chunk_elements=0)
