"""The CPU path's index work in numba: the same integers as the PyTorch code, in O(N) passes.

On the CPU, building the kernel maps took longer than some of the convolutions that use them
(issue 22: 0.37 s of a 2.1 s backbone on a 250k-voxel room), mostly ``searchsorted`` of 27
queries per voxel and three stable argsorts of the pairs. Here the same arrays come from passes
over sorted data:

* :func:`neighbour_table`: the voxel keys are sorted once; the keys ``key + o_k`` of one kernel
  row (fixed x, y offset, z running) are consecutive integers, so one merge walk over the sorted
  keys per row finds all of them. Same table as :func:`lassm.sparse.kernel_map.neighbour_table`.
* :func:`subm_pairs`: the pairs of a submanifold map, offset-major, with the groupings by output
  and by input, by counting instead of sorting. Same arrays as ``make_pairs`` on the table.
* :func:`block_plan`: the layout of :func:`lassm.sparse.gather_gemm.conv_blocked` (which rows
  each block of output voxels gathers, how many per offset, and where each pair's product lands).

Each is compared with its PyTorch reference in tests/sparse/test_cpu_index.py. ``ENABLED = False``
makes the CPU use the PyTorch code throughout (same results, slower).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from numba import njit

from .tensor import linear_keys

ENABLED = True  # numba index work and blocked convolutions on the CPU; False: the PyTorch reference
_JIT = dict(cache=True, nogil=True)


# ------------------------------------------------------------------------------- neighbours


def neighbour_table(coords: torch.Tensor, spatial_shape, kernel_size: int) -> torch.Tensor:
    """(N, K) int64 row of the voxel at ``coord + o_k`` for each voxel and offset; N where empty."""
    r = kernel_size // 2
    keys = linear_keys(coords, spatial_shape, pad=r)  # (N,)
    sorted_keys, order = torch.sort(keys)
    _, sy, sz = (s + 2 * r for s in spatial_shape)
    return torch.from_numpy(_merge_neighbours(sorted_keys.numpy(), order.numpy(), r, sy, sz))


@njit(**_JIT)
def _merge_neighbours(sorted_keys, order, r, sy, sz):
    n = sorted_keys.shape[0]
    side = 2 * r + 1
    table = np.full((n, side ** 3), n, np.int64)
    for dx in range(-r, r + 1):
        for dy in range(-r, r + 1):
            row = ((dx + r) * side + dy + r) * side  # k of (dx, dy, -r); z varies fastest
            shift = (dx * sy + dy) * sz - r  # key of (dx, dy, -r) relative to the voxel
            j = 0
            for i in range(n):  # queries ascend with the sorted keys: j only moves forward
                first = sorted_keys[i] + shift
                while j < n and sorted_keys[j] < first:
                    j += 1
                p = j
                for dz in range(side):
                    while p < n and sorted_keys[p] < first + dz:
                        p += 1
                    if p < n and sorted_keys[p] == first + dz:
                        table[order[i], row + dz] = order[p]
    return table


@njit(**_JIT)
def _subm_pairs(table):
    n, volume = table.shape
    counts = np.zeros(volume, np.int64)
    in_counts = np.zeros(n + 1, np.int64)
    for o in range(n):
        for k in range(volume):
            i = table[o, k]
            if i < n:
                counts[k] += 1
                in_counts[i + 1] += 1
    starts = np.zeros(volume, np.int64)  # first pair of each offset (offset-major)
    for k in range(1, volume):
        starts[k] = starts[k - 1] + counts[k - 1]
    total = starts[volume - 1] + counts[volume - 1]
    in_idx = np.empty(total, np.int64)
    out_idx = np.empty(total, np.int64)
    by_out = np.empty(total, np.int64)
    out_offsets = np.zeros(n + 1, np.int64)
    j = 0
    for o in range(n):  # outputs ascending, offsets ascending: the by-output order
        for k in range(volume):
            i = table[o, k]
            if i < n:
                p = starts[k]
                starts[k] += 1
                in_idx[p] = i
                out_idx[p] = o
                by_out[j] = p
                j += 1
        out_offsets[o + 1] = j
    in_offsets = np.cumsum(in_counts)
    fill = in_offsets[:-1].copy()
    by_in = np.empty(total, np.int64)
    for p in range(total):  # a stable counting sort by input
        by_in[fill[in_idx[p]]] = p
        fill[in_idx[p]] += 1
    return in_idx, out_idx, counts, by_out, out_offsets, by_in, in_offsets


def subm_pairs(table: torch.Tensor) -> tuple:
    """Submanifold pairs of an (N, K) neighbour table: ``(in_idx, out_idx, counts, by_out, out_offsets,
    by_in, in_offsets)`` as ``make_pairs`` sorts them (counts a list)."""
    arrays = [torch.from_numpy(a) for a in _subm_pairs(table.numpy())]
    arrays[2] = arrays[2].tolist()
    return tuple(arrays)


# ------------------------------------------------------------------------------- block plan


@njit(**_JIT)
def _block_plan(src, counts, order, offsets, block_pairs, small):
    volume = counts.shape[0]
    total = offsets[-1]
    n = offsets.shape[0] - 1
    # blocks of whole groups, each at least block_pairs pairs (the last takes the remainder)
    cut = np.zeros(n + 1, np.bool_)
    size = 0
    for g in range(n):
        size += offsets[g + 1] - offsets[g]
        if size >= block_pairs and total - offsets[g + 1] >= block_pairs:
            cut[g + 1] = True
            size = 0
    cut[0] = cut[n] = True
    bounds = np.nonzero(cut)[0]
    blocks = bounds.shape[0] - 1
    block_of_pair = np.empty(total, np.int64)
    for b in range(blocks):
        for j in range(offsets[bounds[b]], offsets[bounds[b + 1]]):
            block_of_pair[order[j]] = b
    k_of_pair = np.empty(total, np.int64)
    p = 0
    for k in range(volume):
        for _ in range(counts[k]):
            k_of_pair[p] = k
            p += 1
    # rows of a block: its pairs of offsets with >= small pairs, offset-major, then those of the rest
    pieces = np.zeros((blocks, volume), np.int64)
    tiny_rows = np.zeros(blocks, np.int64)
    for p in range(total):
        k = k_of_pair[p]
        if counts[k] >= small:
            pieces[block_of_pair[p], k] += 1
        else:
            tiny_rows[block_of_pair[p]] += 1
    gathered = np.zeros(blocks, np.int64)
    fill = np.empty((blocks, volume), np.int64)  # next row of each piece
    for b in range(blocks):
        for k in range(volume):
            fill[b, k] = gathered[b]
            gathered[b] += pieces[b, k]
    gather_start = np.zeros(blocks + 1, np.int64)
    tiny_start = np.zeros(blocks + 1, np.int64)
    for b in range(blocks):
        gather_start[b + 1] = gather_start[b] + gathered[b]
        tiny_start[b + 1] = tiny_start[b] + tiny_rows[b]
    tiny_fill = np.zeros(blocks, np.int64)
    row_of_pair = np.empty(total, np.int64)  # the pair's row in its block's product buffer
    gather_src = np.empty(gather_start[blocks], np.int64)  # source voxel of each gathered row
    tiny_pair = np.empty(tiny_start[blocks], np.int64)  # rank among the tiny offsets' pairs
    tiny_rank = 0
    for p in range(total):  # offset-major, so each piece keeps the pairs' order
        b, k = block_of_pair[p], k_of_pair[p]
        if counts[k] >= small:
            row_of_pair[p] = fill[b, k]
            gather_src[gather_start[b] + fill[b, k]] = src[p]
            fill[b, k] += 1
        else:
            row_of_pair[p] = gathered[b] + tiny_fill[b]
            tiny_pair[tiny_start[b] + tiny_fill[b]] = tiny_rank
            tiny_fill[b] += 1
            tiny_rank += 1
    local = np.empty(total, np.int64)
    for j in range(total):
        local[j] = row_of_pair[order[j]]
    return bounds, pieces, gather_start, gather_src, tiny_start, tiny_pair, local


class BlockPlan(NamedTuple):
    """Layout of a blocked convolution (:func:`block_plan`); B blocks, K offsets, P pairs."""

    groups: list[int]  # (B + 1,) first output group of each block
    pair_bounds: list[int]  # (B + 1,) first pair of each block, in grouped order
    pieces: list[list[int]]  # (B, K) gathered rows of each offset in each block
    gather_start: list[int]  # (B + 1,) first gathered row of each block
    gather_src: torch.Tensor  # (G,) the source voxel of each gathered row
    tiny_start: list[int]  # (B + 1,) first tiny row of each block
    tiny_pair: torch.Tensor  # (T,) of each tiny row, its rank among the tiny offsets' pairs
    local: torch.Tensor  # (P,) the row of each pair, in grouped order, in its block's products


def block_plan(src: torch.Tensor, counts: list[int], order: torch.Tensor, offsets: torch.Tensor,
               block_pairs: int, small: int) -> BlockPlan:
    """The layout of a blocked convolution over pairs (source voxels ``src``, offset-major) grouped by
    ``order`` / ``offsets``.

    Output groups are cut into blocks of at least ``block_pairs`` pairs (one block if there are
    fewer). A block gathers the source rows of its pairs offset-major, except those of offsets with
    fewer than ``small`` pairs in all ("tiny": their products are computed whole, for all blocks);
    its product buffer holds the gathered rows' products, then its tiny ones.
    """
    bounds, pieces, gather_start, gather_src, tiny_start, tiny_pair, local = _block_plan(
        src.numpy(), np.asarray(counts, np.int64), order.numpy(), offsets.numpy(), block_pairs, small)
    return BlockPlan(bounds.tolist(), offsets.numpy()[bounds].tolist(), pieces.tolist(),
                     gather_start.tolist(), torch.from_numpy(gather_src), tiny_start.tolist(),
                     torch.from_numpy(tiny_pair), torch.from_numpy(local))
