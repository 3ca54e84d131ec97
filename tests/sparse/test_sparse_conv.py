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
    cpu_index,
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


def reference_conv(x, w, pairs, transpose):
    """The convolution written out pair by pair, in float64: y[o] = sum_p x[i_p] @ w[k_p]."""
    k = torch.repeat_interleave(torch.arange(len(pairs.counts)), torch.tensor(pairs.counts))
    src, dst, n = ((pairs.out_idx, pairs.in_idx, pairs.n_in) if transpose
                   else (pairs.in_idx, pairs.out_idx, pairs.n_out))
    y = torch.zeros(n, w.shape[2], dtype=torch.float64)
    for s, d, kk in zip(src.tolist(), dst.tolist(), k.tolist(), strict=True):
        y[d] += x[s].double() @ w[kk].double()
    return y


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="SMALL_GEMM was measured on MKL's sgemm")
@pytest.mark.parametrize("c_in, c_out", [(6, 16), (7, 16), (16, 16), (32, 32), (96, 48), (64, 80)])
def test_mkl_rounds_a_row_alike_in_any_gemm_of_at_least_small_gemm_rows(c_in, c_out):
    """What makes the blocked strategy exact: a row's product is the same in any GEMM of >= SMALL_GEMM
    rows, wherever the rows start (the weights strided as kernel_matrix gives them)."""
    g = torch.Generator().manual_seed(c_in)
    x = torch.randn(500, c_in, generator=g)
    w = torch.randn(27, c_out, c_in, generator=g).transpose(1, 2)[4]
    whole = torch.mm(x, w)
    for m in (gather_gemm.SMALL_GEMM, 13, 31, 100, 487):
        for start in (0, 1, 5, 13):
            assert torch.equal(torch.mm(x[start:start + m], w), whole[start:start + m]), (m, start)


# voxel counts in a 12^3 grid: dense (every offset has many pairs, blocks cut them into pieces of a few
# rows) and sparse (most offsets have fewer than SMALL_GEMM pairs in all: computed whole)
@pytest.mark.parametrize("n", [1500, 700, 90])
@pytest.mark.parametrize("layer", ["subm3", "subm5", "down", "inverse"])
def test_blocked_strategy_is_gather_first_bit_for_bit(layer, n, monkeypatch):
    coords = random_voxels(11, n=n, size=12)
    pairs = (build_subm_map(coords, (12, 12, 12), int(layer[-1])) if layer.startswith("subm")
             else build_down_map(coords, (12, 12, 12))).pairs
    transpose = layer == "inverse"
    g = torch.Generator().manual_seed(n)
    x = torch.randn(pairs.n_out if transpose else pairs.n_in, 7, generator=g)
    w = torch.randn(len(pairs.counts), 16, 7, generator=g).transpose(1, 2)  # kernel_matrix's strides
    reference = gather_gemm.sparse_conv(x, w, pairs, transpose, "gather_first")
    for elements in (1, 1 << 12, 1 << 21):  # blocks of 12 * (K + 1) pairs (the least), ~340, all
        monkeypatch.setattr(gather_gemm, "BLOCK_ELEMENTS", elements)
        blocked = gather_gemm.sparse_conv(x, w, pairs, transpose, "blocked")
        if torch.backends.mkl.is_available():  # SMALL_GEMM was measured on MKL's sgemm
            assert torch.equal(blocked, reference)
        assert torch.allclose(blocked.double(), reference_conv(x, w, pairs, transpose), atol=1e-5)


def test_blocked_strategy_on_one_thread_in_inference_mode_and_after_an_error(monkeypatch):
    coords = random_voxels(12, n=1500, size=12)
    pairs = build_subm_map(coords, (12, 12, 12), 3).pairs
    x, w = torch.randn(pairs.n_in, 4), torch.randn(27, 4, 6)
    monkeypatch.setattr(gather_gemm, "BLOCK_ELEMENTS", 1)
    reference = gather_gemm.sparse_conv(x, w, pairs, False, "gather_first")
    threads = torch.get_num_threads()
    with torch.inference_mode():
        assert torch.equal(gather_gemm.sparse_conv(x, w, pairs, False, "blocked"), reference)
    torch.set_num_threads(1)
    try:
        assert torch.equal(gather_gemm.sparse_conv(x, w, pairs, False, "blocked"), reference)
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(RuntimeError):
        gather_gemm.sparse_conv(x[:, :3], w, pairs, False, "blocked")  # 3 channels for 4-row weights
    assert torch.get_num_threads() == threads  # restored after the pool ran


def test_cpu_float32_default_is_blocked_and_can_be_switched_off(monkeypatch):
    calls, blocked = [], gather_gemm.conv_blocked
    monkeypatch.setattr(gather_gemm, "conv_blocked", lambda *args: calls.append(args) or blocked(*args))
    coords = random_voxels(13, n=300, size=8)
    conv = SubMConv3d(3, 16, 3)
    feats = torch.randn(len(coords), 3)
    with torch.no_grad():
        conv(SparseTensor.from_voxels(feats, coords, backend="torch"))
        assert len(calls) == 1
        SubMConv3d(3, 8, 3)(SparseTensor.from_voxels(feats, coords, backend="torch"))  # < 16 columns
        conv.double()(SparseTensor.from_voxels(feats.double(), coords, backend="torch"))  # float64
        monkeypatch.setattr(cpu_index, "ENABLED", False)
        conv.float()(SparseTensor.from_voxels(feats, coords, backend="torch"))
    assert len(calls) == 1


@pytest.mark.parametrize("threads", [1, 2])
def test_spunet_forward_and_backward_are_the_same_with_the_cpu_fast_paths(threads, monkeypatch):
    from lassm.config import BackboneConfig
    from lassm.model.backbone import SpUNet

    g = torch.Generator().manual_seed(threads)
    scenes = [torch.unique(torch.randint(0, size, (n, 3), generator=g), dim=0)
              for size, n in ((40, 5000), (25, 900))]
    grid = torch.cat(scenes)
    offset = torch.tensor([len(scenes[0]), len(grid)])
    feat = torch.randn(len(grid), 6, generator=g)
    torch.manual_seed(0)
    net = SpUNet(BackboneConfig(base_channels=16, planes=(16, 32, 24), sparse_backend="torch"))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        results = []
        for enabled in (True, False):
            monkeypatch.setattr(cpu_index, "ENABLED", enabled)
            net.zero_grad()
            inp = feat.clone().requires_grad_()
            out = net(inp, grid, offset)
            (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
            results.append((out.detach(), inp.grad, [p.grad.clone() for p in net.parameters()]))
    finally:
        torch.set_num_threads(before)
    (out_a, dx_a, dw_a), (out_b, dx_b, dw_b) = results
    assert torch.equal(out_a, out_b) and torch.equal(dx_a, dx_b)
    assert all(torch.equal(a, b) for a, b in zip(dw_a, dw_b, strict=True))


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
