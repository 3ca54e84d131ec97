"""Per-scene operations of a batch done for all scenes at once, so that a GPU waits once per batch."""

from __future__ import annotations

import torch


def unique_per_scene(values: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``torch.unique(v, return_inverse=True)`` of each scene's values (N_b,), for all scenes at once and
    without a host round trip: ``torch.unique`` waits for the GPU to size its output, once per call
    (and several times for the pairs of a ``dim=0`` unique); sorting and counting do not.

    Returns each scene's inverse (N_b,) int64, its values' ranks 0..U_b-1 in ascending order, and the
    counts U_b (B,) int64, still on the device.
    """
    if not values:
        raise ValueError("values: expected at least one scene")
    device = values[0].device
    value = torch.cat([v.long() for v in values])  # (N,)
    scene = torch.cat([torch.full((len(v),), b, dtype=torch.long, device=device)
                       for b, v in enumerate(values)])  # (N,)
    order = torch.argsort(value, stable=True)
    order = order[torch.argsort(scene[order], stable=True)]  # by scene, then value
    sorted_value, sorted_scene = value[order], scene[order]
    new = torch.ones_like(sorted_value, dtype=torch.bool)  # (N,) first of its (scene, value) in sorted order
    new[1:] = (sorted_value[1:] != sorted_value[:-1]) | (sorted_scene[1:] != sorted_scene[:-1])
    rank = torch.empty_like(order)
    rank[order] = torch.cumsum(new, 0) - 1  # (N,) rank among all (scene, value) pairs
    counts = torch.zeros(len(values), dtype=torch.long, device=device).index_add_(
        0, sorted_scene, new.long())  # (B,) distinct values per scene
    first = torch.cumsum(counts, 0) - counts  # (B,) rank of each scene's smallest value
    inverses, start = [], 0
    for b, v in enumerate(values):
        inverses.append(rank[start:start + len(v)] - first[b])
        start += len(v)
    return inverses, counts


def unique_sorted_per_scene(values: list[torch.Tensor]) -> list[torch.Tensor]:
    """``torch.unique(v)`` (sorted) of each scene's values (N_b,), int64, with one host round trip on a
    GPU for the batch: the counts of distinct values."""
    inverses, counts = unique_per_scene(values)
    out = []
    for v, inverse, size in zip(values, inverses, counts.tolist(), strict=True):
        # each value to its rank; repeats write the same value to the same place
        out.append(torch.empty(size, dtype=torch.long, device=v.device).scatter_(0, inverse, v.long()))
    return out
