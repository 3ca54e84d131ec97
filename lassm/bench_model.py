"""Per-stage benchmarks of the whole model: ``python -m lassm.bench {model,scaling}``.

``model`` runs the training step of ``lassm.train`` (batch of the three bench rooms) and inference
on one room (``perf_0``), each the code the project itself runs, and reports per stage:

- training: data to the device, voxelisation (validation pipeline, or the training augmentation
  with ``--augment``), backbone, pooling, query initialisation (superpoint heads, top-ratio + FPS),
  the initial prediction head (``head0``), each decoder layer with its prediction head
  (``layer1``..``layer6``), targets, Hungarian matching, the other losses, backward, optimiser
  (unscale, clipping, AdamW);
- inference: data to the device, voxelisation, backbone, pooling, query init, head0, layers,
  post-processing to point masks.

Each stage time is the median over ``repeat`` runs of a run in which every stage boundary
synchronises the GPU (:mod:`lassm.profiling`), so stages are attributed honestly; ``other`` is
what no stage covers. Because those synchronisations stall the CPU/GPU overlap, the end-to-end
time is measured separately, in plain runs with one synchronisation at the end (``total_ms``).

``scaling`` times inference (the same stages, end to end) and peak memory for one scene of
100k, 250k, 500k and 1M points built from the bench rooms (:func:`scaled_scene`) and fits the
log-log slope of time and of memory against the point count.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time

import numpy as np
import torch

from .bench import _peak_mb, _peak_reset, _sync
from .profiling import StageTimer, stage

TRAIN_STAGES = ("to_device", "voxelise", "backbone", "pooling", "query_init", "head0")
LOSS_STAGES = ("targets", "matching", "losses", "backward", "optimiser")
INFER_TAIL = ("postprocess",)


def _allocated_mb(device: torch.device) -> float:
    return torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0


def stage_names(num_layers: int, mode: str) -> tuple[str, ...]:
    layers = tuple(f"layer{i}" for i in range(1, num_layers + 1))
    tail = LOSS_STAGES if mode == "train" else INFER_TAIL
    return (*TRAIN_STAGES, *layers, *tail)


def _summarise(timed: list[StageTimer], plain_ms: list[float], names: tuple[str, ...]) -> dict:
    """Median per stage over the timed runs, 'other' = timed total - stages, plain median total."""
    seen = {n for t in timed for n in t.ms}
    stages = {n: statistics.median(t.ms.get(n, 0.0) for t in timed) for n in names if n in seen}
    extra = sorted({n for t in timed for n in t.ms} - set(names))
    for n in extra:  # a stage this table does not list yet still shows up
        stages[n] = statistics.median(t.ms.get(n, 0.0) for t in timed)
    timed_total = statistics.median(t.total_ms for t in timed)
    stages["other"] = max(0.0, statistics.median(t.total_ms - sum(t.ms.values()) for t in timed))
    return {"stages": stages, "timed_total_ms": timed_total, "total_ms": statistics.median(plain_ms)}


def _runs(fn, device: torch.device, repeat: int, warmup: int) -> tuple[list[float], list[StageTimer], float]:
    """``fn`` warmed up, then ``repeat`` plain runs (ms) and ``repeat`` stage-timed runs; peak MB."""
    for _ in range(warmup):
        fn()
    _peak_reset(device)
    plain = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        plain.append((time.perf_counter() - start) * 1e3)
    peak = _peak_mb(device)
    timed = []
    for _ in range(repeat):
        with StageTimer(device) as timer:
            fn()
        timed.append(timer)
    return plain, timed, peak


# ------------------------------------------------------------------------------- scenes


def labelled_tensors(scene: dict) -> dict[str, torch.Tensor]:
    """A bench scene (numpy, ``segment20`` or ``segment``) as the dataset yields it (CPU tensors)."""
    if "superpoint" not in scene:
        raise ValueError("bench scenes: the benchmark needs perf_*.npz scenes with labels and superpoints "
                         "(see ../shared/bench/README.md)")
    n = len(scene["coord"])
    segment = scene.get("segment20", scene.get("segment"))
    out = {"coord": torch.as_tensor(np.asarray(scene["coord"]), dtype=torch.float32),
           "color": torch.as_tensor(np.asarray(scene["color"]), dtype=torch.float32),
           "superpoint": torch.as_tensor(np.asarray(scene["superpoint"]).astype(np.int64))}
    for key, values in (("segment", segment), ("instance", scene.get("instance"))):
        out[key] = (torch.full((n,), -1, dtype=torch.int64) if values is None
                    else torch.as_tensor(np.asarray(values).astype(np.int64)))
    return out


def scaled_scene(scenes: list[dict], num_points: int, gap: float = 0.5) -> dict:
    """One scene of exactly ``num_points`` points from copies of the bench rooms laid side by side.

    Rooms (cycled) are placed along x with ``gap`` metres between them until there are enough
    points; the last room is cut at an x plane so the total is exact. Superpoint and instance ids
    are made unique per copy, so a 1M-point scene has about four rooms' worth of superpoints and
    objects at the same density as one room.
    """
    if num_points < 1:
        raise ValueError(f"num_points: expected a positive count, got {num_points}")
    if not scenes:
        raise ValueError("scenes: expected at least one bench room")
    parts, total, x0, sp_base, inst_base = [], 0, 0.0, 0, 0
    for i in range(10_000):
        room = scenes[i % len(scenes)]
        coord = np.asarray(room["coord"], np.float32).copy()
        coord[:, 0] += x0 - coord[:, 0].min()
        keep = np.arange(len(coord))
        if total + len(coord) > num_points:  # cut the last room: its points with the smallest x
            keep = np.argsort(coord[:, 0], kind="stable")[: num_points - total]
            keep.sort()
        superpoint = np.asarray(room["superpoint"]).astype(np.int64)
        instance = np.asarray(room["instance"]).astype(np.int64)
        part = {"coord": coord[keep], "color": np.asarray(room["color"])[keep],
                "superpoint": superpoint[keep] + sp_base,
                "segment": np.asarray(room.get("segment20", room.get("segment")))[keep],
                "instance": np.where(instance[keep] >= 0, instance[keep] + inst_base, -1)}
        parts.append(part)
        total += len(keep)
        x0 = float(coord[:, 0].max()) + gap
        sp_base += int(superpoint.max()) + 1
        inst_base += int(instance.max()) + 1
        if total == num_points:
            break
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ------------------------------------------------------------------------------- model setup


def _model(preset_name: str, t_layer: int, device: torch.device, train: bool):
    from .config import preset
    from .model import LaSSM

    cfg = preset(preset_name, variant=f"-{t_layer}")
    torch.manual_seed(0)
    model = LaSSM(cfg.model).to(device).train(train)
    return cfg, model


def _pipeline(cfg, t_layer: int, augmentation: bool):
    from . import augment

    aug_cfg = augment.augment_config(cfg.data.name, augment.model_variant(t_layer))
    return augment.train_pipeline(aug_cfg) if augmentation else augment.val_pipeline(aug_cfg)


def _autocast(device: torch.device, amp_dtype):
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype)


# ------------------------------------------------------------------------------- benchmarks


def train_fn(scenes: list[dict], device, preset_name: str, t_layer: int, amp: str, augmentation: bool):
    """One training step of ``lassm.train`` on the batch of ``scenes``; returns (step, cfg, voxel counts)."""
    from .train import _amp_dtype, load_batch, make_optimizer, step_generator, train_step

    device = torch.device(device)
    tensors = [labelled_tensors(s) for s in scenes]
    cfg, model = _model(preset_name, t_layer, device, train=True)
    cfg.train.amp = amp
    pipeline = _pipeline(cfg, t_layer, augmentation)
    optimizer = make_optimizer(model, cfg.train, device)
    amp_dtype = _amp_dtype(amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    counter = iter(range(10**9))
    voxels = []

    def step():
        batch = load_batch(tensors, pipeline, step_generator(0, 0, next(counter), 0, device), device)
        train_step(model, optimizer, scaler, batch, cfg.train.lr, amp_dtype, cfg.train)
        voxels.append(batch["offset"][-1])

    return step, cfg, voxels


def bench_model_train(scenes: list[dict], device, preset_name: str = "scannet", t_layer: int = 3,
                      amp: str = "fp16", repeat: int = 10, warmup: int = 2,
                      augmentation: bool = False) -> dict:
    """The training loop's step on the batch of ``scenes``: per-stage and end-to-end times, peak memory."""
    from .train import _amp_dtype

    device = torch.device(device)
    step, cfg, voxels = train_fn(scenes, device, preset_name, t_layer, amp, augmentation)
    plain, timed, peak = _runs(step, device, repeat, warmup)
    return {"mode": "train", "variant": f"-{t_layer}", "preset": preset_name,
            "amp": str(_amp_dtype(amp, device) or "fp32"), "augmentation": augmentation,
            "scenes": len(scenes), "points": sum(len(s["coord"]) for s in scenes),
            "voxels": int(voxels[-1]), "peak_mb": peak,
            **_summarise(timed, plain, stage_names(cfg.model.decoder.num_layers, "train"))}


def inference_fn(model, cfg, tensors: dict, device: torch.device, amp_dtype, t_layer: int):
    """One end-to-end inference: CPU tensors -> device -> voxels -> model -> point masks."""
    from .data.dataset import pack_scenes
    from .train import _to, step_generator

    pipeline = _pipeline(cfg, t_layer, augmentation=False)
    scene = {k: v for k, v in tensors.items() if k not in ("segment", "instance")}
    n = len(tensors["coord"])
    out = []

    @torch.no_grad()
    def infer():
        with stage("to_device"):
            data = _to(scene, device)
        with stage("voxelise"):
            data["segment"] = data["instance"] = torch.full((n,), -1, dtype=torch.int64, device=device)
            batch = pack_scenes([pipeline(data, step_generator(0, 0, 0, 0, device))])
            batch.pop("origin_segment"), batch.pop("origin_instance")
        with _autocast(device, amp_dtype):
            out[:] = model.predict(batch)

    return infer, out


def bench_model_infer(scene: dict, device, preset_name: str = "scannet", t_layer: int = 3,
                      amp: str = "fp16", repeat: int = 10, warmup: int = 2, model=None,
                      graphs: bool = True) -> dict:
    """Inference on one scene, end to end (see :func:`inference_fn`): stages, total, peak memory.
    ``graphs=False`` runs the decoder layers op by op (per-layer times) instead of as a CUDA graph."""
    from .train import _amp_dtype

    device = torch.device(device)
    if model is None:
        cfg, model = _model(preset_name, t_layer, device, train=False)
    else:
        cfg, model = model
    model.decoder.cfg.cuda_graphs = graphs
    amp_dtype = _amp_dtype(amp, device)
    tensors = labelled_tensors(scene)
    base = _allocated_mb(device)
    infer, out = inference_fn(model, cfg, tensors, device, amp_dtype, t_layer)
    plain, timed, peak = _runs(infer, device, repeat, warmup)
    return {"mode": "infer" if graphs else "infer (no graph)", "variant": f"-{t_layer}",
            "preset": preset_name, "amp": str(amp_dtype or "fp32"),
            "scenes": 1, "points": len(scene["coord"]), "instances": int(len(out[0].scores)),
            "peak_mb": peak, "peak_over_model_mb": peak - base,
            **_summarise(timed, plain, stage_names(cfg.model.decoder.num_layers, "infer"))}


def loglog_slope(sizes, values) -> float:
    """Least-squares slope of log(values) against log(sizes)."""
    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(values, float))
    return float(np.polyfit(x, y, 1)[0]) if len(x) > 1 else math.nan


def bench_scaling(scenes: list[dict], device, sizes=(100_000, 250_000, 500_000, 1_000_000),
                  preset_name: str = "scannet", t_layer: int = 3, amp: str = "fp16", repeat: int = 5,
                  warmup: int = 2) -> dict:
    """Inference time and memory against scene size; rows per size and the log-log slopes."""
    device = torch.device(device)
    model = _model(preset_name, t_layer, device, train=False)
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
    _sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        _sync(device)
    key = "self_cuda_time_total" if sort != "cpu" and device.type == "cuda" else "self_cpu_time_total"
    events = prof.key_averages()
    launch_calls = ("cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx", "cudaLaunchKernelExC")
    launches = sum(e.count for e in events if e.key in launch_calls)
    syncs = sum(e.count for e in events if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize"))
    return (f"kernel launches {launches}, stream synchronisations {syncs}\n"
            + events.table(sort_by=key, row_limit=rows))
