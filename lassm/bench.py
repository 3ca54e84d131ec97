"""Benchmarks that print numbers: ``python -m lassm.bench backbone [options]``.

``backbone`` times SpUNet-v2m1 on a batch of ScanNet-sized scenes (the three ~250k-point rooms
of ``../shared/bench`` when present, else full-size synthetic rooms), voxelized at 2 cm:
forward in eval mode, and forward + backward in train mode, per sparse backend and precision,
with peak memory. With spconv installed it also times the same network assembled from plain
spconv modules, which shows what our layer wrappers cost on top of spconv.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from .augment import grid_sample_first
from .config import BackboneConfig, project_root
from .sparse import single_thread, spconv_available

BENCH_DIR = "../shared/bench"


def load_bench_scenes(folder: str | Path | None = None, count: int = 3, seed: int = 0) -> list[dict]:
    """Scenes as dicts of numpy arrays ``coord`` (N,3) float32 and ``color`` (N,3) uint8."""
    folder = Path(folder) if folder else project_root() / BENCH_DIR
    files = sorted(folder.glob("perf_*.npz")) if folder.is_dir() else []
    if files:
        return [dict(np.load(f)) for f in files[:count]]
    from .data.synthetic import generate_room

    scenes = []
    for i in range(count):
        room = generate_room(seed + i, "full")
        scenes.append({"coord": room.mesh.vertices.astype(np.float32), "color": room.mesh.colors})
    return scenes


def voxel_batch(scenes: list[dict], device, grid_size: float = 0.02) -> dict[str, torch.Tensor]:
    """Packed batch: ``feat`` [rgb/127.5-1, xyz] (6 ch), ``grid_coord``, ``offset``."""
    feats, grids, counts = [], [], []
    for scene in scenes:
        coord = torch.as_tensor(scene["coord"], dtype=torch.float32)
        grid, keep = grid_sample_first(coord, grid_size)
        color = torch.as_tensor(scene["color"][keep.numpy()], dtype=torch.float32)
        feats.append(torch.cat([color / 127.5 - 1, coord[keep]], 1))
        grids.append(grid)
        counts.append(len(grid))
    return {"feat": torch.cat(feats).to(device), "grid_coord": torch.cat(grids).to(device),
            "offset": torch.tensor(np.cumsum(counts), device=device)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process high-water mark


def time_call(fn, device: torch.device, repeat: int, warmup: int = 2) -> tuple[float, float]:
    """Median milliseconds over ``repeat`` runs after ``warmup`` runs, and the peak memory (MB)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    _peak_reset(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), _peak_mb(device)


def bench_backbone(device: str = "cuda", backends=("torch", "spconv"), precisions=("fp32", "amp"),
                   repeat: int = 10, scenes: list[dict] | None = None, native: bool = True) -> list[dict]:
    from .model.backbone import SpUNet

    device = torch.device(device)
    batch = voxel_batch(scenes if scenes is not None else load_bench_scenes(), device)
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    model = SpUNet(BackboneConfig()).to(device)
    rows = []
    runs = [(b, "ours") for b in backends]
    if native and "spconv" in backends:
        runs.append(("spconv", "plain spconv modules"))
    for backend, build in runs:
        if backend == "spconv" and not spconv_available():
            print("skipping backend spconv: not installed")
            continue
        net = model
        if build != "ours":
            from .model.spconv_reference import SpconvSpUNet

            net = SpconvSpUNet(BackboneConfig()).to(device)
            net.load_state_dict(model.state_dict())
        model.cfg.sparse_backend = backend
        for precision in precisions:
            if backend == "spconv" and device.type == "cpu" and precision == "amp":
                continue  # spconv's CPU build has no bfloat16 (CPU autocast's dtype)
            def ctx(precision=precision, build=build):
                stack = contextlib.ExitStack()
                if precision == "amp":
                    stack.enter_context(torch.autocast(device.type, dtype=amp_dtype))
                if build != "ours" and device.type == "cpu":
                    stack.enter_context(single_thread())  # spconv's CPU build needs one thread
                return stack

            def forward(net=net, ctx=ctx):
                net.eval()
                with torch.no_grad(), ctx():
                    net(batch["feat"], batch["grid_coord"], batch["offset"])

            def train_step(net=net, ctx=ctx):
                net.train()
                with ctx():
                    out = net(batch["feat"], batch["grid_coord"], batch["offset"])
                out.float().square().mean().backward()
                net.zero_grad(set_to_none=True)

            row = {"backend": backend, "build": build, "precision": precision, "device": str(device),
                   "voxels": int(batch["offset"][-1])}
            row["forward_ms"], row["forward_peak_mb"] = time_call(forward, device, repeat)
            can_train = not (backend == "spconv" and device.type == "cpu")  # spconv CPU: forward only
            if can_train:
                row["train_ms"], row["train_peak_mb"] = time_call(train_step, device, repeat)
            rows.append(row)
            print(_format_row(row), flush=True)
    return rows


HEADER = (f"{'backend':8} {'build':22} {'precision':9} {'voxels':>8} {'forward ms':>11} {'fwd peak MB':>12} "
          f"{'fwd+bwd ms':>11} {'train peak MB':>14}")


def _format_row(row: dict) -> str:
    train = f"{'-':>11} {'-':>14}"
    if "train_ms" in row:
        train = f"{row['train_ms']:11.1f} {row['train_peak_mb']:14.0f}"
    return (f"{row['backend']:8} {row['build']:22} {row['precision']:9} {row['voxels']:8d} "
            f"{row['forward_ms']:11.1f} {row['forward_peak_mb']:12.0f} {train}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lassm.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("backbone", help="SpUNet-v2m1 forward and forward+backward time and memory")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--backends", nargs="+", default=["torch", "spconv"], choices=["torch", "spconv"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "amp"], choices=["fp32", "amp"])
    p.add_argument("--repeat", type=int, default=10, help="timed runs per measurement (median)")
    p.add_argument("--scenes", type=int, default=3, help="scenes in the batch")
    p.add_argument("--bench-dir", default=None, help=f"folder of perf_*.npz scenes (default {BENCH_DIR})")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.scenes < 1:
        parser.error("--repeat and --scenes must be >= 1")
    scenes = load_bench_scenes(args.bench_dir, args.scenes)
    print(f"SpUNet-v2m1 (32 ch), {len(scenes)} scenes, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(HEADER)
    rows = bench_backbone(args.device, args.backends, args.precisions, args.repeat, scenes)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
