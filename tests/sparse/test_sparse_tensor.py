"""SparseTensor construction: validation of user input and backend choice."""

from __future__ import annotations

import pytest
import torch

from lassm.sparse import SparseTensor, resolve_backend, spconv_available


def voxels(rows):
    coords = torch.tensor(rows, dtype=torch.int32)
    return torch.randn(len(rows), 3), coords


def test_valid_voxels_get_shape_batch_and_backend():
    feats, coords = voxels([[0, 0, 0, 0], [0, 4, 1, 2], [1, 3, 3, 3]])
    x = SparseTensor.from_voxels(feats, coords, backend="torch")
    assert x.spatial_shape == (5, 4, 4)
    assert x.batch_size == 2 and len(x) == 3 and x.backend == "torch"
    y = x.replace(feats * 2)
    assert y.maps is x.maps and torch.equal(y.coords, x.coords)


def test_bounds_from_the_caller_give_the_same_tensor_and_the_same_checks():
    """``bounds`` (the columns' minimum and maximum, already on the host) replaces from_voxels' own copy: the
    same shape and batch size, and a negative coordinate in them is refused as before."""
    feats, coords = voxels([[0, 0, 0, 0], [0, 4, 1, 2], [1, 3, 3, 3]])
    own = SparseTensor.from_voxels(feats, coords, backend="torch")
    given = SparseTensor.from_voxels(feats, coords, backend="torch", bounds=([0, 0, 0, 0], [1, 4, 3, 3]))
    assert (given.spatial_shape, given.batch_size) == (own.spatial_shape, own.batch_size) == ((5, 4, 4), 2)
    feats, coords = voxels([[0, -1, 0, 0]])
    with pytest.raises(ValueError, match="negative"):
        SparseTensor.from_voxels(feats, coords, backend="torch", bounds=([0, -1, 0, 0], [0, -1, 0, 0]))


@pytest.mark.parametrize("rows, shape, message", [
    ([[0, 0, 0, 0], [0, 9, 0, 0]], (8, 8, 8), "outside spatial_shape"),
    ([[0, -1, 0, 0]], None, "negative"),
    ([[0, 1, 2, 3], [0, 1, 2, 3]], None, "duplicate voxel"),
    ([[0, 1, 2, 3], [2, 1, 2, 3]], None, r"scene\(s\) \[1\]"),
])
def test_bad_coordinates_are_named(rows, shape, message):
    feats, coords = voxels(rows)
    with pytest.raises(ValueError, match=message):
        SparseTensor.from_voxels(feats, coords, shape, backend="torch")


def test_mismatched_lengths_empty_input_and_float_coords():
    feats, coords = voxels([[0, 0, 0, 0], [0, 1, 0, 0]])
    with pytest.raises(ValueError, match="feats has 1 rows but coords has 2"):
        SparseTensor.from_voxels(feats[:1], coords, backend="torch")
    with pytest.raises(ValueError, match="empty batch"):
        SparseTensor.from_voxels(feats[:0], coords[:0], backend="torch")
    with pytest.raises(ValueError, match="integer"):
        SparseTensor.from_voxels(feats, coords.float(), backend="torch")
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        SparseTensor.from_voxels(feats, coords[:, :3], backend="torch")


def test_backend_names():
    assert resolve_backend("auto", "cpu") == "torch"  # spconv is only auto-picked on a GPU
    assert resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ValueError, match="sparse_backend: unknown backend 'cuda'"):
        resolve_backend("cuda", "cpu")
    if spconv_available():
        assert resolve_backend("spconv", "cpu") == "spconv"


def test_coordinates_too_large_for_the_grid():
    """A cloud 1e6 m across at 2 cm voxels: a clear ValueError, not an overflow deep in a kernel map."""
    feats = torch.zeros(2, 3)
    far = 50_000_000  # 1e6 m / 0.02 m
    coords = torch.tensor([[0, 0, 0, 0], [0, far, far, far]])
    with pytest.raises(ValueError, match=r"coordinates too large for the voxel grid: extent \[50000001, "
                                         r".* voxels = \[1000000.0, .*\] m at a voxel size of 0.02 m"):
        SparseTensor.from_voxels(feats, coords, backend="torch", voxel_size=0.02)
    huge = torch.tensor([[0, 0, 0, 0], [0, 2**33, 1, 1]])  # would wrap round in int32
    with pytest.raises(ValueError, match=r"too large for the voxel grid.*does not fit int32"):
        SparseTensor.from_voxels(feats, huge, backend="torch")
    with pytest.raises(ValueError, match=r"too large for the voxel grid"):
        SparseTensor.from_voxels(feats, coords // far, (2**40, 2**40, 2), backend="torch")
    ok = torch.tensor([[0, 0, 0, 0], [0, 100_000, 100_000, 100_000]])  # 2 km at 2 cm: fits
    assert SparseTensor.from_voxels(feats, ok, backend="torch").spatial_shape == (100_001,) * 3
