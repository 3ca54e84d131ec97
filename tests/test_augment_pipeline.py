"""Augmentation transforms and the per-preset train/val pipelines (REFERENCE_SPEC 3.1, 3.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import convolve

from lassm import augment as A
from lassm.config import augment_preset
from lassm.data.synthetic import generate_room


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _labelled_scene(n: int = 1003, seed: int = 0) -> dict:
    """Labels are functions of the point index, so any misalignment after a subset shows."""
    g = _gen(seed)
    idx = torch.arange(n)
    return {"coord": torch.rand(n, 3, generator=g) * torch.tensor([4.0, 3.0, 2.5]),
            "color": torch.rand(n, 3, generator=g) * 255,
            "normal": torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1),
            "segment": idx.clone(), "instance": idx + 1000, "superpoint": idx // 5}


def _room_scene() -> dict:
    room = generate_room(0, "small")
    n = len(room.instance)
    coord = torch.from_numpy(room.mesh.vertices).float()
    return {"coord": coord, "color": torch.from_numpy(room.mesh.colors).float(),
            "instance": torch.from_numpy(room.instance), "segment": torch.arange(n) % 20,
            "superpoint": torch.floor(coord[:, 0] / 0.3).long() * 100 + torch.floor(coord[:, 1] / 0.3).long()}


def _check_aligned(out: dict, ref: dict):
    i = out["segment"]  # original index of every surviving point
    assert torch.equal(out["instance"], i + 1000)
    assert torch.equal(out["coord"], ref["coord"][i]) and torch.equal(out["color"], ref["color"][i])
    assert torch.equal(out["normal"], ref["normal"][i])
    expected_sp = torch.unique(ref["superpoint"][i], return_inverse=True)[1]
    assert torch.equal(out["superpoint"], expected_sp)
    assert torch.equal(torch.unique(out["superpoint"]), torch.arange(int(out["superpoint"].max()) + 1))


def test_dropout_keeps_floor_08n_shuffled_and_aligned():
    ref = _labelled_scene(1003)
    out = A.random_dropout(dict(ref), _gen(1), p=1.0)
    assert out["coord"].shape[0] == math.floor(0.8 * 1003) == 802
    assert len(torch.unique(out["segment"])) == 802
    assert not torch.equal(out["segment"], out["segment"].sort().values)  # kept points are shuffled
    _check_aligned(out, ref)
    assert A.random_dropout(dict(ref), _gen(1), p=0.0)["coord"].shape[0] == 1003


@pytest.mark.parametrize("kw", [{"point_max": 300}, {"point_max": None, "sample_rate": 0.8}])
def test_sphere_crop_keeps_the_nearest_points_to_a_scene_point(kw):
    ref = _labelled_scene(1003)
    out = A.sphere_crop(dict(ref), _gen(2), **kw)
    k = 300 if kw["point_max"] else int(0.8 * 1003)
    assert out["coord"].shape[0] == k
    _check_aligned(out, ref)
    centre = out["coord"][0]  # nearest first: the centre itself is the first kept point
    d_all = ((ref["coord"] - centre) ** 2).sum(1)
    assert d_all.min() == 0
    kept = torch.zeros(1003, dtype=torch.bool)
    kept[out["segment"]] = True
    assert d_all[kept].max() <= d_all[~kept].min()  # brute force: exactly the k nearest
    assert torch.all(torch.diff(((out["coord"] - centre) ** 2).sum(1)) >= 0)  # sorted by distance
    small = A.sphere_crop(dict(ref), _gen(2), point_max=5000)
    assert torch.equal(small["coord"], ref["coord"])  # smaller scenes are not cropped


def test_rotation_matrices_follow_the_spec_formulas():
    ref = _labelled_scene(50)
    x, y, z = ref["coord"].unbind(1)
    a = 0.3
    c, s = math.cos(a * math.pi), math.sin(a * math.pi)
    out = A.random_rotate(dict(ref), _gen(), angle=(a, a), axis="z", center=(0, 0, 0), p=1.0)
    torch.testing.assert_close(out["coord"], torch.stack([c * x - s * y, s * x + c * y, z], 1))
    nx, ny, nz = ref["normal"].unbind(1)
    torch.testing.assert_close(out["normal"], torch.stack([c * nx - s * ny, s * nx + c * ny, nz], 1))
    ctr = (ref["coord"].min(0).values + ref["coord"].max(0).values) / 2
    x0, y0, z0 = (ref["coord"] - ctr).unbind(1)
    out = A.random_rotate(dict(ref), _gen(), angle=(a, a), axis="x", p=1.0)  # bounding-box centre
    torch.testing.assert_close(out["coord"] - ctr, torch.stack([x0, c * y0 - s * z0, s * y0 + c * z0], 1))
    out = A.random_rotate(dict(ref), _gen(), angle=(a, a), axis="y", p=1.0)
    torch.testing.assert_close(out["coord"] - ctr, torch.stack([c * x0 + s * z0, y0, -s * x0 + c * z0], 1))
    skipped = A.random_rotate(dict(ref), _gen(), angle=(a, a), axis="z", p=0.0)
    assert torch.equal(skipped["coord"], ref["coord"])


def test_flips():
    ref = _labelled_scene(50)
    out = A.random_flip(dict(ref), _gen(), p=1.0)
    torch.testing.assert_close(out["coord"], ref["coord"] * torch.tensor([-1.0, -1.0, 1.0]))
    torch.testing.assert_close(out["normal"], ref["normal"] * torch.tensor([-1.0, -1.0, 1.0]))
    out = A.mask3d_random_flip(dict(ref), _gen(), p=1.0)
    mx = ref["coord"].max(0).values
    torch.testing.assert_close(out["coord"][:, :2], mx[:2] - ref["coord"][:, :2])
    torch.testing.assert_close(out["coord"][:, 2], ref["coord"][:, 2])
    torch.testing.assert_close(out["normal"], ref["normal"] * torch.tensor([-1.0, -1.0, 1.0]))
    assert torch.equal(A.random_flip(dict(ref), _gen(), p=0.0)["coord"], ref["coord"])


def test_elastic_smoothing_and_interpolation_match_scipy():
    g = _gen(3)
    noise = torch.randn(2, 5, 6, 7, generator=g, dtype=torch.float64)
    expected = noise.numpy()
    for axis in (0, 1, 2, 0, 1, 2):
        kernel = np.ones([3 if a == axis else 1 for a in range(3)]) / 3
        expected = np.stack([convolve(ch, kernel, mode="constant", cval=0.0) for ch in expected])
    smoothed = A._smooth(noise)
    np.testing.assert_allclose(smoothed.numpy(), expected, atol=1e-12)
    start, step = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64), torch.tensor([0.4, 0.3, 0.2],
                                                                                   dtype=torch.float64)
    axes = [start[a].item() + step[a].item() * np.arange(smoothed.shape[a + 1]) for a in range(3)]
    span = step * torch.tensor([6.0, 7.0, 8.0])  # a bit beyond the lattice on every axis
    pts = start + torch.rand(400, 3, generator=g, dtype=torch.float64) * span
    got = A._interp(smoothed, start, step, pts)  # some points fall outside -> 0
    for ch in range(2):
        f = RegularGridInterpolator(axes, smoothed[ch].numpy(), bounds_error=False, fill_value=0.0)
        np.testing.assert_allclose(got[:, ch].numpy(), f(pts.numpy()), atol=1e-12)


def test_custom_elastic_writes_elastic_coord_and_leaves_coord():
    ref = _labelled_scene(300)
    out = A.custom_elastic_distortion(dict(ref), _gen(), p=0.0)
    assert out["elastic_coord"].dtype == torch.float32
    assert torch.equal(out["elastic_coord"], ref["coord"] / 0.02)
    out = A.custom_elastic_distortion(dict(ref), _gen(), p=1.0)
    assert out["elastic_coord"].dtype == torch.float64 and torch.equal(out["coord"], ref["coord"])
    assert not torch.allclose(out["elastic_coord"], ref["coord"].double() / 0.02)
    out = A.elastic_distortion(dict(ref), _gen(), p=1.0)  # ScanNet200: metric coord is distorted
    assert out["coord"].dtype == torch.float32 and not torch.allclose(out["coord"], ref["coord"])


def _fnv(v) -> int:
    h = 14695981039346656037
    for a in v:
        h = ((h * 1099511628211) % 2**64) ^ int(a)
    return h


@pytest.mark.parametrize("distort", [0.0, 1.0])
def test_grid_sampling_train_mode(distort):
    ref = _labelled_scene(600)
    scene = A.custom_elastic_distortion(A.copy_origin(dict(ref), _gen()), _gen(4), p=distort)
    e = scene["elastic_coord"].clone()
    out = A.grid_sample_train(scene, _gen(5))
    grid = torch.floor(e - e.min(0).values).long()  # brute force: (N, 3) voxel of every point
    assert out["grid_coord"].dtype == torch.int64
    assert torch.equal(out["grid_coord"][out["inverse"]], grid)  # inverse maps each point to its voxel
    assert len(torch.unique(out["grid_coord"], dim=0)) == out["grid_coord"].shape[0]
    for v in range(out["coord"].shape[0]):  # the representative is a point of its own voxel
        p = int(out["segment"][v])
        assert torch.equal(grid[p], out["grid_coord"][v]) and out["inverse"][p] == v
        assert torch.equal(out["coord"][v], ref["coord"][p]) and out["instance"][v] == p + 1000
    hashes = [_fnv(row.tolist()) for row in out["grid_coord"]]
    assert hashes == sorted(hashes)  # voxels in ascending unsigned FNV-64 order
    assert torch.equal(out["origin_coord"], ref["coord"])  # point level stays point level


def test_scannet200_grid_is_metric():
    ref = _labelled_scene(400)
    out = A.grid_sample_train(dict(ref), _gen(), grid_size=0.02, from_elastic=False)
    grid = torch.floor(ref["coord"] / 0.02).long()
    assert torch.equal(out["grid_coord"][out["inverse"]], grid - grid.min(0).values)


def test_colour_transforms_and_normalisation():
    ref = _labelled_scene(500)
    ref["color"][:, 2] = 77.0  # a flat channel: auto-contrast must not produce NaN (11.2.7)
    out = A.chromatic_auto_contrast(dict(ref), _gen(), p=1.0)
    assert torch.isfinite(out["color"]).all() and torch.equal(out["color"][:, 2], ref["color"][:, 2])
    for fn in (A.chromatic_translation, A.chromatic_jitter):
        col = fn(dict(ref), _gen(), p=1.0)["color"]
        assert col.min() >= 0 and col.max() <= 255 and not torch.equal(col, ref["color"])
    col = torch.tensor([[0.0, 127.5, 255.0]])
    got = A.normalize_color({"color": col}, _gen())["color"]
    torch.testing.assert_close(got, torch.tensor([[-1.0, 0.0, 1.0]]))
    got = A.normalize_color({"color": col}, _gen(), mode="mask3d")["color"]
    expected = (col / 255 - torch.tensor(A.MASK3D_MEAN)) / torch.tensor(A.MASK3D_STD)
    torch.testing.assert_close(got, expected)


def test_colour_gain_scales_every_colour_by_one_drawn_gain_and_clamps():
    ref = _labelled_scene(500)
    ref["color"] = ref["color"] / 2  # 0-127.5: a gain up to 2 stays inside 0-255
    out = A.random_colour_gain(dict(ref), _gen(3), gain=(1.2, 1.8))["color"]
    ratio = out / ref["color"].clamp(min=1e-3)
    gain = float(ratio[ref["color"] > 1].median())
    assert 1.2 <= gain <= 1.8
    torch.testing.assert_close(out, ref["color"] * gain)
    bright = A.random_colour_gain({"color": torch.full((4, 3), 200.0)}, _gen(), gain=(2.0, 2.0))["color"]
    assert torch.equal(bright, torch.full((4, 3), 255.0))
    steps = [getattr(s, "func", s) for s in A.train_pipeline(augment_preset("mosd", "-3")).steps]
    assert A.random_colour_gain not in steps  # off unless augment.colour_gain is set
    cfg = augment_preset("mosd", "-3")
    cfg.colour_gain = (1.0, 2.2)
    steps = [getattr(s, "func", s) for s in A.train_pipeline(cfg).steps]
    assert steps.index(A.random_colour_gain) == steps.index(A.chromatic_auto_contrast) - 1
    assert A.random_colour_gain not in [getattr(s, "func", s) for s in A.val_pipeline(cfg).steps]
    with pytest.raises(ValueError, match="colour_gain"):
        type(cfg)(colour_gain=(0.0, 1.0))


@pytest.mark.parametrize("preset,channels", [("scannet", 6), ("scannet200", 3), ("scannetpp", 6),
                                              ("synthetic", 6), ("mosd", 6)])
def test_feature_channels_per_preset(preset, channels):
    cfg = augment_preset(preset, "-3")
    out = A.val_pipeline(cfg)(_labelled_scene(300), _gen())
    assert out["feat"].shape == (out["coord"].shape[0], channels)


@pytest.mark.parametrize("preset,variant", [("scannet", "-3"), ("scannet", "-0"), ("scannet200", "-3"),
                                            ("scannetpp", "-0-sc")])
def test_full_pipelines_on_a_synthetic_room(preset, variant):
    scene = _room_scene()
    n = scene["coord"].shape[0]
    cfg = augment_preset(preset, variant)
    for pipe, train in ((A.train_pipeline(cfg), True), (A.val_pipeline(cfg), False)):
        out = pipe(scene, _gen(7))
        m, n_pt = out["coord"].shape[0], out["origin_coord"].shape[0]
        assert {"coord", "grid_coord", "feat", "inverse", "superpoint", "origin_coord", "origin_segment",
                "origin_instance"} <= set(out)
        assert out["grid_coord"].shape == (m, 3) and out["grid_coord"].dtype == torch.int64
        assert out["feat"].dtype == torch.float32 and out["feat"].shape[0] == m
        for key in ("inverse", "superpoint", "origin_segment", "origin_instance"):
            assert out[key].shape == (n_pt,) and out[key].dtype == torch.int64
        assert 0 <= out["inverse"].min() and out["inverse"].max() == m - 1
        if cfg.feat_keys == "color+coord":
            assert torch.equal(out["feat"][:, 3:], out["coord"])
        if not train:  # no augmentation or crop: points untouched up to mean shift and fixed rotation
            assert n_pt == n and torch.equal(out["origin_segment"], scene["segment"])
            shifted = scene["coord"] - scene["coord"].mean(0)
            if cfg.val_rotate_z is not None:
                shifted = shifted @ A.rotation_matrix("z", 0.35 * math.pi)
            torch.testing.assert_close(out["origin_coord"], shifted)
    assert set(scene) == {"coord", "color", "instance", "segment", "superpoint"}  # input not modified


def test_determinism():
    cfg = augment_preset("scannet", "-3")
    pipe = A.train_pipeline(cfg)
    scene = _room_scene()
    a, b, c = pipe(scene, _gen(11)), pipe(scene, _gen(11)), pipe(scene, _gen(12))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(a[k].shape != c[k].shape or not torch.equal(a[k], c[k]) for k in a)


def test_labels_stay_aligned_through_the_train_transforms():
    ref = _labelled_scene(800)
    g = _gen(9)
    steps = [A.mean_shift, lambda s, g: A.random_dropout(s, g, p=1.0), A.random_flip,
             lambda s, g: A.custom_elastic_distortion(s, g, p=1.0), A.chromatic_jitter,
             lambda s, g: A.sphere_crop(s, g, point_max=500)]
    scene = dict(ref)
    for step in steps:
        scene = step(scene, g)
        i = scene["segment"]
        assert torch.equal(scene["instance"], i + 1000)
        assert torch.equal(scene["superpoint"], torch.unique(ref["superpoint"][i], return_inverse=True)[1])
        assert all(scene[k].shape[0] == i.shape[0] for k in ("coord", "color", "normal", "superpoint"))
        if "elastic_coord" in scene:
            assert scene["elastic_coord"].shape[0] == i.shape[0]
        torch.testing.assert_close(scene["normal"].abs(), ref["normal"][i].abs())  # only sign flips here


def test_bad_arguments():
    with pytest.raises(ValueError, match="dataset"):
        augment_preset("kitti", "-3")
    with pytest.raises(ValueError, match="variant"):
        augment_preset("scannet", "-3-sc")
    with pytest.raises(ValueError, match="scene"):
        empty = {"coord": torch.zeros(0, 3), "color": torch.zeros(0, 3)}
        A.train_pipeline(augment_preset("scannet"))(empty, _gen())
