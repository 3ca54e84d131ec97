"""The ``ddp`` benchmark: what several GPUs buy the training loop (issue 22).

It runs the training loop itself (:func:`lassm.train.launch`), first in one process, then in ``gpus``
processes under torchrun (DistributedDataParallel), with the same per-process batch, for a fixed number
of steps in one epoch, without validation. Seconds per step come from the runs' own logs: every step logs
(``train.log_every = 1``), and a log line's ``step_seconds`` is the wall time since the previous one, the
step's host copy of its losses included, so it covers the whole step (DDP: the all-reduce too). Per run:
the median over the steps after ``warmup`` (worker start, cuDNN and Triton autotuning, the allocator),
scenes per second = processes x batch / (s/step), and the speed-up over one process.

The one-process run is :func:`lassm.train.run` in this process, the others torchrun's; both get the same
CPU threads per process (``threads``: torch's thread count here, ``OMP_NUM_THREADS`` there, which torchrun
would otherwise set to 1 for several processes). How many matters: on the shared 2-core CPU of the tests,
one process ran a step 4x slower with 2 threads than with 1, which made 2 processes look 5x faster.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import statistics
from pathlib import Path

import torch

from ..config import Config
from ..data.dataset import training_set
from ..runlog import read_metrics
from ..train import launch

DDP_HEADER = (f"{'processes':>9} {'batch/process':>13} {'timed steps':>11} {'s/step':>8} {'scenes/s':>9} "
              f"{'speed-up':>8}")


def format_ddp_row(row: dict) -> str:
    return (f"{row['processes']:>9} {row['batch_per_process']:>13} {row['timed_steps']:>11} "
            f"{row['s_per_step']:>8.3f} {row['scenes_per_s']:>9.2f} {row['speedup']:>8.2f}")


def timed_config(cfg: Config, processes: int, steps: int, out_root: str | Path) -> Config:
    """A copy of ``cfg`` for one timed run into ``<out_root>/ddp-<processes>``: one epoch of ``steps``
    steps (``train.loop`` passes enough for them: no epoch boundary among the timed steps), every step
    logged, no validation, a fresh run (no resume), random initial weights (the speed does not depend on
    them)."""
    cfg = copy.deepcopy(cfg)
    tc = cfg.train
    scenes = len(training_set(cfg))
    tc.output_root, tc.experiment = str(out_root), f"ddp-{processes}"
    tc.loop = max(1, math.ceil(steps * tc.batch_size * processes / scenes))
    tc.epochs, tc.steps_per_epoch, tc.max_steps = 1, steps, steps
    tc.log_every, tc.validation, tc.resume, tc.init_weights = 1, False, False, ""
    return cfg


def step_times(run_dir: str | Path, warmup: int) -> list[float]:
    """The ``step_seconds`` of a run's log lines after step ``warmup`` (every step logged)."""
    return [r["step_seconds"] for r in read_metrics(run_dir) if r["kind"] == "train" and r["step"] > warmup]


@contextlib.contextmanager
def threads_per_process(threads: int):
    """``threads`` CPU threads for this process and (``OMP_NUM_THREADS``) the processes it starts; the
    previous settings afterwards."""
    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if env is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = env


def bench_ddp(cfg: Config, gpus: int, out_root: str | Path, steps: int = 30, warmup: int = 10,
              threads: int = 1, log=print) -> list[dict]:
    """Train ``cfg`` for ``steps`` steps in one process and in ``gpus`` processes (same per-process batch,
    ``cfg.train.batch_size``, and ``threads`` CPU threads each); one row each (see the module), in that
    order. ``log`` gets the runs' output."""
    if gpus < 1:
        raise ValueError(f"gpus: expected a positive number of processes, got {gpus}")
    if threads < 1:
        raise ValueError(f"threads: expected a positive number, got {threads}")
    if not 0 <= warmup < steps:
        raise ValueError(f"warmup: expected 0 <= warmup < steps ({steps}), got {warmup}")
    rows = []
    for processes in dict.fromkeys((1, gpus)):  # one run when gpus is 1
        run_cfg = timed_config(cfg, processes, steps, out_root)
        with threads_per_process(threads):
            launch(run_cfg, processes, log=log)
        times = step_times(Path(run_cfg.train.output_root) / run_cfg.train.experiment, warmup)
        if len(times) != steps - warmup:
            raise RuntimeError(f"the {processes}-process run logged {len(times)} timed steps, expected "
                               f"{steps - warmup}")
        seconds = statistics.median(times)
        batch = cfg.train.batch_size
        rows.append({"processes": processes, "batch_per_process": batch, "timed_steps": len(times),
                     "s_per_step": seconds, "scenes_per_s": processes * batch / seconds})
    for row in rows:
        row["speedup"] = row["scenes_per_s"] / rows[0]["scenes_per_s"]
    return rows
