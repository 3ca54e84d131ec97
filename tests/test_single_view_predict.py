"""Scans of your own through `predict` get what the dataset path (prepare + export) gives the same file.

Real Kinect scans from ../shared/data/mosd: organised PCDs (pixel-grid mesh superpoints) and one turned
into an unorganised PCD the way some test scans are stored (invalid rows dropped, HEIGHT 1; kNN-graph
superpoints), each through both paths with one checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pypcd4 import Encoding, PointCloud

from lassm import config, inference, predict
from lassm.data.prepare import prepare
from lassm.evaluate import export_split, split_dataset
from lassm.model import LaSSM
from lassm.model.checkpoint import save_checkpoint

LEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mosd" / "learn"
if not LEARN.is_dir():
    LEARN = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mosd" / "learn"
pytestmark = pytest.mark.skipif(not (LEARN / "learn3.pcd").is_file(), reason="mOSD learn scans not present")
SCANS = ("learn3", "learn22", "learn40")  # a single box, stacked boxes, cylinders


def unorganised_copy(source: Path, target: Path) -> None:
    """The scan as an unorganised cloud: rows with NaN coordinates dropped, HEIGHT 1, same fields."""
    cloud = PointCloud.from_path(source)
    data = cloud.pc_data
    keep = np.isfinite(np.stack([data[k] for k in "xyz"], axis=1)).all(axis=1)
    names = data.dtype.names
    out = PointCloud.from_points([data[n][keep] for n in names], names, [data.dtype[n].type for n in names])
    out.save(target, encoding=Encoding.BINARY_COMPRESSED)


def dataset_arrays(cfg, name: str) -> dict:
    """One scene of the val split as the dataset path loads it (numpy arrays)."""
    dataset = split_dataset(cfg, "val")
    return next({k: v.numpy() for k, v in dataset[i].items() if torch.is_tensor(v)}
                for i in range(len(dataset.scenes)) if dataset.name(i) == name)


def with_convex_split(cfg, colour: float = 0.0):
    """A copy of ``cfg`` with the tabletop preset's post-processing: partition at 1.5 cm, convex 45, and the
    colour cut at ``colour``."""
    from copy import deepcopy
    out = deepcopy(cfg)
    post = out.model.postprocess
    post.split_radius, post.split_mode, post.split_convex_degrees = 0.015, "partition", 45.0
    post.split_colour_cut = colour
    return out


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("single_view")
    raw = root / "raw" / "val"
    raw.mkdir(parents=True)
    for name in SCANS:
        (raw / f"{name}.pcd").write_bytes((LEARN / f"{name}.pcd").read_bytes())
    unorganised_copy(LEARN / "learn22.pcd", raw / "learn22_unorganised.pcd")
    summary = prepare("mosd", root / "raw", root / "data")
    assert not summary.failures
    cfg = config.tiny(config.mosd(root=str(root / "data")))
    cfg.model.postprocess.npoint_thr = 0  # keep small masks too
    torch.manual_seed(0)
    model = LaSSM(cfg.model)
    with torch.no_grad():  # untrained masks cover everything or nothing; larger weights make them differ
        for weight in model.parameters():
            if weight.dim() >= 2:
                weight.mul_(3.0)
    checkpoint = save_checkpoint({"model": model.state_dict(), "config": cfg.to_dict()},
                                 root / "model_best.pth")
    model, loaded = inference.load_model(checkpoint, device="cpu")
    export_split(model, loaded, "val", root / "bench", "cpu")
    assert predict.main([str(checkpoint), str(raw), "--out", str(root / "pred"), "--device", "cpu"]) == 0
    return root, model, loaded


@pytest.mark.parametrize("name", [*SCANS, "learn22_unorganised"])
def test_predict_equals_the_dataset_path(both_paths, name):
    root, model, cfg = both_paths
    arrays = dataset_arrays(cfg, name)
    expected = inference.predict_arrays(model, cfg, arrays, "cpu")  # what validation computes
    with np.load(root / "pred" / f"{name}_instances.npz") as out:
        got = dict(out)
    sizes = expected.masks.sum(dim=1)
    assert len(sizes) > 0 and bool(((sizes > 0) & (sizes < expected.masks.shape[1])).any())
    assert np.array_equal(got["masks"], expected.masks.numpy())
    assert np.array_equal(got["classes"], expected.classes.numpy())
    np.testing.assert_allclose(got["scores"], expected.scores.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(got["coord"], arrays["coord"])  # same points, same support-plane frame
    lines = (root / "bench" / "predictions" / f"{name}.txt").read_text().splitlines()
    files = [np.loadtxt(root / "bench" / "predictions" / line.split()[0], dtype=np.int64) for line in lines]
    assert np.array_equal(np.array(files, bool).reshape(len(files), -1), got["masks"])
    assert (root / "pred" / f"{name}_instances.html").is_file()
    assert (root / "pred" / f"{name}_instances.ply").is_file()


def test_organised_and_unorganised_versions_agree_on_the_frame(both_paths):
    root, _, _ = both_paths
    with np.load(root / "pred" / "learn22_instances.npz") as a, \
            np.load(root / "pred" / "learn22_unorganised_instances.npz") as b:
        normal_a, normal_b = a["table_from_camera"][2, :3], b["table_from_camera"][2, :3]
        angle = np.degrees(np.arccos(np.clip(normal_a @ normal_b, -1, 1)))
        assert angle < 0.5
        assert abs(a["table_from_camera"][2, 3] - b["table_from_camera"][2, 3]) < 0.01
        assert len(b["point_index"]) > 0.9 * len(a["point_index"])  # nearly all valid points kept


def test_predict_with_a_geometric_split_equals_the_dataset_path_with_it(both_paths):
    """``--split-radius`` / ``--split-mode`` override the checkpoint's post-processing exactly as the
    config fields do on the dataset path (learn22: stacked boxes)."""
    from copy import deepcopy
    root, model, cfg = both_paths
    raw = root / "raw" / "val" / "learn22.pcd"
    common = [str(root / "model_best.pth"), str(raw), "--device", "cpu", "--no-html"]
    assert predict.main([*common, "--out", str(root / "pred_split"), "--split-radius", "0.015",
                         "--split-mode", "partition"]) == 0
    split_cfg = deepcopy(cfg)
    split_cfg.model.postprocess.split_radius, split_cfg.model.postprocess.split_mode = 0.015, "partition"
    arrays = dataset_arrays(split_cfg, "learn22")
    expected = inference.predict_arrays(model, split_cfg, arrays, "cpu")
    plain = inference.predict_arrays(model, cfg, arrays, "cpu")
    with np.load(root / "pred_split" / "learn22_instances.npz") as out:
        assert np.array_equal(out["masks"], expected.masks.numpy())
        np.testing.assert_allclose(out["scores"], expected.scores.numpy(), rtol=1e-6)
    assert expected.masks.shape != plain.masks.shape or not torch.equal(expected.masks, plain.masks)
    assert predict.main([*common, "--out", str(root / "bad"), "--split-radius", "-1"]) == 2


@pytest.mark.parametrize("colour", [0.0, 0.12])
def test_predict_with_the_convex_division_equals_the_dataset_path_with_it(both_paths, colour):
    """``--split-convex`` (and ``--split-colour``) as the config fields on the dataset path, whose scenes
    then carry their normals (learn22: stacked boxes, a concave crease between them)."""
    root, model, cfg = both_paths
    raw = root / "raw" / "val" / "learn22.pcd"
    out_dir = root / f"pred_convex_{colour}"
    assert predict.main([str(root / "model_best.pth"), str(raw), "--device", "cpu", "--no-html",
                         "--out", str(out_dir), "--split-radius", "0.015", "--split-convex", "45",
                         "--split-colour", str(colour)]) == 0
    convex_cfg = with_convex_split(cfg, colour)
    arrays = dataset_arrays(convex_cfg, "learn22")
    assert "normal" in arrays and "normal" not in split_dataset(cfg, "val")[0]
    expected = inference.predict_arrays(model, convex_cfg, arrays, "cpu")
    with np.load(out_dir / "learn22_instances.npz") as out:
        assert np.array_equal(out["masks"], expected.masks.numpy())
        np.testing.assert_allclose(out["scores"], expected.scores.numpy(), rtol=1e-6)
    if colour:  # the colours divide the stacked boxes further than the creases alone
        without = inference.predict_arrays(model, with_convex_split(cfg), arrays, "cpu")
        assert len(without.scores) != len(expected.scores) or not torch.equal(without.masks, expected.masks)
    assert predict.main([str(root / "model_best.pth"), str(raw), "--device", "cpu", "--no-html",
                         "--out", str(root / "bad_convex"), "--split-convex", "200"]) == 2


def test_export_takes_the_same_post_processing_options(both_paths):
    """``lassm.export --split-radius/--split-convex/--split-colour`` override the checkpoint's
    post-processing as ``predict``'s options do: the exported masks are the dataset path's with those
    config fields."""
    from lassm.evaluate.export import main as export_main
    root, model, cfg = both_paths
    out = root / "bench_convex"
    common = [str(root / "model_best.pth"), "--split", "val", "--device", "cpu"]
    assert export_main([*common, "--out", str(out), "--split-radius", "0.015", "--split-convex", "45",
                        "--split-colour", "0.12"]) == 0
    convex_cfg = with_convex_split(cfg, 0.12)
    expected = inference.predict_arrays(model, convex_cfg, dataset_arrays(convex_cfg, "learn22"), "cpu")
    lines = (out / "predictions" / "learn22.txt").read_text().splitlines()
    files = [np.loadtxt(out / "predictions" / line.split()[0], dtype=np.int64) for line in lines]
    assert np.array_equal(np.array(files, bool).reshape(len(files), -1), expected.masks.numpy())
    np.testing.assert_allclose([float(line.split()[2]) for line in lines], expected.scores.numpy(), rtol=1e-6)
    plain = (root / "bench" / "predictions" / "learn22.txt").read_text().splitlines()
    assert len(plain) != len(lines) or plain != lines  # the options changed the export
    assert export_main([*common, "--out", str(root / "bad_export"), "--split-convex", "200"]) == 2
