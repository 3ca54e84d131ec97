"""Backbones: both sparse backends agree, reference key names, training (golden parity: test_golden.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lassm.config import BackboneConfig
from lassm.data.synthetic import generate_room
from lassm.model import Res16UNet34C, SpUNet, build_backbone
from lassm.sparse import single_thread, spconv_available
from lassm.voxelize import grid_sample_first

needs_spconv = pytest.mark.skipif(not spconv_available(), reason="spconv not installed")


@pytest.fixture(scope="module")
def room_batch():
    """Two small synthetic rooms voxelized at 2 cm, packed with offsets."""
    grids, counts = [], []
    for seed in (0, 1):
        vertices = torch.from_numpy(generate_room(seed, "small").mesh.vertices.astype(np.float32))
        grid, _ = grid_sample_first(vertices)
        grids.append(grid)
        counts.append(len(grid))
    return torch.cat(grids), torch.tensor(np.cumsum(counts))


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.rand(m.num_features, generator=g) * 0.2 - 0.1
            m.running_mean = torch.rand(m.num_features, generator=g) * 0.2 - 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5
    return model.eval()


def both_backends(model, feat, grid, offset):
    outs = []
    for backend in ("torch", "spconv"):
        model.cfg.sparse_backend = backend
        with torch.no_grad():
            outs.append(model(feat, grid, offset))
    return outs


@needs_spconv
@pytest.mark.parametrize("name", ["spunet", "res16unet34c"])
def test_torch_backend_matches_spconv_on_a_synthetic_room(name, room_batch):
    grid, offset = room_batch
    cfg = BackboneConfig(name=name, in_channels=6 if name == "spunet" else 3)
    torch.manual_seed(0)
    model = randomize_norms(build_backbone(cfg))
    feat = torch.rand(len(grid), cfg.in_channels) * 2 - 1
    ours, ref = both_backends(model, feat, grid, offset)
    assert ours.shape == (len(grid), cfg.out_channels)
    assert ref.abs().max() > 0.05  # a real signal, not all zeros after the ReLUs
    assert (ours - ref).abs().max() <= 1e-4


@needs_spconv
def test_spunet_state_dict_is_the_references(room_batch):
    from lassm.model.spconv_reference import SpconvSpUNet

    grid, offset = room_batch
    ours = randomize_norms(SpUNet(BackboneConfig(sparse_backend="torch")))
    reference = SpconvSpUNet(BackboneConfig()).eval()
    assert list(ours.state_dict()) == list(reference.state_dict())
    reference.load_state_dict(ours.state_dict(), strict=True)
    feat = torch.rand(len(grid), 6) * 2 - 1
    with torch.no_grad():
        mine = ours(feat, grid, offset)
        with single_thread():  # spconv's CPU build needs one thread
            theirs = reference(feat, grid, offset)
    assert (mine - theirs).abs().max() <= 1e-4


def test_spunet_trains_on_the_torch_backend(room_batch):
    grid, offset = room_batch
    torch.manual_seed(0)
    model = SpUNet(BackboneConfig(base_channels=8, planes=(8, 12, 16, 20, 24), sparse_backend="torch"))
    feat = torch.rand(len(grid), 6)
    out = model(feat, grid, offset)
    out.square().mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    deepest = "unet.u.u.u.u.blocks.block1.conv_branch.5.weight"
    assert grads[deepest].abs().sum() > 0  # the gradient reaches the bottom of the U


def test_res16_layout_matches_mask3d():
    model = Res16UNet34C()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["conv0p1s1.weight"] == (32, 5, 5, 5, 3)
    assert shapes["block5.0.conv1.weight"] == (256, 3, 3, 3, 384)
    assert shapes["block8.1.conv2.weight"] == (96, 3, 3, 3, 96)
    assert shapes["block2.0.downsample.0.weight"] == (64, 1, 1, 1, 32)
    assert shapes["convtr7p2s2.weight"] == (96, 2, 2, 2, 96)
    assert model.bn0.momentum == 0.02 and model.block1[0].norm1.momentum == 0.1
    assert model.block2[0].downsample[1].momentum == 0.02
    assert sum(len(getattr(model, f"block{i}")) for i in range(1, 9)) == sum(Res16UNet34C.LAYERS)


def test_bad_batch_input_is_named(room_batch):
    grid, offset = room_batch
    model = SpUNet(BackboneConfig(base_channels=8, planes=(8, 8), sparse_backend="torch"))
    with pytest.raises(ValueError, match="offset: last entry"):
        model(torch.zeros(len(grid), 6), grid, offset - 1)
    with pytest.raises(ValueError, match="every scene needs at least one voxel"):
        model(torch.zeros(len(grid), 6), grid, torch.tensor([0, len(grid)]))
    with pytest.raises(ValueError, match="backbone.name"):
        build_backbone(BackboneConfig(name="pointnet"))
    model.cfg.sparse_backend = "gpu"
    with pytest.raises(ValueError, match="sparse_backend"):
        model(torch.zeros(len(grid), 6), grid, offset)

