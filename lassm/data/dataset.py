"""Processed scenes as a torch Dataset, and packing augmented scenes into one batch (REFERENCE_SPEC 2.1, 3.2).

A scene folder ``<root>/<split>/<scene>/`` holds ``<key>.npy`` arrays (``lassm.data.io``). The
dataset yields per-point tensors with Pointcept's key names; augmentation (``lassm.augment``)
then runs per scene on the training device, and :func:`pack_scenes` concatenates the results
with cumulative offsets: ``offset`` over voxels and ``origin_offset`` over points.

    ds = SceneDataset("data/synthetic", "train", segment_key="segment20")
    scene = ds[0]  # coord (N, 3) float32, color (N, 3) float32 0..255, segment, instance, superpoint
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .io import DataError, load_scene, scene_is_done

VOXEL_KEYS = ("coord", "grid_coord", "feat", "color", "segment", "instance")  # one row per voxel
POINT_KEYS = ("inverse", "superpoint", "origin_coord", "origin_segment", "origin_instance")  # per point


class SceneDataset(torch.utils.data.Dataset):
    """The finished scenes of one split, repeated ``loop`` times (the reference's dataset loop, 2.1).

    segment_key / instance_key name the arrays loaded as ``segment`` and ``instance`` (e.g.
    ``segment20`` or ``segment200``, ``instance_object`` for mOSD). Missing label arrays read as -1,
    as in the reference; ScanNet++'s (N, 3) multi-label arrays keep their first column.
    """

    def __init__(self, root: str | os.PathLike, split: str, segment_key: str = "segment20",
                 instance_key: str = "instance", loop: int = 1, with_normal: bool = False,
                 require_labels: bool = False):
        folder = Path(root) / split
        if not folder.is_dir():
            raise DataError(f"data root: {folder} does not exist; preprocess the dataset first "
                            f"(python -m lassm.data.prepare)")
        self.scenes = sorted(p for p in folder.iterdir() if p.is_dir() and scene_is_done(p))
        if not self.scenes:
            raise DataError(f"data root: no processed scenes under {folder}")
        if loop < 1:
            raise ValueError(f"loop: expected a positive integer, got {loop}")
        self.split, self.loop = split, loop
        self.segment_key, self.instance_key, self.with_normal = segment_key, instance_key, with_normal
        if require_labels:  # training data without the preset's label arrays: wrong preset or data root
            missing = [k for k in (segment_key, instance_key) if not (self.scenes[0] / f"{k}.npy").is_file()]
            if missing:
                names = ", ".join(m + ".npy" for m in missing)
                raise DataError(f"{self.scenes[0]}: no {names}; the data root {root} was prepared for "
                                f"another dataset than this preset expects")

    def __len__(self) -> int:
        return len(self.scenes) * self.loop

    def name(self, index: int) -> str:
        return self.scenes[index % len(self.scenes)].name

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        folder = self.scenes[index % len(self.scenes)]
        arrays = load_scene(folder)
        if "coord" not in arrays or "color" not in arrays or "superpoint" not in arrays:
            raise DataError(f"{folder}: expected coord.npy, color.npy and superpoint.npy")
        n = len(arrays["coord"])
        scene = {"name": folder.name,
                 "coord": torch.from_numpy(arrays["coord"].astype(np.float32)),
                 "color": torch.from_numpy(arrays["color"].astype(np.float32)),
                 "superpoint": torch.from_numpy(arrays["superpoint"].astype(np.int64).reshape(n))}
        for key, source in (("segment", self.segment_key), ("instance", self.instance_key)):
            values = arrays.get(source)
            if values is None:
                values = np.full(n, -1, np.int64)
            elif values.ndim == 2:  # ScanNet++: up to three labels per vertex; column 0 (spec 2.1)
                values = values[:, 0]
            if len(values) != n:
                raise DataError(f"{folder}: {source}.npy has {len(values)} rows, coord.npy {n}")
            scene[key] = torch.from_numpy(values.astype(np.int64))
        if self.with_normal and "normal" in arrays:
            scene["normal"] = torch.from_numpy(arrays["normal"].astype(np.float32))
        return scene


def keep_as_list(scenes: list[dict]) -> list[dict]:
    """DataLoader collate: scenes stay separate, since they are augmented one by one on the device."""
    return scenes


def pack_scenes(scenes: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate augmented scenes into one batch with ``offset`` / ``origin_offset`` (spec 3.2).

    Voxel-level keys are those of VOXEL_KEYS, point-level keys those of POINT_KEYS; ``inverse``
    stays local to its scene, as the model expects. Other keys are dropped.
    """
    if not scenes:
        raise ValueError("scenes: expected at least one scene to pack")
    batch: dict[str, torch.Tensor] = {}
    for key in (*VOXEL_KEYS, *POINT_KEYS):
        present = [key in s for s in scenes]
        if any(present) and not all(present):
            raise ValueError(f"scenes: key {key!r} is in some scenes but not in others")
        if all(present):
            batch[key] = torch.cat([s[key] for s in scenes])
    for key, counted in (("offset", "coord"), ("origin_offset", "origin_coord")):
        if counted in batch:
            counts = torch.tensor([len(s[counted]) for s in scenes], device=batch[counted].device)
            batch[key] = torch.cumsum(counts, 0)
    return batch
