"""The CPU path's numba index work against the PyTorch code it replaces (issue 22): same integers."""

from __future__ import annotations

import pytest
import torch

from lassm.sparse import cpu_index, kernel_map


def random_voxels(seed: int, n: int = 700, size: tuple[int, int, int] = (13, 12, 11), batches: int = 2):
    g = torch.Generator().manual_seed(seed)
    c = torch.stack([torch.randint(0, s, (n,), generator=g) for s in (batches, *size)], 1)
    c = torch.unique(c, dim=0)
    return c[torch.randperm(len(c), generator=g)].int()  # not in key order


@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_neighbour_table_matches_binary_search(kernel, seed):
    coords = random_voxels(seed)
    shape = (13, 12, 11)
    ours = cpu_index.neighbour_table(coords, shape, kernel)
    assert ours.dtype == torch.int64
    assert torch.equal(ours, kernel_map.neighbour_table(coords, shape, kernel))


def test_neighbour_table_of_one_voxel_and_of_a_full_block():
    one = torch.tensor([[0, 3, 3, 3]], dtype=torch.int32)
    table = cpu_index.neighbour_table(one, (7, 7, 7), 3)
    assert table.tolist() == [[1] * 13 + [0] + [1] * 13]  # only itself, at the centre offset
    full = torch.cartesian_prod(torch.arange(1), torch.arange(4), torch.arange(4), torch.arange(4)).int()
    assert torch.equal(cpu_index.neighbour_table(full, (4, 4, 4), 3),
                       kernel_map.neighbour_table(full, (4, 4, 4), 3))


@pytest.mark.parametrize("kernel", [3, 5])
def test_subm_pairs_match_the_sorting_code(kernel, monkeypatch):
    coords = random_voxels(2)
    fast = kernel_map.build_subm_map(coords, (13, 12, 11), kernel).pairs
    monkeypatch.setattr(cpu_index, "ENABLED", False)
    slow = kernel_map.build_subm_map(coords, (13, 12, 11), kernel).pairs
    for name in ("in_idx", "out_idx", "by_out", "out_offsets", "by_in", "in_offsets"):
        assert torch.equal(getattr(fast, name), getattr(slow, name)), name
    assert fast.counts == slow.counts
    assert (fast.n_in, fast.n_out, fast.identity_offset) == (slow.n_in, slow.n_out, slow.identity_offset)


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("block_pairs, small", [(1, 12), (200, 12), (10**9, 12), (300, 40)])
def test_block_plan_puts_every_pair_once_where_the_sum_reads_it(block_pairs, small, transpose):
    coords = random_voxels(3, n=500)
    down = kernel_map.build_down_map(coords, (13, 12, 11)).pairs
    for pairs in (kernel_map.build_subm_map(coords, (13, 12, 11), 3).pairs, down):
        src, order, offsets = ((pairs.out_idx, pairs.by_in, pairs.in_offsets) if transpose
                               else (pairs.in_idx, pairs.by_out, pairs.out_offsets))
        plan = cpu_index.block_plan(src, pairs.counts, order, offsets, block_pairs, small)
        k_of_pair = torch.repeat_interleave(torch.arange(len(pairs.counts)), torch.tensor(pairs.counts))
        tiny = [p for p in range(len(src)) if pairs.counts[k_of_pair[p]] < small]  # by rank
        assert plan.groups[0] == 0 and plan.groups[-1] == len(offsets) - 1
        assert plan.pair_bounds == offsets[plan.groups].tolist()
        found = []  # (source, offset) of each pair, in grouped order, as the blocks lay them out
        for b in range(len(plan.groups) - 1):
            gathered = plan.gather_src[plan.gather_start[b]:plan.gather_start[b + 1]].tolist()
            rows, r = [], 0  # gathered rows: offset-major pieces
            for k, m in enumerate(plan.pieces[b]):
                rows += [(s, k) for s in gathered[r:r + m]]
                r += m
            assert r == len(gathered)
            for rank in plan.tiny_pair[plan.tiny_start[b]:plan.tiny_start[b + 1]].tolist():
                rows.append((src[tiny[rank]].item(), k_of_pair[tiny[rank]].item()))
            p0, p1 = plan.pair_bounds[b], plan.pair_bounds[b + 1]
            found += [rows[r] for r in plan.local[p0:p1].tolist()]
            if b < len(plan.groups) - 2:
                assert p1 - p0 >= block_pairs
        expected = [(src[p].item(), k_of_pair[p].item()) for p in order.tolist()]
        assert found == expected
