"""Synthetic Kinect tabletop frames: geometry, camera model, mOSD format and processing.

The checks use code paths other than the ones under test where they can: ray hits against
point containment, placement (oriented boxes) against rays cast from below, the shadow width
against the disparity formula f b (1/z_near - 1/z_far), the frame against mOSD's reader.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial import cKDTree

from lassm.data import depth_camera as cam
from lassm.data import mosd
from lassm.data import tabletop as tt
from lassm.data import tabletop_shapes as shapes
from lassm.data.io import DataError
from lassm.data.preprocess import SceneJob
from lassm.data.tabletop_shapes import Solid

CAMERA = cam.Camera()  # Kinect v1 intrinsics, no jitter
FLAT = cam.SensorConfig(noise=(0.0, 0.0), noise_white=(0.0, 0.0), disparity_step=(0.0, 0.0),
                        baseline=(0.0, 0.0), grazing_cos=(0.0, 0.0), edge_drop=(0.0, 0.0),
                        blobs=0.0, right_band=(0, 0), intrinsics_jitter=0.0)  # switch effects on one by one


def inside_any(solids, points):
    return np.any([shapes.contains(s, points) for s in solids], axis=0)


def wall(depth: float) -> Solid:
    """A 10 m wide plate facing the camera at ``depth`` (world = camera frame)."""
    return Solid("box", (5.0, 5.0, 0.0), depth, depth + 0.1)


def capture(solids, sensor, seed=0, baseline=0.0):
    depth, index, normal = cam.render(solids, CAMERA, np.eye(4))
    shadow = np.zeros(depth.shape, bool)
    if baseline > 0:
        shadow = cam.projector_shadow(depth, solids, CAMERA, np.eye(4), baseline, CAMERA.rays())
    z = cam.measure(depth, normal, shadow, CAMERA, CAMERA.rays(), np.random.default_rng(seed), sensor)
    return z, depth, index


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("family", sorted(shapes.FAMILIES))
def test_ray_hits_agree_with_point_containment(family):
    rng = np.random.default_rng(1)
    for _ in range(3):
        turn = shapes.rotation(rng.normal(size=3), rng.uniform(0, np.pi))
        solids = [shapes.posed(s, turn, (0.1, -0.2, 0.3)) for s in shapes.make_object(family, rng)]
        lo, hi = shapes.bounds(solids)
        view = rng.normal(size=3)
        origin = (lo + hi) / 2 + 1.5 * view / np.linalg.norm(view)  # outside: objects are < 0.5 m
        aim = rng.uniform(lo, hi, (3000, 3))  # rays towards points in the bounding box
        direction = (aim - origin) / np.linalg.norm(aim - origin, axis=1, keepdims=True)
        t = np.full(len(aim), np.inf)
        normal = np.zeros((len(aim), 3))
        for s in solids:
            ts, ns = shapes.intersect(s, origin, direction)
            closer = ts < t
            t[closer], normal[closer] = ts[closer], ns[closer]
        hit = np.isfinite(t)
        assert hit.mean() > 0.05
        before = origin + (t[hit] - 2e-5)[:, None] * direction[hit]
        after = origin + (t[hit] + 2e-5)[:, None] * direction[hit]
        assert inside_any(solids, before).mean() < 0.01  # nothing in front of the first hit
        assert inside_any(solids, after).mean() > 0.98  # and solid right behind it
        assert np.mean(np.einsum("ij,ij->i", normal[hit], direction[hit]) < 0) > 0.98  # facing the ray
        along = np.linspace(0, 3, 1500)  # a missed ray never passes through the object
        misses = origin + along[None, :, None] * direction[~hit][:200, None]
        assert inside_any(solids, misses.reshape(-1, 3)).mean() < 1e-3


@pytest.mark.parametrize("family", ["box", "bottle", "compound", "ellipsoid"])  # every kind without a cavity
def test_parallel_rays_enter_and_leave_where_containment_starts_and_ends(family):
    rng = np.random.default_rng(2)
    turn = shapes.rotation(rng.normal(size=3), rng.uniform(0, np.pi))
    solids = [shapes.posed(s, turn, (0.1, -0.2, 0.3)) for s in shapes.make_object(family, rng)]
    lo, hi = shapes.bounds(solids)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    origins = rng.uniform(lo, hi, (500, 3)) - 1.0 * direction  # one origin per ray, all outside
    enter, leave = shapes.column_intervals(solids, origins, direction)
    hit = np.isfinite(enter)
    assert 0.1 < hit.mean() < 1 and np.all(leave[hit] > enter[hit]) and np.all(np.isinf(leave[~hit]))
    t = np.linspace(0, 2, 4001)
    points = origins[:, None] + t[None, :, None] * direction  # (500, 4001, 3), 0.5 mm apart
    inside = inside_any(solids, points.reshape(-1, 3)).reshape(len(origins), len(t))
    first = np.where(inside.any(1), t[inside.argmax(1)], np.inf)
    last = np.where(inside.any(1), t[len(t) - 1 - inside[:, ::-1].argmax(1)], -np.inf)
    found = np.isfinite(first)
    assert not np.any(found & ~hit)
    assert not np.any(hit & ~found & (leave - enter > 1e-3))  # grazing chords aside
    f, e, la, le = first[found], enter[found], last[found], leave[found]
    close = (np.abs(f - e) < 6e-4) & (np.abs(la - le) < 6e-4)  # the samples are 0.5 mm apart;
    assert close.mean() > 0.97  # a union may start with a grazing chord they skip
    assert np.all(first[found] > enter[found] - 1e-9) and np.all(last[found] < leave[found] + 1e-9)


def test_support_matches_the_farthest_contained_point():
    rng = np.random.default_rng(2)
    for family in shapes.FAMILIES:
        solids = shapes.make_object(family, rng)
        lo, hi = shapes.bounds(solids)
        points = rng.uniform(lo - 0.01, hi + 0.01, (200_000, 3))
        inside = points[inside_any(solids, points)]
        assert np.all(inside.min(0) >= lo - 1e-9) and np.all(inside.max(0) <= hi + 1e-9)
        assert np.all(inside.min(0) - lo < 0.01) and np.all(hi - inside.max(0) < 0.01), family
        assert abs(lo[2]) < 1e-9  # objects are built standing on z = 0


# ----------------------------------------------------------------------------- placement


def vertical_hits(solids, xy: np.ndarray, upward: bool) -> np.ndarray:
    """z of the first surface met by vertical rays through the (N, 2) points (nan: no hit).

    The rays start 1 km below (or above) and fan out to the points, so they are vertical to
    within 4e-4 rad and share one origin, as :func:`shapes.intersect` wants.
    """
    far = -1000.0 if upward else 1000.0
    origin = np.array([*xy.mean(0), far])
    direction = np.column_stack([xy - origin[:2], np.full(len(xy), -far)])
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    t = np.min([shapes.intersect(s, origin, direction)[0] for s in solids], axis=0)
    return np.where(np.isfinite(t), far + t * direction[:, 2], np.nan)


@pytest.mark.parametrize("seed, contact, occlude",
                         [(3, 0.0, 0.0), (4, 0.0, 0.0), (5, 0.8, 0.0), (6, 0.0, 1.0)])
def test_objects_rest_on_the_support_or_on_the_object_below_and_do_not_overlap(seed, contact, occlude):
    cfg = tt.TabletopConfig(min_objects=8, max_objects=14, count_modes=(0, 0, 1), stack_prob=0.4,
                            tilt_prob=0.3, lie_prob=0.4, fill=(0.4, 0.5), contact_prob=contact,
                            occlude_prob=occlude)
    scene = tt.sample_scene(np.random.default_rng(seed), cfg)
    objects = scene.objects
    if occlude:  # the occluders come on top of the same placement
        plain = tt.sample_scene(np.random.default_rng(seed), replace(cfg, occlude_prob=0.0))
        assert len(objects) > len(plain.objects)
    assert len(objects) >= 6 and any(o.on is not None for o in objects)
    rng = np.random.default_rng(0)
    for k, obj in enumerate(objects):
        lo, hi = shapes.bounds(obj.solids)
        grid = np.stack(np.meshgrid(np.arange(lo[0], hi[0], 0.002), np.arange(lo[1], hi[1], 0.002)), -1)
        lowest = np.nanmin(vertical_hits(obj.solids, grid.reshape(-1, 2), upward=True))
        if obj.on is None:
            assert abs(lowest) < 0.005, (k, obj.family, lowest)
        else:
            support = objects[obj.on].solids
            top = np.nanmax(vertical_hits(support, grid.reshape(-1, 2), upward=False))
            assert abs(lowest - top) < 0.005, (k, obj.family, lowest, top)
            centre = ((lo + hi) / 2)[None, :2]
            assert np.isfinite(vertical_hits(support, centre, upward=False)).all(), "centre not supported"
        for other in objects[k + 1:]:
            olo, ohi = shapes.bounds(other.solids)
            a, b = np.maximum(lo, olo), np.minimum(hi, ohi)
            if np.any(a >= b):
                continue
            points = rng.uniform(a, b, (4000, 3))
            deep = inside_any(obj.solids, points) & inside_any(other.solids, points)
            for offset in np.concatenate([np.eye(3), -np.eye(3)]) * 0.005:
                deep &= inside_any(obj.solids, points + offset) & inside_any(other.solids, points + offset)
            assert not deep.any(), (obj.family, other.family)


# ----------------------------------------------------------------------------- camera model


def test_plane_straight_ahead_is_exact_without_noise_and_within_three_sigma_with_it():
    z, _, _ = capture([wall(1.2)], cam.ideal_sensor())
    assert np.isfinite(z).all() and np.abs(z - 1.2).max() < 1e-4

    sensor = replace(FLAT, noise=(1.5e-3, 1.5e-3), noise_white=(5e-4, 5e-4),
                     disparity_step=(2.85e-3, 2.85e-3))
    z, _, _ = capture([wall(1.2)], sensor, seed=3)
    sigma = np.hypot(1.5e-3, 5e-4) * 1.2**2  # the model's per-pixel depth noise at 1.2 m
    step = 2.85e-3 * 1.2**2  # depth quantum at 1.2 m: ~4 mm
    error = z - 1.2
    assert np.mean(np.abs(error) <= 3 * sigma + step / 2) > 0.99
    assert 0.6 * sigma < error.std() < 1.5 * np.hypot(sigma, step / np.sqrt(12))
    disparity = 1 / z / 2.85e-3  # quantised: whole multiples of the step
    assert np.abs(disparity - np.rint(disparity)).max() < 1e-6
    assert len(np.unique(z)) < 20


def test_projector_shadow_lies_left_of_an_object_and_is_as_wide_as_the_disparity_jump():
    box = Solid("box", (0.05, 0.05, 0.0), 0.7, 0.8)  # in front of a wall at 1 m
    z, depth, index = capture([wall(1.0), box], FLAT, baseline=0.075)
    row = 240
    cols = np.flatnonzero(index[row] == 1)
    left, right = cols[0], cols[-1]
    assert np.isfinite(z[row, cols]).all() and np.isfinite(z[row, right + 1:]).all()
    run = left - np.flatnonzero(np.isfinite(z[row, :left]))[-1] - 1  # NaN run left of the box
    expected = CAMERA.fx * 0.075 * (1 / 0.7 - 1 / 1.0)  # disparity difference: ~16.9 px
    assert abs(run - expected) <= 2
    assert np.isnan(z).sum() == pytest.approx(expected * (index == 1).any(1).sum(), rel=0.2)


def test_grazing_surfaces_and_depth_edges_return_nothing():
    tilted = shapes.posed(wall(0.0), shapes.rotation((0, 1, 0), np.radians(80)), (0, 0, 1.0))
    centre = (slice(200, 280), slice(300, 340))  # |cos(ray, normal)| ~ 0.17 here
    z, _, _ = capture([tilted], replace(FLAT, grazing_cos=(0.25, 0.25)))
    assert np.isnan(z[centre]).all()
    z, _, _ = capture([tilted], replace(FLAT, grazing_cos=(0.1, 0.1)))
    assert np.isfinite(z[centre]).all()

    box = Solid("box", (0.05, 0.05, 0.0), 0.7, 0.8)
    sensor = replace(FLAT, edge_drop=(1.0, 1.0), edge_width=(1, 1))
    z, _, index = capture([wall(1.0), box], sensor)
    border = np.zeros(index.shape, bool)  # pixels with a 4-neighbour on the other surface
    rows, cols = np.diff(index, axis=0) != 0, np.diff(index, axis=1) != 0
    border[:-1] |= rows
    border[1:] |= rows
    border[:, :-1] |= cols
    border[:, 1:] |= cols
    assert border.sum() > 100 and np.array_equal(np.isnan(z), border)


# ----------------------------------------------------------------------------- frames


@pytest.fixture(scope="module")
def frame_pair():
    """One scene seen by the realistic sensor and by a perfect one (same camera)."""
    real = tt.TabletopConfig(min_objects=4, max_objects=8, sensor=cam.SensorConfig(intrinsics_jitter=0.0))
    ideal = tt.TabletopConfig(min_objects=4, max_objects=8, sensor=cam.ideal_sensor())
    return tt.generate_frame(11, real), tt.generate_frame(11, ideal)


def test_same_seed_same_frame_and_other_seed_other_frame():
    a, b, c = tt.generate_frame(5), tt.generate_frame(5), tt.generate_frame(6)
    for key in ("coord", "color", "label"):
        assert np.array_equal(a[key], b[key], equal_nan=True)
    assert [o["label"] for o in a["objects"]] == [o["label"] for o in b["objects"]]
    assert not np.array_equal(a["coord"], c["coord"], equal_nan=True)
    assert not np.array_equal(a["label"], c["label"])


def test_written_frame_reads_back_in_the_mosd_format(tmp_path, frame_pair):
    frame = frame_pair[0]
    path = tt.write_pcd(tmp_path / "f.pcd", frame)
    header = path.read_bytes()[:400].decode("ascii", "replace")
    for line in ("VERSION 0.7", "FIELDS label x y z rgba", "SIZE 4 4 4 4 4", "TYPE U F F F U",
                 "WIDTH 640", "HEIGHT 480", "DATA binary_compressed"):
        assert line in header
    scan = mosd.read_pcd(path)
    assert scan["coord"].shape == (480, 640, 3) and scan["label"].shape == (480, 640)
    assert np.array_equal(scan["coord"], frame["coord"], equal_nan=True)
    assert np.array_equal(scan["color"], frame["color"]) and np.array_equal(scan["label"], frame["label"])
    label, valid = scan["label"], mosd.valid_pixels(scan["coord"])
    assert np.all(label[~valid] == 0) and np.all(label[valid] > 0)  # label 0 <=> no depth, as in mOSD
    assert set(np.unique(label[valid]).tolist()) <= {1} | set(range(20, 2000))
    decades = sorted(set((label[label >= 20] // 10 * 10).tolist()))
    visible = sorted(o["label"] for o in frame["objects"] if o["label"])
    assert decades == visible and len(visible) >= 3
    assert all((label == d).any() for d in decades)  # every object has its base label
    assert 0.1 < 1 - valid.mean() < 0.8 and (label == 1).sum() > 30_000
    camera = frame["camera"]  # points are the depth reprojected through the intrinsics
    v, u = np.nonzero(valid)
    x, y, z = scan["coord"][v, u].T
    assert np.allclose(x / z, (u - camera["cx"]) / camera["fx"], atol=1e-5)
    assert np.allclose(y / z, (v - camera["cy"]) / camera["fy"], atol=1e-5)
    assert 0.3 < z.min() and z.max() < 3.5


def test_sensor_drops_pixels_at_depth_edges_of_the_ideal_frame(frame_pair):
    real, ideal = frame_pair
    real_valid, ideal_valid = mosd.valid_pixels(real["coord"]), mosd.valid_pixels(ideal["coord"])
    assert not np.any(real_valid & ~ideal_valid)  # the sensor only removes points
    dropped = ideal_valid & ~real_valid
    assert dropped[:, :560].sum() > 2000  # beyond the right-hand band
    z = np.where(ideal_valid, ideal["coord"][..., 2], 10.0)
    jump = np.zeros(z.shape, bool)
    for axis in (0, 1):
        d = np.abs(np.diff(z, axis=axis)) > 0.02
        jump |= np.pad(d, [(1, 0), (0, 0)] if axis == 0 else [(0, 0), (1, 0)])
        jump |= np.pad(d, [(0, 1), (0, 0)] if axis == 0 else [(0, 0), (0, 1)])
    near_edge = np.zeros(z.shape, bool)
    near_edge[2:-2, 2:-2] = jump[2:-2, 2:-2]
    for dv in (-2, -1, 1, 2):
        near_edge |= np.roll(jump, dv, 0) | np.roll(jump, dv, 1)
    inside = np.s_[:, :560]
    # dropouts crowd at depth edges (shadows, edge bands) far more than valid pixels do
    assert dropped[inside][near_edge[inside]].mean() > 5 * dropped[inside][~near_edge[inside]].mean()


def test_mosd_processing_finds_the_visible_objects_and_the_table(tmp_path, frame_pair):
    frame = frame_pair[0]
    path = tt.write_pcd(tmp_path / "tt00000.pcd", frame)
    out = mosd.process(SceneJob("tt00000", "train", path, {"instance_view": "object"}))
    visible = [o for o in frame["objects"] if o["label"]]
    counts = np.bincount(out["instance"][out["instance"] >= 0])
    assert len(counts) == len(visible)
    expected = sorted(o["pixels"] for o in visible)
    assert np.allclose(sorted(counts), expected, rtol=0.05, atol=30)  # isolated pixels are dropped
    pose = frame["camera"]["camera_from_table"]
    up = out["table_from_camera"][2, :3].astype(float)  # the fitted table normal, camera frame
    assert np.degrees(np.arccos(min(1.0, up @ pose[:3, 2]))) < 1.0


def test_write_scenes_resumes_regenerates_and_lists_jobs(tmp_path):
    cfg = tt.TabletopConfig(max_objects=3)
    paths = tt.write_scenes(tmp_path, 2, seed=4, split="val", cfg=cfg)
    assert [p.name for p in paths] == ["tt00000.pcd", "tt00001.pcd"]
    stamp = paths[1].stat().st_mtime_ns
    assert tt.write_scenes(tmp_path, 2, seed=4, split="val", cfg=cfg) == paths
    assert paths[1].stat().st_mtime_ns == stamp  # kept, not rewritten
    again = tt.generate_frame(tt.frame_seed(4, 1, "val"), cfg)
    assert np.array_equal(mosd.read_pcd(paths[1])["coord"], again["coord"], equal_nan=True)
    assert tt.frame_seed(4, 1, "val") != tt.frame_seed(4, 1, "train")
    jobs = tt.find_jobs(tmp_path, instance_view="part")
    assert [(j.name, j.split, j.options) for j in jobs] == \
        [(f"tt0000{i}", "val", {"instance_view": "part"}) for i in range(2)]
    with pytest.raises(DataError, match="count"):
        tt.write_scenes(tmp_path, -1)
    # frames directly in the folder given: mOSD's finder puts them in its flat split
    assert {j.split for j in tt.find_jobs(tmp_path / "val")} == {mosd.FLAT_SPLIT}
    with pytest.raises(DataError, match="not found"):
        tt.find_jobs(tmp_path / "missing")


def box_gap(a, b) -> float:
    """Smallest gap (m, to 0.1 mm) between two oriented boxes by the separating-axis test (0: overlapping)."""
    for gap in np.arange(0.0, 0.05, 1e-4):
        if shapes.boxes_overlap(a, b, -gap):
            return gap
    return np.inf


def test_contact_pushes_objects_against_others_without_overlap():
    """With contact_prob 1 every object on the table after the first has its bounding box within 3 mm
    of another's (or overlapping it, where round objects touch); without it, objects scattered over
    the same area rarely do. (That they do not interpenetrate is checked on the solids by the resting
    test above, contact 0.8, and the surface test below.)"""
    def near_share(contact: float) -> float:
        near = []
        for seed in range(2):
            scene = tt.sample_scene(np.random.default_rng(seed), tt.dense_config(contact_prob=contact))
            for k, obj in enumerate(scene.objects[1:], start=1):
                if obj.on is None:
                    gaps = [box_gap(obj.box, other.box) for other in scene.objects[:k]]
                    near.append(min(gaps) <= 0.0032)
        return float(np.mean(near))
    assert near_share(1.0) > 0.9
    assert near_share(0.0) < 0.5


def interior(solids, rng, count=40000):
    lo, hi = shapes.bounds(solids)
    points = rng.uniform(lo, hi, (count, 3))
    return points[inside_any(solids, points)]


def test_contact_brings_surfaces_together_round_objects_included_without_interpenetration():
    """Checked with points sampled inside the solids, not with the rays that placed them: with contact
    on, many pairs of objects come within 4 mm surface to surface, among them round ones (a can
    against a bowl, which boxes touching would leave centimetres apart); without, few do; and no
    pair shares a point that is 2 mm deep inside both."""
    rng = np.random.default_rng(0)

    def touching(contact: float) -> list[tuple[str, str]]:
        scene = tt.sample_scene(np.random.default_rng(1), tt.dense_config(contact_prob=contact))
        points = [interior(o.solids, rng) for o in scene.objects]
        pairs = []
        for i, j in zip(*np.triu_indices(len(points), 1), strict=True):
            (lo, hi), (olo, ohi) = (shapes.bounds(scene.objects[k].solids) for k in (i, j))
            if np.any(np.maximum(lo, olo) - np.minimum(hi, ohi) > 0.01):
                continue
            if cKDTree(points[j]).query(points[i])[0].min() < 0.004:
                pairs.append((scene.objects[i].family, scene.objects[j].family))
            deep = inside_any(scene.objects[j].solids, points[i])
            for offset in np.concatenate([np.eye(3), -np.eye(3)]) * 0.002:
                deep &= inside_any(scene.objects[j].solids, points[i] + offset)
                deep &= inside_any(scene.objects[i].solids, points[i] + offset)
            assert not deep.any(), (scene.objects[i].family, scene.objects[j].family)
        return pairs

    pairs = touching(0.8)
    assert len(pairs) >= 5
    assert any(a != "box" and b != "box" for a, b in pairs), pairs
    assert len(touching(0.0)) <= 3


def test_contact_chance_is_checked_and_the_command_line_makes_dense_touching_frames(tmp_path):
    with pytest.raises(DataError, match="contact_prob"):
        tt.sample_scene(np.random.default_rng(0), tt.TabletopConfig(contact_prob=1.5))
    assert tt.main([str(tmp_path), "--count", "1", "--dense", "--contact", "0.9", "--split", "d"]) == 0
    frame = mosd.read_pcd(tmp_path / "d" / "tt00000.pcd")
    expected = tt.generate_frame(tt.frame_seed(0, 0, "d"), tt.dense_config(contact_prob=0.9))
    assert np.array_equal(frame["label"].reshape(expected["label"].shape), expected["label"])
    assert tt.main([str(tmp_path), "--count", "1", "--contact", "2"]) != 0


def test_clutter_preset_is_dense():
    cfg = tt.clutter_config()
    assert cfg.families != tt.TabletopConfig().families
    scene = tt.sample_scene(np.random.default_rng(0), cfg)
    assert len(scene.objects) >= 10


def test_a_frame_whose_objects_all_failed_placement_is_still_written():
    """Regression: frame 1469 of the seed-0 training split places no object (every candidate collided);
    it must come out as a support-only frame, not an IndexError that stops the whole dataset."""
    frame = tt.generate_frame(tt.frame_seed(0, 1469, "train"))
    assert set(np.unique(frame["label"]).tolist()) <= {0, 1}
    assert (frame["label"] == 1).sum() > 1000


def _objects_in_pieces(label: np.ndarray) -> int:
    """Objects of a frame's label image in two or more pieces of at least 10 % of the object each."""
    count = 0
    for decade in np.unique(label[label >= 20] // 10):
        parts = label[label // 10 == decade] % 10
        sizes = np.bincount(parts)
        count += int((sizes >= 0.1 * parts.size).sum() >= 2)
    return count


def test_occluders_cut_the_object_behind_them_in_two_and_the_command_line_makes_them(tmp_path):
    """One box on a table seen from 40 degrees up: an occluder in front of it cuts it into two pieces (mOSD
    labels disjoint pieces 10 (k + 2) + 1, + 2, ...) in most frames; without occluders it is whole."""
    one_box = dict(min_objects=1, max_objects=1, families={"box": 1.0}, stack_prob=0.0, tilt_prob=0.0,
                   supports={"table": 1.0}, elevation=(40.0, 40.0))
    cut = []
    for occlude in (0.0, 1.0):
        cfg = tt.TabletopConfig(occlude_prob=occlude, **one_box)
        frames = [tt.generate_frame(tt.frame_seed(0, i, "occ"), cfg) for i in range(6)]
        assert all(len(f["objects"]) == 1 + occlude for f in frames)
        cut.append(sum(_objects_in_pieces(f["label"]) for f in frames))
    assert cut[0] == 0 and cut[1] >= 4
    with pytest.raises(DataError, match="occlude_prob"):
        tt.sample_scene(np.random.default_rng(0), tt.TabletopConfig(occlude_prob=-0.1))
    assert tt.main([str(tmp_path), "--count", "1", "--occlude", "0.7", "--split", "o"]) == 0
    frame = mosd.read_pcd(tmp_path / "o" / "tt00000.pcd")
    expected = tt.generate_frame(tt.frame_seed(0, 0, "o"), tt.TabletopConfig(occlude_prob=0.7))
    assert np.array_equal(frame["label"].reshape(expected["label"].shape), expected["label"])
    assert tt.main([str(tmp_path), "--count", "1", "--occlude", "1.5"]) != 0
