"""The preprocessing driver and prepare: skip finished scenes, go on past failures and record them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pypcd4 import Encoding, PointCloud

from lassm.data.io import DataError, load_scene
from lassm.data.prepare import main, prepare
from lassm.data.preprocess import FAILURES_FILE, SceneJob, run_jobs


def square(job: SceneJob) -> dict:
    if job.options.get("fail"):
        raise DataError(f"{job.source}: broken on purpose")
    x = float(job.options["x"])
    return {"value": np.array([x * x]), "scene_id": np.array(job.name)}


def jobs(n, fail=()):
    return [SceneJob(f"s{i}", "train", Path(f"/raw/s{i}"), {"x": i, "fail": i in fail}) for i in range(n)]


@pytest.mark.parametrize("workers", [1, 2])
def test_runs_and_skips(tmp_path, workers):
    summary = run_jobs(jobs(4), square, tmp_path, workers=workers)
    assert sorted(summary.done) == ["s0", "s1", "s2", "s3"]
    assert load_scene(tmp_path / "train" / "s3")["value"][0] == 9
    again = run_jobs(jobs(5), square, tmp_path, workers=workers)
    assert again.done == ["s4"] and sorted(again.skipped) == ["s0", "s1", "s2", "s3"]
    forced = run_jobs(jobs(2), square, tmp_path, workers=workers, overwrite=True)
    assert sorted(forced.done) == ["s0", "s1"]


@pytest.mark.parametrize("workers", [1, 2])
def test_failure_names_scene_and_writes_nothing_for_it(tmp_path, workers):
    with pytest.raises(DataError, match=r"s2: /raw/s2: broken on purpose"):
        run_jobs(jobs(4, fail={2}), square, tmp_path, workers=workers)
    assert not (tmp_path / "train" / "s2").exists()
    summary = run_jobs(jobs(4, fail={2}), square, tmp_path, workers=workers, raise_on_error=False)
    assert list(summary.failed) == ["s2"]
    assert sorted(summary.done + summary.skipped) == ["s0", "s1", "s3"]


def test_bad_workers(tmp_path):
    with pytest.raises(DataError, match=r"workers: expected an integer >= 1, got 0"):
        run_jobs(jobs(1), square, tmp_path, workers=0)


def crash(job: SceneJob) -> dict:
    if job.options.get("fail"):
        return {"value": np.array([1 / 0])}  # a bug, not a DataError
    return square(job)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_scene_is_tried_and_failures_are_recorded(tmp_path, workers, capsys):
    summary = run_jobs(jobs(5, fail={1, 3}), square, tmp_path, workers=workers, raise_on_error=False)
    assert sorted(summary.done) == ["s0", "s2", "s4"]  # the run went on past s1
    assert sorted(summary.failed) == ["s1", "s3"] and "broken on purpose" in summary.failed["s1"]
    assert "failed: train/s1: /raw/s1: broken on purpose" in capsys.readouterr().err
    records = json.loads((tmp_path / FAILURES_FILE).read_text())
    assert sorted(r["scene"] for r in records) == ["s1", "s3"]
    assert {r["source"] for r in records} == {"/raw/s1", "/raw/s3"}
    assert all(r["split"] == "train" for r in records)
    # with raise_on_error the error lists every failure, after all other scenes were written
    with pytest.raises(DataError, match=r"failed for 2 scene\(s\):\n  s\d: .*\n  s\d: "):
        run_jobs(jobs(6, fail={1, 3}), square, tmp_path, workers=workers)
    assert load_scene(tmp_path / "train" / "s5")["value"][0] == 25
    # any exception of a scene is a failure of that scene; a clean rerun empties failures.json
    summary = run_jobs(jobs(3, fail={1}), crash, tmp_path, workers=workers, raise_on_error=False)
    assert list(summary.failed) == ["s1"] and summary.failed["s1"].startswith("ZeroDivisionError")
    run_jobs(jobs(3), square, tmp_path, workers=workers)
    assert json.loads((tmp_path / FAILURES_FILE).read_text()) == []


# ----------------------------------------------------------------------------- prepare


def write_cloud(path, rng, points=3000):
    """An unorganised mOSD-style PCD: a table 0.8 m below a camera looking down 45 degrees, one box."""
    table = np.c_[rng.uniform(-0.3, 0.3, (points, 2)), rng.normal(0, 0.001, points)]
    box = np.c_[rng.uniform(-0.05, 0.05, (points // 3, 2)), np.full(points // 3, 0.08)]
    local = np.concatenate([table, box])
    b = np.radians(45)
    up = np.array([0, -np.cos(b), -np.sin(b)])
    rotation = np.stack([[1.0, 0, 0], np.cross(up, [1.0, 0, 0]), up])  # table axes in camera terms
    camera = (local @ rotation + [0, 0, 0.8 / np.sin(b)]).astype(np.float32)
    label = np.r_[np.ones(points, np.uint32), np.full(points // 3, 20, np.uint32)]
    types = (np.uint32, np.float32, np.float32, np.float32, np.uint32)
    cloud = PointCloud.from_points([label, *camera.T, np.zeros(len(label), np.uint32)],
                                   ("label", "x", "y", "z", "rgba"), types)
    cloud.save(path, encoding=Encoding.BINARY_COMPRESSED)
    return path


def test_prepare_goes_on_past_a_corrupt_scan(tmp_path, capsys):
    rng = np.random.default_rng(0)
    raw, out = tmp_path / "raw", tmp_path / "out"
    (raw / "test").mkdir(parents=True)
    for name in ("a", "c"):
        write_cloud(raw / "test" / f"{name}.pcd", rng)
    good = write_cloud(raw / "test" / "b.pcd", rng).read_bytes()
    (raw / "test" / "b.pcd").write_bytes(good[: len(good) // 2])  # truncated
    summary = prepare("mosd", raw, out)
    assert sorted(summary.done) == ["a", "c"] and list(summary.failed) == ["b"]
    assert load_scene(out / "test" / "c")["instance"].max() == 0
    records = json.loads((out / FAILURES_FILE).read_text())
    assert [r["scene"] for r in records] == ["b"] and records[0]["source"].endswith("b.pcd")
    assert "b.pcd: unreadable or truncated PCD" in records[0]["reason"]
    capsys.readouterr()
    assert main(["mosd", str(raw), str(out)]) == 2  # a and c are skipped, b fails again
    err = capsys.readouterr().err
    assert "1 scene(s) failed" in err and "b: " in err and "unreadable or truncated" in err
    (raw / "test" / "b.pcd").write_bytes(good)
    assert main(["mosd", str(raw), str(out)]) == 0
    assert json.loads((out / FAILURES_FILE).read_text()) == []


def test_prepare_tabletop_processes_its_pcds_like_mosd(tmp_path):
    pytest.importorskip("lassm.data.tabletop")
    (tmp_path / "raw" / "val").mkdir(parents=True)
    write_cloud(tmp_path / "raw" / "val" / "tt00000.pcd", np.random.default_rng(1))
    summary = prepare("tabletop", tmp_path / "raw", tmp_path / "out", instance_view="part")
    assert summary.done == ["tt00000"] and not summary.failures
    scene = load_scene(tmp_path / "out" / "val" / "tt00000")
    assert float(scene["plane_tilt_degrees"]) == pytest.approx(45, abs=0.5)
