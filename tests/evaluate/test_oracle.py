"""The superpoint oracle: each superpoint to its majority instance, one mask per instance, scored 1."""

from __future__ import annotations

import numpy as np
import pytest

from lassm.data.io import write_scene
from lassm.evaluate.ap import evaluate_predictions
from lassm.evaluate.oracle import main, superpoint_oracle

CLASSES = ("wall", "floor", "chair", "table")  # stuff: 0, 1


def scene(split_b: int) -> dict:
    """Instances A (chair, 300 points) and B (table, 300 points) and 100 wall points; superpoint 7 holds
    all of A plus ``split_b`` points of B, superpoint 9 the rest of B, superpoint 3 the wall."""
    segment = np.r_[np.full(300, 2), np.full(300, 3), np.zeros(100, int)]
    instance = np.r_[np.full(300, 5), np.full(300, 8), np.full(100, -1)]
    superpoint = np.r_[np.full(300 + split_b, 7), np.full(300 - split_b, 9), np.full(100, 3)]
    return {"segment": segment, "instance": instance, "superpoint": superpoint}


def oracle_ap(s: dict) -> dict:
    pred = superpoint_oracle(s["segment"], s["instance"], s["superpoint"], len(CLASSES), (0, 1))
    return pred, evaluate_predictions([pred], [s], CLASSES, (0, 1))


def test_pure_superpoints_reach_ap_one():
    pred, r = oracle_ap(scene(0))
    assert pred.masks.shape == (2, 700) and pred.classes.tolist() == [0, 1]
    assert r["AP"] == r["AP50"] == r["AP25"] == 1.0


def test_a_superpoint_across_two_instances_caps_the_ap():
    """200 of B's 300 points sit in A's superpoint: A's mask gains them (IoU 300/500 = 0.6), B keeps 100
    (IoU 1/3): the chair passes at 0.5 but not at 0.65, the table only at 0.25."""
    pred, r = oracle_ap(scene(200))
    assert pred.masks.sum(1).tolist() == [500, 100]
    chair, table = r["per_class"]["chair"], r["per_class"]["table"]
    assert chair["AP50"] == 1.0 and chair["AP_per_overlap"][0.65] == 0.0 and chair["AP25"] == 1.0
    assert table["AP50"] == 0.0 and table["AP25"] == 1.0


def test_an_instance_owning_no_superpoint_gets_no_mask():
    """B's points are all in A's superpoint and A holds the majority: B has no mask, only A is predicted."""
    pred, r = oracle_ap(scene(300))
    assert len(pred.scores) == 1 and pred.classes.tolist() == [0]
    assert r["per_class"]["table"]["AP25"] == 0.0


def test_command_line_prints_the_table(tmp_path, capsys):
    s = scene(200)
    rng = np.random.default_rng(0)
    points = rng.random((700, 3)).astype(np.float32)
    arrays = {"coord": points, "color": points * 255, "segment20": s["segment"], "instance": s["instance"],
              "superpoint": s["superpoint"]}
    write_scene(tmp_path / "val" / "scene0000_00", arrays)
    assert main(["--preset", "synthetic", "--root", str(tmp_path), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "superpoint oracle" in out and "average" in out
    with pytest.raises(SystemExit):
        main(["--preset", "nonsense", "--root", str(tmp_path)])
