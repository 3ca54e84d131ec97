"""Checkpoints are data, never code: every loader refuses a pickle that runs code, unless trusted."""

from __future__ import annotations

import collections
import pathlib
import sys

import numpy as np
import pytest
import torch

from lassm import config, inference, train
from lassm.data.io import DataError
from lassm.model import load_lassm_checkpoint
from lassm.model.checkpoint import load_minkowski_backbone, read_checkpoint

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_train import data_root, tiny  # noqa: E402, F401 - the shared tiny rooms fixture


class Payload:
    """Unpickling this creates the marker file: a harmless stand-in for code a malicious file runs."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


@pytest.fixture
def evil(tmp_path):
    """(file, marker): a state_dict and config like ours, plus a payload whose unpickling touches marker."""
    marker = tmp_path / "marker"
    model = torch.nn.Linear(2, 2)
    path = tmp_path / "evil.pth"
    blob = {"model": model.state_dict(), "config": config.synthetic().to_dict(), "x": Payload(marker)}
    torch.save(blob, path)
    return path, marker


def test_the_payload_is_real(evil):
    path, marker = evil
    torch.load(path, weights_only=False)  # what an unsafe loader would do
    assert marker.exists()


def test_inference_refuses_code(evil):
    path, marker = evil
    for load in (inference.load_model, inference.open_model):
        with pytest.raises(DataError, match=f"{path.name}.*--trust-checkpoint"):
            load(path)
    assert not marker.exists()


def test_library_loaders_refuse_code(evil):
    path, marker = evil
    with pytest.raises(DataError, match=path.name):
        load_lassm_checkpoint(torch.nn.Linear(2, 2), path)
    with pytest.raises(DataError, match=path.name):
        load_minkowski_backbone(torch.nn.Linear(2, 2), path)
    assert not marker.exists()


def test_training_refuses_code_to_resume_from_or_initialise_with(evil, data_root, tmp_path):  # noqa: F811
    path, marker = evil
    cfg = tiny(data_root, tmp_path / "runs", init_weights=str(path))
    with pytest.raises(DataError, match=path.name):
        train.run(cfg)
    resumed = tiny(data_root, tmp_path / "runs", experiment="resume")
    (tmp_path / "runs" / "resume").mkdir(parents=True)
    (tmp_path / "runs" / "resume" / "model_last.pth").write_bytes(path.read_bytes())
    with pytest.raises(DataError, match="model_last.pth.*holds Python objects.*train.resume=False"):
        train.run(resumed)
    assert not marker.exists()
    assert not (tmp_path / "runs" / "resume" / "train.lock").exists()  # released on the error


def test_trusted_opt_in_unpickles_with_a_warning(evil, capsys):
    path, marker = evil
    blob = read_checkpoint(path, trusted=True)
    assert marker.exists() and blob["x"] is None  # Path.touch ran and returned None
    assert "trusted checkpoint" in capsys.readouterr().err


def pointcept_checkpoint(path: pathlib.Path, model: torch.nn.Module) -> dict:
    """What Pointcept's CheckpointSaver writes: epoch, the DDP model's state_dict, optimiser, scheduler and
    GradScaler states, and best_metric_value (a numpy float from the evaluator)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    state = collections.OrderedDict((f"module.{k}", v) for k, v in model.state_dict().items())
    blob = {"epoch": 3, "state_dict": state, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "best_metric_value": np.float64(0.625)}
    torch.save(blob, path)
    return blob


def test_pointcept_checkpoints_load_as_data(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    pointcept_checkpoint(tmp_path / "model_best.pth", model)
    with pytest.raises(Exception, match="Weights only load failed"):  # why numpy scalars are allowed
        torch.load(tmp_path / "model_best.pth", weights_only=True)
    blob = read_checkpoint(tmp_path / "model_best.pth")
    assert blob["best_metric_value"] == 0.625 and blob["epoch"] == 3
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    report = load_lassm_checkpoint(fresh, tmp_path / "model_best.pth", strict=True)
    assert not report.missing and torch.equal(fresh[0].weight, model[0].weight)


def test_numpy_1_scalars_load(tmp_path):
    """A file written under numpy 1 names the scalar reconstructor numpy.core.multiarray.scalar."""
    torch.save({"best_metric_value": np.float32(0.5), "n": np.int64(3)}, tmp_path / "new.pth",
               _use_new_zipfile_serialization=False)  # a plain pickle, so the name can be rewritten
    raw = (tmp_path / "new.pth").read_bytes()
    old = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in old
    (tmp_path / "old.pth").write_bytes(old)
    assert read_checkpoint(tmp_path / "old.pth") == {"best_metric_value": 0.5, "n": 3}
