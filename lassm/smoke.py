"""Seconds-long stand-ins for smoke runs (``smoke = True`` notebooks, CI under nbval).

    rooms = smoke_rooms(root)                        # small synthetic rooms under outputs/smoke/
    checkpoint = smoke_checkpoint(root, "eval")      # a tiny untrained model that predicts on them

Everything is written under ``<root>/outputs/smoke/`` and reused by later runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from . import config
from .data.prepare import prepare
from .model import LaSSM
from .model.checkpoint import save_checkpoint


def smoke_rooms(root: str | os.PathLike, split: str = "val") -> Path:
    """Processed small synthetic rooms for smoke runs: those 03_train's smoke run made, else 3 new ones."""
    smoke = Path(root) / "outputs" / "smoke"
    rooms = smoke / "synthetic_train"
    if (rooms / split).is_dir() and any((rooms / split).iterdir()):
        return rooms
    rooms = smoke / "eval_rooms"
    if not (rooms / split).is_dir():
        prepare("synthetic", str(rooms) + "_raw", rooms, num_rooms=3, room_size="small")
    return rooms


def smoke_checkpoint(root: str | os.PathLike, name: str, split: str = "val") -> Path:
    """``<root>/outputs/smoke/<name>_model.pth``: a tiny untrained synthetic model (``config.tiny``) whose
    config points at :func:`smoke_rooms`, written atomically."""
    cfg = config.tiny(config.preset("synthetic"))
    cfg.data.root, cfg.train.experiment = str(smoke_rooms(root, split)), name
    torch.manual_seed(0)
    path = Path(root) / "outputs" / "smoke" / f"{name}_model.pth"
    return save_checkpoint({"model": LaSSM(cfg.model).state_dict(), "config": cfg.to_dict()}, path)
