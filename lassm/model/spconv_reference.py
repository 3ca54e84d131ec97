"""SpUNet-v2m1 assembled directly from spconv modules, the way the authors build it.

Not used by LaSSM itself. It exists to check two claims about :class:`lassm.model.SpUNet`:
that its state_dict is key-for-key the reference's (tests load one into the other strictly),
and that our layer wrappers add little time over plain spconv (``python -m lassm.bench
backbone`` times both). Requires spconv.
"""

from __future__ import annotations

from collections import OrderedDict

import spconv.pytorch as sp
import torch
from spconv.pytorch.modules import SparseModule
from torch import nn

from ..config import BackboneConfig


def _bn(channels):
    return nn.BatchNorm1d(channels, eps=1e-4, momentum=0.1)


class _Block(SparseModule):
    def __init__(self, a, b, key):
        super().__init__()
        self.i_branch = sp.SparseSequential(nn.Identity() if a == b else sp.SubMConv3d(a, b, 1, bias=False))
        self.conv_branch = sp.SparseSequential(
            _bn(a), nn.ReLU(), sp.SubMConv3d(a, b, 3, padding=1, bias=False, indice_key=key),
            _bn(b), nn.ReLU(), sp.SubMConv3d(b, b, 3, padding=1, bias=False, indice_key=key))

    def forward(self, x):
        shortcut = sp.SparseConvTensor(x.features, x.indices, x.spatial_shape, x.batch_size)
        out = self.conv_branch(x)
        return out.replace_feature(out.features + self.i_branch(shortcut).features)


class _Level(SparseModule):
    def __init__(self, planes, level=1):
        super().__init__()
        w = planes[0]
        self.blocks = sp.SparseSequential(
            OrderedDict((f"block{i}", _Block(w, w, f"subm{level}")) for i in range(2)))
        if len(planes) > 1:
            n = planes[1]
            self.conv = sp.SparseSequential(_bn(w), nn.ReLU(), sp.SparseConv3d(
                w, n, 2, stride=2, bias=False, indice_key=f"spconv{level}"))
            self.u = _Level(planes[1:], level + 1)
            self.deconv = sp.SparseSequential(_bn(n), nn.ReLU(), sp.SparseInverseConv3d(
                n, w, 2, bias=False, indice_key=f"spconv{level}"))
            self.blocks_tail = sp.SparseSequential(OrderedDict(
                (f"block{i}", _Block(w * (2 - i), w, f"subm{level}")) for i in range(2)))

    def forward(self, x):
        skip = self.blocks(x)
        if not hasattr(self, "u"):
            return skip
        up = self.deconv(self.u(self.conv(skip)))
        return self.blocks_tail(skip.replace_feature(torch.cat([skip.features, up.features], 1)))


class SpconvSpUNet(nn.Module):
    def __init__(self, cfg: BackboneConfig | None = None):
        super().__init__()
        cfg = cfg or BackboneConfig()
        self.input_conv = sp.SparseSequential(
            sp.SubMConv3d(cfg.in_channels, cfg.base_channels, 3, padding=1, bias=False, indice_key="subm1"))
        self.unet = _Level(list(cfg.planes))
        self.output_layer = sp.SparseSequential(_bn(cfg.base_channels), nn.ReLU(inplace=True))

    def forward(self, feat, grid_coord, offset):
        counts = torch.diff(offset, prepend=offset.new_zeros(1))
        batch = torch.repeat_interleave(torch.arange(len(offset), device=offset.device), counts)
        shape = (grid_coord.max(0).values + 1).clamp(min=128).tolist()
        indices = torch.cat([batch.view(-1, 1), grid_coord], 1).int().contiguous()
        x = sp.SparseConvTensor(feat, indices, shape, len(offset))
        return self.output_layer(self.unet(self.input_conv(x))).features
