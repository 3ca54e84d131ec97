"""Grid sampling: first point per voxel, and the point -> voxel inverse."""

from __future__ import annotations

import pytest
import torch

from lassm.augment import grid_sample_first


def test_grid_sample_first_keeps_the_first_point_and_maps_every_point():
    g = torch.Generator().manual_seed(0)
    coord = torch.rand(2000, 3, generator=g) * 0.5
    grid, keep, inverse = grid_sample_first(coord, 0.1, return_inverse=True)
    cells = torch.floor((coord - coord.min(0).values) / 0.1).long()
    assert torch.equal(grid[inverse], cells)  # every point lands in its own voxel
    for v in range(len(grid)):  # the kept point is the lowest index in its voxel
        assert keep[v] == torch.nonzero((cells == grid[v]).all(1))[0, 0]
    assert torch.equal(grid, torch.unique(cells, dim=0))  # lexicographic voxel order
    grid2, keep2 = grid_sample_first(coord, 0.1)
    assert torch.equal(grid2, grid) and torch.equal(keep2, keep)


def test_grid_sample_first_rejects_bad_input():
    with pytest.raises(ValueError, match="coord: expected a non-empty"):
        grid_sample_first(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="grid_size"):
        grid_sample_first(torch.rand(5, 3), 0.0)


def test_every_t_layer_gets_a_released_augmentation():
    """Decoders beyond the released "-3" / "-0" (the ablations' t_layer 6) train with "-3"'s pipeline."""
    from lassm.augment import augment_config, model_variant

    assert [model_variant(t) for t in range(7)] == ["-0"] + ["-3"] * 6
    for t in range(7):
        assert augment_config("synthetic", model_variant(t)).elastic_p == (0.5 if t == 0 else 0.95)
