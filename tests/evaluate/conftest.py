"""Shared fixtures of the evaluation tests: small synthetic rooms and a tiny untrained model on them."""

from __future__ import annotations

import pytest
import torch

from lassm import config
from lassm.data.prepare import prepare
from lassm.model import LaSSM


@pytest.fixture(scope="session")
def tiny_rooms(tmp_path_factory):
    """Three small processed synthetic rooms (2 train, 1 val); the folder holding the splits."""
    root = tmp_path_factory.mktemp("rooms")
    prepare("synthetic", root / "raw", root / "out", num_rooms=3, room_size="small")
    return root / "out"


@pytest.fixture(scope="session")
def tiny_model(tiny_rooms):
    """(model, cfg): the synthetic preset shrunk by ``config.tiny``, weights from seed 0, eval mode."""
    cfg = config.tiny(config.synthetic(root=str(tiny_rooms)))
    torch.manual_seed(0)
    return LaSSM(cfg.model).eval(), cfg
