"""Kernel maps in pure PyTorch (sort + binary search), built on the coordinates' device.

A convolution's map is a list of (input voxel, output voxel, kernel offset k) pairs,
:class:`KernelPairs`, stored offset-major so that each offset's pairs form one slice (one GEMM
each), plus the two groupings that sum them: by output (forward) and by input (backward).

* :func:`build_subm_map`: submanifold convolution, output voxels = input voxels; the input of
  output ``v`` under offset k is the voxel at ``v + o_k``, offsets ``-r..r`` per axis with z
  varying fastest (the flattening order of spconv's ``(out, kx, ky, kz, in)`` weights). On the
  CPU the same pairs come from :mod:`lassm.sparse.cpu_index` (merging and counting, 4x faster).
* :func:`build_down_map`: kernel-2 stride-2 convolution; each voxel has one parent at
  ``coord // 2`` and sits in its slot ``k = 4 (x % 2) + 2 (y % 2) + z % 2``. The inverse
  convolution reads the same pairs backwards (output to input).

Both follow spconv 2.x exactly (tests compare with spconv's CPU build): the output grid of a
stride-2 convolution has ``(s - 2) // 2 + 1`` cells per axis, so on an odd-sized grid the last
layer of voxels has no parent; it is dropped and the inverse convolution gives it zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import torch

from . import cpu_index
from .tensor import linear_keys, unravel_keys


@dataclass
class KernelPairs:
    in_idx: torch.Tensor  # (P,) int64 input voxel of each pair, offset-major
    out_idx: torch.Tensor  # (P,) int64 output voxel of each pair
    counts: list[int]  # pairs per kernel offset (K entries); slices of in_idx / out_idx
    by_out: torch.Tensor  # (P,) pair order grouped by output voxel
    out_offsets: torch.Tensor  # (n_out + 1,) group boundaries in by_out
    by_in: torch.Tensor  # (P,) pair order grouped by input voxel
    in_offsets: torch.Tensor  # (n_in + 1,)
    n_in: int
    n_out: int
    identity_offset: int = -1  # offset whose pairs are (v, v) for every voxel in order, if any
    cache: dict = field(default_factory=dict)  # derived index arrays, built on first use


def make_pairs(in_idx: torch.Tensor, out_idx: torch.Tensor, k: torch.Tensor, volume: int,
               n_in: int, n_out: int) -> KernelPairs:
    """Sort (in, out, k) triples offset-major and precompute both groupings."""
    order = torch.argsort(k, stable=True)
    in_idx, out_idx = in_idx[order].long(), out_idx[order].long()
    counts = torch.bincount(k, minlength=volume).tolist()
    by_out, out_offsets = _grouping(out_idx, n_out)
    by_in, in_offsets = _grouping(in_idx, n_in)
    return KernelPairs(in_idx, out_idx, counts, by_out, out_offsets, by_in, in_offsets, n_in, n_out)


def _grouping(index: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.argsort(index, stable=True)
    offsets = index.new_zeros(n + 1)
    offsets[1:] = torch.cumsum(torch.bincount(index, minlength=n), 0)
    return order, offsets


@dataclass
class SubmMap:
    pairs: KernelPairs
    kernel_size: int
    spatial_shape: tuple[int, int, int]


@dataclass
class DownMap:
    pairs: KernelPairs  # fine -> coarse
    out_coords: torch.Tensor  # (M, 4) int32 coarse coordinates, sorted by (batch, x, y, z)
    in_coords: torch.Tensor  # (N, 4) int32 fine coordinates (where the inverse conv writes)
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]


def kernel_offsets(kernel_size: int, device=None) -> torch.Tensor:
    """(K, 3) offsets of an odd cubic kernel in weight-flattening order (z fastest)."""
    r = kernel_size // 2
    steps = range(-r, r + 1)
    return torch.tensor(list(product(steps, steps, steps)), dtype=torch.int64, device=device)


def neighbour_table(coords: torch.Tensor, spatial_shape, kernel_size: int) -> torch.Tensor:
    """(N, K) row of the voxel at ``coord + o_k`` for each voxel and offset; N where empty."""
    n = coords.shape[0]
    r = kernel_size // 2
    keys = linear_keys(coords, spatial_shape, pad=r)  # (N,)
    sorted_keys, order = torch.sort(keys)
    sx, sy, sz = (s + 2 * r for s in spatial_shape)
    offsets = kernel_offsets(kernel_size, coords.device)
    deltas = (offsets[:, 0] * sy + offsets[:, 1]) * sz + offsets[:, 2]  # (K,) key offsets
    query = keys.view(n, 1) + deltas.view(1, -1)  # (N, K)
    pos = torch.searchsorted(sorted_keys, query).clamp_(max=n - 1)
    return torch.where(sorted_keys[pos] == query, order[pos], n)


def build_subm_map(coords: torch.Tensor, spatial_shape, kernel_size: int) -> SubmMap:
    """Pairs of a submanifold convolution with an odd cubic kernel."""
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size: a submanifold kernel must be odd, got {kernel_size}")
    n = coords.shape[0]
    if coords.device.type == "cpu" and cpu_index.ENABLED:  # the same pairs, by merging and counting
        in_idx, out_idx, counts, by_out, out_offsets, by_in, in_offsets = cpu_index.subm_pairs(
            cpu_index.neighbour_table(coords, spatial_shape, kernel_size))
        pairs = KernelPairs(in_idx, out_idx, counts, by_out, out_offsets, by_in, in_offsets, n, n)
    else:
        table = neighbour_table(coords, spatial_shape, kernel_size).t()  # (K, N)
        found = table < n
        k, out_idx = torch.nonzero(found, as_tuple=True)  # offset-major already
        pairs = make_pairs(table[found], out_idx, k, kernel_size ** 3, n, n)
    pairs.identity_offset = kernel_size ** 3 // 2  # the zero offset: each voxel is its own neighbour
    return SubmMap(pairs, kernel_size, tuple(spatial_shape))


def build_down_map(coords: torch.Tensor, spatial_shape) -> DownMap:
    """Pairs of a kernel-2 stride-2 convolution on spconv's output grid."""
    n = coords.shape[0]
    out_shape = tuple((s - 2) // 2 + 1 for s in spatial_shape)
    if min(out_shape) < 1:
        raise ValueError(f"spatial_shape {tuple(spatial_shape)} is too small to downsample by 2")
    parent = coords.clone()
    parent[:, 1:] = torch.div(parent[:, 1:], 2, rounding_mode="floor")
    bound = torch.tensor(out_shape, device=coords.device, dtype=coords.dtype)
    kept = torch.nonzero((parent[:, 1:] < bound).all(1)).flatten()
    uniq, parent_idx = torch.unique(linear_keys(parent[kept], out_shape), return_inverse=True)
    fine = coords[kept]
    k = ((fine[:, 1] & 1) * 4 + (fine[:, 2] & 1) * 2 + (fine[:, 3] & 1)).long()
    pairs = make_pairs(kept, parent_idx, k, 8, n, uniq.shape[0])
    return DownMap(pairs, unravel_keys(uniq, out_shape), coords, tuple(spatial_shape), out_shape)
