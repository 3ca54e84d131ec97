"""One fixed launch configuration per Triton kernel of mamba_ssm's SSD scan, instead of autotuning.

mamba_ssm decorates each of its SSD kernels with ``triton.autotune``: the first call of a kernel in a
process compiles and times every candidate configuration (3-10 per kernel). For the decoder's
short sequences that costs far more than it saves: on an H200, the 16 tunings of a training
process took 96 s (the first ten steps of a tabletop run: 121 s, then 0.25-0.31 s a step), 35 s of
them in the forward kernels that inference uses as well. The tuned choice can also differ from run
to run, and with it the rounding of the scan.

:func:`pin_ssd_configs` leaves each autotuned kernel exactly one configuration, so Triton compiles
that one and times nothing: the winner measured on an H200 (``H200_WINNERS``, from
``TRITON_PRINT_AUTOTUNING=1`` on the tabletop training step, 2026-11-30), else, on older GPUs or
where a mamba_ssm version offers no such candidate, the candidate mamba_ssm's own deterministic mode
would take (the smallest block product x stages). Every candidate computes the same scan; they differ
only in tiling. ``LASSM_TRITON_AUTOTUNE=1`` in the environment keeps mamba_ssm's autotuning.
"""

from __future__ import annotations

import os
import sys

SSD_MODULES = ("ssd_bmm", "ssd_chunk_state", "ssd_state_passing", "ssd_chunk_scan", "ssd_combined")

# kernel name -> (block sizes, num_warps, num_stages) that won its autotuning on one H200
H200_WINNERS = {
    "_chunk_cumsum_fwd_kernel": ({"BLOCK_SIZE_H": 16}, 4, 3),
    "_chunk_cumsum_bwd_kernel": ({"BLOCK_SIZE_H": 16}, 4, 3),
    "_chunk_state_fwd_kernel": ({"BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 128, "BLOCK_SIZE_K": 32}, 4, 4),
    "_state_passing_fwd_kernel": ({"BLOCK_SIZE": 256}, 4, 3),
    "_state_passing_bwd_kernel": ({"BLOCK_SIZE": 128}, 4, 3),
    "_bmm_chunk_fwd_kernel": ({"BLOCK_SIZE_M": 128, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 32}, 4, 4),
    "_bmm_chunk_bwd_kernel": ({"BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 32, "BLOCK_SIZE_CS": 32}, 2, 5),
    "_chunk_scan_fwd_kernel": ({"BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 32}, 2, 4),
    "_chunk_scan_bwd_dstates_kernel": ({"BLOCK_SIZE_M": 128, "BLOCK_SIZE_N": 32, "BLOCK_SIZE_K": 32}, 4, 4),
    "_chunk_scan_chunk_state_bwd_dx_kernel": ({"BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 32},
                                              4, 4),
    "_chunk_state_bwd_db_kernel": ({"BLOCK_SIZE_M": 32, "BLOCK_SIZE_N": 128}, 4, 3),
    "_chunk_scan_bwd_dc_kernel": ({"BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 128}, 4, 3),
    "_chunk_scan_bwd_dcb_kernel": ({"BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 32}, 4, 3),
    "_chunk_scan_bwd_ddAcs_stable_kernel": ({"BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 64}, 4, 3),
}


def cheapest(configs: list):
    """mamba_ssm's deterministic-mode choice: the smallest product of block sizes times stages."""
    def cost(cfg) -> int:
        product = 1
        for key, value in cfg.kwargs.items():
            if key.startswith("BLOCK_SIZE_"):
                product *= value
        return product * (cfg.num_stages or 1)
    return min(configs, key=cost)


def choose_config(name: str, configs: list, winners: dict = H200_WINNERS):
    """The configuration to keep for kernel ``name`` among its autotuning ``configs`` (objects with
    ``kwargs``, ``num_warps`` and ``num_stages``, as ``triton.Config``): the listed winner when one of
    them matches it, else :func:`cheapest`."""
    if not configs:
        raise ValueError(f"{name}: no configurations to choose from")
    if name in winners:
        kwargs, warps, stages = winners[name]
        for cfg in configs:
            if dict(cfg.kwargs) == kwargs and cfg.num_warps == warps and cfg.num_stages == stages:
                return cfg
    return cheapest(configs)


def autotuned_kernels(module) -> dict:
    """name -> Triton ``Autotuner`` for every autotuned kernel defined in ``module``."""
    kernels = {}
    for obj in vars(module).values():
        if hasattr(obj, "configs") and hasattr(obj, "base_fn") and isinstance(obj.configs, list):
            kernels[obj.base_fn.__name__] = obj
    return kernels


def measured_winners() -> dict:
    """H200_WINNERS on a GPU of the H200's generation or later (compute capability 9.0+), where they were
    measured; elsewhere none, so that every kernel takes mamba_ssm's deterministic choice, whose small
    tiles fit any GPU's shared memory (a winner's might not on a smaller one)."""
    import torch

    capable = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (9, 0)
    return H200_WINNERS if capable else {}


def pin_ssd_configs(package: str = "mamba_ssm.ops.triton", winners: dict | None = None) -> dict[str, object]:
    """Leave every autotuned kernel of the SSD modules already imported one configuration (module
    docstring): ``winners`` (default :func:`measured_winners`) where they match, else the cheapest;
    returns name -> kept configuration (empty with ``LASSM_TRITON_AUTOTUNE=1``)."""
    if os.environ.get("LASSM_TRITON_AUTOTUNE") == "1":
        return {}
    winners = measured_winners() if winners is None else winners
    kept = {}
    for module_name in SSD_MODULES:
        module = sys.modules.get(f"{package}.{module_name}")
        if module is None:
            continue
        for name, kernel in autotuned_kernels(module).items():
            if len(kernel.configs) > 1:
                kernel.configs = [choose_config(name, kernel.configs, winners)]
            kept[name] = kernel.configs[0]
    return kept
