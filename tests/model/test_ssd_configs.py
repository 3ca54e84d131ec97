"""Choosing one launch configuration per autotuned SSD kernel (lassm.model.ssd_configs), on stand-ins
for Triton's objects; tests/model/test_gpu_paths.py checks the real kernels on a GPU."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pytest

from lassm.model import ssd_configs
from lassm.model.ssd_configs import H200_WINNERS, cheapest, choose_config, pin_ssd_configs


@dataclass
class Config:  # the fields of triton.Config that the choice reads
    kwargs: dict
    num_warps: int = 4
    num_stages: int = 3


@dataclass
class Autotuner:  # the fields of triton's Autotuner that pinning reads and writes
    base_fn: types.FunctionType
    configs: list = field(default_factory=list)


def kernel(name: str, configs: list) -> Autotuner:
    fn = types.FunctionType((lambda: None).__code__, {}, name)
    return Autotuner(fn, list(configs))


SCAN_CONFIGS = [Config({"BLOCK_SIZE_M": 128, "BLOCK_SIZE_N": 256, "BLOCK_SIZE_K": 64}, 8, 3),
                Config({"BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 32}, 2, 4),
                Config({"BLOCK_SIZE_M": 32, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 32}, 2, 5),
                Config({"BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 32}, 4, 4)]


def test_the_listed_winner_is_kept_with_its_warps_and_stages():
    chosen = choose_config("_chunk_scan_fwd_kernel", SCAN_CONFIGS)
    assert chosen is SCAN_CONFIGS[1]  # same block sizes as [3], but 2 warps and 4 stages as listed
    assert H200_WINNERS["_chunk_scan_fwd_kernel"] == (chosen.kwargs, 2, 4)


def test_without_a_listed_match_the_cheapest_is_kept():
    # block product x stages: 128*256*64*3, 64*64*32*4, 32*64*32*5, 64*64*32*4 -> [2] is the smallest
    assert cheapest(SCAN_CONFIGS) is SCAN_CONFIGS[2]
    assert choose_config("_a_kernel_not_listed", SCAN_CONFIGS) is SCAN_CONFIGS[2]
    others = [c for c in SCAN_CONFIGS if c is not SCAN_CONFIGS[1]]  # a version without the winner
    assert choose_config("_chunk_scan_fwd_kernel", others) is SCAN_CONFIGS[2]
    with pytest.raises(ValueError, match="_k: no configurations"):
        choose_config("_k", [])


@pytest.fixture
def fake_ssd_module(monkeypatch):
    package = "fake_mamba.ops.triton"
    module = types.ModuleType(f"{package}.ssd_chunk_scan")
    module._chunk_scan_fwd_kernel = kernel("_chunk_scan_fwd_kernel", SCAN_CONFIGS)
    module._other_kernel = kernel("_other_kernel", SCAN_CONFIGS[:1])
    module.not_a_kernel = object()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return package, module


def test_pinning_leaves_every_autotuned_kernel_one_configuration(fake_ssd_module, monkeypatch):
    monkeypatch.delenv("LASSM_TRITON_AUTOTUNE", raising=False)
    package, module = fake_ssd_module
    kept = pin_ssd_configs(package, H200_WINNERS)
    assert module._chunk_scan_fwd_kernel.configs == [SCAN_CONFIGS[1]]
    assert module._other_kernel.configs == [SCAN_CONFIGS[0]]
    assert kept == {"_chunk_scan_fwd_kernel": SCAN_CONFIGS[1], "_other_kernel": SCAN_CONFIGS[0]}
    assert pin_ssd_configs(package, H200_WINNERS) == kept  # a second call changes nothing


def test_without_measured_winners_every_kernel_takes_the_cheapest(fake_ssd_module, monkeypatch):
    monkeypatch.delenv("LASSM_TRITON_AUTOTUNE", raising=False)
    monkeypatch.setattr(ssd_configs, "measured_winners", lambda: {})  # a GPU older than the H200's
    package, module = fake_ssd_module
    assert pin_ssd_configs(package)["_chunk_scan_fwd_kernel"] is SCAN_CONFIGS[2]
    assert module._chunk_scan_fwd_kernel.configs == [SCAN_CONFIGS[2]]


def test_the_environment_keeps_autotuning(fake_ssd_module, monkeypatch):
    monkeypatch.setenv("LASSM_TRITON_AUTOTUNE", "1")
    package, module = fake_ssd_module
    assert pin_ssd_configs(package) == {}
    assert module._chunk_scan_fwd_kernel.configs == SCAN_CONFIGS


def test_winners_only_where_measured():
    import torch
    recent = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (9, 0)
    assert ssd_configs.measured_winners() == (H200_WINNERS if recent else {})


def test_modules_not_imported_are_left_alone():
    assert pin_ssd_configs("no_such_package.ops.triton") == {}
    assert set(ssd_configs.SSD_MODULES) >= {"ssd_chunk_scan", "ssd_chunk_state", "ssd_bmm"}
