"""Tensor transforms on point batches: grid sampling and feature assembly (REFERENCE_SPEC 3).

Grows with the training pipeline (issue 5); for now the deterministic voxelizer used by the
benchmarks and the golden data.
"""

from __future__ import annotations

import torch


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
