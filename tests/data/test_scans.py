"""Scans of your own: units, colour scale, non-finite points and degenerate meshes are caught early."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from lassm.config.schema import ScanConfig
from lassm.data import scans
from lassm.data.io import DataError, Mesh, write_mesh_ply


def cloud(n=200, size=1.0, seed=0):
    """A noisy flat patch ``size`` metres wide: (n, 3) float64."""
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2)) * size
    return np.c_[xy, rng.normal(0, 0.001 * size, n)]


def test_millimetre_scan_warns(tmp_path):
    np.save(tmp_path / "mm.npy", cloud(size=4000.0))  # a 4 m table saved in millimetres
    message = r"mm\.npy: the scan is \d{4} m across, which looks like millimetres; divide"
    with pytest.warns(UserWarning, match=message):
        scan = scans.read_scan(tmp_path / "mm.npy")
    assert len(scan["coord"]) == 200


def test_metre_scan_does_not_warn(tmp_path):
    np.save(tmp_path / "m.npy", cloud(size=8.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scans.read_scan(tmp_path / "m.npy")


def test_huge_extent_refused(tmp_path):
    np.save(tmp_path / "far.npy", cloud(size=1e6))
    with pytest.raises(DataError, match=r"far\.npy: the scan is 9\.9\d*e\+05 m across, more than 10000 m"):
        scans.read_raw(tmp_path / "far.npy")


def test_fractional_colours_are_scaled(tmp_path):
    rgb = np.tile([[0.0, 0.5, 1.0]], (200, 1))
    np.save(tmp_path / "c.npy", np.c_[cloud(), rgb])
    with pytest.warns(UserWarning, match=r"c\.npy: colours .* all within 0\.\.1; .* scaling by 255"):
        scan = scans.read_scan(tmp_path / "c.npy")
    assert (scan["color"] == [0, 128, 255]).all()
    np.save(tmp_path / "c255.npy", np.c_[cloud(), rgb * 255])  # already 0..255: kept, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (scans.read_scan(tmp_path / "c255.npy")["color"] == [0, 127, 255]).all()
    np.save(tmp_path / "bad.npy", np.c_[cloud(), rgb * 300])
    with pytest.raises(DataError, match=r"bad\.npy: colour columns 3\.\.5 must be finite and in 0\.\.255"):
        scans.read_scan(tmp_path / "bad.npy")


def test_non_finite_points_are_dropped_and_counted(tmp_path):
    points = cloud()
    points[[3, 50, 51]] = [np.nan, 0, np.inf]
    np.save(tmp_path / "holes.npy", points)
    scan = scans.read_scan(tmp_path / "holes.npy")
    assert scan["num_input"] == 200 and len(scan["coord"]) == 197
    assert 3 not in scan["point_index"] and len(scan["point_index"]) == 197
    loaded = scans.load_scan(tmp_path / "holes.npy", ScanConfig())
    assert loaded["num_input"] == 200 and len(loaded["coord"]) == len(loaded["point_index"]) == 197
    assert loaded["num_input"] - len(loaded["coord"]) == 3  # what predict's summary reports


def test_mesh_with_nan_vertices_refused(tmp_path):
    v = cloud(6).astype(np.float32)
    v[2] = np.nan
    write_mesh_ply(tmp_path / "m.ply", Mesh(v, np.zeros((6, 3), np.uint8), np.array([[0, 1, 2], [3, 4, 5]])))
    with pytest.raises(DataError, match=r"m\.ply: 1 mesh vertices have NaN"):
        scans.read_scan(tmp_path / "m.ply")


def test_degenerate_mesh_warns(tmp_path):
    n = 60
    v = np.zeros((n, 3), np.float32)  # every vertex at one point: all faces have zero area
    faces = np.stack([np.arange(n - 2), np.arange(1, n - 1), np.arange(2, n)], 1)
    write_mesh_ply(tmp_path / "flat.ply", Mesh(v, np.full((n, 3), 128, np.uint8), faces))
    with pytest.warns(UserWarning, match=r"flat\.ply: 58 of 58 faces have zero area"):
        scans.load_scan(tmp_path / "flat.ply", ScanConfig())


def test_the_millimetre_warning_threshold_is_configurable(tmp_path):
    """ScanConfig.warn_extent: a site scan 300 m across is fine when the config says so."""
    rng = np.random.default_rng(0)
    path = tmp_path / "site.npy"
    np.save(path, np.c_[rng.random((400, 3)) * [300.0, 300.0, 5.0], rng.integers(0, 255, (400, 3))])
    with pytest.warns(UserWarning, match="millimetres"):
        scans.load_scan(path, ScanConfig())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scan = scans.load_scan(path, ScanConfig(warn_extent=1000.0))
    assert len(scan["coord"]) == 400
