"""The scenes the benchmarks run on: the bench rooms of ``../shared/bench``, else synthetic rooms.

Bench scenes are scene arrays (:mod:`lassm.data.batch`, step 1) as ``perf_k.npz`` stores them:
``coord`` (N, 3) float32, ``color`` (N, 3) uint8, ``superpoint`` (N,), ``instance`` (N,) and the
ScanNet20 labels under ``segment20`` (or ``segment``). :func:`bench_tensors` turns one into scene
tensors with :func:`lassm.data.batch.scene_tensors`, the package's one numpy -> tensor conversion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import augment, voxelize
from ..config import project_root
from ..data.batch import pack_scenes, scene_tensors

BENCH_DIR = "../shared/bench"


def synthetic_bench_scene(seed: int, size: str = "full") -> dict[str, np.ndarray]:
    """A generated room in the bench-scene format: Segmentator superpoints, ScanNet20 labels,
    instances for things only (wall and floor are stuff with instance -1, as in ``perf_k.npz``)."""
    from ..data.labels import VALID_CLASS_IDS_20
    from ..data.superpoints import segment_mesh
    from ..data.synthetic import CATEGORIES, generate_room

    room = generate_room(seed, size)
    to20 = {nyu40: i for i, nyu40 in enumerate(VALID_CLASS_IDS_20)}
    classes = np.array([to20.get(CATEGORIES[label][0], -1) for _, label in room.objects] + [-1])  # (K+1,)
    segment20 = classes[room.instance]  # (N,) instance -1 (clutter) picks the trailing -1
    instance = np.where(segment20 >= 2, room.instance, -1)  # 0 wall, 1 floor: stuff
    return {"coord": room.mesh.vertices.astype(np.float32), "color": room.mesh.colors,
            "segment20": segment20.astype(np.int16), "instance": instance.astype(np.int16),
            "superpoint": segment_mesh(room.mesh.vertices, room.mesh.faces).astype(np.int32)}


def load_bench_scenes(folder: str | Path | None = None, count: int = 3, seed: int = 0) -> list[dict]:
    """The first ``count`` ``perf_*.npz`` scenes of ``folder`` (default ``../shared/bench``), or as many
    full-size synthetic rooms (seeds ``seed``, ``seed + 1``, ...) when the folder holds none."""
    folder = Path(folder) if folder else project_root() / BENCH_DIR
    files = sorted(folder.glob("perf_*.npz")) if folder.is_dir() else []
    if files:
        return [dict(np.load(f)) for f in files[:count]]
    return [synthetic_bench_scene(seed + i) for i in range(count)]


def scene_arrays(scene: dict) -> dict[str, np.ndarray]:
    """A bench scene as scene arrays: ``segment20`` (else ``segment``) as ``segment``."""
    if "superpoint" not in scene:
        raise ValueError("bench scenes: the benchmark needs perf_*.npz scenes with labels and superpoints "
                         "(see ../shared/bench/README.md)")
    arrays = {k: scene[k] for k in ("coord", "color", "superpoint", "instance", "normal") if k in scene}
    segment = scene.get("segment20", scene.get("segment"))
    if segment is not None:
        arrays["segment"] = segment
    return arrays


def bench_tensors(scene: dict, device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """A bench scene as scene tensors (what ``SceneDataset`` yields), on ``device`` (None: where they are)."""
    return scene_tensors(scene_arrays(scene), device)


def voxel_batch(scenes: list[dict], device, grid_size: float = 0.02) -> dict[str, torch.Tensor]:
    """Packed backbone input: ``feat`` [rgb/127.5-1, xyz] (M, 6), ``grid_coord`` (M, 3), ``offset`` (B,).

    Deliberately not the validation pipeline: the backbone timings were made with the deterministic
    ``voxelize.grid_sample_first`` (first point per voxel, no augmentation), so every run times the
    same voxels; colour and features come from the pipelines' own steps.
    """
    voxels = []
    for scene in scenes:
        points = bench_tensors(scene)
        grid, keep = voxelize.grid_sample_first(points["coord"], grid_size)  # (M, 3), (M,)
        voxel = {"coord": points["coord"][keep], "color": points["color"][keep], "grid_coord": grid}
        voxel = augment.normalize_color(voxel, None, mode="scannet")  # neither step draws random numbers
        voxels.append(augment.assemble_feat(voxel, None, keys="color+coord"))
    batch = pack_scenes(voxels)
    return {k: batch[k].to(device) for k in ("feat", "grid_coord", "offset")}


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
        room = scene_arrays(scenes[i % len(scenes)])
        coord = np.asarray(room["coord"], np.float32).copy()
        coord[:, 0] += x0 - coord[:, 0].min()
        keep = np.arange(len(coord))
        if total + len(coord) > num_points:  # cut the last room: its points with the smallest x
            keep = np.argsort(coord[:, 0], kind="stable")[: num_points - total]
            keep.sort()
        superpoint = np.asarray(room["superpoint"]).astype(np.int64)
        instance = np.asarray(room["instance"]).astype(np.int64)
        part = {"coord": coord[keep], "color": np.asarray(room["color"])[keep],
                "superpoint": superpoint[keep] + sp_base, "segment": np.asarray(room["segment"])[keep],
                "instance": np.where(instance[keep] >= 0, instance[keep] + inst_base, -1)}
        parts.append(part)
        total += len(keep)
        x0 = float(coord[:, 0].max()) + gap
        sp_base += int(superpoint.max()) + 1
        inst_base += int(instance.max()) + 1
        if total == num_points:
            break
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
