"""Kernel maps against brute-force neighbour search, spconv's downsampling grid, determinism."""

from __future__ import annotations

import itertools

import pytest
import torch

from lassm.sparse.kernel_map import build_down_map, build_subm_map


def random_voxels(seed: int, n: int = 600, size: int = 12, batches: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(0, size, (n, 4), generator=g)
    c[:, 0] %= batches
    return torch.unique(c, dim=0)[torch.randperm(len(torch.unique(c, dim=0)), generator=g)].int()


def pair_set(pairs):
    k = torch.repeat_interleave(torch.arange(len(pairs.counts)), torch.tensor(pairs.counts))
    return set(zip(pairs.in_idx.tolist(), pairs.out_idx.tolist(), k.tolist(), strict=True))


@pytest.mark.parametrize("kernel", [3, 5])
def test_subm_pairs_match_brute_force(kernel):
    coords = random_voxels(0)
    index = {tuple(c): i for i, c in enumerate(coords.tolist())}
    r = kernel // 2
    expected = set()
    for out, (b, x, y, z) in enumerate(coords.tolist()):
        for k, (dx, dy, dz) in enumerate(itertools.product(range(-r, r + 1), repeat=3)):
            src = index.get((b, x + dx, y + dy, z + dz))
            if src is not None:
                expected.add((src, out, k))
    pairs = build_subm_map(coords, (12, 12, 12), kernel).pairs
    assert pair_set(pairs) == expected
    assert sum(pairs.counts) == len(expected)


def test_groupings_cover_every_pair_once_per_output_and_input():
    pairs = build_subm_map(random_voxels(1), (12, 12, 12), 3).pairs
    for order, offsets, idx in ((pairs.by_out, pairs.out_offsets, pairs.out_idx),
                                (pairs.by_in, pairs.in_offsets, pairs.in_idx)):
        assert torch.equal(torch.sort(order).values, torch.arange(len(order)))
        owner = idx[order]
        assert torch.equal(owner, torch.sort(owner).values)
        assert torch.equal(torch.diff(offsets), torch.bincount(idx, minlength=len(offsets) - 1))


def test_down_map_parents_slots_and_odd_grid_drop():
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [0, 12, 3, 5], [1, 11, 0, 1]], dtype=torch.int32)
    dm = build_down_map(coords, (13, 13, 13))  # odd grid: x = 12 has no parent cell (spconv)
    assert dm.out_shape == (6, 6, 6)
    assert dm.out_coords.tolist() == [[0, 0, 0, 0], [1, 5, 0, 0]]
    k = torch.repeat_interleave(torch.arange(8), torch.tensor(dm.pairs.counts))
    found = sorted(zip(dm.pairs.in_idx.tolist(), dm.pairs.out_idx.tolist(), k.tolist(), strict=True))
    assert found == [(0, 0, 0), (1, 0, 6), (3, 1, 5)]  # (1,1,0) -> slot 4+2 ; (11,0,1) -> 4+1
    assert dm.pairs.n_in == 4 and dm.pairs.n_out == 2


def test_maps_are_deterministic_and_follow_the_voxels_not_their_order():
    coords = random_voxels(2)
    a, b = build_subm_map(coords, (12, 12, 12), 3).pairs, build_subm_map(coords, (12, 12, 12), 3).pairs
    for name in ("in_idx", "out_idx", "by_out", "out_offsets", "by_in", "in_offsets"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    perm = torch.randperm(len(coords), generator=torch.Generator().manual_seed(3))
    c = build_subm_map(coords[perm], (12, 12, 12), 3).pairs
    back = {(perm[i].item(), perm[o].item(), k) for i, o, k in pair_set(c)}
    assert back == pair_set(a)
    d1, d2 = build_down_map(coords, (12, 12, 12)), build_down_map(coords, (12, 12, 12))
    assert torch.equal(d1.out_coords, d2.out_coords) and torch.equal(d1.pairs.in_idx, d2.pairs.in_idx)


def test_even_kernel_is_rejected():
    with pytest.raises(ValueError, match="must be odd"):
        build_subm_map(random_voxels(0), (12, 12, 12), 2)


def test_subm_identity_offset_pairs_every_voxel_with_itself_in_order():
    pairs = build_subm_map(random_voxels(4), (12, 12, 12), 3).pairs
    start = sum(pairs.counts[:pairs.identity_offset])
    seg = slice(start, start + pairs.counts[pairs.identity_offset])
    assert pairs.identity_offset == 13
    assert torch.equal(pairs.in_idx[seg], torch.arange(pairs.n_in))
    assert torch.equal(pairs.out_idx[seg], torch.arange(pairs.n_in))
