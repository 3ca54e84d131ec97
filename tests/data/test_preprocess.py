"""The preprocessing driver: skips finished scenes, reports failures by scene, parallel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lassm.data.io import DataError, load_scene
from lassm.data.preprocess import SceneJob, run_jobs


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
