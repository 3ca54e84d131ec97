"""Single-view scans: pixel-grid mesh, support plane, labels and process_single_view.

Synthetic views are ray-cast here from a known camera pose (table plane + boxes), so the
expected table frame comes from the pose, not from the code under test. Real-scan tests read
``<repo>/../shared/data/mosd`` and are skipped when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from lassm.config import ScanConfig
from lassm.data import singleview as sv
from lassm.data.io import DataError

MOSD_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mosd"
needs_mosd = pytest.mark.skipif(
    not (MOSD_ROOT / "learn" / "learn0.pcd").is_file(),
    reason=f"mOSD scans not found at {MOSD_ROOT} (the shared data folder beside the repo)",
)
SUPPORT = ScanConfig(frame="support_plane")


def pose(pitch_deg=40.0, height=0.7):
    """Table normal (3,) and the table frame's rotation (3, 3) and origin (3,) in camera terms,
    for a camera ``height`` above the table looking down ``pitch_deg`` below the horizon."""
    b = np.radians(pitch_deg)
    normal = np.array([0.0, -np.cos(b), -np.sin(b)])  # world up, camera frame (y down, z forward)
    rotation = np.stack([[1.0, 0, 0], np.cross(normal, [1.0, 0, 0]), normal])  # rows: table axes
    origin = np.array([0.0, 0.0, height / np.sin(b)])  # where the optical axis meets the table
    return normal, rotation, origin


def render(boxes=((-0.05, 0.05, -0.05, 0.05, 0.1, 20),), size=(72, 96), focal=200.0, pitch=40.0,
           height=0.7, noise=0.0005, seed=0):
    """Ray-cast a table (label 1) and axis-aligned boxes (x0, x1, y0, y1, top, label) given in the
    table frame. Returns camera-frame ``coord`` (H*W, 3) (NaN where a ray misses), ``color``,
    ``label`` and the true table normal (camera frame)."""
    rows, cols = size
    normal, rotation, origin = pose(pitch, height)
    v, u = np.mgrid[0:rows, 0:cols]
    rays = np.stack([(u - cols / 2) / focal, (v - rows / 2) / focal, np.ones(u.shape)], -1).reshape(-1, 3)
    centre, direction = rotation @ -origin, rays @ rotation.T  # camera and rays in the table frame
    with np.errstate(divide="ignore", invalid="ignore"):
        t_hit = np.where(direction[:, 2] < 0, -centre[2] / direction[:, 2], np.inf)
        label = np.where(np.isfinite(t_hit), 1, 0)
        for x0, x1, y0, y1, top, box_label in boxes:  # slab test
            lo = (np.array([x0, y0, 0.0]) - centre) / direction
            hi = (np.array([x1, y1, top]) - centre) / direction
            enter, leave = np.minimum(lo, hi).max(1), np.maximum(lo, hi).min(1)
            hit = (enter <= leave) & (enter > 0) & (enter < t_hit)
            t_hit, label = np.where(hit, enter, t_hit), np.where(hit, box_label, label)
    rng = np.random.default_rng(seed)
    t_hit = np.where(t_hit < 3.0, t_hit * (1 + rng.normal(0, noise, len(t_hit))), np.inf)  # sensor range
    coord = np.where(np.isfinite(t_hit)[:, None], rays * t_hit[:, None], np.nan).astype(np.float32)
    color = np.where((label > 1)[:, None], [200, 40, 40], [120, 110, 100]).astype(np.uint8)
    return coord, color, label.astype(np.uint32), normal


# ----------------------------------------------------------------------------- grid_mesh


def flat_grid(height, width, depth=1.0, spacing=0.002):
    rows, cols = np.mgrid[0:height, 0:width]
    z = np.full((height, width), depth)
    return np.stack([cols * spacing, rows * spacing, z], -1).astype(np.float32)


def test_grid_mesh_full_grid_and_holes():
    coord = flat_grid(3, 3)
    vertex_index, faces = sv.grid_mesh(coord)
    assert len(vertex_index) == 9 and len(faces) == 8  # two triangles per 2x2 block
    coord[1, 1] = np.nan  # the centre: every block keeps the triangle of its 3 valid pixels
    vertex_index, faces = sv.grid_mesh(coord)
    np.testing.assert_array_equal(vertex_index, [0, 1, 2, 3, 5, 6, 7, 8])
    assert len(faces) == 4 and faces.max() == 7
    # camera frame (y down, z forward): faces wind towards the camera, normal z < 0
    v = coord.reshape(-1, 3)[vertex_index]
    normal = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    assert (normal[:, 2] < 0).all()


def test_grid_mesh_cuts_depth_jumps_only():
    coord = flat_grid(3, 4)
    limit = sv.DEPTH_JUMP_REL * 1.0 + sv.DEPTH_JUMP_ABS
    coord[:, 2:, 2] = 1.0 + 0.9 * limit  # a slope below the limit stays connected
    assert len(sv.grid_mesh(coord)[1]) == 12
    coord[:, 2:, 2] = 1.0 + 1.1 * limit  # a step above it: the middle column of blocks goes
    faces = sv.grid_mesh(coord)[1]
    assert len(faces) == 8
    cols = faces % 4  # vertex index = pixel index here: column = index % width
    assert not ((cols.min(1) <= 1) & (cols.max(1) >= 2)).any()


@needs_mosd
def test_grid_mesh_on_a_real_scan():
    from lassm.data import mosd

    coord = mosd.read_pcd(MOSD_ROOT / "learn" / "learn0.pcd")["coord"]
    vertex_index, faces = sv.grid_mesh(coord)
    vertices = coord.reshape(-1, 3)[vertex_index]
    assert np.isfinite(vertices).all()
    assert faces.min() >= 0 and faces.max() < len(vertices)
    assert (faces[:, 0] != faces[:, 1]).all() and (faces[:, 1] != faces[:, 2]).all()
    pixel = vertex_index[faces]  # (M, 3) flat pixel indices: each face joins one 2x2 block
    rows, cols = pixel // 640, pixel % 640
    assert (np.ptp(rows, axis=1) <= 1).all() and (np.ptp(cols, axis=1) <= 1).all()
    z = vertices[:, 2][faces]
    assert (np.ptp(z, axis=1) <= sv.DEPTH_JUMP_REL * z.min(1) + sv.DEPTH_JUMP_ABS + 1e-6).all()
    assert len(faces) > 1.8 * len(vertices)  # nearly two triangles per pixel on a real frame


# ----------------------------------------------------------------------------- support plane


def tabletop_points(rng, pitch=50.0, height=0.8, table=4000, box=1500):
    """A table (z = 0) and a box on it: table-frame points and the same points in camera terms."""
    points = np.concatenate([
        np.c_[rng.uniform(-0.5, 0.5, (table, 2)), rng.normal(0, 0.001, table)],
        np.c_[rng.uniform(-0.05, 0.05, (box, 2)), rng.uniform(0.02, 0.15, box)],
    ])
    _, rotation, origin = pose(pitch, height)
    return points, points @ rotation + origin  # table -> camera: R^T q + origin


def angle(a, b):
    return np.degrees(np.arccos(np.clip(np.dot(a, b), -1, 1)))


def test_fit_recovers_heights_tilt_and_is_deterministic():
    points, camera = tabletop_points(np.random.default_rng(1))
    fit = sv.fit_support_plane(camera)
    transform = fit.table_from_camera
    np.testing.assert_allclose(transform[:3, :3] @ transform[:3, :3].T, np.eye(3), atol=1e-9)
    assert np.linalg.det(transform[:3, :3]) > 0
    table_frame = camera @ transform[:3, :3].T + transform[:3, 3]
    np.testing.assert_allclose(table_frame[:, 2], points[:, 2], atol=0.003)  # heights above the table
    assert abs(fit.tilt_degrees - 50.0) < 0.3 and abs(fit.offset - 0.8) < 0.003
    assert 0.7 < fit.inlier_fraction < 0.75  # 4000 table points of 5500 (+ the box's lowest 2 mm)
    # x: camera x projected on the table; origin: centre of the table inliers, on the plane
    np.testing.assert_allclose(transform[0, :3], [1, 0, 0], atol=0.01)
    assert abs(table_frame[:4000, :2].mean(0)).max() < 0.03
    again = sv.fit_support_plane(camera)
    np.testing.assert_array_equal(again.table_from_camera, transform)


def test_fit_prefers_the_supporting_plane_to_a_larger_wall_or_box_top():
    rng = np.random.default_rng(2)
    # the table is a minority (1500 points); a wall behind (4000) and a big box top 12 cm up
    # (2500) are both larger planes
    table = np.c_[rng.uniform(-0.3, 0.3, (1500, 2)), rng.normal(0, 0.001, 1500)]
    wall = np.c_[rng.uniform(-0.5, 0.5, 4000), np.full(4000, 0.35), rng.uniform(0, 0.6, 4000)]
    top = np.c_[rng.uniform(-0.15, 0.15, (2500, 2)), np.full(2500, 0.12)]
    side = np.c_[rng.uniform(-0.15, 0.15, 600), np.full(600, -0.15), rng.uniform(0, 0.12, 600)]
    points = np.concatenate([table, wall, top, side])
    _, rotation, origin = pose(45.0, 0.7)
    fit = sv.fit_support_plane(points @ rotation + origin)
    assert angle(fit.normal, rotation[2]) < 0.5 and abs(fit.offset - 0.7) < 0.005
    assert 0.15 < fit.inlier_fraction < 0.2 and fit.below_fraction < 0.01


def test_a_plane_that_leans_past_the_limit_once_refined_says_so():
    """Hypotheses within the limit, refined on every point just beyond it: the error names the tilt."""
    rng = np.random.default_rng(0)
    table = np.c_[rng.uniform(-0.4, 0.4, (20000, 2)), rng.normal(0, 0.004, 20000)]
    _, rotation, origin = pose(50.0, 0.8)
    points = table @ rotation + origin
    tilt = float(np.degrees(np.arccos(sv.fit_support_plane(points).normal @ [0.0, -1.0, 0.0])))
    expected = (r"t\.pcd: no support plane found: the best plane \(19998 of 20000 valid points\) is tilted "
                r"50\.0 degrees .* raise data\.scan\.max_tilt")
    with pytest.raises(DataError, match=expected):
        sv.fit_support_plane(points, name="t.pcd", max_tilt_degrees=tilt - 0.005)


def test_fit_fails_without_a_plausible_plane():
    cloud = np.random.default_rng(0).uniform(-0.5, 0.5, (5000, 3)) + [0, 0, 1.5]
    with pytest.raises(DataError, match=r"scan\.pcd: no support plane found"):
        sv.fit_support_plane(cloud, name="scan.pcd")
    with pytest.raises(DataError, match="scan.pcd"):
        sv.fit_support_plane(cloud[:2], name="scan.pcd")
    # a plane facing the camera (a wall, 90 degrees from camera -y) is no support plane
    wall = np.c_[np.random.default_rng(1).uniform(-0.5, 0.5, (3000, 2)), np.full(3000, 1.2)]
    with pytest.raises(DataError, match="within 60 degrees"):
        sv.fit_support_plane(wall, name="wall.pcd")
    assert sv.fit_support_plane(wall, max_tilt_degrees=95).tilt_degrees == pytest.approx(90, abs=0.5)


def learn_points(k):
    from lassm.data import mosd

    scan = mosd.read_pcd(MOSD_ROOT / "learn" / f"learn{k}.pcd")
    valid = sv.valid_pixels(scan["coord"])
    return scan["coord"][valid].astype(np.float64), scan["label"][valid].astype(np.int64)


def plane_of(points):
    """Least-squares plane (unit normal toward the camera, offset) of labelled points."""
    centre = points.mean(0)
    normal = np.linalg.svd(points - centre, full_matrices=False)[2][-1]
    return (normal, -normal @ centre) if normal @ centre < 0 else (-normal, normal @ centre)


def minority_table(points, label, normal, offset, radius, wall_factor, rng):
    """Objects plus the table points within ``radius`` of them (distances along the table),
    and optionally a vertical wall behind them holding ``wall_factor`` x as many points as
    the table patch, so the table is a small minority and not the largest plane."""
    table, thing = (label >= 1) & (label <= 9), label >= 20
    flat = points - np.outer(points @ normal + offset, normal)
    near = cKDTree(flat[thing]).query(flat[table], distance_upper_bound=radius)[0] < radius
    keep = thing.copy()
    keep[np.flatnonzero(table)[near]] = True
    patch = int(near.sum())
    out = [points[keep]]
    if wall_factor:
        count = int(wall_factor * patch)
        away = np.cross(normal, [1.0, 0, 0])  # along the table, away from the camera
        away *= np.sign(away @ points[thing].mean(0))
        base = points[thing].mean(0) + 0.25 * away
        out.append(base + np.outer(rng.uniform(-0.4, 0.4, count), [1.0, 0, 0])
                   + np.outer(rng.uniform(0, 0.5, count), normal))
    cloud = np.concatenate(out)
    return cloud, patch / len(cloud)


@needs_mosd
@pytest.mark.parametrize("k", [0, 20, 26, 36])  # single box, stacked, occluded, cylinders
@pytest.mark.parametrize("wall_factor", [0.0, 1.5])
def test_fit_on_real_scans_with_the_table_cropped_to_a_minority(k, wall_factor):
    points, label = learn_points(k)
    table = points[(label >= 1) & (label <= 9)]
    normal, offset = plane_of(table)  # the labelled table of the full scan
    rng = np.random.default_rng(k)
    cloud, table_share = minority_table(points, label, normal, offset, 0.03, wall_factor, rng)
    assert table_share < 0.35  # the table is a minority of the points (0.13-0.33 here)
    fit = sv.fit_support_plane(cloud, name=f"learn{k}")
    assert angle(fit.normal, normal) < 2.0
    z = table @ fit.table_from_camera[:3, :3].T + fit.table_from_camera[:3, 3]
    assert np.percentile(np.abs(z[:, 2]), 95) < 0.015


@needs_mosd
def test_fit_on_all_real_tables_agrees_with_the_labels():
    for k in range(0, 45, 4):
        points, label = learn_points(k)
        table = points[(label >= 1) & (label <= 9)]
        fit = sv.fit_support_plane(points, name=f"learn{k}")
        assert angle(fit.normal, plane_of(table)[0]) < 0.2, k
        assert 33 < fit.tilt_degrees < 45, k  # the learn scans look down 34-44 degrees


# ----------------------------------------------------------------------------- labels


def test_label_scheme():
    raw = np.array([0, 1, 5, 9, 12, 20, 21, 30, 45, 41, 20])
    np.testing.assert_array_equal(sv.semantic_labels(raw), [-1, 0, 0, 0, -1, 1, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(sv.instance_labels(raw, "object"), [-1, -1, -1, -1, -1, 0, 0, 1, 2, 2, 0])
    np.testing.assert_array_equal(sv.instance_labels(raw, "part"), [-1, -1, -1, -1, -1, 0, 1, 2, 4, 3, 0])
    with pytest.raises(DataError, match="instance_view"):
        sv.instance_labels(raw, "objects")


# ----------------------------------------------------------------------------- process_single_view


TWO_BOXES = ((-0.12, -0.02, -0.05, 0.05, 0.1, 20), (0.03, 0.1, -0.04, 0.06, 0.06, 31))


@pytest.fixture(scope="module")
def view():
    coord, color, label, normal = render(TWO_BOXES)
    # NaN coordinates that still carry object labels, as in real scans (and x = y = -0, z NaN)
    valid = np.flatnonzero(np.isfinite(coord).all(1))
    rng = np.random.default_rng(3)
    broken = rng.choice(valid[label[valid] >= 20], 30, replace=False)
    coord[broken[:15], 0] = np.nan
    coord[broken[15:]] = [-0.0, -0.0, np.nan]
    return coord, color, label, normal, broken


@pytest.mark.parametrize("organised", [True, False])
def test_process_single_view(view, organised):
    coord, color, label, normal, broken = view
    grid = (72, 96) if organised else None
    out = sv.process_single_view(coord, color, grid_shape=grid, label=label, scan=SUPPORT, name="v")
    n = len(out["coord"])
    expected = {"coord": (np.float32, (n, 3)), "color": (np.uint8, (n, 3)), "normal": (np.float32, (n, 3)),
                "superpoint": (np.int64, (n,)), "point_index": (np.int64, (n,)),
                "table_from_camera": (np.float32, (4, 4)), "plane_inlier_fraction": (np.float32, ()),
                "plane_tilt_degrees": (np.float32, ()), "segment": (np.int64, (n,)),
                "instance": (np.int64, (n,)), "instance_object": (np.int64, (n,)),
                "instance_part": (np.int64, (n,))}
    for key, (dtype, shape) in expected.items():
        assert out[key].dtype == dtype and out[key].shape == shape, key
    index = out["point_index"]
    assert not np.isin(broken, index).any()  # NaN coordinates dropped whatever their label
    finite = np.isfinite(coord).all(1)
    assert finite[index].all() and 0.99 * finite.sum() <= n
    np.testing.assert_array_equal(out["color"], color[index])
    np.testing.assert_array_equal(out["segment"], sv.semantic_labels(label[index]))
    np.testing.assert_array_equal(out["instance"], out["instance_object"])
    # the table frame of the rendering pose: table z = 0, box tops at their heights
    assert float(out["plane_tilt_degrees"]) == pytest.approx(40.0, abs=0.3)
    assert angle(out["table_from_camera"][2, :3].astype(float), normal) < 0.3
    z, kept = out["coord"][:, 2], label[index]
    assert np.percentile(np.abs(z[kept == 1]), 99) < 0.004
    assert np.percentile(z[kept == 20], 99) == pytest.approx(0.1, abs=0.004)
    assert np.percentile(z[kept == 31], 99) == pytest.approx(0.06, abs=0.004)
    camera = coord[index].astype(np.float64)  # the transform maps the kept input rows
    transform = out["table_from_camera"].astype(np.float64)
    np.testing.assert_allclose(camera @ transform[:3, :3].T + transform[:3, 3], out["coord"], atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(out["normal"], axis=1), 1, atol=1e-3)
    assert np.median(out["normal"][kept == 1, 2]) > 0.95  # table normals point up
    # superpoints do not mix the table and the boxes
    _, sp = np.unique(out["superpoint"], return_inverse=True)
    for s in range(sp.max() + 1):
        labels, counts = np.unique(kept[sp == s], return_counts=True)
        assert counts.max() >= 0.95 * counts.sum()


def test_process_single_view_dataset_frame_and_no_labels(view):
    coord, color, _, _, _ = view
    scan = ScanConfig(frame="dataset")
    out = sv.process_single_view(coord, color, scan=scan, name="v")
    np.testing.assert_array_equal(out["coord"], coord[out["point_index"]])  # coordinates as given
    np.testing.assert_array_equal(out["table_from_camera"], np.eye(4, dtype=np.float32))
    assert np.isnan(out["plane_tilt_degrees"]) and "segment" not in out and "instance" not in out


def test_process_single_view_bad_input(view):
    coord, color, label, _, _ = view
    with pytest.raises(DataError, match=r"v\.pcd: grid_shape \(10, 10\)"):
        sv.process_single_view(coord, color, grid_shape=(10, 10), scan=SUPPORT, name="v.pcd")
    with pytest.raises(DataError, match=r"v\.pcd: color"):
        sv.process_single_view(coord, color[:5], scan=SUPPORT, name="v.pcd")
    with pytest.raises(DataError, match=r"v\.pcd: label"):
        sv.process_single_view(coord, color, label=label[:5], scan=SUPPORT, name="v.pcd")
    empty = np.full((20, 3), np.nan, np.float32)
    with pytest.raises(DataError, match=r"v\.pcd: 0 valid points"):
        sv.process_single_view(empty, color[:20], scan=SUPPORT, name="v.pcd")
    with pytest.raises(DataError, match=r"v\.pcd: no valid neighbouring pixels"):
        sv.process_single_view(empty, color[:20], grid_shape=(4, 5), scan=SUPPORT, name="v.pcd")
    with pytest.raises(DataError, match="instance_view"):
        sv.process_single_view(coord, color, scan=SUPPORT, name="v.pcd", instance_view="both")


@pytest.mark.skipif(not (MOSD_ROOT / "learn" / "learn3.pcd").is_file(), reason="mOSD learn scans not present")
def test_a_view_from_higher_up_needs_a_wider_tilt_limit():
    """ScanConfig.max_tilt_degrees reaches process_single_view: a learn scan turned about the camera's
    x axis so its table is ~70 degrees from the camera's up fails at the default 60 and is found at 85."""
    points, label = learn_points(3)
    angle = np.radians(28.0)
    turn = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    steep = points @ turn.T
    normal, _ = plane_of(steep[(label >= 1) & (label <= 9)])
    tilt = np.degrees(np.arccos(-normal[1]))
    assert 62 < tilt < 80  # the turn made the view steeper than the default limit
    color = np.full((len(steep), 3), 128, np.uint8)
    with pytest.raises(DataError, match="within 60 degrees"):
        sv.process_single_view(steep, color, scan=ScanConfig(frame="support_plane"), name="steep.pcd")
    out = sv.process_single_view(steep, color, label=label, name="steep.pcd",
                                 scan=ScanConfig(frame="support_plane", max_tilt_degrees=85))
    assert float(out["plane_tilt_degrees"]) == pytest.approx(tilt, abs=1.0)
    table_z = out["coord"][out["segment"] == 0][:, 2]
    assert np.percentile(np.abs(table_z), 95) < 0.015


@pytest.mark.skipif(not (MOSD_ROOT / "learn" / "learn3.pcd").is_file(), reason="mOSD learn scans not present")
def test_predict_fits_a_steep_view_again_with_a_warning(tmp_path):
    """load_scan (predict's door) retries a view steeper than max_tilt_degrees up to
    fallback_tilt_degrees, warning, and finds the table; with the fallback off it raises
    NoSupportPlane naming the file."""
    from lassm.data.scans import load_scan

    points, label = learn_points(3)
    keep = np.random.default_rng(0).choice(len(points), 40_000, replace=False)
    points, label = points[keep], label[keep]
    angle = np.radians(28.0)  # as above: the table ends up ~70 degrees from the camera's up
    turn = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    steep = points @ turn.T
    normal, _ = plane_of(steep[(label >= 1) & (label <= 9)])
    path = tmp_path / "steep.npy"
    np.save(path, np.c_[steep, np.full((len(steep), 3), 128.0)].astype(np.float32))
    cfg = ScanConfig(frame="support_plane")
    with pytest.warns(UserWarning, match=r"steep\.npy: no support plane.*fitted again up to 85 degrees"):
        scan = load_scan(path, cfg)
    assert scan["plane"]["tilt_degrees"] == pytest.approx(np.degrees(np.arccos(-normal[1])), abs=1.0)
    table = (label[scan["point_index"]] >= 1) & (label[scan["point_index"]] <= 9)
    assert np.percentile(np.abs(scan["coord"][table, 2]), 95) < 0.015  # the table is the z = 0 plane
    with pytest.raises(sv.NoSupportPlane, match=r"steep\.npy: no support plane found"):
        load_scan(path, ScanConfig(frame="support_plane", fallback_tilt_degrees=0))
    with pytest.raises(ValueError, match="data.scan.fallback_tilt_degrees"):
        ScanConfig(fallback_tilt_degrees=95)
