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

import contextlib
import math

import torch

ORDERS = ("hilbert", "hilbert-trans", "z", "z-trans")
MAX_DEPTH = 20  # 3 * depth code bits plus the batch bit 1 << 3 * depth must fit in a signed int64
# Cells are clamped here before the cast to int64 (a float beyond int64's range casts to an arbitrary
# value, a negative index): a larger extent then reads as too deep and is refused by name.
_CELL_LIMIT = float(1 << (MAX_DEPTH + 1))
_NONFINITE = ("query positions hold NaN or inf, so they have no place on the serialization curve "
              "(the model's outputs diverged)")


class PositionOverflow(ValueError, FloatingPointError):
    """Positions with no integer cell on the curve: NaN/inf, or further apart than MAX_DEPTH bits allow.
    A ValueError for a bad ``grid_size``; also a FloatingPointError, because in training it means the
    outputs diverged, and the trainer stops such a run as it stops a non-finite loss."""


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
    if not bool(torch.isfinite(pos).all()):
        raise PositionOverflow(_NONFINITE)
    u = pos - pos.min(dim=0).values  # (Q, 3) >= 0
    if grid_size != 1.0:  # the reference never divides (1-m grid, REFERENCE_SPEC 11.1 item 1)
        u = u / grid_size
    grid = u.clamp_max(_CELL_LIMIT).to(torch.int64)  # (Q, 3) truncation toward zero
    depth = max(int(grid.max()).bit_length(), 1)  # d = 0 is treated as 1
    if depth > MAX_DEPTH:
        raise PositionOverflow(
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


# ------------------------------------------------------------------------------- batched, by table

TABLE_DEPTH = 6  # curves up to 64 cells per axis (64 m at the reference's 1-m grid) come from tables
_TABLES: dict = {}


def code_table(kind: str, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every cell's code for depths 1..TABLE_DEPTH, computed once by the bitwise encoders above.

    Returns (table, start): the codes of depth d occupy ``table[start[d - 1]:][:8**d]``, indexed by
    ``(x << 2d) | (y << d) | z``. kind: "hilbert" or "z". The tables are those encoders' own output, so
    a lookup gives exactly their codes, with one gather instead of a few hundred small kernels.
    """
    key = (kind, torch.device(device))
    if key not in _TABLES:
        encode = hilbert_code if kind == "hilbert" else z_order_code
        parts = []
        for depth in range(1, TABLE_DEPTH + 1):
            axis = torch.arange(1 << depth, dtype=torch.int64)
            cells = torch.cartesian_prod(axis, axis, axis)  # (8^d, 3), x slowest: index (x<<2d)|(y<<d)|z
            parts.append(encode(cells, depth))
        sizes = torch.tensor([len(p) for p in parts])
        start = torch.cumsum(sizes, 0) - sizes  # (TABLE_DEPTH,)
        _TABLES[key] = (torch.cat(parts).to(device), start.to(device))
    return _TABLES[key]


_OVERFLOW: list[list[torch.Tensor]] = []  # open table_only() blocks, innermost last


@contextlib.contextmanager
def table_only():
    """Within the block, :func:`batched_orders` never synchronises: it always uses the tables and
    yields instead a list of (,) bool device tensors, True where some scene was deeper than
    TABLE_DEPTH (its order is then wrong and the caller must recompute without this block)."""
    flags: list[torch.Tensor] = []
    _OVERFLOW.append(flags)
    try:
        yield flags
    finally:
        _OVERFLOW.pop()


def _bit_length(values: torch.Tensor) -> torch.Tensor:
    """(B,) bit length of non-negative int64 values, computed on their device (no host round trip)."""
    powers = torch.ones(MAX_DEPTH + 2, dtype=torch.int64, device=values.device) << torch.arange(
        MAX_DEPTH + 2, device=values.device)
    return (values[:, None] >= powers).sum(1)  # (B,) number of powers of two <= value


def _unstable_order(code: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(Q,) torch's default argsort of one scene's real codes, then its padding (valid is a prefix)."""
    count = int(valid.sum())
    head = torch.argsort(code[:count])
    return torch.cat([head, torch.arange(count, len(code), device=code.device)])


def batched_orders(pos: torch.Tensor, valid: torch.Tensor | None, orders, grid_size: float = 1.0,
                   stable: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`serialization_order` for B scenes at once, for each curve in ``orders``.

    pos: (B, Q, 3) positions in metres; valid: (B, Q) bool, False for padding queries (sorted last,
    so a causal mixer never sees them before a real query), or None. Each scene is shifted and its
    depth chosen from its own valid queries, as one scene alone would be. Returns per order
    (order_idx, inverse_idx), both (B, Q). One host synchronisation in all (the deepest scene, to pick
    the table path); scenes deeper than TABLE_DEPTH use the bitwise encoders one by one.
    """
    if pos.ndim != 3 or pos.shape[-1] != 3 or pos.shape[1] < 1:
        raise ValueError(f"pos must have shape (B, Q, 3) with Q >= 1, got {tuple(pos.shape)}")
    if not (math.isfinite(grid_size) and grid_size > 0):
        raise ValueError(f"grid_size must be a finite positive number of metres, got {grid_size}")
    for order in orders:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    num_scenes, num_query, _ = pos.shape
    if valid is None:
        valid = torch.ones(pos.shape[:2], dtype=torch.bool, device=pos.device)
    finite = (torch.isfinite(pos).all(-1) | ~valid).all()  # (,) NaN/inf would cast to a negative cell
    pos = pos.nan_to_num(0.0, 0.0, 0.0)  # their codes are never used: the check below raises first
    lo = pos.masked_fill(~valid[..., None], math.inf).amin(1, keepdim=True)  # (B, 1, 3) per-scene minimum
    u = pos - lo
    if grid_size != 1.0:  # the reference never divides (1-m grid, REFERENCE_SPEC 11.1 item 1)
        u = u / grid_size
    grid = u.clamp_max(_CELL_LIMIT).to(torch.int64).masked_fill(~valid[..., None], 0)  # (B, Q, 3) truncation
    depth = _bit_length(grid.amax((1, 2))).clamp_min(1)  # (B,) d = 0 is treated as 1
    if _OVERFLOW:  # inside a CUDA graph: no host round trip; deeper (or non-finite) scenes are flagged, and
        # the caller's eager rerun raises for them
        _OVERFLOW[-1].append((depth > TABLE_DEPTH).any() | ~finite)
        depth, deepest = depth.clamp_max(TABLE_DEPTH), TABLE_DEPTH
        grid = grid.clamp_max((1 << TABLE_DEPTH) - 1)
    else:
        deepest = int(torch.where(finite, depth.max(), -1))  # the one synchronisation; -1: not finite
        if deepest < 0:
            raise PositionOverflow(_NONFINITE)
    if deepest > MAX_DEPTH:
        raise PositionOverflow(f"pos extent / grid_size needs {deepest} bits per axis, at most {MAX_DEPTH} "
                               f"are supported; increase grid_size (got {grid_size}) unless training "
                               f"diverged")
    out = []
    for order in orders:
        g = grid
        if order.endswith("-trans"):  # (y, x, z); a stack, not a list index (a host-to-device copy)
            g = torch.stack([grid[..., 1], grid[..., 0], grid[..., 2]], -1)
        kind = "hilbert" if order.startswith("hilbert") else "z"
        if deepest <= TABLE_DEPTH:
            table, start = code_table(kind, pos.device)
            d = depth[:, None]  # (B, 1)
            cell = (g[..., 0] << (2 * d)) | (g[..., 1] << d) | g[..., 2]  # (B, Q)
            code = table[start[d - 1] + cell]  # (B, Q)
        else:  # rare: a scene more than 64 cells across
            encode = hilbert_code if kind == "hilbert" else z_order_code
            code = torch.stack([encode(g[b], int(depth[b])) for b in range(num_scenes)])
        code = code.masked_fill(~valid, torch.iinfo(torch.int64).max)  # padding sorts last
        if stable:
            order_idx = torch.argsort(code, dim=1, stable=True)  # (B, Q)
        else:  # the reference's unstable sort, one scene at a time: its ties fall as they would alone
            order_idx = torch.stack([_unstable_order(code[b], valid[b]) for b in range(num_scenes)])
        inverse_idx = torch.empty_like(order_idx).scatter_(
            1, order_idx, torch.arange(num_query, device=pos.device).expand(num_scenes, -1))
        out.append((order_idx, inverse_idx))
    return out
