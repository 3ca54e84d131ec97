"""Grid sampling (voxelization) of a scene's points (REFERENCE_SPEC 3.1).

:func:`grid_sample_first` is the deterministic voxelizer of the benchmarks and the golden data (the first
point of each voxel); :func:`grid_sample_train` is the reference's training/validation sampler (one random
point per voxel, voxels in FNV-hash order), a step of the :mod:`lassm.augment` pipelines.
"""

from __future__ import annotations

import torch

Scene = dict[str, torch.Tensor]


def grid_sample_first(coord: torch.Tensor, grid_size: float = 0.02, return_inverse: bool = False):
    """Voxelize keeping the first point of each voxel, voxels in lexicographic (x, y, z) order.

    coord: (N, 3) metres. The grid is ``floor((coord - min) / grid_size)``, as the reference's
    ScanNet sampler computes it (spec 3.1). Returns ``grid_coord`` (M, 3) int64 and
    ``keep`` (M,) the index of each voxel's representative point, and with ``return_inverse``
    also ``inverse`` (N,) the voxel of every point. This is the deterministic sampling the
    golden data and the benchmark timings were made with.
    """
    if coord.dim() != 2 or coord.shape[1] != 3 or coord.shape[0] == 0:
        raise ValueError(f"coord: expected a non-empty (N, 3) tensor, got {tuple(coord.shape)}")
    if grid_size <= 0:
        raise ValueError(f"grid_size: expected > 0, got {grid_size}")
    grid = torch.floor((coord - coord.min(0).values) / grid_size).long()
    _, inverse = torch.unique(grid, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), coord.shape[0], dtype=torch.long, device=coord.device)
    first.scatter_reduce_(0, inverse, torch.arange(coord.shape[0], device=coord.device), reduce="amin")
    if return_inverse:
        return grid[first], first, inverse
    return grid[first], first


FNV_OFFSET = 14695981039346656037 - 2**64  # the FNV-64 offset basis as a signed int64
FNV_PRIME = 1099511628211


def fnv_hash(grid: torch.Tensor) -> torch.Tensor:
    """64-bit FNV variant of the reference (3.1 step 2): h = h x prime (mod 2^64), then h ^= a, per axis.

    grid (N, 3) non-negative int64 -> (N,) int64 holding the unsigned hash's bits (int64 products wrap)."""
    h = torch.full(grid.shape[:1], FNV_OFFSET, dtype=torch.int64, device=grid.device)
    for a in range(grid.shape[1]):
        h = (h * FNV_PRIME) ^ grid[:, a]
    return h


def _below(counts: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(M,) one random integer in 0..counts-1 per entry. On the CPU randint(max) % count, as always; on a
    GPU floor(U(0, 1) x count), which needs no host round trip for the maximum (another random stream)."""
    if counts.device.type == "cpu":
        return torch.randint(int(counts.max()), counts.shape, generator=g) % counts
    return (torch.rand(counts.shape, generator=g, device=counts.device, dtype=torch.float64) * counts).long()


def grid_sample_train(scene: Scene, g: torch.Generator, grid_size: float = 0.02,
                      from_elastic: bool = True) -> Scene:
    """CustomGridSampleT / GridSampleT in "train" mode (3.1), also used for validation (11.1.7).

    The grid is floor(elastic_coord - min) when ``from_elastic`` (ScanNet, ScanNet++: voxel units,
    11.1.8) else floor(coord / grid_size) - min (ScanNet200). Voxels are ordered by ascending
    unsigned FNV hash; each keeps one random point of its own. Writes voxel-level coord, color,
    segment, instance, ``grid_coord`` (M, 3) int64 and the point -> voxel ``inverse`` (N,).
    """
    if from_elastic:
        if "elastic_coord" not in scene:
            raise ValueError("scene: expected 'elastic_coord' (run custom_elastic_distortion first)")
        x = scene["elastic_coord"]
        grid = torch.floor(x - x.min(0).values).long()
    else:
        grid = torch.floor(scene["coord"] / grid_size).long()
        grid = grid - grid.min(0).values  # (N, 3)
    key = fnv_hash(grid) ^ torch.iinfo(torch.int64).min  # flip the sign bit: signed order = unsigned order
    order = torch.argsort(key, stable=True)  # (N,) points sorted by voxel hash
    _, inverse_sorted, counts = torch.unique_consecutive(key[order], return_inverse=True, return_counts=True)
    inverse = torch.empty_like(inverse_sorted)
    inverse[order] = inverse_sorted  # (N,) voxel of every point
    start = torch.cumsum(counts, 0) - counts  # (M,) first sorted position of each voxel
    pick = order[start + _below(counts, g)]  # (M,) representative point of each voxel
    for k in ("coord", "color", "segment", "instance"):
        if k in scene:
            scene[k] = scene[k][pick]
    scene["grid_coord"] = grid[pick]
    scene["inverse"] = inverse
    return scene
