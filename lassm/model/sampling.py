"""Point sampling and neighbour search for the decoder: D-FPS (REFERENCE_SPEC 6.2) and kNN (6.4).

The reference calls two CUDA-only ops here: its own `fps_ops` D-FPS to pick 400 queries among the
most confident superpoints, and Pointcept `pointops` kNN to gather the 8 nearest superpoints of every
query. Appendix B allows any exact equivalent; these are pure-PyTorch versions that run on CPU and
CUDA tensors alike and match the stand-ins the golden data were made with:

- D-FPS starts at index `start` (0 in the reference) and at each step takes the FIRST index of the
  maximum of the squared distance to the selected set, computed in float64. (The CUDA kernel's
  block reduction favours lower indices but is not a strict first-max rule, REFERENCE_SPEC 6.2.)
- kNN returns neighbours in ascending distance, ties broken by the lower point index, and fills the
  slots a small scene cannot fill with the index S, i.e. a zero row appended to the features.
"""

from __future__ import annotations

import torch

KNN_CHUNK_ELEMENTS = 2**24  # at most this many query-point distances are held per kNN chunk


def _check_points(name: str, points: torch.Tensor) -> None:
    """Raise ValueError unless `points` is a floating-point (N, 3) tensor."""
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {tuple(points.shape)}")
    if not points.dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {points.dtype}")


def farthest_point_sampling(points: torch.Tensor, num_samples: int, start: int = 0,
                            use_kernel: bool = True) -> torch.Tensor:
    """Distance-based farthest point sampling, D-FPS (REFERENCE_SPEC 6.2 step 3, Appendix B).

    points: (M, 3) coordinates (the confidence-sorted candidate centroids in the decoder).
    Returns (num_samples,) int64 indices into `points`; the first is `start`. Each further sample is
    the first index of the largest float64 squared distance to the samples chosen so far. Indices
    repeat only when every remaining point coincides with a chosen one (the maximum is then 0 and
    its first index is a point already taken), as in the reference, which deduplicates afterwards.

    On CUDA with Triton importable (and ``use_kernel``), one Triton program runs the whole loop
    (:func:`_fps_triton`, same arithmetic and tie rule); otherwise the loop below runs in PyTorch,
    about six kernel launches per sample.
    """
    _check_points("points", points)
    num_points = points.shape[0]
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    if num_samples > num_points:
        raise ValueError(f"num_samples must be at most the number of points, {num_points}, got {num_samples}")
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < num_points:
        raise ValueError(f"start must be an index in 0..{num_points - 1}, got {start!r}")

    if use_kernel and points.is_cuda and num_points <= FPS_KERNEL_MAX_POINTS and _fps_kernel() is not None:
        return _fps_triton(points, num_samples, start)

    coords = points.detach().to(torch.float64)  # (M, 3)
    selected = torch.empty(num_samples, dtype=torch.int64, device=points.device)  # (num_samples,)
    last = torch.full((1,), start, dtype=torch.int64, device=points.device)  # (1,) newest sample
    selected[0] = start
    min_dist2 = torch.full((num_points,), float("inf"), dtype=torch.float64, device=points.device)  # (M,)
    # Indices stay on the device (index_select, no .item()) so a GPU loop never waits on the host.
    for i in range(1, num_samples):
        newest = coords.index_select(0, last)  # (1, 3)
        min_dist2 = torch.minimum(min_dist2, (coords - newest).square().sum(dim=1))  # (M,)
        last = torch.argmax(min_dist2).view(1)  # (1,) torch documents argmax as the FIRST maximum
        selected[i : i + 1] = last
    return selected


FPS_KERNEL_MAX_POINTS = 1 << 16  # one Triton program holds every point; larger inputs use the loop
_FPS = {}


def _fps_kernel():
    """The Triton D-FPS kernel, compiled on first use; None without Triton (cached)."""
    if "kernel" in _FPS:
        return _FPS["kernel"]
    try:
        import triton
        import triton.language as tl
    except ImportError:
        _FPS["kernel"] = None
        return None

    @triton.jit
    def fps_kernel(xyz, out, n, num_samples, BLOCK: tl.constexpr):
        idx = tl.arange(0, BLOCK)
        valid = idx < n
        x = tl.load(xyz + idx * 3, mask=valid, other=0.0).to(tl.float64)
        y = tl.load(xyz + idx * 3 + 1, mask=valid, other=0.0).to(tl.float64)
        z = tl.load(xyz + idx * 3 + 2, mask=valid, other=0.0).to(tl.float64)
        # padding lanes start at -1 so they are never the maximum
        min_d = tl.where(valid, float("inf"), -1.0).to(tl.float64)
        last = tl.load(out).to(tl.int32)  # the host wrote the start index (a tensor, never a constant)
        for i in range(1, num_samples):
            lx = tl.load(xyz + last * 3).to(tl.float64)
            ly = tl.load(xyz + last * 3 + 1).to(tl.float64)
            lz = tl.load(xyz + last * 3 + 2).to(tl.float64)
            d = (x - lx) * (x - lx) + (y - ly) * (y - ly) + (z - lz) * (z - lz)
            min_d = tl.where(valid, tl.minimum(min_d, d), min_d)
            last = tl.argmax(min_d, axis=0, tie_break_left=True)  # the FIRST maximum, as torch.argmax
            tl.store(out + i, last.to(tl.int64))

    _FPS["kernel"] = fps_kernel
    return fps_kernel


def _fps_triton(points: torch.Tensor, num_samples: int, start: int) -> torch.Tensor:
    xyz = points.detach().float().contiguous()  # (M, 3) float32 in, float64 distances inside
    out = torch.full((num_samples,), start, dtype=torch.int64, device=points.device)
    block = max(16, 1 << (points.shape[0] - 1).bit_length())
    _fps_kernel()[(1,)](xyz, out, points.shape[0], num_samples, BLOCK=block,
                        num_warps=16 if block >= 4096 else 4)
    return out


def knn(
    query: torch.Tensor,
    points: torch.Tensor,
    k: int,
    *,
    chunk_elements: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest `points` of every `query` position (REFERENCE_SPEC 6.4 step 1, Appendix B).

    query: (Q, 3) positions; points: (S, 3) positions (superpoint centroids in the decoder).
    Returns idx (Q, k) int64 and dist2 (Q, k) squared Euclidean distances, in ascending distance with
    ties broken by the lower point index. When S < k the missing slots hold index S, meaning "a zero
    row appended to the features", and distance +inf. Distances are computed in the promoted input
    dtype as (dx^2 + dy^2 + dz^2), like pointops; queries are processed in chunks of at most
    `chunk_elements` (default KNN_CHUNK_ELEMENTS) query-point pairs to bound memory.
    """
    _check_points("query", query)
    _check_points("points", points)
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if query.device != points.device:
        raise ValueError(f"query and points must be on one device, got {query.device} and {points.device}")
    chunk_elements = KNN_CHUNK_ELEMENTS if chunk_elements is None else chunk_elements
    if isinstance(chunk_elements, bool) or not isinstance(chunk_elements, int) or chunk_elements <= 0:
        raise ValueError(f"chunk_elements must be a positive integer, got {chunk_elements!r}")

    dtype = torch.promote_types(query.dtype, points.dtype)
    query = query.detach().to(dtype)
    points = points.detach().to(dtype)
    num_query, num_points = query.shape[0], points.shape[0]
    found = min(k, num_points)  # slots that real neighbours can fill
    idx = torch.full((num_query, k), num_points, dtype=torch.int64, device=query.device)  # (Q, k) pad = S
    dist2 = torch.full((num_query, k), float("inf"), dtype=dtype, device=query.device)  # (Q, k)
    if found == 0 or num_query == 0:
        return idx, dist2

    rows = max(1, chunk_elements // num_points)  # queries per chunk
    for lo in range(0, num_query, rows):
        q = query[lo : lo + rows]  # (q, 3)
        d = (q[:, None, 0] - points[None, :, 0]).square()  # (q, S), summed x, y, z in order
        d += (q[:, None, 1] - points[None, :, 1]).square()
        d += (q[:, None, 2] - points[None, :, 2]).square()
        # A stable sort makes the tie rule exact (topk does not promise which tied index it keeps).
        values, order = torch.sort(d, dim=1, stable=True)  # (q, S)
        idx[lo : lo + rows, :found] = order[:, :found]
        dist2[lo : lo + rows, :found] = values[:, :found]
    return idx, dist2


def knn_batched(query: torch.Tensor, points: torch.Tensor, k: int, valid: torch.Tensor | None = None,
                *, chunk_elements: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`knn` for B scenes at once: query (B, Q, 3), points (B, S, 3) padded to a common S.

    valid: (B, S) bool, False for padding points (never neighbours), or None. Returns idx (B, Q, k)
    and dist2 (B, Q, k) with the same order and tie rule as :func:`knn`; slots a scene's valid
    points cannot fill hold index S (a zero row appended to the features) and distance +inf.
    """
    if query.ndim != 3 or points.ndim != 3 or query.shape[-1] != 3 or points.shape[-1] != 3 \
            or query.shape[0] != points.shape[0]:
        raise ValueError(f"query and points must have shapes (B, Q, 3) and (B, S, 3), got "
                         f"{tuple(query.shape)} and {tuple(points.shape)}")
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    chunk_elements = KNN_CHUNK_ELEMENTS if chunk_elements is None else chunk_elements
    dtype = torch.promote_types(query.dtype, points.dtype)
    query, points = query.detach().to(dtype), points.detach().to(dtype)
    num_scenes, num_query, num_points = query.shape[0], query.shape[1], points.shape[1]
    found = min(k, num_points)
    idx = torch.full((num_scenes, num_query, k), num_points, dtype=torch.int64, device=query.device)
    dist2 = torch.full((num_scenes, num_query, k), float("inf"), dtype=dtype, device=query.device)
    if found == 0 or num_query == 0:
        return idx, dist2
    blocked = None if valid is None else ~valid[:, None, :]  # (B, 1, S)
    rows = max(1, chunk_elements // max(1, num_scenes * num_points))
    for lo in range(0, num_query, rows):
        q = query[:, lo: lo + rows]  # (B, q, 3)
        d = (q[..., None, 0] - points[:, None, :, 0]).square()  # (B, q, S), x, y, z summed in order
        d += (q[..., None, 1] - points[:, None, :, 1]).square()
        d += (q[..., None, 2] - points[:, None, :, 2]).square()
        if blocked is not None:
            d = d.masked_fill(blocked, float("inf"))
        values, order = torch.sort(d, dim=-1, stable=True)  # (B, q, S)
        values, order = values[..., :found], order[..., :found]
        idx[:, lo: lo + rows, :found] = order.masked_fill(values == float("inf"), num_points)
        dist2[:, lo: lo + rows, :found] = values
    return idx, dist2
