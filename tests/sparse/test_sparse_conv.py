"""Sparse convolution layers: torch backend against spconv's CPU forward, gradients, errors."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from lassm.sparse import (
    SparseConv3d,
    SparseInverseConv3d,
    SparseSequential,
    SparseTensor,
    SubMConv3d,
    gather_gemm,
    spconv_available,
)
from lassm.sparse.kernel_map import build_down_map, build_subm_map

needs_spconv = pytest.mark.skipif(not spconv_available(), reason="spconv not installed")


def random_voxels(seed: int, n: int = 2000, size: int = 21, batches: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(0, size, (n, 4), generator=g)
    c[:, 0] %= batches
    return torch.unique(c, dim=0).int()


def run(module, feats, coords, backend, shape=None):
    with torch.no_grad():
        return module(SparseTensor.from_voxels(feats, coords, shape, backend=backend))


def sorted_rows(x: SparseTensor) -> torch.Tensor:
    key = x.coords.long()
    order = torch.argsort(((key[:, 0] * 1000 + key[:, 1]) * 1000 + key[:, 2]) * 1000 + key[:, 3])
    return x.feats[order]


@needs_spconv
@pytest.mark.parametrize("kernel, bias", [(1, False), (3, False), (3, True), (5, False)])
def test_submanifold_matches_spconv(kernel, bias):
    torch.manual_seed(kernel)
    coords = random_voxels(kernel)
    conv = SubMConv3d(6, 9, kernel, bias=bias, indice_key="a")
    feats = torch.randn(len(coords), 6)
    ours, ref = run(conv, feats, coords, "torch"), run(conv, feats, coords, "spconv")
    assert torch.equal(ours.coords, ref.coords)
    assert (ours.feats - ref.feats).abs().max() <= 1e-5


@needs_spconv
@pytest.mark.parametrize("shape", [(21, 21, 21), (22, 23, 24)])
def test_down_and_inverse_match_spconv_on_odd_and_even_grids(shape):
    torch.manual_seed(1)
    coords = random_voxels(4)
    net = SparseSequential(SparseConv3d(5, 8, indice_key="d"), SparseInverseConv3d(8, 4, indice_key="d"))
    feats = torch.randn(len(coords), 5)
    outs = {}
    for backend in ("torch", "spconv"):
        x = SparseTensor.from_voxels(feats, coords, shape, backend=backend)
        with torch.no_grad():
            down = net[0](x)
            up = net[1](down)
        outs[backend] = (down, up)
    (d_t, u_t), (d_s, u_s) = outs["torch"], outs["spconv"]
    assert d_t.spatial_shape == tuple(d_s.spatial_shape) and len(d_t) == len(d_s)
    assert (sorted_rows(d_t) - sorted_rows(d_s)).abs().max() <= 1e-5
    assert torch.equal(u_t.coords, coords) and torch.equal(u_s.coords, coords)
    assert (u_t.feats - u_s.feats).abs().max() <= 1e-5


def test_both_strategies_compute_the_same_convolution():
    coords = random_voxels(5, n=800, size=12)
    g = torch.Generator().manual_seed(0)
    sub = build_subm_map(coords, (12, 12, 12), 3).pairs
    down = build_down_map(coords, (12, 12, 12)).pairs
    for pairs, volume, transpose in ((sub, 27, False), (sub, 27, True), (down, 8, False), (down, 8, True)):
        n_src = pairs.n_out if transpose else pairs.n_in
        x = torch.randn(n_src, 5, generator=g, dtype=torch.float64)
        w = torch.randn(volume, 5, 3, generator=g, dtype=torch.float64)
        a = gather_gemm.sparse_conv(x, w, pairs, transpose, "gather_first")
        b = gather_gemm.sparse_conv(x, w, pairs, transpose, "gemm_first")
        assert (a - b).abs().max() < 1e-12


def test_gemm_first_split_over_offsets_gives_the_same_result(monkeypatch):
    coords = random_voxels(6, n=800, size=12)
    pairs = build_subm_map(coords, (12, 12, 12), 3).pairs
    x, w = torch.randn(pairs.n_in, 4, dtype=torch.float64), torch.randn(27, 4, 3, dtype=torch.float64)
    whole = gather_gemm.sparse_conv(x, w, pairs, False, "gemm_first")
    monkeypatch.setattr(gather_gemm, "GEMM_BUDGET", pairs.n_in * 3 * 4)  # 4 offsets per product
    split = gather_gemm.sparse_conv(x, w, pairs, False, "gemm_first")
    assert (whole - split).abs().max() < 1e-12


@pytest.mark.parametrize("strategy", ["gather_first", "gemm_first"])
@pytest.mark.parametrize("layer", ["subm3", "subm1", "down", "inverse"])
def test_gradients_match_finite_differences(layer, strategy, monkeypatch):
    monkeypatch.setattr(gather_gemm, "sparse_conv", _forced(gather_gemm.sparse_conv, strategy))
    coords = random_voxels(7, n=150, size=6)
    torch.manual_seed(0)
    down = SparseConv3d(3, 4, indice_key="d").double()
    module = {"subm3": SubMConv3d(3, 2, 3, bias=True, indice_key="s"), "subm1": SubMConv3d(3, 2, 1),
              "down": down, "inverse": SparseInverseConv3d(4, 2, indice_key="d")}[layer].double()
    feats = torch.randn(len(coords), 3, dtype=torch.float64, requires_grad=True)

    def f(feats, weight):
        x = SparseTensor.from_voxels(feats, coords, backend="torch")
        if layer == "inverse":
            x = down(x)
        return functional_call(module, {"weight": weight}, (x,)).feats

    weight = module.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(f, (feats, weight))


def _forced(fn, strategy):
    def call(x, w, pairs, transpose=False, _strategy=None):
        return fn(x, w, pairs, transpose, strategy)
    return call


def test_bfloat16_autocast_runs_close_to_float32():
    coords = random_voxels(8)
    conv = SubMConv3d(16, 16, 3, indice_key="s")
    feats = torch.randn(len(coords), 16)
    ref = run(conv, feats, coords, "torch").feats
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = run(conv, feats, coords, "torch").feats
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max() <= 0.05 * ref.abs().max()


@needs_spconv
def test_spconv_cpu_refuses_to_train():
    coords = random_voxels(9)
    x = SparseTensor.from_voxels(torch.randn(len(coords), 3), coords, backend="spconv")
    with pytest.raises(RuntimeError, match="no backward"):
        SubMConv3d(3, 3, 3)(x)


def test_layer_errors_name_the_problem():
    coords = random_voxels(10)
    x = SparseTensor.from_voxels(torch.randn(len(coords), 3), coords, backend="torch")
    with pytest.raises(ValueError, match="input has 3 channels, expected 4"):
        SubMConv3d(4, 4, 3)(x)
    with pytest.raises(ValueError, match="no downsampling map under indice_key 'nope'"):
        SparseInverseConv3d(3, 3, indice_key="nope")(x)
    with pytest.raises(ValueError, match="kernel_size=2, stride=2"):
        SparseConv3d(3, 3, kernel_size=3)
    SubMConv3d(3, 3, 3, indice_key="k")(x)
    with pytest.raises(ValueError, match="built for .* kernel 3"):
        SubMConv3d(3, 3, 5, indice_key="k")(x)
