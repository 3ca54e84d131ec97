"""Sparse convolution from gathers, GEMMs and grouped sums, with its backward pass.

With kernel pairs ``(i_p, o_p, k_p)`` (:class:`~lassm.sparse.kernel_map.KernelPairs`, sorted
by offset) and weights ``w`` (K, C_in, C_out):

    forward   y[o]  = sum_{p: o_p = o} x[i_p] @ w[k_p]
    backward  dx[i] = sum_{p: i_p = i} dy[o_p] @ w[k_p]^T
              dw[k] = sum_{p: k_p = k} x[i_p]^T dy[o_p]

Sums over pairs are ``embedding_bag(mode="sum")`` calls (no atomics, so results are
run-to-run identical). Only existing neighbours are touched: indoor scans at 2 cm have about
5 of 27. Three orders of the same arithmetic:

* ``gather_first``: gather ``x[i_p]``, one GEMM per offset into a (P, C_out) buffer, sum by
  output. The fewest FLOPs and the least memory; used for float32 on CUDA (and the CPU's other
  dtypes).
* ``gemm_first``: one GEMM ``x @ [w_0 .. w_K-1]`` (N, K*C_out) for all offsets, then sum the
  rows ``(i_p, k_p)`` by output: no gather at all. Faster for half precision on CUDA, where
  the GEMM is cheap and PyTorch's gathers are the bottleneck (H100, SpUNet training step:
  211 ms vs 259 ms with AMP; 357 ms vs 346 ms and 10.6 vs 7.4 GB in float32).
* ``blocked``: ``gather_first`` over one block of output voxels at a time (about
  ``BLOCK_ELEMENTS`` gathered and product elements, :func:`lassm.sparse.cpu_index.block_plan`),
  the blocks shared out to one worker per torch thread. The CPU's float32 default:
  ``gather_first``'s whole-layer buffers (220 MB each for 1.7M pairs of 32 channels) go through
  memory, a block's stay in the cache (issue 22, 2-core CPU, the ``synthetic`` SpUNet on a
  250k-voxel room: its convolutions in 0.65 s instead of 1.5 s; with other processes busy on
  the machine, 1.5 s instead of 17 s: ``gather_first``'s two-thread GEMMs wait for a busy core at
  every one). Bit for bit
  ``gather_first``: each output sums the same products in the same order, and each product
  comes from a GEMM of at least ``SMALL_GEMM`` rows, whose rows MKL rounds alike whatever the
  row count and wherever the rows start (below ``SMALL_GEMM`` rows MKL takes another path:
  offsets with fewer pairs in all get ``gather_first``'s one GEMM, a block's few rows of a larger
  offset ride in a window of ``SMALL_GEMM`` rows; with fewer than 9 output channels MKL's rows
  depend on their alignment, so narrow convolutions stay ``gather_first``).

On CUDA, gathers take columns of a channel-major copy, about 5x faster there than
``index_select`` of rows (which runs at about 1.7e9 rows/s whatever their width). The
gathered rows are recomputed in backward rather than stored.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from . import cpu_index
from .kernel_map import KernelPairs

GATHER_BUDGET = 1 << 26  # elements gathered at once (gather_first); offsets are batched up to it
GEMM_BUDGET = 1 << 30  # elements of the (N, K*C_out) product (gemm_first); split over offsets above it
CUDA_HALF_STRATEGY = "gemm_first"  # CUDA float16/bfloat16 (measured: python -m lassm.bench backbone)
CUDA_FLOAT_STRATEGY = "gather_first"  # CUDA float32: as fast, 30 % less memory
CPU_FLOAT_STRATEGY = "blocked"  # CPU float32 (other dtypes: gather_first); see cpu_index.ENABLED
BLOCK_ELEMENTS = 1 << 21  # gathered + product elements of one block (blocked): 8 MB of float32
SMALL_GEMM = 12  # fewest GEMM rows of the blocked strategy (measured: MKL 2024.2, torch 2.13)
BLOCKED_MIN_COLUMNS = 16  # blocked only for C_out >= this: below 9 MKL's rows depend on where they start


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


def conv_blocked(x: torch.Tensor, w: torch.Tensor, pairs: KernelPairs, transpose: bool) -> torch.Tensor:
    """``gather_first``'s products and sums, one block of output groups at a time: (n_groups, C_out)."""
    volume, _, c_out = w.shape
    src, order, offsets = _reading(pairs, transpose)
    width = 1 << max(BLOCK_ELEMENTS // (x.shape[1] + c_out), 1).bit_length() - 1  # few distinct plans
    # every block gathers at least SMALL_GEMM rows beside the tiny offsets' (< SMALL_GEMM each)
    plan = _block_plan(pairs, transpose, max(width, SMALL_GEMM * (volume + 1)))
    tiny = _tiny_products(x, w, src, pairs.counts)  # (T, C_out)
    weights = w.unbind(0)  # (C_in, C_out) each
    out = x.new_empty(offsets.shape[0] - 1, c_out)
    inference = torch.is_inference_mode_enabled()

    def block(b: int) -> None:
        with torch.inference_mode(inference), torch.no_grad():  # both are per thread
            rows = torch.index_select(x, 0, plan.gather_src[plan.gather_start[b]:plan.gather_start[b + 1]])
            t0, t1 = plan.tiny_start[b], plan.tiny_start[b + 1]
            products = x.new_empty(rows.shape[0] + t1 - t0, c_out)  # (G + T, C_out)
            pieces = plan.pieces[b]
            sources, targets = rows.split(pieces), products.split([*pieces, t1 - t0])
            r = 0
            for k, m in enumerate(pieces):
                if m >= SMALL_GEMM:
                    torch.mm(sources[k], weights[k], out=targets[k])
                elif m:  # a few rows of a larger offset: inside a window of SMALL_GEMM rows
                    a = min(r, rows.shape[0] - SMALL_GEMM)
                    targets[k].copy_(torch.mm(rows[a:a + SMALL_GEMM], weights[k])[r - a:r - a + m])
                r += m
            if t1 > t0:
                torch.index_select(tiny, 0, plan.tiny_pair[t0:t1], out=targets[-1])
            g0, g1 = plan.groups[b], plan.groups[b + 1]
            p0, p1 = plan.pair_bounds[b], plan.pair_bounds[b + 1]
            out[g0:g1] = grouped_sum(products, plan.local[p0:p1], offsets[g0:g1 + 1] - p0)

    _on_threads(block, len(plan.groups) - 1)
    return out


def _on_threads(fn, count: int) -> None:
    """``fn(0) .. fn(count - 1)`` on a pool of ``torch.get_num_threads()`` threads, one torch thread
    each meanwhile. Many small GEMMs on two torch threads each would wait at the end of every one for
    both threads, slowly, and very slowly when another process takes a core."""
    threads = torch.get_num_threads()
    if threads == 1 or count == 1:
        for i in range(count):
            fn(i)
        return
    torch.set_num_threads(1)
    try:
        list(_worker_pool(threads).map(fn, range(count)))
    finally:
        torch.set_num_threads(threads)


_POOL: dict = {}  # key (process id, threads) and pool of the worker threads


def _worker_pool(threads: int) -> ThreadPoolExecutor:
    """One pool for the process: starting threads (and their OpenMP state) for every convolution cost
    a fifth of the blocked time. A forked child, or another thread count, gets a new one."""
    key = (os.getpid(), threads)
    if _POOL.get("key") != key:
        if _POOL.get("key", (None,))[0] == key[0]:
            _POOL["pool"].shutdown(wait=False)
        _POOL.update(key=key, pool=ThreadPoolExecutor(threads, thread_name_prefix="lassm-sparse"))
    return _POOL["pool"]


def _reading(pairs: KernelPairs, transpose: bool):
    """(source of each pair, pair order grouped by output, group offsets) of the convolution."""
    return ((pairs.out_idx, pairs.by_in, pairs.in_offsets) if transpose
            else (pairs.in_idx, pairs.by_out, pairs.out_offsets))


def _block_plan(pairs: KernelPairs, transpose: bool, block_pairs: int) -> cpu_index.BlockPlan:
    """Cached :func:`lassm.sparse.cpu_index.block_plan` (the convolutions of one map share it)."""
    key = ("blocked", transpose, block_pairs)
    if key not in pairs.cache:
        src, order, offsets = _reading(pairs, transpose)
        pairs.cache[key] = cpu_index.block_plan(src, pairs.counts, order, offsets, block_pairs, SMALL_GEMM)
    return pairs.cache[key]


def _tiny_products(x: torch.Tensor, w: torch.Tensor, src: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """(T, C_out) products of the offsets with 0 < count < SMALL_GEMM pairs, offset-major: the GEMM
    ``gather_first`` makes for each, on rows that start at the same place in a cache line (MKL's
    small-GEMM path rounds by it when C_in is not a multiple of 16)."""
    parts = []
    for k0, k1, r0, _ in _offset_groups(counts, x.shape[1], GATHER_BUDGET):  # gather_first's groups
        row = r0
        for k in range(k0, k1):
            c = counts[k]
            if 0 < c < SMALL_GEMM:
                lead = (row - r0) % 16  # 16 rows of C_in float32 span whole 64-byte lines
                rows = x.new_empty(lead + c, x.shape[1])
                torch.index_select(x, 0, src[row:row + c], out=rows[lead:])
                parts.append(torch.mm(rows[lead:], w[k]))
            row += c
    return torch.cat(parts) if parts else x.new_empty(0, w.shape[2])


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
        elif x.dtype == torch.float32 and cpu_index.ENABLED and w.shape[2] >= BLOCKED_MIN_COLUMNS:
            strategy = CPU_FLOAT_STRATEGY
    if strategy == "gemm_first":
        return conv_gemm_first(x, w, pairs, transpose)
    if strategy == "gather_first":
        src, order, offsets = _reading(pairs, transpose)
        return conv_gather_first(x, w, src, pairs.counts, order, offsets)
    if strategy == "blocked":
        return conv_blocked(x, w, pairs, transpose)
    raise ValueError(f"strategy: expected 'gemm_first', 'gather_first' or 'blocked', got {strategy!r}")


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
