"""Prediction on a user's scan: every input kind through the CLI, parity with validation, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement
from pypcd4 import Encoding, PointCloud

from lassm import augment, config, inference, predict
from lassm.data import scans
from lassm.data.batch import pack_scenes
from lassm.data.dataset import SceneDataset
from lassm.data.io import DataError, Mesh, write_mesh_ply, write_scene
from lassm.data.superpoints import segment_mesh
from lassm.evaluate.export import semantic_label_ids
from lassm.evaluate.semantic import read_labels
from lassm.inference import step_generator
from lassm.model import LaSSM


def tiny_config() -> config.Config:
    cfg = config.preset("synthetic")
    cfg.model.backbone.sparse_backend = "torch"
    d = cfg.model.decoder
    # t_layer 0: the "-0" decoder, whose validation pipeline has an augment config (no "-1" exists)
    d.d_model, d.ffn_hidden, d.heads, d.num_query, d.d_state = 64, 128, 4, 16, 16
    d.num_layers, d.t_layer = 2, 0
    cfg.model.postprocess.npoint_thr = 0  # an untrained model's masks are small: keep them all
    return cfg


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = tiny_config()
    torch.manual_seed(0)
    model = LaSSM(cfg.model)
    path = tmp_path_factory.mktemp("ckpt") / "model_best.pth"
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, path)
    return path


def room(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A floor with four boxes standing on it: (n, 3) float32 xyz and (n, 3) uint8 colours."""
    rng = np.random.default_rng(seed)
    floor = np.c_[rng.random((n // 2, 2)) * 4, np.zeros(n // 2)]
    boxes = [np.array([0.5 + i, 0.5 + (i % 2) * 2, 0]) + rng.random((n // 8, 3)) * [0.6, 0.6, 0.7]
             for i in range(4)]
    xyz = np.concatenate([floor, *boxes])[:n].astype(np.float32)
    rgb = rng.integers(0, 256, (len(xyz), 3)).astype(np.uint8)
    return xyz, rgb


def run_cli(checkpoint, scan, out, *extra) -> dict:
    assert predict.main([str(checkpoint), str(scan), "--out", str(out), *extra]) == 0
    with np.load(out / f"{scan.stem}_instances.npz", allow_pickle=False) as f:
        return dict(f)


def check_outputs(result: dict, ply_path, n: int, class_names) -> PlyData:
    """Shapes agree with each other and with the n points; names follow the instance classes."""
    k = len(result["classes"])
    assert result["masks"].shape == (k, n) and result["masks"].dtype == bool
    assert result["scores"].shape == (k,) and result["class_names"].shape == (k,)
    assert result["superpoint"].shape == (n,) and result["instance"].shape == (n,)
    assert list(result["class_names"]) == [class_names[c] for c in result["classes"]]
    assert np.all(np.diff(result["scores"]) <= 0)
    ply = PlyData.read(str(ply_path))
    assert len(ply["vertex"].data) == n
    return ply


# ----------------------------------------------------------------------------- each input kind


def test_npy_cloud_round_trip(tmp_path, checkpoint, capsys):
    xyz, rgb = room()
    np.save(tmp_path / "scan.npy", np.c_[xyz, rgb].astype(np.float32))
    result = run_cli(checkpoint, tmp_path / "scan.npy", tmp_path / "out")
    names = tiny_config().data.instance_class_names
    ply = check_outputs(result, tmp_path / "out" / "scan_instances.ply", len(xyz), names)
    assert len(result["classes"]) > 0
    assert np.array_equal(result["point_index"], np.arange(len(xyz)))
    vertex = ply["vertex"].data
    np.testing.assert_array_equal(np.c_[vertex["x"], vertex["y"], vertex["z"]], xyz)
    assert np.array_equal(vertex["instance"], result["instance"])
    out = capsys.readouterr().out
    assert "3000 points" in out and "instances:" in out and "no colours" not in out
    assert f"{checkpoint} (synthetic): no training state stored" in out  # what the checkpoint carries


def test_pcd_drops_nan_points_and_keeps_colour(tmp_path, checkpoint):
    xyz, rgb = room(2000)
    xyz[::7] = np.nan  # invalid pixels of a depth camera
    packed = PointCloud.encode_rgb(rgb).view(np.uint32)
    cloud = PointCloud.from_points([xyz[:, 0], xyz[:, 1], xyz[:, 2], packed], ("x", "y", "z", "rgb"),
                                   (np.float32, np.float32, np.float32, np.uint32))
    cloud.save(tmp_path / "scan.pcd", encoding=Encoding.BINARY_COMPRESSED)
    scan = scans.read_scan(tmp_path / "scan.pcd")
    kept = np.flatnonzero(np.isfinite(xyz).all(axis=1))
    assert np.array_equal(scan["point_index"], kept) and scan["has_color"]
    assert np.array_equal(scan["color"], rgb[kept])
    result = run_cli(checkpoint, tmp_path / "scan.pcd", tmp_path / "out")
    check_outputs(result, tmp_path / "out" / "scan_instances.ply", len(kept),
                  tiny_config().data.instance_class_names)
    assert np.array_equal(result["point_index"], kept)


def test_ply_cloud_without_colour_is_grey(tmp_path, checkpoint, capsys):
    xyz, _ = room(1500)
    vertex = np.array(list(map(tuple, xyz)), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(tmp_path / "scan.ply"))
    scan = scans.read_scan(tmp_path / "scan.ply")
    assert not scan["has_color"] and np.all(scan["color"] == scans.GREY) and scan["faces"] is None
    result = run_cli(checkpoint, tmp_path / "scan.ply", tmp_path / "out")
    check_outputs(result, tmp_path / "out" / "scan_instances.ply", len(xyz),
                  tiny_config().data.instance_class_names)
    assert "no colours (constant grey" in capsys.readouterr().out


def test_mesh_keeps_faces_and_uses_mesh_superpoints(tmp_path, checkpoint):
    side = 40  # a bumpy 40 x 40 vertex grid, two triangles per cell
    rows, cols = np.mgrid[0:side, 0:side]
    z = 0.3 * (np.hypot(rows - 20, cols - 20) < 8)
    vertices = np.c_[cols.ravel() * 0.05, rows.ravel() * 0.05, z.ravel()].astype(np.float32)
    a = (rows[:-1, :-1] * side + cols[:-1, :-1]).ravel()
    faces = np.concatenate([np.c_[a, a + side, a + 1], np.c_[a + 1, a + side, a + side + 1]])
    colors = np.random.default_rng(0).integers(0, 256, (len(vertices), 3)).astype(np.uint8)
    write_mesh_ply(tmp_path / "mesh.ply", Mesh(vertices, colors, faces))
    result = run_cli(checkpoint, tmp_path / "mesh.ply", tmp_path / "out")
    ply = check_outputs(result, tmp_path / "out" / "mesh_instances.ply", len(vertices),
                        tiny_config().data.instance_class_names)
    out_faces = np.stack(ply["face"].data["vertex_indices"])
    assert np.array_equal(out_faces, faces)
    raw = segment_mesh(vertices, faces)  # compact ids: same partition, numbered by first root
    assert np.array_equal(result["superpoint"], np.unique(raw, return_inverse=True)[1])


# ----------------------------------------------------------------------------- parity and colouring


def test_cli_masks_equal_the_validation_path(tmp_path, checkpoint):
    """The CLI's masks equal validation's on the same scene, stored on disk and read by SceneDataset."""
    xyz, rgb = room(2500, seed=3)
    xyz *= 0.1  # dense: several points per 2 cm voxel, so the voxel picks (the generator) matter
    np.save(tmp_path / "scan.npy", np.c_[xyz, rgb].astype(np.float64))
    result = run_cli(checkpoint, tmp_path / "scan.npy", tmp_path / "out")
    assert len(result["classes"]) > 0

    blob = torch.load(checkpoint, weights_only=False)
    cfg = config.Config.from_dict(blob["config"])
    model = LaSSM(cfg.model)
    model.load_state_dict(blob["model"])
    model.eval()
    write_scene(tmp_path / "data" / "val" / "scene0", {
        "coord": xyz, "color": rgb, "superpoint": result["superpoint"] * 3 + 5,  # raw ids need not be compact
        "segment20": np.full(len(xyz), -1), "instance": np.full(len(xyz), -1)})
    scene = SceneDataset(tmp_path / "data", "val")[0]  # the steps of lassm.train.validate
    pipeline = augment.val_pipeline(cfg.augment)
    tensors = {k: v for k, v in scene.items() if torch.is_tensor(v)}
    scene = pipeline(tensors, step_generator(cfg.seed, 0, 0, 0, torch.device("cpu")))
    batch = pack_scenes([scene])
    del batch["origin_segment"], batch["origin_instance"]
    expected = model.predict(batch)[0]
    assert np.array_equal(result["masks"], expected.masks.numpy())
    assert np.array_equal(result["classes"], expected.classes.numpy())
    np.testing.assert_allclose(result["scores"], expected.scores.numpy(), rtol=1e-6)
    # semantic labels: the npz's class indices and the benchmark file's ids, both validation's
    assert np.array_equal(result["semantic"], expected.semantic.numpy())
    assert list(result["semantic_class_names"]) == list(cfg.data.class_names)
    table = semantic_label_ids(cfg)
    written = read_labels(tmp_path / "out" / "scan_semantic.txt")
    assert written.tolist() == [int(table[s]) if s >= 0 else 0 for s in expected.semantic.tolist()]


def test_npz_is_renamed_into_place_last_and_not_at_all_when_a_view_fails(tmp_path, checkpoint, monkeypatch):
    xyz, rgb = room(1500)
    np.save(tmp_path / "scan.npy", np.c_[xyz, rgb].astype(np.float32))
    seen = []

    def view(path, *args, **kwargs):  # the npz (compressing meanwhile on a thread) must not be there yet
        seen.append(sorted(p.name for p in path.parent.iterdir() if not p.name.startswith(".")))
        raise ValueError("no view today")

    monkeypatch.setattr(predict, "write_html_view", view)
    rows = predict.run(checkpoint, tmp_path / "scan.npy", tmp_path / "out")
    assert rows[0]["status"] == "failed" and "no view today" in rows[0]["error"]
    assert seen == [["scan_instances.ply", "scan_semantic.txt"]]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scan_instances.ply", "scan_semantic.txt"]


def test_point_instances_matches_a_loop():
    rng = np.random.default_rng(1)
    masks = rng.random((5, 200)) < 0.3
    owner = predict.point_instances(masks)
    for p in range(200):
        hits = [k for k in range(5) if masks[k, p]]  # masks are sorted by score: the first is the best
        assert owner[p] == (hits[0] if hits else -1)
    assert np.array_equal(predict.point_instances(np.zeros((0, 7), bool)), np.full(7, -1))
    palette = predict.instance_palette(50)
    assert len(np.unique(palette, axis=0)) == 50 and not np.any(np.all(palette == scans.GREY, axis=1))


def test_foreign_checkpoint_needs_a_preset(tmp_path):
    cfg = config.preset("synthetic", variant="-0")
    torch.manual_seed(1)
    state = LaSSM(cfg.model).state_dict()
    path = tmp_path / "authors.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    with pytest.raises(DataError, match=r"authors\.pth.*--preset"):
        inference.load_model(path)
    model, loaded_cfg = inference.load_model(path, preset="synthetic", variant="-0", device="cpu")
    assert loaded_cfg.model.decoder.t_layer == 0 and not model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())

    # our format, but the stored config (d_model 64) does not describe the weights (d_model 128)
    mismatch = tmp_path / "mismatch.pth"
    torch.save({"model": state, "config": tiny_config().to_dict()}, mismatch)
    with pytest.raises(DataError, match=r"mismatch\.pth.*shapes differ"):
        inference.load_model(mismatch)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name, content, expected", [
    ("scan.xyz", b"1 2 3\n", "unknown scan format"),
    ("scan.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 100\nproperty float x\n"
                 b"property float y\nproperty float z\nproperty uchar red\nproperty uchar green\n"
                 b"property uchar blue\nend_header\n\x00\x01", "unreadable or truncated"),
    ("scan.pcd", b"not a pcd", "unreadable or truncated PCD"),
    ("scan.npy", np.zeros((0, 3), np.float32), "no points"),
    ("scan.npy", np.full((10, 6), np.nan, np.float32), "NaN or infinite"),
    ("scan.npy", np.zeros((10, 4), np.float32), r"expected numbers of shape \(N, 3\)"),
    ("scan.npy", np.c_[np.zeros((10, 3)), np.full((10, 3), 300.0)], "in 0..255"),
])
def test_bad_scans_name_the_file(tmp_path, name, content, expected):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)
    with pytest.raises(DataError, match=expected) as err:
        scans.read_scan(path)
    assert str(path) in str(err.value)


def test_missing_files_and_cli_errors(tmp_path, checkpoint, capsys):
    with pytest.raises(DataError, match="scan file not found") as err:
        scans.read_scan(tmp_path / "absent.ply")
    assert "absent.ply" in str(err.value)
    with pytest.raises(DataError, match="checkpoint file not found"):
        inference.load_model(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"junk\.pth: not a readable torch checkpoint"):
        inference.load_model(tmp_path / "junk.pth")
    np.save(tmp_path / "bad.npy", np.zeros((5, 2)))
    assert predict.main([str(checkpoint), str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o")]) == 1
    assert "bad.npy" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
