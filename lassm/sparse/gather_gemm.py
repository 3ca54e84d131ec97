"""Sparse convolution from gathers, GEMMs and grouped sums, with its backward pass.

With kernel pairs ``(i_p, o_p, k_p)`` (:class:`~lassm.sparse.kernel_map.KernelPairs`, sorted
by offset) and weights ``w`` (K, C_in, C_out):

    forward   y[o]  = sum_{p: o_p = o} x[i_p] @ w[k_p]
    backward  dx[i] = sum_{p: i_p = i} dy[o_p] @ w[k_p]^T
              dw[k] = sum_{p: k_p = k} x[i_p]^T dy[o_p]

Sums over pairs are ``embedding_bag(mode="sum")`` calls (no atomics, so results are
run-to-run identical). Only existing neighbours are touched: indoor scans at 2 cm have about
5 of 27. Two orders of the same arithmetic:

* ``gather_first``: gather ``x[i_p]``, one GEMM per offset into a (P, C_out) buffer, sum by
  output. The fewest FLOPs and the least memory; used on the CPU and for float32 on CUDA.
* ``gemm_first``: one GEMM ``x @ [w_0 .. w_K-1]`` (N, K*C_out) for all offsets, then sum the
  rows ``(i_p, k_p)`` by output: no gather at all. Faster for half precision on CUDA, where
  the GEMM is cheap and PyTorch's gathers are the bottleneck (H100, SpUNet training step:
  211 ms vs 259 ms with AMP; 357 ms vs 346 ms and 10.6 vs 7.4 GB in float32).

On CUDA, gathers take columns of a channel-major copy, about 5x faster there than
``index_select`` of rows (which runs at about 1.7e9 rows/s whatever their width). The
gathered rows are recomputed in backward rather than stored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .kernel_map import KernelPairs

GATHER_BUDGET = 1 << 26  # elements gathered at once (gather_first); offsets are batched up to it
GEMM_BUDGET = 1 << 30  # elements of the (N, K*C_out) product (gemm_first); split over offsets above it
CUDA_HALF_STRATEGY = "gemm_first"  # CUDA float16/bfloat16 (measured: python -m lassm.bench backbone)
CUDA_FLOAT_STRATEGY = "gather_first"  # CUDA float32: as fast, 30 % less memory


# ------------------------------------------------------------------------------- primitives


def grouped_sum(rows: torch.Tensor, order: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """(n, C): sum of ``rows[order[offsets[j]:offsets[j+1]]]`` for each group j (empty -> 0)."""
    return F.embedding_bag(order, rows, offsets, mode="sum", include_last_offset=True)


def gathered_columns(x: torch.Tensor):
    """A function ``index -> x[index].T`` ((C, len(index)), possibly a view).

    On CUDA it gathers columns of a channel-major copy of x: PyTorch's row gather
    (``index_select`` on dim 0) runs at about 1.7e9 rows/s whatever the row width, the column
    gather about 5x faster (measured on an H100). On the CPU row gathers are the fast ones.
    """
    if x.is_cuda:
        xt = x.t().contiguous()
        return lambda index: torch.index_select(xt, 1, index)
    return lambda index: torch.index_select(x, 0, index).t()


def _offset_groups(counts: list[int], width: int, budget: int):
    """Consecutive offset ranges whose pairs x ``width`` fit ``budget``: (k0, k1, row0, row1)."""
    start_k, start_row, rows = 0, 0, 0
    for k, c in enumerate(counts):
        if rows and (rows + c) * width > budget:
            yield start_k, k, start_row, start_row + rows
            start_k, start_row, rows = k, start_row + rows, 0
        rows += c
    yield start_k, len(counts), start_row, start_row + rows


# ------------------------------------------------------------------------------- strategies


def conv_gather_first(x: torch.Tensor, w: torch.Tensor, src_idx: torch.Tensor, counts: list[int],
                      order: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Gather ``x[src_idx]``, GEMM per offset, sum groups: (n_groups, C_out)."""
    products = x.new_empty(src_idx.shape[0], w.shape[2])
    take = gathered_columns(x)
    for k0, k1, r0, r1 in _offset_groups(counts, x.shape[1], GATHER_BUDGET):
        gathered = take(src_idx[r0:r1])  # (C_in, rows)
        row = 0
        for k in range(k0, k1):
            c = counts[k]
            if c:
                torch.mm(gathered[:, row:row + c].t(), w[k], out=products[r0 + row:r0 + row + c])
            row += c
    return grouped_sum(products, order, offsets)


def conv_gemm_first(x: torch.Tensor, w: torch.Tensor, pairs: KernelPairs, transpose: bool) -> torch.Tensor:
    """All-offset GEMM, then sum the table rows of (source voxel, offset) by group."""
    volume, c_in, c_out = w.shape
    span = max(1, min(volume, GEMM_BUDGET // max(x.shape[0] * c_out, 1)))
    out = None
    for k0 in range(0, volume, span):
        k1 = min(volume, k0 + span)
        table = torch.mm(x, w[k0:k1].permute(1, 0, 2).reshape(c_in, (k1 - k0) * c_out)).view(-1, c_out)
        rows, offsets = _table_rows(pairs, transpose, k0, k1)
        part = grouped_sum(table, rows, offsets)
        out = part if out is None else out + part
    return out


def _table_rows(pairs: KernelPairs, transpose: bool, k0: int, k1: int):
    """Cached: rows ``src * (k1 - k0) + (k - k0)`` of the pairs with k0 <= k < k1, grouped."""
    key = ("table_rows", transpose, k0, k1)
    if key not in pairs.cache:
        src, order, offsets = ((pairs.out_idx, pairs.by_in, pairs.in_offsets) if transpose
                               else (pairs.in_idx, pairs.by_out, pairs.out_offsets))
        starts = [0]
        for c in pairs.counts:
            starts.append(starts[-1] + c)
        r0, r1 = starts[k0], starts[k1]
        k = torch.repeat_interleave(torch.arange(k1 - k0, device=src.device),
                                    torch.tensor(pairs.counts[k0:k1], device=src.device))
        rows = src[r0:r1] * (k1 - k0) + k
        if r0 == 0 and r1 == starts[-1]:
            pairs.cache[key] = rows[order], offsets
        else:  # keep this slice's pairs; masking keeps them grouped
            n = offsets.shape[0] - 1
            keep = (order >= r0) & (order < r1)
            group = torch.repeat_interleave(torch.arange(n, device=src.device), torch.diff(offsets))[keep]
            sub_offsets = offsets.new_zeros(n + 1)
            sub_offsets[1:] = torch.cumsum(torch.bincount(group, minlength=n), 0)
            pairs.cache[key] = rows[order[keep] - r0], sub_offsets
    return pairs.cache[key]


def weight_grad(x: torch.Tensor, dy: torch.Tensor, pairs: KernelPairs, volume: int) -> torch.Tensor:
    """(K, C_in, C_out): per offset, gathered inputs^T @ gathered output gradients.

    The identity offset of a submanifold map (every voxel paired with itself, in order) needs
    no gather: its gradient is ``x^T dy``.
    """
    dw = x.new_zeros(volume, x.shape[1], dy.shape[1])
    skip = pairs.identity_offset
    if skip >= 0:
        torch.mm(x.t(), dy, out=dw[skip])
    counts = list(pairs.counts)
    starts = [0]
    for c in counts:
        starts.append(starts[-1] + c)
    take_x, take_dy = gathered_columns(x), gathered_columns(dy)
    ranges = [(0, skip), (skip + 1, volume)] if skip >= 0 else [(0, volume)]
    for lo, hi in ranges:
        for k0, k1, r0, r1 in _offset_groups(counts[lo:hi], x.shape[1] + dy.shape[1], GATHER_BUDGET):
            k0, k1, r0, r1 = k0 + lo, k1 + lo, r0 + starts[lo], r1 + starts[lo]
            xg = take_x(pairs.in_idx[r0:r1])  # (C_in, rows)
            dyg = take_dy(pairs.out_idx[r0:r1])  # (C_out, rows)
            row = 0
            for k in range(k0, k1):
                c = counts[k]
                if c:
                    torch.mm(xg[:, row:row + c], dyg[:, row:row + c].t(), out=dw[k])
                row += c
    return dw


# ------------------------------------------------------------------------------- autograd


def sparse_conv(x: torch.Tensor, w: torch.Tensor, pairs: KernelPairs, transpose: bool = False,
                strategy: str | None = None) -> torch.Tensor:
    """Convolution over ``pairs`` (read backwards when ``transpose``), no autograd.

    transpose=True computes ``sum_{p: i_p = i} x[o_p] @ w[k_p]``: the input gradient, and the
    inverse convolution's forward. ``strategy`` defaults by device and dtype (module docstring).
    """
    if strategy is None:
        strategy = "gather_first"
        if x.is_cuda:
            strategy = CUDA_FLOAT_STRATEGY if x.dtype == torch.float32 else CUDA_HALF_STRATEGY
    if strategy == "gemm_first":
        return conv_gemm_first(x, w, pairs, transpose)
    if strategy == "gather_first":
        src, order, offsets = ((pairs.out_idx, pairs.by_in, pairs.in_offsets) if transpose
                               else (pairs.in_idx, pairs.by_out, pairs.out_offsets))
        return conv_gather_first(x, w, src, pairs.counts, order, offsets)
    raise ValueError(f"strategy: expected 'gemm_first' or 'gather_first', got {strategy!r}")


class SparseConvFunction(torch.autograd.Function):
    """Autograd of :func:`sparse_conv`; ``transpose`` selects the inverse convolution."""

    @staticmethod
    def forward(ctx, x, w, pairs: KernelPairs, transpose: bool):
        ctx.save_for_backward(x, w)
        ctx.pairs, ctx.transpose = pairs, transpose
        return sparse_conv(x, w, pairs, transpose)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        pairs, transpose = ctx.pairs, ctx.transpose
        dy = dy.contiguous()
        dx = dw = None
        if ctx.needs_input_grad[0]:
            dx = sparse_conv(dy, w.transpose(1, 2), pairs, not transpose)
        if ctx.needs_input_grad[1]:
            dw = weight_grad(dy, x, pairs, w.shape[0]).transpose(1, 2) if transpose else \
                weight_grad(x, dy, pairs, w.shape[0])
        return dx, dw, None, None
