"""Space-filling-curve serialization of query positions for the SSM block (REFERENCE_SPEC 6.6, step 3).

The SSM block orders the Q query positions along a 3-D Hilbert curve and along the same curve on
x/y-swapped coordinates ("hilbert" / "hilbert-trans"), runs the Mamba2 mixer on both sequences and
averages the un-permuted outputs. This module computes the codes and the permutations.

Reference behaviour copied on purpose (REFERENCE_SPEC 11.1 item 1): positions are shifted to a zero
minimum and truncated to integers WITHOUT scaling, i.e. the serialization grid is 1 metre, and the
curve depth is the bit length of the largest integer coordinate (3-4 bits for a room). `grid_size`
is the divisor applied before truncation; its default 1.0 reproduces the reference. Many queries
then share a cell and hence a code; with `stable=False` their relative order comes from torch's
default (not guaranteed stable) argsort, like the reference.
"""

from __future__ import annotations

import math

import torch

ORDERS = ("hilbert", "hilbert-trans", "z", "z-trans")
MAX_DEPTH = 20  # 3 * depth code bits plus the batch bit 1 << 3 * depth must fit in a signed int64


def _check_grid(grid: torch.Tensor, depth: int) -> None:
    """Raise ValueError unless `grid` is a (Q, 3) non-negative integer tensor and 1 <= depth <= 21."""
    if grid.ndim != 2 or grid.shape[1] != 3:
        raise ValueError(f"grid must have shape (Q, 3), got {tuple(grid.shape)}")
    if grid.dtype.is_floating_point or grid.dtype.is_complex or grid.dtype == torch.bool:
        raise ValueError(f"grid must be an integer tensor, got dtype {grid.dtype}")
    if not 1 <= depth <= 21:  # 3 * 21 = 63 bits still fit in a signed int64
        raise ValueError(f"depth must be in 1..21 bits per axis, got {depth}")
    if grid.numel() > 0 and bool((grid < 0).any()):
        raise ValueError("grid must hold non-negative integer coordinates")


def _bits_to_int(bits: torch.Tensor) -> torch.Tensor:
    """Read (Q, n) bits, most significant first, as (Q,) unsigned int64 values (n <= 63)."""
    n = bits.shape[1]
    weights = torch.ones(n, dtype=torch.int64, device=bits.device) << torch.arange(
        n - 1, -1, -1, dtype=torch.int64, device=bits.device
    )  # (n,) 2^(n-1) ... 1
    return (bits.to(torch.int64) * weights).sum(dim=1)  # (Q,)


def hilbert_code(grid: torch.Tensor, depth: int) -> torch.Tensor:
    """3-D Hilbert index of integer cells, Skilling's algorithm (REFERENCE_SPEC 6.6 "Hilbert encoding").

    grid: (Q, 3) non-negative integer coordinates; only the `depth` low bits of each are used.
    Returns (Q,) int64 codes in [0, 8**depth).
    """
    _check_grid(grid, depth)
    grid = grid.to(torch.int64)
    shifts = torch.arange(depth - 1, -1, -1, dtype=torch.int64, device=grid.device)  # MSB first
    g = ((grid[:, :, None] >> shifts) & 1).bool()  # (Q, 3, d) bit matrix, level 0 = MSB

    for t in range(depth):
        lower = slice(t + 1, None)  # levels t' > t
        for a in range(3):
            f = g[:, a, t].clone()[:, None]  # (Q, 1)
            # where f is 1: invert the lower bits of axis 0
            g[:, 0, lower] ^= f
            # where f is 0: swap the lower bits of axis 0 and axis a (XOR both with their difference)
            to_flip = ~f & (g[:, 0, lower] ^ g[:, a, lower])  # (Q, d - t - 1)
            g[:, a, lower] ^= to_flip
            g[:, 0, lower] ^= to_flip

    gray = g.transpose(1, 2).reshape(g.shape[0], 3 * depth)  # (Q, 3d) level-major: x, y, z per level
    binary = torch.cumsum(gray.to(torch.int64), dim=1) % 2  # Gray -> binary by prefix XOR from the MSB
    return _bits_to_int(binary)  # (Q,)


def z_order_code(grid: torch.Tensor, depth: int) -> torch.Tensor:
    """Morton (Z-order) code: bit triplets x, y, z from most to least significant (REFERENCE_SPEC 6.6).

    grid: (Q, 3) non-negative integer coordinates; only the `depth` low bits of each are used.
    Returns (Q,) int64 codes in [0, 8**depth).
    """
    _check_grid(grid, depth)
    grid = grid.to(torch.int64)
    code = torch.zeros(grid.shape[0], dtype=torch.int64, device=grid.device)  # (Q,)
    for i in range(depth):  # bit i of every axis lands in triplet i (counted from the LSB)
        x, y, z = ((grid >> i) & 1).unbind(dim=1)
        code |= (x << (3 * i + 2)) | (y << (3 * i + 1)) | (z << (3 * i))
    return code


def _grid_and_depth(pos: torch.Tensor, grid_size: float) -> tuple[torch.Tensor, int]:
    """Shift positions to a zero minimum and truncate to cells; depth = bit length of the largest cell."""
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 1:
        raise ValueError(f"pos must have shape (Q, 3) with Q >= 1, got {tuple(pos.shape)}")
    if not pos.dtype.is_floating_point:
        raise ValueError(f"pos must be a floating-point tensor of metres, got dtype {pos.dtype}")
    if not (math.isfinite(grid_size) and grid_size > 0):
        raise ValueError(f"grid_size must be a finite positive number of metres, got {grid_size}")
    u = pos - pos.min(dim=0).values  # (Q, 3) >= 0
    if grid_size != 1.0:  # the reference never divides (1-m grid, REFERENCE_SPEC 11.1 item 1)
        u = u / grid_size
    grid = u.to(torch.int64)  # (Q, 3) truncation toward zero
    depth = max(int(grid.max()).bit_length(), 1)  # d = 0 is treated as 1
    if depth > MAX_DEPTH:
        raise ValueError(
            f"pos extent / grid_size needs {depth} bits per axis, at most {MAX_DEPTH} are supported; "
            f"increase grid_size (got {grid_size})"
        )
    return grid, depth


def serialization_codes(pos: torch.Tensor, order: str, grid_size: float = 1.0) -> torch.Tensor:
    """Serialization codes of query positions (REFERENCE_SPEC 6.6 step 3).

    pos: (Q, 3) float positions in metres. order: one of "hilbert", "hilbert-trans", "z", "z-trans";
    "-trans" encodes (y, x, z) instead of (x, y, z). grid_size: cell size in metres (1.0 = reference).
    Returns (Q,) int64 codes with the batch id 1 OR-ed in as 1 << 3d, like the reference.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    grid, depth = _grid_and_depth(pos, grid_size)  # (Q, 3)
    if order.endswith("-trans"):
        grid = grid[:, [1, 0, 2]]  # (y, x, z)
    encode = hilbert_code if order.startswith("hilbert") else z_order_code
    code = encode(grid, depth)  # (Q,)
    return code | (1 << (3 * depth))  # batch id 1: same for all queries, does not change the order


def serialization_order(
    pos: torch.Tensor, order: str, grid_size: float = 1.0, stable: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Permutation sorting queries along the curve, and its inverse (REFERENCE_SPEC 6.6 step 3).

    Returns (order_idx, inverse_idx), both (Q,) int64, with pos[order_idx][inverse_idx] == pos.
    stable=False uses torch's default argsort like the reference (ties between queries sharing a
    cell have an implementation-defined order); stable=True keeps ties in input order.
    """
    code = serialization_codes(pos, order, grid_size)  # (Q,)
    order_idx = torch.argsort(code, stable=True) if stable else torch.argsort(code)  # (Q,)
    inverse_idx = torch.empty_like(order_idx)
    inverse_idx[order_idx] = torch.arange(order_idx.numel(), device=order_idx.device)
    return order_idx, inverse_idx
