"""An argsort that reproduces libstdc++'s ``std::sort`` order, ties and NaNs included.

Why it exists: ScanNet's Segmentator (REFERENCE_SPEC 1.1 step 2) sorts its graph edges by
weight with ``std::sort`` and merges segments in that order. ``std::sort`` is unstable, so
the order of equal weights (flat, noise-free surfaces are full of them) and of NaN weights
(degenerate faces) is whatever the algorithm happens to leave, and the Felzenszwalb merge
depends on it: a stable sort, or numpy's own introsort, gives a different partition. To get
the C++ tool's superpoint ids exactly, :func:`std_sort` replays GCC's libstdc++ algorithm
step by step on (key, item) pairs compared by key with ``<``:

1. Introsort loop: while a range holds more than 16 elements, move the median of
   (first + 1, middle, last - 1) to the front, partition the rest around it with unguarded
   Hoare scans, loop on the right part and come back to the left one later. Below
   ``2 * floor(log2 n)`` levels the range is heapsorted instead (``make_heap`` then
   ``sort_heap``, sifting as ``__adjust_heap`` does: hole down to a leaf, then up).
2. One insertion sort over the whole array; ranges of <= 16 were left for it.

NaN keys compare false with everything, as in C++, so they are not gathered at an end: they
stay where the passes above leave them and split the output into NaN-free runs. What always
holds is that no neighbour pair is out of order (``keys[i] < keys[i - 1]`` is never true),
so each run between NaNs is ascending; without NaNs the output is simply ascending. Where
C++ scans unguarded and NaNs could carry it out of the array, we stop at the array's end.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .io import DataError

_JIT = dict(cache=True)


def introsort_depth(n: int) -> int:
    """libstdc++'s depth limit for ``n`` elements: ``2 * floor(log2 n)`` (0 for n <= 1)."""
    return 2 * (max(int(n), 1).bit_length() - 1)


@njit(**_JIT)
def _sift(keys, items, base, hole, length, key, item):
    """Move a hole down to a leaf, then (key, item) up from it (libstdc++ __adjust_heap)."""
    top = child = hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if keys[base + child] < keys[base + child - 1]:
            child -= 1
        keys[base + hole], items[base + hole] = keys[base + child], items[base + child]
        hole = child
    if length % 2 == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1) - 1
        keys[base + hole], items[base + hole] = keys[base + child], items[base + child]
        hole = child
    parent = (hole - 1) // 2
    while hole > top and keys[base + parent] < key:
        keys[base + hole], items[base + hole] = keys[base + parent], items[base + parent]
        hole = parent
        parent = (hole - 1) // 2
    keys[base + hole], items[base + hole] = key, item


@njit(**_JIT)
def _heapsort(keys, items, first, last):
    length = last - first
    for parent in range((length - 2) // 2, -1, -1):  # make_heap
        _sift(keys, items, first, parent, length, keys[first + parent], items[first + parent])
    for end in range(last - 1, first, -1):  # sort_heap: pop the maximum to the end
        key, item = keys[end], items[end]
        keys[end], items[end] = keys[first], items[first]
        _sift(keys, items, first, 0, end - first, key, item)


@njit(**_JIT)
def _swap(keys, items, i, j):
    keys[i], keys[j] = keys[j], keys[i]
    items[i], items[j] = items[j], items[i]


@njit(**_JIT)
def _partition(keys, items, first, last):
    """Median of (first+1, mid, last-1) to ``first``, then partition the rest around it."""
    a, b, c = first + 1, first + (last - first) // 2, last - 1
    if keys[a] < keys[b]:
        median = b if keys[b] < keys[c] else (c if keys[a] < keys[c] else a)
    else:
        median = a if keys[a] < keys[c] else (c if keys[b] < keys[c] else b)
    _swap(keys, items, first, median)
    pivot = keys[first]
    lo, hi = first + 1, last
    while True:
        while lo < keys.shape[0] and keys[lo] < pivot:  # C++: unguarded
            lo += 1
        hi -= 1
        while pivot < keys[hi]:  # stops at the pivot itself at the latest
            hi -= 1
        if lo >= hi:
            return lo
        _swap(keys, items, lo, hi)
        lo += 1


@njit(**_JIT)
def std_sort(keys, items, depth_limit):
    """Sort ``keys`` (n,) in place, carrying ``items`` (n,), in exactly std::sort's order.

    ``depth_limit`` is :func:`introsort_depth` ``(n)`` to match ``std::sort``; smaller
    values reach the heapsort fallback sooner (what libstdc++ does with that limit). Callable
    from numba code.
    """
    n = keys.shape[0]
    stack = np.empty((depth_limit + 2, 3), np.int64)  # pending (first, last, depth)
    top = 0
    first, last, depth = 0, n, depth_limit
    while True:  # the right part first, as the recursion of __introsort_loop does
        while last - first > 16:
            if depth == 0:
                _heapsort(keys, items, first, last)
                break
            depth -= 1
            cut = _partition(keys, items, first, last)
            stack[top, 0], stack[top, 1], stack[top, 2] = first, cut, depth
            top += 1
            first = cut
        if top == 0:
            break
        top -= 1
        first, last, depth = stack[top, 0], stack[top, 1], stack[top, 2]
    for i in range(1, n):  # insertion sort; below 16 a new minimum goes straight to the front
        key, item = keys[i], items[i]
        j = i
        if i < 16 and key < keys[0]:
            keys[1:i + 1], items[1:i + 1] = keys[:i].copy(), items[:i].copy()
            j = 0
        while j > 0 and key < keys[j - 1]:  # C++: unguarded from 16 on
            keys[j], items[j] = keys[j - 1], items[j - 1]
            j -= 1
        keys[j], items[j] = key, item


def std_argsort(keys: np.ndarray, depth_limit: int | None = None) -> np.ndarray:
    """Indices that order ``keys`` (n,) as ``std::sort`` orders (key, index) pairs by key.

    Returns (n,) int64 ``order``: ``keys[order]`` is the C++ output, ties and NaNs (see the
    module docstring) in the same places. ``keys`` is not modified. ``depth_limit`` defaults
    to std::sort's own, :func:`introsort_depth` ``(n)``.
    """
    keys = np.array(keys)  # a copy, sorted in place below
    if keys.ndim != 1 or keys.dtype.kind not in "iuf":
        raise DataError(f"keys: expected a 1-D array of numbers, got {keys.dtype} "
                        f"with shape {keys.shape}")
    if depth_limit is None:
        depth_limit = introsort_depth(len(keys))
    elif not isinstance(depth_limit, (int, np.integer)) or depth_limit < 0:
        raise DataError(f"depth_limit: expected an integer >= 0, got {depth_limit!r}")
    order = np.arange(len(keys), dtype=np.int64)
    std_sort(keys, order, int(depth_limit))
    return order
