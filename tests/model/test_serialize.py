"""Tests for lassm.model.serialize against slow per-point bit-list implementations (REFERENCE_SPEC 6.6)."""

from __future__ import annotations

import itertools

import pytest
import torch

from lassm.model.serialize import (
    hilbert_code,
    serialization_codes,
    serialization_order,
    z_order_code,
)


# ----------------------------------------------------------------------------- slow references
def _slow_hilbert(point: list[int], depth: int) -> int:
    """Skilling's Hilbert index of one point, written with plain lists of bits."""
    bits = [[(c >> (depth - 1 - t)) & 1 for t in range(depth)] for c in point]  # bits[axis][level], MSB first
    for t in range(depth):
        for a in range(3):
            if bits[a][t]:
                for s in range(t + 1, depth):
                    bits[0][s] = 1 - bits[0][s]
            else:
                for s in range(t + 1, depth):
                    bits[0][s], bits[a][s] = bits[a][s], bits[0][s]
    gray = [bits[a][t] for t in range(depth) for a in range(3)]
    binary = []
    acc = 0
    for b in gray:
        acc ^= b
        binary.append(acc)
    value = 0
    for b in binary:
        value = value * 2 + b
    return value


def _slow_morton(point: list[int], depth: int) -> int:
    """Morton code of one point: for each level from the MSB, append the x, y, z bits."""
    value = 0
    for t in range(depth - 1, -1, -1):
        for c in point:
            value = value * 2 + ((c >> t) & 1)
    return value


def _random_grid(depth: int, n: int = 200, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed + depth)
    return torch.randint(0, 2**depth, (n, 3), generator=gen, dtype=torch.int64)  # (n, 3)


# ----------------------------------------------------------------------------- codes on integer grids
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_hilbert_code_matches_slow_reference(depth):
    grid = _random_grid(depth)
    expected = [_slow_hilbert(p, depth) for p in grid.tolist()]
    assert hilbert_code(grid, depth).tolist() == expected


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_z_order_code_matches_slow_reference(depth):
    grid = _random_grid(depth)
    expected = [_slow_morton(p, depth) for p in grid.tolist()]
    assert z_order_code(grid, depth).tolist() == expected


def test_z_order_bit_layout():
    # x is the most significant bit of each triplet, z the least
    grid = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [2, 0, 0]])
    assert z_order_code(grid, 2).tolist() == [4, 2, 1, 32]


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_hilbert_curve_visits_face_neighbours(depth):
    side = 2**depth
    cells = torch.tensor(list(itertools.product(range(side), repeat=3)), dtype=torch.int64)  # (8^d, 3)
    code = hilbert_code(cells, depth)
    assert sorted(code.tolist()) == list(range(8**depth))  # a bijection onto 0..8^d-1
    path = cells[torch.argsort(code)]  # cells in curve order
    steps = (path[1:] - path[:-1]).abs().sum(dim=1)
    assert steps.eq(1).all()  # consecutive cells share a face
    assert path[0].tolist() == [0, 0, 0]


def test_codes_use_only_low_bits():
    grid = torch.tensor([[5, 6, 7], [1, 2, 3]])
    low = grid & 3
    assert torch.equal(hilbert_code(grid, 2), hilbert_code(low, 2))
    assert torch.equal(z_order_code(grid, 2), z_order_code(low, 2))


def test_grid_validation():
    with pytest.raises(ValueError, match="grid"):
        hilbert_code(torch.zeros(4, 2, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match="grid"):
        z_order_code(torch.zeros(4, 3), 2)
    with pytest.raises(ValueError, match="depth"):
        hilbert_code(torch.zeros(4, 3, dtype=torch.int64), 0)
    with pytest.raises(ValueError, match="non-negative"):
        hilbert_code(torch.tensor([[-1, 0, 0]]), 2)


# ----------------------------------------------------------------------------- codes of positions
def _room(n: int = 300, extent: tuple[float, float, float] = (8.3, 5.1, 2.9), seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=gen) * torch.tensor(extent) - 3.0  # (n, 3) metres, negative min


def test_serialization_codes_match_slow_reference():
    pos = _room()
    u = pos - pos.min(dim=0).values
    cells = [[int(v) for v in row] for row in u.tolist()]  # 1-m cells, no scaling
    depth = max(max(max(c) for c in cells).bit_length(), 1)
    assert depth == 4
    batch = 1 << (3 * depth)
    assert serialization_codes(pos, "hilbert").tolist() == [batch | _slow_hilbert(c, depth) for c in cells]
    assert serialization_codes(pos, "z").tolist() == [batch | _slow_morton(c, depth) for c in cells]
    swapped = [[c[1], c[0], c[2]] for c in cells]
    assert serialization_codes(pos, "hilbert-trans").tolist() == [
        batch | _slow_hilbert(c, depth) for c in swapped
    ]
    assert serialization_codes(pos, "z-trans").tolist() == [batch | _slow_morton(c, depth) for c in swapped]


@pytest.mark.parametrize(("extent", "depth"), [(8.3, 4), (0.5, 1), (0.0, 1), (1.0, 1), (2.0, 2), (7.99, 3)])
def test_depth_rule(extent, depth):
    # the batch bit 1 << 3d sits right above the 3d code bits, so code >> 3d == 1 exactly when d is right
    pos = torch.tensor([[0.0, 0.0, 0.0], [extent, 0.3, 0.1], [0.2 * extent, 0.0, 0.0]]) + 10.0
    for order in ("hilbert", "hilbert-trans", "z", "z-trans"):
        code = serialization_codes(pos, order)
        assert (code >> (3 * depth)).eq(1).all(), order


def test_trans_equals_swapped_coordinates():
    pos = _room(seed=1)
    swapped = pos[:, [1, 0, 2]]
    assert torch.equal(serialization_codes(pos, "hilbert-trans"), serialization_codes(swapped, "hilbert"))
    assert torch.equal(serialization_codes(pos, "z-trans"), serialization_codes(swapped, "z"))
    assert not torch.equal(serialization_codes(pos, "hilbert-trans"), serialization_codes(pos, "hilbert"))


def test_grid_size_divides_before_truncation():
    pos = _room(seed=2)
    for order in ("hilbert", "z"):
        assert torch.equal(
            serialization_codes(pos, order, grid_size=0.5), serialization_codes(2 * pos, order)
        )


def test_unknown_order_and_bad_inputs_raise():
    pos = _room(n=10)
    with pytest.raises(ValueError, match="order"):
        serialization_codes(pos, "peano")
    with pytest.raises(ValueError, match="order"):
        serialization_order(pos, "Hilbert")
    with pytest.raises(ValueError, match="grid_size"):
        serialization_codes(pos, "z", grid_size=0.0)
    with pytest.raises(ValueError, match="pos"):
        serialization_codes(torch.zeros(0, 3), "z")
    with pytest.raises(ValueError, match="pos"):
        serialization_codes(torch.zeros(5, 3, dtype=torch.int64), "z")


# ----------------------------------------------------------------------------- permutations
@pytest.mark.parametrize("order", ["hilbert", "hilbert-trans", "z", "z-trans"])
@pytest.mark.parametrize("stable", [False, True])
def test_order_and_inverse(order, stable):
    pos = _room(seed=3)
    order_idx, inverse_idx = serialization_order(pos, order, stable=stable)
    code = serialization_codes(pos, order)
    assert sorted(order_idx.tolist()) == list(range(len(pos)))
    assert (code[order_idx][1:] >= code[order_idx][:-1]).all()  # sorted along the curve
    assert inverse_idx[order_idx].tolist() == list(range(len(pos)))
    assert order_idx[inverse_idx].tolist() == list(range(len(pos)))
    assert torch.equal(pos[order_idx][inverse_idx], pos)


def test_stable_order_keeps_ties_in_input_order():
    pos = _room(seed=4)  # 300 points in ~8x5x3 one-metre cells: many ties
    order_idx, _ = serialization_order(pos, "hilbert", stable=True)
    code = serialization_codes(pos, "hilbert").tolist()
    assert order_idx.tolist() == sorted(range(len(pos)), key=lambda i: code[i])  # Python sort is stable


def test_batched_orders_equal_each_scene_alone_with_padding():
    """Scenes of a batch ordered together (tables; padding last) equal serialization_order per scene,
    at every depth up to past the tables (the bitwise fallback), for every curve."""
    from lassm.model.serialize import ORDERS, batched_orders

    g = torch.Generator().manual_seed(3)
    for extent in (0.5, 5.0, 40.0, 150.0):  # depths 1 .. 8 bits; 150 m is deeper than the tables
        pos = torch.rand(3, 30, 3, generator=g) * extent
        valid = torch.ones(3, 30, dtype=torch.bool)
        valid[1, 22:] = False  # scene 1 has 22 queries
        got = batched_orders(pos, valid, ORDERS, 1.0, stable=True)
        for (order_idx, inverse_idx), name in zip(got, ORDERS, strict=True):
            for b in range(3):
                n = int(valid[b].sum())
                ref_order, ref_inverse = serialization_order(pos[b, :n], name, 1.0, stable=True)
                assert torch.equal(order_idx[b, :n], ref_order)
                assert torch.equal(inverse_idx[b, :n], ref_inverse)
                assert torch.equal(order_idx[b, n:], torch.arange(n, 30))  # padding keeps the end


def test_table_only_flags_scenes_deeper_than_the_tables():
    from lassm.model.serialize import TABLE_DEPTH, batched_orders, table_only

    pos = torch.rand(2, 20, 3) * 10.0
    with table_only() as flags:
        inside = batched_orders(pos, None, ("hilbert",), stable=True)
    assert len(flags) == 1 and not bool(flags[0])
    assert torch.equal(inside[0][0], batched_orders(pos, None, ("hilbert",), stable=True)[0][0])
    pos[1, 0, 0] = 2.0 ** (TABLE_DEPTH + 1)  # scene 1 is now too deep for the tables
    with table_only() as flags:
        batched_orders(pos, None, ("hilbert",), stable=True)
    assert bool(flags[0])
