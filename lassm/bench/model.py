"""Whole-model benchmarks: the training step (``train``, ``model``) and inference (``model``, ``scaling``).

Both run the code the project itself runs: training is :class:`TrainingStep`, the training loop's own
``lassm.train.load_batch`` + ``lassm.train.train_step``; inference goes through ``lassm.inference``
(validation preprocessing of ``cfg.augment``, then ``LaSSM.predict``).

``model`` reports per stage (:mod:`lassm.model.stages`):

- training: data to the device, voxelisation (validation pipeline, or the training augmentation
  with ``--augment``), backbone, pooling, query initialisation (superpoint heads, top-ratio + FPS),
  the initial prediction head (``head0``), each decoder layer with its prediction head
  (``layer1``..``layer6``), targets, Hungarian matching, the other losses, backward, optimiser
  (unscale, clipping, AdamW);
- inference: data to the device, voxelisation, backbone, pooling, query init, head0, layers,
  post-processing to point masks.

On a GPU the decoder's layers and heads run as CUDA graphs (``lassm.model.graphs``): one stage, "layers
(CUDA graph)", in both modes, their backward inside ``backward`` in training. ``--modes train-eager`` and
``infer-eager`` run them op by op instead, with per-layer times: the before and after of the graphs.

Each stage time is the median over ``repeat`` runs of a run in which every stage boundary
synchronises the GPU (:class:`lassm.bench.timing.StageTimer`), so stages are attributed honestly;
``other`` is what no stage covers. Because those synchronisations stall the CPU/GPU overlap, the
end-to-end time is measured separately, in plain runs with one synchronisation at the end (``total_ms``).

``scaling`` times inference (the same stages, end to end) and peak memory for one scene of
100k, 250k, 500k and 1M points built from the bench rooms (:func:`lassm.bench.scenes.scaled_scene`)
and fits the log-log slope of time and of memory against the point count.
"""

from __future__ import annotations

import collections
import contextlib
import math
import statistics
import time
import traceback
import warnings

import numpy as np
import torch

from .. import augment
from ..data.batch import scene_tensors
from ..inference import prepare_input, step_generator
from ..model.stages import POSTPROCESS, TO_DEVICE, VOXELISE, stage, stage_names
from ..runtime import amp_dtype
from ..train import load_batch, make_optimizer, train_step
from .scenes import bench_tensors, scaled_scene
from .timing import allocated_mb, peak_mb, peak_reset, stage_runs, summarise_stages, sync


def build_model(preset_name: str, t_layer: int, device: torch.device, train: bool):
    """(config, model) of a preset and decoder variant, same weights every call (seed 0)."""
    from ..config import preset
    from ..model import LaSSM

    cfg = preset(preset_name, variant=f"-{t_layer}")
    torch.manual_seed(0)
    return cfg, LaSSM(cfg.model).to(device).train(train)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


# ------------------------------------------------------------------------------- training


class TrainingStep:
    """The training loop's step on the batch of ``scenes``: a preset model, AdamW as ``lassm.train.run``
    builds it, the preset's training augmentation (``augmentation``) or validation pipeline, and the
    training loop's generator of step 0, 1, 2, ... Call it for one whole step, or time
    :meth:`load` (data: to device, augmentation, packing) and :meth:`optimise` apart."""

    def __init__(self, scenes: list[dict], device, preset_name: str, t_layer: int, amp: str,
                 augmentation: bool, graphs: bool = True):
        self.device = torch.device(device)
        self.tensors = [bench_tensors(s) for s in scenes]  # (CPU) scene tensors, as the loader yields
        self.cfg, self.model = build_model(preset_name, t_layer, self.device, train=True)
        if not graphs:  # the decoder's layers op by op in training (inference graphs unaffected)
            self.model.decoder.cfg.train_graphs = 0
        self.cfg.train.amp = amp
        pipeline = augment.train_pipeline if augmentation else augment.val_pipeline
        self.pipeline = pipeline(self.cfg.augment)
        self.optimizer = make_optimizer(self.model, self.cfg.train, self.device)
        self.amp_dtype = amp_dtype(amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.steps = 0
        self.offset = torch.zeros(1, dtype=torch.int64)  # the last batch's offsets (read without a sync)

    def load(self) -> dict:
        g = step_generator(self.cfg.seed, 0, self.steps, 0, self.device)
        batch = load_batch(self.tensors, self.pipeline, g, self.device)
        self.steps += 1
        self.offset = batch["offset"]
        return batch

    def optimise(self, batch: dict) -> None:
        train_step(self.model, self.optimizer, self.scaler, batch, self.cfg.train.lr, self.amp_dtype,
                   self.cfg.train)

    def __call__(self) -> None:
        self.optimise(self.load())

    @property
    def voxels(self) -> int:
        return int(self.offset[-1])


def bench_train(scenes: list[dict], device: str = "cuda", preset_name: str = "scannet", variants=(3, 0),
                amp: str = "auto", repeat: int = 10, augmentation: bool = True) -> list[dict]:
    """Median data and optimisation milliseconds per training step (after two warm-up steps), their
    sum in seconds, and peak memory; one row per variant, printed as it comes."""
    device = torch.device(device)
    rows = []
    for t_layer in variants:
        step = TrainingStep(scenes, device, preset_name, t_layer, amp, augmentation)
        data_ms, step_ms = [], []
        for i in range(repeat + 2):
            if i == 2:
                peak_reset(device)
            sync(device)
            start = time.perf_counter()
            batch = step.load()
            sync(device)
            loaded = time.perf_counter()
            step.optimise(batch)
            sync(device)
            if i >= 2:  # two warm-up steps
                data_ms.append((loaded - start) * 1e3)
                step_ms.append((time.perf_counter() - loaded) * 1e3)
        data, optimise = statistics.median(data_ms), statistics.median(step_ms)
        rows.append({"variant": f"-{t_layer}", "preset": preset_name, "amp": str(step.amp_dtype or "fp32"),
                     "augmentation": augmentation, "voxels": step.voxels,
                     "data_ms": data, "step_ms": optimise, "s_per_step": (data + optimise) / 1e3,
                     "peak_mb": peak_mb(device)})
        print(format_train_row(rows[-1]), flush=True)
        del step, batch
    return rows


def bench_model_train(scenes: list[dict], device, preset_name: str = "scannet", t_layer: int = 3,
                      amp: str = "fp16", repeat: int = 10, warmup: int = 2,
                      augmentation: bool = False, graphs: bool = True) -> dict:
    """The training loop's step on the batch of ``scenes``: per-stage and end-to-end times, peak memory.
    ``graphs=False`` runs the decoder layers op by op (``decoder.train_graphs = 0``), not as CUDA graphs."""
    device = torch.device(device)
    step = TrainingStep(scenes, device, preset_name, t_layer, amp, augmentation, graphs)
    plain, timed, peak = stage_runs(step, device, repeat, warmup)
    return {"mode": "train" if graphs else "train (no graph)", "variant": f"-{t_layer}",
            "preset": preset_name,
            "amp": str(step.amp_dtype or "fp32"), "augmentation": augmentation,
            "scenes": len(scenes), "points": sum(len(s["coord"]) for s in scenes),
            "voxels": step.voxels, "peak_mb": peak,
            **summarise_stages(timed, plain, stage_names(step.cfg.model.decoder.num_layers, "train"))}


# ------------------------------------------------------------------------------- inference


def inference_fn(model, cfg, scene: dict, device: torch.device, dtype: torch.dtype | None):
    """One end-to-end inference of a bench scene: CPU scene tensors -> device -> validation preprocessing
    (``lassm.inference.prepare_input``) -> model under autocast to ``dtype`` -> point masks.
    Returns the call and the list its predictions land in."""
    device = torch.device(device)
    tensors = bench_tensors(scene)  # converted once, untimed: a loader hands over CPU tensors
    out = []

    @torch.no_grad()
    def infer():
        with stage(TO_DEVICE):
            on_device = scene_tensors(tensors, device)
        with stage(VOXELISE):
            batch = prepare_input(on_device, cfg, device)
        with _autocast(device, dtype):
            out[:] = model.predict(batch)
        with stage(POSTPROCESS):  # predict keeps superpoint masks; expand them here, as every consumer does
            _ = [pred.masks for pred in out]  # (K, N) bool per scene, cached on the prediction

    return infer, out


def bench_model_infer(scene: dict, device, preset_name: str = "scannet", t_layer: int = 3,
                      amp: str = "fp16", repeat: int = 10, warmup: int = 2, model=None,
                      graphs: bool = True) -> dict:
    """Inference on one scene, end to end (see :func:`inference_fn`): stages, total, peak memory.
    ``model``: (cfg, model) to reuse, else the preset's. ``graphs=False`` runs the decoder layers op
    by op (per-layer times) instead of as a CUDA graph."""
    device = torch.device(device)
    cfg, model = build_model(preset_name, t_layer, device, train=False) if model is None else model
    model.decoder.cfg.cuda_graphs = graphs
    dtype = amp_dtype(amp, device)
    base = allocated_mb(device)
    infer, out = inference_fn(model, cfg, scene, device, dtype)
    plain, timed, peak = stage_runs(infer, device, repeat, warmup)
    return {"mode": "infer" if graphs else "infer (no graph)", "variant": f"-{t_layer}",
            "preset": preset_name, "amp": str(dtype or "fp32"),
            "scenes": 1, "points": len(scene["coord"]), "instances": int(len(out[0].scores)),
            "peak_mb": peak, "peak_over_model_mb": peak - base,
            **summarise_stages(timed, plain, stage_names(cfg.model.decoder.num_layers, "infer"))}


def loglog_slope(sizes, values) -> float:
    """Least-squares slope of log(values) against log(sizes)."""
    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(values, float))
    return float(np.polyfit(x, y, 1)[0]) if len(x) > 1 else math.nan


def bench_scaling(scenes: list[dict], device, sizes=(100_000, 250_000, 500_000, 1_000_000),
                  preset_name: str = "scannet", t_layer: int = 3, amp: str = "fp16", repeat: int = 5,
                  warmup: int = 2) -> dict:
    """Inference time and memory against scene size; rows per size and the log-log slopes."""
    device = torch.device(device)
    model = build_model(preset_name, t_layer, device, train=False)
    rows = []
    for n in sizes:
        row = bench_model_infer(scaled_scene(scenes, n), device, preset_name, t_layer, amp, repeat, warmup,
                                model)
        rows.append(row)
        print(format_scaling_row(row), flush=True)
    points = [r["points"] for r in rows]
    return {"rows": rows, "time_slope": loglog_slope(points, [r["total_ms"] for r in rows]),
            "memory_slope": loglog_slope(points, [r["peak_over_model_mb"] for r in rows])}


# ------------------------------------------------------------------------------- printing


TRAIN_HEADER = (f"{'variant':7} {'precision':15} {'augment':7} {'voxels':>8} {'data ms':>8} {'step ms':>8} "
                f"{'s/step':>7} {'peak MB':>8}")


def format_train_row(row: dict) -> str:
    augmented = "yes" if row["augmentation"] else "no"
    return (f"{row['variant']:7} {row['amp']:15} {augmented:7} {row['voxels']:>8,} {row['data_ms']:>8.1f} "
            f"{row['step_ms']:>8.1f} {row['s_per_step']:>7.3f} {row['peak_mb']:>8,.0f}")


def format_stages(rows: list[dict]) -> str:
    """Stage table: one column per row (run), one line per stage, then the totals and peak memory."""
    names = list(dict.fromkeys(n for r in rows for n in r["stages"]))
    heads = [f"{r['mode']} {r['variant']}" for r in rows]
    width = max(14, *(len(h) + 2 for h in heads))
    lines = [f"{'stage (ms)':20}" + "".join(f"{h:>{width}}" for h in heads)]
    for n in names:
        cells = "".join(f"{r['stages'][n]:{width}.1f}" if n in r["stages"] else f"{'-':>{width}}"
                        for r in rows)
        lines.append(f"{n:20}" + cells)
    lines.append(f"{'sum (synced)':20}" + "".join(f"{r['timed_total_ms']:{width}.1f}" for r in rows))
    lines.append(f"{'END TO END':20}" + "".join(f"{r['total_ms']:{width}.1f}" for r in rows))
    lines.append(f"{'peak MB':20}" + "".join(f"{r['peak_mb']:{width},.0f}" for r in rows))
    return "\n".join(lines)


SCALING_HEADER = f"{'points':>10} {'end-to-end ms':>14} {'peak MB':>9} {'over model MB':>14} {'instances':>9}"


def format_scaling_row(row: dict) -> str:
    return (f"{row['points']:>10,} {row['total_ms']:14.1f} {row['peak_mb']:9,.0f} "
            f"{row['peak_over_model_mb']:14,.0f} {row['instances']:9d}")


def profile_table(fn, device, rows: int = 30, sort: str = "cpu") -> str:
    """torch.profiler's operator table for one call of ``fn`` (after one warm-up call), by self CPU
    time (``sort="cpu"``: where a launch-bound step spends its time) or self device time."""
    from torch.profiler import ProfilerActivity, profile

    device = torch.device(device)
    fn()
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    key = "self_cuda_time_total" if sort != "cpu" and device.type == "cuda" else "self_cpu_time_total"
    events = prof.key_averages()
    launch_calls = ("cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx", "cudaLaunchKernelExC")
    launches = sum(e.count for e in events if e.key in launch_calls)
    graphs = sum(e.count for e in events if e.key == "cudaGraphLaunch")  # each replays a captured graph
    syncs = sum(e.count for e in events if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize"))
    return (f"kernel launches {launches}, CUDA graph launches {graphs}, stream synchronisations {syncs}\n"
            + events.table(sort_by=key, row_limit=rows))


SYNC_WARNING = "called a synchronizing CUDA operation"  # what torch's sync debug mode warns at each wait


def sync_sites(fn, device, frames: int = 3) -> collections.Counter:
    """Where one call of ``fn`` (after one warm-up call) makes the GPU wait: torch's sync debug mode
    warns at every host synchronisation it knows of; each is counted under its innermost ``frames``
    lassm frames outside the benchmarks, "file:line < caller < ..." (or torch's own line). Empty on a
    CPU, where nothing waits."""
    device = torch.device(device)
    sites = collections.Counter()
    if device.type != "cuda":
        return sites
    fn()
    sync(device)

    def record(message, category, filename, lineno, file=None, line=None):
        if SYNC_WARNING not in str(message):  # e.g. torch's note that the debug mode is a prototype
            return
        ours = [f for f in traceback.extract_stack()
                if "/lassm/" in f.filename and "/bench/" not in f.filename]
        where = " < ".join(f"{f.filename.split('/lassm/')[-1]}:{f.lineno}" for f in ours[-frames:][::-1])
        sites[where or f"{filename}:{lineno}"] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        shown, warnings.showwarning = warnings.showwarning, record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning = shown
    sync(device)
    return sites


def format_sync_sites(sites: collections.Counter) -> str:
    lines = [f"synchronisations torch flags: {sum(sites.values())}"]
    return "\n".join(lines + [f"{count:5d}  {where}" for where, count in sites.most_common()])
