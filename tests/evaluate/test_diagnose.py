"""Diagnosis of where instances get lost: query seeds, mask quality per stage, post-processing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lassm.data.dataset import SceneDataset
from lassm.evaluate.diagnose import main, mask_quality, seeded, summarise
from lassm.evaluate.oracle import superpoint_counts
from lassm.inference import gt_instances


def counts_abc() -> np.ndarray:
    """Superpoint 0: 10 points of A; superpoint 1: 10 of B; superpoint 2: 5 of no instance."""
    superpoint = np.r_[np.zeros(10, int), np.ones(10, int), np.full(5, 2)]
    instance = np.r_[np.zeros(10, int), np.ones(10, int), np.full(5, -1)]
    return superpoint_counts(superpoint, instance, 2)


def test_a_mask_over_two_instances_shows_as_low_precision_and_two_covered():
    """Mask 0 = superpoints {0, 1} (A and B, 20 points), mask 1 = {1} (B). A's best is mask 0: IoU and
    precision 10/20, recall 1, covering A and B; B's best is mask 1: exact."""
    masks = np.array([[True, True, False], [False, True, False]])
    q = mask_quality(masks, counts_abc())
    assert q.iou.tolist() == [0.5, 1.0]
    assert q.precision.tolist() == [0.5, 1.0] and q.recall.tolist() == [1.0, 1.0]
    assert q.covers.tolist() == [2, 1]


def test_a_partial_mask_shows_as_low_recall_and_no_mask_as_zero():
    counts = superpoint_counts(np.r_[np.zeros(4, int), np.ones(6, int)], np.zeros(10, int), 1)  # A: 2 sps
    q = mask_quality(np.array([[False, True]]), counts)  # 6 of A's 10 points
    assert q.iou.tolist() == [0.6] and q.precision.tolist() == [1.0] and q.recall.tolist() == [0.6]
    none = mask_quality(np.zeros((0, 2), bool), counts)
    assert none.iou.tolist() == [0.0] and none.covers.tolist() == [0]


def test_an_instance_is_seeded_when_a_seed_superpoint_is_its_majority():
    assert seeded(np.array([1, 2]), counts_abc()).tolist() == [False, True]
    assert seeded(np.array([0]), counts_abc()).tolist() == [True, False]


def test_summary_pools_instances_over_scenes():
    one = {"instances": 1, "points": [10], "seeded": [True], "kept_iou": [0.9], "predictions": 3,
           "stages": [{"iou": [0.9], "precision": [1.0], "recall": [0.9], "covers": [1]}]}
    three = {"instances": 3, "points": [4, 6, 8], "seeded": [True, False, False], "kept_iou": [0.6, 0.2, 0.0],
             "predictions": 5, "stages": [{"iou": [0.7, 0.3, 0.1], "precision": [0.5, 0.5, 0.0],
                                           "recall": [1.0, 1.0, 0.0], "covers": [2, 2, 0]}]}
    s = summarise([one, three])
    assert s["instances"] == 4 and s["median_points"] == 7.0 and s["seeded"] == 0.5
    assert s["kept_above_half"] == 0.5 and s["predictions_per_scene"] == 4.0
    (st,) = s["stages"]
    assert st["iou"] == pytest.approx(0.5) and st["iou_above_half"] == 0.5
    assert st["precision"] == 0.5 and st["recall"] == pytest.approx(0.725) and st["covers"] == 1.25


@pytest.fixture(scope="module")
def checkpoint(tiny_model, tmp_path_factory):
    model, cfg = tiny_model
    path = tmp_path_factory.mktemp("diagnose") / "model.pth"
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, path)
    return path, cfg


def test_command_line_answers_for_every_instance_of_the_split(checkpoint, tmp_path, capsys):
    path, cfg = checkpoint
    out = tmp_path / "diag.json"
    args = [str(path), "--root", cfg.data.root, "--split", "val", "--device", "cpu", "--json", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "instances with a query seed" in printed and "after post-processing" in printed
    report = json.loads(out.read_text())
    dataset = SceneDataset.for_config(cfg.data, cfg.data.root, "val", require_labels=True)
    arrays = {k: v.numpy() for k, v in dataset[0].items() if torch.is_tensor(v)}
    instance = gt_instances(arrays, cfg)[1].numpy()
    (scene,) = report["scenes"]
    assert scene["instances"] == instance.max() + 1 > 0
    assert scene["points"] == np.bincount(instance[instance >= 0]).tolist()
    assert len(scene["stages"]) == cfg.model.decoder.num_layers + 1
    for st in scene["stages"]:
        iou, precision, recall = (np.array(st[k]) for k in ("iou", "precision", "recall"))
        assert ((0 <= iou) & (iou <= np.minimum(precision, recall) + 1e-12)).all()
    assert report["summary"]["instances"] == scene["instances"]
    assert math.isclose(report["summary"]["seeded"], np.mean(scene["seeded"]))


def test_command_line_rejects_a_negative_scene_count(checkpoint):
    path, cfg = checkpoint
    with pytest.raises(SystemExit):
        main([str(path), "--root", cfg.data.root, "--scenes", "-1"])
