"""One path from a scene to instances: validation, export and predict agree on the same scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lassm import config, inference, predict, train
from lassm.data.dataset import SceneDataset
from lassm.data.prepare import prepare
from lassm.evaluate import export_split
from lassm.model import LaSSM
from lassm.model.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Three small synthetic rooms (raw ScanNet-format meshes and processed scenes) and a tiny model."""
    root = tmp_path_factory.mktemp("one_path")
    prepare("synthetic", root / "raw", root / "data", num_rooms=3, room_size="small")
    cfg = config.tiny(config.synthetic(root=str(root / "data")))
    cfg.model.postprocess.npoint_thr = 0  # an untrained model's masks are small: keep them all
    cfg.train.device = "cpu"
    torch.manual_seed(0)
    path = save_checkpoint({"model": LaSSM(cfg.model).state_dict(), "config": cfg.to_dict()},
                           root / "model_best.pth")
    return root, cfg, path


def exported_masks(folder, scene: str) -> tuple[np.ndarray, np.ndarray]:
    """(K, N) masks and (K,) confidences of one scene in the benchmark layout, in file order."""
    masks, scores = [], []
    for line in (folder / f"{scene}.txt").read_text().splitlines():
        relative, _, confidence = line.split()
        masks.append(np.loadtxt(folder / relative, dtype=np.int64).astype(bool))
        scores.append(float(confidence))
    return np.array(masks).reshape(len(masks), -1), np.array(scores)


def test_validation_export_and_predict_give_the_same_masks(setup, tmp_path, monkeypatch):
    root, cfg, checkpoint = setup
    model, loaded = inference.load_model(checkpoint, device="cpu")
    dataset = SceneDataset(cfg.data.root, "val", cfg.data.segment_key, cfg.data.instance_key)
    names = [dataset.name(i) for i in range(len(dataset.scenes))]

    seen = []  # what validation predicted, through the function it calls
    real = train.predict_arrays
    monkeypatch.setattr(train, "predict_arrays", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    train.validate(model, dataset, loaded, torch.device("cpu"))
    assert len(seen) == len(names) and len(seen[0].scores) > 0

    export_split(model, loaded, "val", tmp_path / "bench", "cpu")
    for i, scene in enumerate(names):
        masks, scores = exported_masks(tmp_path / "bench" / "predictions", scene)
        assert np.array_equal(masks, seen[i].masks.numpy())
        np.testing.assert_allclose(scores, seen[i].scores.numpy(), rtol=1e-6)

        mesh = root / "raw" / "scans" / scene / f"{scene}_vh_clean_2.ply"  # the file the scene came from
        assert predict.main([str(checkpoint), str(mesh), "--out", str(tmp_path / "pred"), "--no-html",
                             "--device", "cpu"]) == 0
        with np.load(tmp_path / "pred" / f"{mesh.stem}_instances.npz") as out:
            assert np.array_equal(out["masks"], seen[i].masks.numpy())
            assert np.array_equal(out["classes"], seen[i].classes.numpy())
            np.testing.assert_allclose(out["scores"], seen[i].scores.numpy(), rtol=1e-6)


def test_a_scene_gets_the_same_voxels_wherever_it_comes_from(setup):
    """Validation's one random choice (each voxel's representative point) depends on the seed only."""
    _, cfg, _ = setup
    dataset = SceneDataset(cfg.data.root, "train", cfg.data.segment_key, cfg.data.instance_key)
    arrays = {k: v for k, v in dataset[0].items() if torch.is_tensor(v)}
    first = inference.prepare_input(arrays, cfg, "cpu")
    inference.prepare_input({k: v for k, v in dataset[1].items() if torch.is_tensor(v)}, cfg, "cpu")
    again = inference.prepare_input(arrays, cfg, "cpu")
    assert all(torch.equal(first[k], again[k]) for k in first)
    other = config.tiny(config.synthetic(root=cfg.data.root))
    other.seed = cfg.seed + 1
    moved = inference.prepare_input(arrays, other, "cpu")
    assert not torch.equal(first["coord"], moved["coord"])  # another seed: other representatives
    assert "origin_segment" not in first  # no labels: the model predicts without losses


def test_gt_instances_are_train_labels_and_compact_ids(setup):
    _, cfg, _ = setup
    arrays = {"segment": np.array([0, 1, 4, 4, 7, -1, 4]), "instance": np.array([3, 3, 9, 9, 2, 5, -1])}
    label, instance = inference.gt_instances(arrays, cfg)
    # synthetic rooms: classes 0 (wall) and 1 (floor) are stuff, thing class k becomes k - 2
    assert label.tolist() == [-1, -1, 2, 2, 5, -1, 2]
    assert instance.tolist() == [-1, -1, 1, 1, 0, -1, -1]
    assert inference.has_labels(arrays) and not inference.has_labels({"segment": np.full(3, -1)})


def test_scene_view_page_shows_the_scene_the_validation_scores(setup, tmp_path):
    """write_scene_view: the first val scene (or a named one), its own AP50 as the evaluator computes it,
    a legend naming each GT instance's class, and only the predictions scored at least min_score."""
    from lassm.evaluate import InstanceEvaluator, write_scene_view

    root, cfg, checkpoint = setup
    view = write_scene_view(checkpoint, tmp_path / "views" / "val.html", device="cpu", min_score=0.0)
    dataset = SceneDataset(cfg.data.root, "val", cfg.data.segment_key, cfg.data.instance_key)
    assert view["scene"] == dataset.name(0) and view["path"].is_file()
    arrays = {k: v.numpy() for k, v in dataset[0].items() if torch.is_tensor(v)}
    model, loaded = inference.load_model(checkpoint, device="cpu")
    pred = inference.predict_arrays(model, loaded, arrays, "cpu")
    label, instance = inference.gt_instances(arrays, loaded)
    evaluator = InstanceEvaluator(loaded.data.instance_class_names)
    evaluator.add(pred.masks, pred.scores, pred.classes, instance, label)
    assert view["AP50"] == pytest.approx(evaluator.compute()["AP50"], nan_ok=True)
    page = view["path"].read_text()
    first_class = loaded.data.instance_class_names[int(label[instance == 0][0])]
    assert f"instance 0: {first_class}" in page and "saved after" not in view["summary"]
    assert f"prediction: {len(pred.scores)} instances" in page
    none_shown = write_scene_view(checkpoint, tmp_path / "views" / "none.html", device="cpu", min_score=2.0)
    assert "prediction: 0 instances" in none_shown["path"].read_text()
    with pytest.raises(ValueError, match="scene"):
        write_scene_view(checkpoint, tmp_path / "views" / "x.html", scene="no_such_scene", device="cpu")
