"""mOSD scans: PCD reading, grid mesh, table frame, labels, jobs, and bad input.

Real-scan tests read ``<repo>/../shared/data/mosd`` (never copied into the project) and are
skipped when it is absent; the others build their own small clouds with pypcd4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pypcd4 import Encoding, PointCloud

from lassm.data import mosd
from lassm.data.io import DataError, load_scene
from lassm.data.preprocess import SceneJob, run_jobs

MOSD_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mosd"
needs_mosd = pytest.mark.skipif(
    not (MOSD_ROOT / "learn" / "learn0.pcd").is_file(),
    reason=f"mOSD scans not found at {MOSD_ROOT} (the shared data folder beside the repo)",
)
MULTI_PART_SCENE = "learn36"  # 4 objects, two of them split into several parts


def write_pcd(path, fields, arrays, width, height, types=None):
    """Write a PCD with pypcd4; ``arrays`` are flat per-field arrays."""
    types = types or [a.dtype for a in arrays]
    cloud = PointCloud.from_points(list(arrays), fields, types)
    cloud.metadata = cloud.metadata.derive(width=width, height=height)
    cloud.save(path, encoding=Encoding.BINARY_COMPRESSED)
    return path


def small_scan(height=4, width=5, packed_float=False):
    """A small organised cloud: flat at 1 m depth, random colours, label = pixel index."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:height, 0:width]
    x = (cols.ravel() * 0.002).astype(np.float32)
    y = (rows.ravel() * 0.002).astype(np.float32)
    z = np.ones(height * width, np.float32)
    rgb = rng.integers(0, 256, (height * width, 3), dtype=np.uint8)
    packed = PointCloud.encode_rgb(rgb)  # float32 bits, PCL's "float-packed" rgb
    if not packed_float:
        packed = packed.view(np.uint32)
    label = np.arange(height * width, dtype=np.uint32)
    return [label, x, y, z, packed], rgb


# ----------------------------------------------------------------------------- read_pcd


@pytest.mark.parametrize("packed_float", [False, True])
def test_read_pcd_unpacks_colour_and_keeps_the_grid(tmp_path, packed_float):
    arrays, rgb = small_scan(packed_float=packed_float)
    name = "rgb" if packed_float else "rgba"
    path = write_pcd(tmp_path / "s.pcd", ("label", "x", "y", "z", name), arrays, 5, 4)
    scan = mosd.read_pcd(path)
    assert scan["coord"].shape == (4, 5, 3) and scan["coord"].dtype == np.float32
    assert scan["color"].shape == (4, 5, 3) and scan["color"].dtype == np.uint8
    assert scan["label"].shape == (4, 5) and scan["label"].dtype == np.uint32
    np.testing.assert_array_equal(scan["color"].reshape(-1, 3), rgb)
    # row-major image order: pixel (r, c) holds flat point r * W + c
    assert scan["label"][2, 3] == 2 * 5 + 3
    np.testing.assert_allclose(scan["coord"][2, 3], [0.006, 0.004, 1.0], atol=1e-7)


def test_read_pcd_rejects_wrong_fields(tmp_path):
    arrays, _ = small_scan()
    path = write_pcd(tmp_path / "nolabel.pcd", ("x", "y", "z", "rgba"), arrays[1:], 5, 4)
    expected = r"expected exactly \['label', 'x', 'y', 'z', 'rgba'\]"
    with pytest.raises(DataError, match=r"nolabel\.pcd.*" + expected):
        mosd.read_pcd(path)
    extra = write_pcd(tmp_path / "extra.pcd", ("label", "x", "y", "z", "rgba", "intensity"),
                      arrays + [np.zeros(20, np.float32)], 5, 4)
    with pytest.raises(DataError, match=r"extra\.pcd.*intensity"):
        mosd.read_pcd(extra)


def test_read_pcd_rejects_unorganised_and_wrong_count(tmp_path):
    arrays, _ = small_scan()
    fields = ("label", "x", "y", "z", "rgba")
    flat = write_pcd(tmp_path / "flat.pcd", fields, arrays, 20, 1)
    with pytest.raises(DataError, match=r"flat\.pcd.*not an organised cloud"):
        mosd.read_pcd(flat)
    wrong = write_pcd(tmp_path / "wrong.pcd", fields, arrays, 5, 3)  # 15 != 20 points
    with pytest.raises(DataError, match=r"wrong\.pcd.*WIDTH x HEIGHT = 15"):
        mosd.read_pcd(wrong)


def test_read_pcd_rejects_truncated_and_missing_files(tmp_path):
    arrays, _ = small_scan(height=40, width=50)
    arrays = [np.resize(a, 2000) for a in arrays]
    good = write_pcd(tmp_path / "good.pcd", ("label", "x", "y", "z", "rgba"), arrays, 50, 40)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pcd"
    truncated.write_bytes(data[: len(data) - 200])
    with pytest.raises(DataError, match=r"truncated\.pcd.*unreadable or truncated"):
        mosd.read_pcd(truncated)
    with pytest.raises(DataError, match=r"absent\.pcd.*not found"):
        mosd.read_pcd(tmp_path / "absent.pcd")


@needs_mosd
def test_read_real_scan():
    scan = mosd.read_pcd(MOSD_ROOT / "learn" / "learn0.pcd")
    assert scan["coord"].shape == (480, 640, 3) and scan["coord"].dtype == np.float32
    assert scan["color"].shape == (480, 640, 3) and scan["color"].dtype == np.uint8
    assert scan["label"].shape == (480, 640) and scan["label"].dtype == np.uint32
    valid = mosd.valid_pixels(scan["coord"])
    # README: invalid pixels are NaN and carry label 0; 35-40 % of a frame
    np.testing.assert_array_equal(valid, scan["label"] > 0)
    assert 0.5 < valid.mean() < 0.7
    assert 0.4 < scan["coord"][valid][:, 2].min() and scan["coord"][valid][:, 2].max() < 1.8
    assert scan["color"][valid].std() > 10  # real colours, not a constant


# ----------------------------------------------------------------------------- grid_mesh


def flat_grid(height, width, depth=1.0, spacing=0.002):
    rows, cols = np.mgrid[0:height, 0:width]
    z = np.full((height, width), depth)
    return np.stack([cols * spacing, rows * spacing, z], -1).astype(np.float32)


def test_grid_mesh_full_grid_and_holes():
    coord = flat_grid(3, 3)
    vertex_index, faces = mosd.grid_mesh(coord)
    assert len(vertex_index) == 9 and len(faces) == 8  # two triangles per 2x2 block
    coord[1, 1] = np.nan  # the centre: every block keeps the triangle of its 3 valid pixels
    vertex_index, faces = mosd.grid_mesh(coord)
    np.testing.assert_array_equal(vertex_index, [0, 1, 2, 3, 5, 6, 7, 8])
    assert len(faces) == 4 and faces.max() == 7
    # camera frame (y down, z forward): faces wind towards the camera, normal z < 0
    v = coord.reshape(-1, 3)[vertex_index]
    normal = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    assert (normal[:, 2] < 0).all()


def test_grid_mesh_cuts_depth_jumps_only():
    coord = flat_grid(3, 4)
    limit = mosd.DEPTH_JUMP_REL * 1.0 + mosd.DEPTH_JUMP_ABS
    coord[:, 2:, 2] = 1.0 + 0.9 * limit  # a slope below the limit stays connected
    assert len(mosd.grid_mesh(coord)[1]) == 12
    coord[:, 2:, 2] = 1.0 + 1.1 * limit  # a step above it: the middle column of blocks goes
    faces = mosd.grid_mesh(coord)[1]
    assert len(faces) == 8
    cols = faces % 4  # vertex index = pixel index here: column = index % width
    assert not ((cols.min(1) <= 1) & (cols.max(1) >= 2)).any()


@needs_mosd
def test_grid_mesh_on_a_real_scan():
    coord = mosd.read_pcd(MOSD_ROOT / "learn" / "learn0.pcd")["coord"]
    vertex_index, faces = mosd.grid_mesh(coord)
    vertices = coord.reshape(-1, 3)[vertex_index]
    assert np.isfinite(vertices).all()
    assert faces.min() >= 0 and faces.max() < len(vertices)
    assert (faces[:, 0] != faces[:, 1]).all() and (faces[:, 1] != faces[:, 2]).all()
    # each face joins pixels of one 2x2 block
    pixel = vertex_index[faces]  # (M, 3) flat pixel indices
    rows, cols = pixel // 640, pixel % 640
    assert (np.ptp(rows, axis=1) <= 1).all() and (np.ptp(cols, axis=1) <= 1).all()
    z = vertices[:, 2][faces]
    assert (np.ptp(z, axis=1) <= mosd.DEPTH_JUMP_REL * z.min(1) + mosd.DEPTH_JUMP_ABS + 1e-6).all()
    assert len(faces) > 1.8 * len(vertices)  # nearly two triangles per pixel on a real frame


# ----------------------------------------------------------------------------- table plane


def tabletop_in_camera_frame(rng):
    """Points of a table (z = 0) and a box on it, in table coordinates and in a camera frame."""
    table = np.c_[rng.uniform(-0.5, 0.5, (4000, 2)), rng.normal(0, 0.001, 4000)]
    box = np.c_[rng.uniform(-0.05, 0.05, (1500, 2)), rng.uniform(0.02, 0.15, 1500)]
    points = np.concatenate([table, box])
    # camera 0.8 m above the table looking down at 50 degrees, rolled slightly
    tilt, roll = np.deg2rad(-130), np.deg2rad(5)
    rx = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    rotation = rz @ rx  # camera -> table
    camera_position = np.array([0.1, -0.6, 0.8])
    camera = (points - camera_position) @ rotation  # table -> camera: R^T (p - c)
    return points, camera


def test_fit_table_plane_recovers_heights_above_the_table():
    points, camera = tabletop_in_camera_frame(np.random.default_rng(1))
    assert (camera[:, 2] > 0).all()  # the synthetic camera sees everything in front of it
    transform = mosd.fit_table_plane(camera)
    np.testing.assert_allclose(transform[:3, :3] @ transform[:3, :3].T, np.eye(3), atol=1e-9)
    assert np.linalg.det(transform[:3, :3]) > 0
    table_frame = camera @ transform[:3, :3].T + transform[:3, 3]
    # height above the table does not depend on the in-plane axes: compare it directly
    np.testing.assert_allclose(table_frame[:, 2], points[:, 2], atol=0.003)
    np.testing.assert_array_equal(transform, mosd.fit_table_plane(camera))  # deterministic


def test_fit_table_plane_fails_without_a_plane():
    cloud = np.random.default_rng(0).uniform(-0.5, 0.5, (5000, 3)) + [0, 0, 1.5]
    with pytest.raises(DataError, match=r"scan\.pcd: the largest plane holds"):
        mosd.fit_table_plane(cloud, name="scan.pcd")
    with pytest.raises(DataError, match="scan.pcd"):
        mosd.fit_table_plane(cloud[:2], name="scan.pcd")


# ----------------------------------------------------------------------------- labels


def test_label_scheme():
    raw = np.array([0, 1, 5, 9, 12, 20, 21, 30, 45, 41, 20])
    np.testing.assert_array_equal(mosd.semantic_labels(raw), [-1, 0, 0, 0, -1, 1, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(
        mosd.instance_labels(raw, "object"), [-1, -1, -1, -1, -1, 0, 0, 1, 2, 2, 0]
    )
    np.testing.assert_array_equal(
        mosd.instance_labels(raw, "part"), [-1, -1, -1, -1, -1, 0, 1, 2, 4, 3, 0]
    )
    with pytest.raises(DataError, match="instance_view"):
        mosd.instance_labels(raw, "objects")


# ----------------------------------------------------------------------------- processing


@pytest.fixture(scope="module")
def processed():
    if not (MOSD_ROOT / "learn" / "learn0.pcd").is_file():
        pytest.skip(f"mOSD scans not found at {MOSD_ROOT}")
    out = {}
    for name in ("learn0", MULTI_PART_SCENE):
        source = MOSD_ROOT / "learn" / f"{name}.pcd"
        out[name] = (mosd.process(SceneJob(name, "train", source, {})), mosd.read_pcd(source))
    return out


@needs_mosd
@pytest.mark.parametrize("name", ["learn0", MULTI_PART_SCENE])
def test_process_real_scan(processed, name):
    arrays, scan = processed[name]
    n = len(arrays["coord"])
    expected = {"coord": (np.float32, (n, 3)), "color": (np.uint8, (n, 3)),
                "normal": (np.float32, (n, 3)), "superpoint": (np.int64, (n,)),
                "segment": (np.int64, (n,)), "instance": (np.int64, (n,)),
                "instance_object": (np.int64, (n,)), "instance_part": (np.int64, (n,))}
    for key, (dtype, shape) in expected.items():
        assert arrays[key].dtype == dtype and arrays[key].shape == shape, key
    assert str(arrays["scene_id"]) == name
    valid = mosd.valid_pixels(scan["coord"])
    assert 0.99 * valid.sum() < n <= valid.sum()  # only NaN and isolated pixels dropped
    assert np.isfinite(arrays["coord"]).all()
    np.testing.assert_allclose(np.linalg.norm(arrays["normal"], axis=1), 1, atol=1e-3)

    # labels: counts per class and per object match the raw labels of the valid pixels
    raw = scan["label"][valid]
    segment = arrays["segment"]
    inst_obj, inst_part = arrays["instance_object"], arrays["instance_part"]
    assert abs((segment == 0).sum() - (raw < 10).sum()) <= valid.sum() - n
    assert inst_obj.max() + 1 == len(np.unique(raw[raw >= 20] // 10))
    assert inst_part.max() + 1 == len(np.unique(raw[raw >= 20]))
    np.testing.assert_array_equal(arrays["instance"], inst_obj)  # default view
    assert (inst_obj[segment == 0] == -1).all() and (inst_obj[segment == 1] >= 0).all()
    assert ((inst_part >= 0) == (inst_obj >= 0)).all()
    for part in np.unique(inst_part[inst_part >= 0]):  # parts nest inside one object
        assert len(np.unique(inst_obj[inst_part == part])) == 1

    # table frame: table at z ~ 0 with +z normals, objects above it
    z = arrays["coord"][:, 2]
    assert np.median(np.abs(z[segment == 0])) < 0.003
    assert np.percentile(np.abs(z[segment == 0]), 99) < 0.015
    assert np.median(z[segment == 1]) > 0.03 and (z[segment == 1] < -0.01).mean() < 0.01
    assert arrays["normal"][segment == 0, 2].mean() > 0.8

    # superpoints: mostly pure in table vs object (about 99.4-99.9 % on the learn scans)
    _, sp, sizes = np.unique(arrays["superpoint"], return_inverse=True, return_counts=True)
    counts = np.zeros((len(sizes), 2), np.int64)
    np.add.at(counts, (sp, segment), 1)
    assert counts.max(1).sum() / n > 0.98
    assert 500 < len(sizes) < 5000 and np.median(sizes) >= 20


@needs_mosd
def test_process_part_view_and_bad_view(processed):
    source = MOSD_ROOT / "learn" / f"{MULTI_PART_SCENE}.pcd"
    parts = mosd.process(SceneJob(MULTI_PART_SCENE, "train", source, {"instance_view": "part"}))
    objects = processed[MULTI_PART_SCENE][0]
    np.testing.assert_array_equal(parts["instance"], objects["instance_part"])
    assert parts["instance"].max() > objects["instance"].max()  # this scene has split objects
    np.testing.assert_array_equal(parts["superpoint"], objects["superpoint"])  # deterministic
    with pytest.raises(DataError, match="instance_view"):
        mosd.process(SceneJob(MULTI_PART_SCENE, "train", source, {"instance_view": "both"}))


# ----------------------------------------------------------------------------- jobs


def fake_learn_folder(root, numbers):
    (root / "learn").mkdir(parents=True)
    for k in numbers:
        (root / "learn" / f"learn{k}.pcd").write_bytes(b"")
    return root


def test_find_jobs_natural_order_and_stratified_split(tmp_path):
    root = fake_learn_folder(tmp_path, range(45))
    (root / "learn" / "notes.txt").write_text("not a scan")
    jobs = mosd.find_jobs(root, val_fraction=0.2, instance_view="part", seed=3)
    assert [j.name for j in jobs] == [f"learn{k}" for k in range(45)]
    assert all(j.options == {"instance_view": "part"} for j in jobs)
    val = {int(j.name[5:]) for j in jobs if j.split == "val"}
    for group in mosd.SCENE_GROUPS.values():
        assert val & set(group), group
    assert 7 <= len(val) <= 11
    again = mosd.find_jobs(root, val_fraction=0.2, instance_view="part", seed=3)
    assert [j.split for j in again] == [j.split for j in jobs]
    assert all(j.split == "train" for j in mosd.find_jobs(root, val_fraction=0.0))


def test_find_jobs_bad_input(tmp_path):
    with pytest.raises(DataError, match="learn.*folder not found"):
        mosd.find_jobs(tmp_path)
    (tmp_path / "learn").mkdir()
    with pytest.raises(DataError, match="learn.*no learn<k>.pcd files"):
        mosd.find_jobs(tmp_path)
    fake_learn_folder(tmp_path / "ok", [0, 1])
    with pytest.raises(DataError, match="instance_view"):
        mosd.find_jobs(tmp_path / "ok", instance_view="parts")
    with pytest.raises(DataError, match="val_fraction"):
        mosd.find_jobs(tmp_path / "ok", val_fraction=1.0)


@needs_mosd
def test_run_jobs_writes_and_resumes(tmp_path):
    raw = tmp_path / "raw"
    (raw / "learn").mkdir(parents=True)
    for k in (0, 17):  # symlinks: read from ../shared, never copied
        (raw / "learn" / f"learn{k}.pcd").symlink_to(MOSD_ROOT / "learn" / f"learn{k}.pcd")
    jobs = mosd.find_jobs(raw, val_fraction=0.0)
    out = tmp_path / "processed"
    summary = run_jobs(jobs, mosd.process, out, workers=1)
    assert sorted(summary.done) == ["learn0", "learn17"]
    scene = load_scene(out / "train" / "learn17")
    assert str(scene["scene_id"]) == "learn17" and scene["coord"].shape[1] == 3
    again = run_jobs(jobs, mosd.process, out, workers=1)
    assert again.done == [] and sorted(again.skipped) == ["learn0", "learn17"]


def test_process_reports_the_file_when_no_table(tmp_path):
    # a corrugated sheet (1 m +- 0.3 m, period 120 px, 0.7 x 0.3 m): meshable, but no plane
    # holds 20 % of it
    height, width = 80, 360
    coord = flat_grid(height, width)
    coord[..., 1] *= 2  # 4 mm rows: a slab across the rows must not hold everything
    coord[..., 2] = 1 + 0.3 * np.sin(np.arange(width) * 2 * np.pi / 120)
    assert len(mosd.grid_mesh(coord)[1]) > 0
    flat = coord.reshape(-1, 3).T.astype(np.float32)
    label = np.ones(height * width, np.uint32)
    path = write_pcd(tmp_path / "noplane.pcd", ("label", "x", "y", "z", "rgba"),
                     [label, *flat, np.zeros(height * width, np.uint32)], width, height)
    with pytest.raises(DataError, match=r"noplane\.pcd: the largest plane holds"):
        mosd.process(SceneJob("noplane", "train", path, {}))
