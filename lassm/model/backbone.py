"""The sparse-convolution U-Nets that give LaSSM its per-voxel features (REFERENCE_SPEC 4).

* :class:`SpUNet` — ``SpUNet-v2m1`` (ScanNet v2, ScanNet++): a five-level pre-activation
  residual U-Net; module names equal the reference's, so its state_dict loads unchanged.
* :class:`Res16UNet34C` — Mask3D's MinkowskiEngine backbone (ScanNet200), rebuilt on the same
  sparse layers; :func:`lassm.model.checkpoint.minkowski_to_lassm` converts its checkpoints.

Both map ``(feat, grid_coord, offset)`` of a packed voxel batch to ``(N_vx, F)`` features in
the input row order, on either sparse backend (``BackboneConfig.sparse_backend``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..config import BackboneConfig
from ..sparse import (
    SparseConv3d,
    SparseInverseConv3d,
    SparseModule,
    SparseSequential,
    SparseTensor,
    SubMConv3d,
)


def batch_ids(offset: torch.Tensor, ends: list[int] | None = None) -> torch.Tensor:
    """(N,) scene index of every row of a packed batch with cumulative ``offset`` (B,); ``ends``: the
    same offsets already on the host (then no host round trip)."""
    ends = offset.tolist() if ends is None else ends
    counts = [e - s for s, e in zip([0, *ends[:-1]], ends, strict=True)]
    if any(c <= 0 for c in counts):
        raise ValueError(f"offset: every scene needs at least one voxel; cumulative offsets {ends}")
    return torch.repeat_interleave(torch.arange(len(offset), device=offset.device),
                                   torch.diff(offset, prepend=offset.new_zeros(1)), output_size=ends[-1])


def _voxels(feat, grid_coord, offset, shape_of, backend) -> SparseTensor:
    """The backbone's input SparseTensor; ``shape_of`` maps the grid's per-axis maximum (host ints) to the
    spatial shape. The offsets and the grid's bounds reach the host in one copy, and the bounds are handed
    on, so that ``from_voxels`` needs no copy of its own for them."""
    if grid_coord.dim() != 2 or grid_coord.shape[1] != 3:
        raise ValueError(f"grid_coord: expected shape (N, 3), got {tuple(grid_coord.shape)}")
    if grid_coord.shape[0] == 0:
        raise ValueError("grid_coord: empty batch (no voxels)")
    host = torch.cat([offset.reshape(-1).long(), grid_coord.min(0).values.long(),
                      grid_coord.max(0).values.long()]).tolist()  # the one host copy
    ends, lo, hi = host[:-6], host[-6:-3], host[-3:]
    if grid_coord.shape[0] != ends[-1]:
        raise ValueError(f"offset: last entry {ends[-1]} != number of voxels {grid_coord.shape[0]}")
    coords = torch.cat([batch_ids(offset, ends).view(-1, 1).to(grid_coord.dtype), grid_coord], 1)
    bounds = ([0, *lo], [len(ends) - 1, *hi])  # every scene has a voxel (batch_ids checked it)
    return SparseTensor.from_voxels(feat, coords, shape_of(hi), len(ends), backend, bounds=bounds)


# ------------------------------------------------------------------------------ SpUNet-v2m1


def _bn(channels: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(channels, eps=1e-4, momentum=0.1)  # every SpUNet norm (spec 4.1)


class ResidualBlock(SparseModule):
    """Pre-activation block: conv(relu(bn(conv(relu(bn(x)))))) + shortcut, no activation after."""

    def __init__(self, in_channels: int, out_channels: int, indice_key: str):
        super().__init__()
        shortcut = nn.Identity() if in_channels == out_channels else SubMConv3d(in_channels, out_channels, 1)
        self.i_branch = SparseSequential(shortcut)
        # in-place ReLUs on the norms' fresh outputs: the same numbers, one buffer fewer per step (at 4M
        # points the largest of the backbone's peak); module indices stay the reference's
        self.conv_branch = SparseSequential(
            _bn(in_channels), nn.ReLU(inplace=True),
            SubMConv3d(in_channels, out_channels, 3, indice_key=indice_key),
            _bn(out_channels), nn.ReLU(inplace=True),
            SubMConv3d(out_channels, out_channels, 3, indice_key=indice_key))

    def forward(self, x: SparseTensor) -> SparseTensor:
        out = self.conv_branch(x)
        return out.replace(out.feats + self.i_branch(x).feats)


def _blocks(pairs: list[tuple[int, int]], indice_key: str) -> SparseSequential:
    return SparseSequential(OrderedDict(
        (f"block{i}", ResidualBlock(a, b, indice_key)) for i, (a, b) in enumerate(pairs)))


class UNetLevel(SparseModule):
    """One level of the recursive U-Net: blocks, then (above the bottom) down, ``u``, up, tail."""

    def __init__(self, planes: list[int], level: int = 1, block_reps: int = 2):
        super().__init__()
        width = planes[0]
        self.blocks = _blocks([(width, width)] * block_reps, f"subm{level}")
        if len(planes) > 1:
            nxt = planes[1]
            self.conv = SparseSequential(_bn(width), nn.ReLU(inplace=True),
                                         SparseConv3d(width, nxt, indice_key=f"spconv{level}"))
            self.u = UNetLevel(planes[1:], level + 1, block_reps)
            self.deconv = SparseSequential(_bn(nxt), nn.ReLU(inplace=True),
                                           SparseInverseConv3d(nxt, width, indice_key=f"spconv{level}"))
            # first tail block takes [skip, upsampled] (2 * width channels)
            self.blocks_tail = _blocks([(width * (2 - i), width) for i in range(block_reps)], f"subm{level}")

    def forward(self, x: SparseTensor) -> SparseTensor:
        skip = self.blocks(x)
        if not hasattr(self, "u"):
            return skip
        up = self.deconv(self.u(self.conv(skip)))
        merged = skip.replace(torch.cat([skip.feats, up.feats], 1))
        del skip, up  # their features live on in ``merged`` only (and where autograd keeps them)
        return self.blocks_tail(merged)


class SpUNet(nn.Module):
    """``SpUNet-v2m1``: input conv, five-level U-Net, output BN + ReLU (spec 4.1)."""

    def __init__(self, cfg: BackboneConfig | None = None):
        super().__init__()
        cfg = cfg or BackboneConfig()
        self.cfg = cfg
        self.input_conv = SparseSequential(
            SubMConv3d(cfg.in_channels, cfg.base_channels, 3, indice_key="subm1"))
        self.unet = UNetLevel(list(cfg.planes))
        self.output_layer = SparseSequential(_bn(cfg.base_channels), nn.ReLU(inplace=True))
        self.out_channels = cfg.base_channels
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Reference init: submanifold convs trunc-normal(0.02) truncated at +-2, norms 1/0;
        # stride-2 and inverse convs keep spconv's default (already set by the layers).
        for m in self.modules():
            if isinstance(m, SubMConv3d):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feat: torch.Tensor, grid_coord: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """(N, C_in) features, (N, 3) grid coordinates, (B,) offsets -> (N, base) features."""
        # the reference's grid: max coordinate + 1 per axis, at least 128
        x = _voxels(feat, grid_coord, offset, lambda hi: [max(h + 1, 128) for h in hi],
                    self.cfg.sparse_backend)
        x = self.output_layer(self.unet(self.input_conv(x)))
        return x.feats


# ------------------------------------------------------------------------------ Res16UNet34C


def _mink_bn(channels: int, momentum: float) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(channels, eps=1e-5, momentum=momentum)


class BasicBlock(SparseModule):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut); shortcut = 1x1 conv + BN on width change."""

    def __init__(self, in_channels: int, out_channels: int, indice_key: str):
        super().__init__()
        # the block's own norms keep momentum 0.1: Mask3D's layer builder does not pass its
        # configured 0.02 to them (spec 4.2 / 11.2.13), only to the downsample norm
        self.conv1 = SubMConv3d(in_channels, out_channels, 3, indice_key=indice_key)
        self.norm1 = _mink_bn(out_channels, 0.1)
        self.conv2 = SubMConv3d(out_channels, out_channels, 3, indice_key=indice_key)
        self.norm2 = _mink_bn(out_channels, 0.1)
        self.downsample = None
        if in_channels != out_channels:
            self.downsample = SparseSequential(SubMConv3d(in_channels, out_channels, 1),
                                               _mink_bn(out_channels, 0.02))

    def forward(self, x: SparseTensor) -> SparseTensor:
        out = self.conv1(x)
        out = self.conv2(out.replace(torch.relu(self.norm1(out.feats))))
        residual = x.feats if self.downsample is None else self.downsample(x).feats
        return out.replace(torch.relu(self.norm2(out.feats) + residual))


class Res16UNet34C(nn.Module):
    """Mask3D's ScanNet200 backbone (spec 4.2), 96 output channels.

    MinkowskiEngine's stride-1 convolutions keep their input coordinates, so they are
    submanifold convolutions; its stride-2 transposed convolutions write back onto the finer
    coordinates, so they are inverse convolutions. The unused ``final`` 1x1 layer is omitted.
    """

    PLANES = (32, 64, 128, 256, 256, 128, 96, 96)
    LAYERS = (2, 3, 4, 6, 2, 2, 2, 2)
    INIT_DIM = 32

    def __init__(self, cfg: BackboneConfig | None = None):
        super().__init__()
        cfg = cfg or BackboneConfig(name="res16unet34c", in_channels=3)
        self.cfg = cfg
        planes, layers, bn = self.PLANES, self.LAYERS, cfg.bn_momentum
        self.conv0p1s1 = SubMConv3d(cfg.in_channels, self.INIT_DIM, cfg.conv1_kernel_size, indice_key="p1k5")
        self.bn0 = _mink_bn(self.INIT_DIM, bn)
        c_in = self.INIT_DIM
        for level in range(1, 5):  # encoder: stride-2 conv, BN, ReLU, residual group
            setattr(self, f"conv{level}p{2 ** (level - 1)}s2",
                    SparseConv3d(c_in, c_in, indice_key=f"down{level}"))
            setattr(self, f"bn{level}", _mink_bn(c_in, bn))
            setattr(self, f"block{level}", self._group(c_in, planes[level - 1], layers[level - 1], level + 1))
            c_in = planes[level - 1]
        skips = [planes[2], planes[1], planes[0], self.INIT_DIM]  # b3, b2, b1, p1
        for i, level in enumerate(range(4, 0, -1)):  # decoder: transposed conv, BN, ReLU, concat, group
            tr = 4 + i  # convtr4p16s2 ... convtr7p2s2
            setattr(self, f"convtr{tr}p{2 ** level}s2",
                    SparseInverseConv3d(c_in, planes[4 + i], indice_key=f"down{level}"))
            setattr(self, f"bntr{tr}", _mink_bn(planes[4 + i], bn))
            setattr(self, f"block{5 + i}",
                    self._group(planes[4 + i] + skips[i], planes[4 + i], layers[4 + i], level))
            c_in = planes[4 + i]
        self.out_channels = planes[-1]
        self.reset_parameters()

    @staticmethod
    def _group(c_in: int, c_out: int, count: int, level: int) -> SparseSequential:
        key = f"p{2 ** (level - 1)}k3"
        return SparseSequential(*[BasicBlock(c_in if i == 0 else c_out, c_out, key) for i in range(count)])

    def reset_parameters(self) -> None:
        # Mask3D's init: kaiming-normal (fan_out, relu) kernels, norms 1/0
        for m in self.modules():
            if isinstance(m, (SubMConv3d, SparseConv3d, SparseInverseConv3d)):
                fan_out = m.out_channels * m.kernel_size ** 3
                nn.init.normal_(m.weight, std=(2.0 / fan_out) ** 0.5)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _down(self, x: SparseTensor, level: int) -> SparseTensor:
        x = getattr(self, f"conv{level}p{2 ** (level - 1)}s2")(x)
        x = x.replace(torch.relu(getattr(self, f"bn{level}")(x.feats)))
        return getattr(self, f"block{level}")(x)

    def _up(self, x: SparseTensor, skip: SparseTensor, i: int) -> SparseTensor:
        level = 4 - i
        x = getattr(self, f"convtr{4 + i}p{2 ** level}s2")(x)
        x = x.replace(torch.relu(getattr(self, f"bntr{4 + i}")(x.feats)))
        x = x.replace(torch.cat([x.feats, skip.feats], 1))  # [upsampled, skip] (spec 4.2)
        return getattr(self, f"block{5 + i}")(x)

    def forward(self, feat: torch.Tensor, grid_coord: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """(N, 3) colour features, (N, 3) grid coordinates, (B,) offsets -> (N, 96) features."""
        # MinkowskiEngine has no grid bound; a grid divisible by 16 keeps every voxel at all
        # four stride-2 levels (spconv would drop the last layer of an odd-sized grid).
        x = _voxels(feat, grid_coord, offset, lambda hi: [(h + 16) // 16 * 16 for h in hi],
                    self.cfg.sparse_backend)
        p1 = self.conv0p1s1(x)
        p1 = p1.replace(torch.relu(self.bn0(p1.feats)))
        skips = [p1]
        for level in range(1, 5):
            skips.append(self._down(skips[-1], level))
        x = skips.pop()
        for i in range(4):
            x = self._up(x, skips.pop(), i)
        return x.feats


def build_backbone(cfg: BackboneConfig) -> nn.Module:
    if cfg.name == "spunet":
        return SpUNet(cfg)
    if cfg.name == "res16unet34c":
        return Res16UNet34C(cfg)
    raise ValueError(f"backbone.name: unknown backbone {cfg.name!r}; expected 'spunet' or 'res16unet34c'")
