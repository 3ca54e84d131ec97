"""mOSD scans: PCD reading (organised and not), processing, jobs, and bad input.

The single-view steps (grid mesh, support plane, labels) are tested in test_singleview.py.
Real-scan tests read ``<repo>/../shared/data/mosd`` (never copied into the project) and are
skipped when it is absent; the others build their own small clouds with pypcd4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pypcd4 import Encoding, PointCloud

from lassm.config import ScanConfig
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


def test_read_pcd_any_field_order_optional_label_and_colour(tmp_path):
    arrays, rgb = small_scan()
    label, x, y, z, packed = arrays
    reordered = write_pcd(tmp_path / "order.pcd", ("rgba", "z", "label", "x", "intensity", "y"),
                          [packed, z, label, x, np.zeros(20, np.float32), y], 5, 4)
    scan = mosd.read_pcd(reordered)  # any order; unknown fields are ignored
    assert scan["grid_shape"] == (4, 5)
    np.testing.assert_array_equal(scan["color"].reshape(-1, 3), rgb)
    np.testing.assert_array_equal(scan["label"].ravel(), label)
    np.testing.assert_array_equal(scan["coord"].reshape(-1, 3), np.c_[x, y, z])
    nolabel = write_pcd(tmp_path / "nolabel.pcd", ("x", "y", "z", "rgb"), [x, y, z, packed], 5, 4)
    assert mosd.read_pcd(nolabel)["label"] is None
    nocolour = write_pcd(tmp_path / "nocolour.pcd", ("x", "y", "z", "label"), [x, y, z, label], 5, 4)
    with pytest.warns(UserWarning, match=r"nocolour\.pcd: no rgb or rgba field; colour set to grey"):
        scan = mosd.read_pcd(nocolour)
    assert (scan["color"] == 128).all() and scan["color"].shape == (4, 5, 3)
    noz = write_pcd(tmp_path / "noz.pcd", ("label", "x", "y", "rgba"), [label, x, y, packed], 5, 4)
    with pytest.raises(DataError, match=r"noz\.pcd: fields .*expected at least x, y, z"):
        mosd.read_pcd(noz)
    float_label = write_pcd(tmp_path / "flabel.pcd", ("label", "x", "y", "z"),
                            [label.astype(np.float32), x, y, z], 5, 4)
    with pytest.raises(DataError, match=r"flabel\.pcd: field 'label'"):
        mosd.read_pcd(float_label)


def test_read_pcd_unorganised_and_wrong_count(tmp_path):
    arrays, rgb = small_scan()
    fields = ("label", "x", "y", "z", "rgba")
    flat = mosd.read_pcd(write_pcd(tmp_path / "flat.pcd", fields, arrays, 20, 1))
    assert flat["grid_shape"] is None  # HEIGHT 1: an unorganised cloud, rows in file order
    assert flat["coord"].shape == (20, 3) and flat["label"].shape == (20,)
    np.testing.assert_array_equal(flat["color"], rgb)
    np.testing.assert_array_equal(flat["label"], arrays[0])
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


def unorganised_copy(source, path, fields=None):
    """The valid rows of an organised scan written as an unorganised cloud (HEIGHT 1), like the
    test set's unorganised scans. Returns the path and the kept pixel indices."""
    data = PointCloud.from_path(source).pc_data
    keep = np.flatnonzero(mosd.valid_pixels(np.stack([data[k] for k in "xyz"], -1)))
    fields = fields or data.dtype.names
    write_pcd(path, fields, [data[f][keep] for f in fields], len(keep), 1)
    return path, keep


@needs_mosd
def test_unorganised_copy_of_a_real_scan_reads_back(tmp_path):
    scan = mosd.read_pcd(MOSD_ROOT / "learn" / "learn5.pcd")  # x = y = -0, z NaN invalid pixels
    path, keep = unorganised_copy(MOSD_ROOT / "learn" / "learn5.pcd", tmp_path / "u.pcd")
    flat = mosd.read_pcd(path)
    assert flat["grid_shape"] is None and len(flat["coord"]) == len(keep) < 0.7 * 480 * 640
    np.testing.assert_array_equal(flat["coord"], scan["coord"].reshape(-1, 3)[keep])
    np.testing.assert_array_equal(flat["color"], scan["color"].reshape(-1, 3)[keep])
    np.testing.assert_array_equal(flat["label"], scan["label"].ravel()[keep])
    assert (flat["label"] > 0).all()


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
    # point_index: the kept pixels; plane statistics as 0-d arrays
    np.testing.assert_array_equal(arrays["color"], scan["color"].reshape(-1, 3)[arrays["point_index"]])
    assert 0.75 < float(arrays["plane_inlier_fraction"]) < 0.95
    assert 33 < float(arrays["plane_tilt_degrees"]) < 45
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


def test_find_jobs_other_layouts_keep_the_learn_split(tmp_path):
    root = fake_learn_folder(tmp_path, range(45))
    learn_only = mosd.find_jobs(root, seed=3)
    for name in ("test/scan10.pcd", "test/scan9.pcd", "test/notes.txt", "extra.pcd", ".hidden/x.pcd"):
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_bytes(b"")
    jobs = mosd.find_jobs(root, seed=3)
    assert [(j.name, j.split) for j in jobs[:45]] == [(j.name, j.split) for j in learn_only]
    assert [(j.name, j.split) for j in jobs[45:]] == [("scan9", "test"), ("scan10", "test"),
                                                      ("extra", "test")]
    scan = ScanConfig(frame="support_plane", knn=12)
    assert mosd.find_jobs(root / "test", scan=scan)[0].options == {"instance_view": "object", "scan": scan}


def test_find_jobs_bad_input(tmp_path):
    with pytest.raises(DataError, match="nowhere: folder not found"):
        mosd.find_jobs(tmp_path / "nowhere")
    (tmp_path / "learn").mkdir()
    with pytest.raises(DataError, match="no PCD scans found; expected mOSD's learn/learn<k>.pcd"):
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


@needs_mosd
def test_organised_and_unorganised_copies_get_the_same_frame(tmp_path, processed):
    organised = processed[MULTI_PART_SCENE][0]
    path, keep = unorganised_copy(MOSD_ROOT / "learn" / f"{MULTI_PART_SCENE}.pcd", tmp_path / "u.pcd",
                                  fields=("x", "y", "z", "label", "rgba"))  # another field order
    flat = mosd.process(SceneJob("u", "test", path, {"instance_view": "part"}))
    a, b = organised["table_from_camera"].astype(float), flat["table_from_camera"].astype(float)
    assert np.degrees(np.arccos(min(1.0, a[2, :3] @ b[2, :3]))) < 0.5
    pixel = keep[flat["point_index"]]  # rows of the unorganised file -> pixels of the scan
    common, i, j = np.intersect1d(organised["point_index"], pixel, return_indices=True)
    assert len(common) > 0.99 * len(organised["coord"])
    assert np.abs(organised["coord"][i, 2] - flat["coord"][j, 2]).max() < 0.01  # heights agree
    np.testing.assert_array_equal(organised["instance_part"][i], flat["instance"][j])
    # kNN superpoints: as many and as pure as the grid mesh's (within a factor 1.5)
    count, mesh_count = len(np.unique(flat["superpoint"])), len(np.unique(organised["superpoint"]))
    assert mesh_count / 1.5 < count < 1.5 * mesh_count
    _, sp = np.unique(flat["superpoint"], return_inverse=True)
    pure = np.zeros((count, 2), np.int64)
    np.add.at(pure, (sp, flat["segment"]), 1)
    assert pure.max(1).sum() / len(sp) > 0.98


def test_process_drops_nan_points_with_labels(tmp_path):
    # a small organised view of a flat table: NaN coordinates keep their object label
    height, width = 40, 60
    rows, cols = np.mgrid[0:height, 0:width]
    depth = 1.0 / (0.6 + 0.4 * rows / height)  # a floor-like plane seen from above, y down
    coord = np.stack([(cols - 30) / 100 * depth, (rows - 20) / 100 * depth, depth], -1).reshape(-1, 3)
    coord = coord.astype(np.float32)
    label = np.ones(height * width, np.uint32)
    label[:50] = 25
    coord[:20] = np.nan
    coord[20:30, 2] = np.nan
    fields = ("label", "x", "y", "z", "rgba")
    path = write_pcd(tmp_path / "nan.pcd", fields, [label, *coord.T, np.zeros(len(label), np.uint32)],
                     width, height)
    out = mosd.process(SceneJob("nan", "train", path, {}))
    assert not np.isin(np.arange(30), out["point_index"]).any()
    assert (out["instance"] >= 0).sum() == 20  # labelled points with coordinates: 30..49
    assert np.isfinite(out["coord"]).all() and np.abs(out["coord"][:, 2]).max() < 1e-3


def flat_grid(height, width, depth=1.0, spacing=0.002):
    rows, cols = np.mgrid[0:height, 0:width]
    z = np.full((height, width), depth)
    return np.stack([cols * spacing, rows * spacing, z], -1).astype(np.float32)


def test_process_reports_the_file_when_no_table(tmp_path):
    # a corrugated sheet (1 m +- 0.3 m, period 120 px, 0.7 x 0.3 m) facing the camera:
    # meshable, but no plane within 60 degrees of the sensor's up holds 10 % of it
    height, width = 80, 360
    coord = flat_grid(height, width)
    coord[..., 1] *= 2  # 4 mm rows: a slab across the rows must not hold everything
    coord[..., 2] = 1 + 0.3 * np.sin(np.arange(width) * 2 * np.pi / 120)
    assert len(mosd.grid_mesh(coord)[1]) > 0
    flat = coord.reshape(-1, 3).T.astype(np.float32)
    label = np.ones(height * width, np.uint32)
    path = write_pcd(tmp_path / "noplane.pcd", ("label", "x", "y", "z", "rgba"),
                     [label, *flat, np.zeros(height * width, np.uint32)], width, height)
    with pytest.raises(DataError, match=r"noplane\.pcd: no support plane found"):
        mosd.process(SceneJob("noplane", "train", path, {}))
