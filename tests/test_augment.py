"""Grid sampling: first point per voxel, and the point -> voxel inverse."""

from __future__ import annotations

import pytest
import torch

from lassm.voxelize import grid_sample_first


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


def test_presets_record_their_augmentation_and_old_configs_get_the_one_they_implied():
    """Augmentation is part of Config (filled by the presets); a config.json written before that
    gets what its dataset and decoder implied then ("-0" settings only without cross-attention)."""
    from lassm import config

    assert config.synthetic(variant="-0").augment.elastic_p == 0.5
    assert config.synthetic().augment.val_rotate_z == 0.35
    assert config.scannet200().augment.feat_keys == "color"
    for cfg, variant in ((config.synthetic(variant="-0"), "-0"), (config.scannet200(), "-3")):
        old = cfg.to_dict()
        old.pop("augment")
        assert config.Config.from_dict(old).augment == config.augment_preset(cfg.data.name, variant)
    six = config.synthetic().to_dict()
    six.pop("augment")
    six["model"]["decoder"]["t_layer"] = 6
    assert config.Config.from_dict(six).augment.elastic_p == 0.95
