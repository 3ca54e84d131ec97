"""The batch format: what a scene is at each step from stored arrays to the model (REFERENCE_SPEC 2.1, 3.2).

One place for the key names (Pointcept's conventions) that data, augmentation and the model share.

1. **Scene arrays** (a processed scene folder, a scan read by ``lassm.data.scans``), numpy, N points:
   ``coord`` (N, 3) float32 metres, ``color`` (N, 3) 0..255, ``superpoint`` (N,) ids, and optionally
   ``segment`` / ``instance`` (N,) int64 (-1 = unlabelled) and ``normal`` (N, 3).
2. **Scene tensors** (:func:`scene_tensors`, what ``SceneDataset`` yields): the same keys as torch
   tensors, ``coord``/``color`` float32, ids int64; missing labels are -1.
3. **Augmented scene** (``lassm.augment`` pipelines): voxel-level keys :data:`VOXEL_KEYS` (M voxels,
   ``feat`` (M, F_in), ``grid_coord`` (M, 3) int64, ``coord`` (M, 3) the voxel's representative point)
   and point-level keys :data:`POINT_KEYS` (N points: ``inverse`` (N,) the voxel of each point,
   ``superpoint``, ``origin_coord`` (N, 3), and the labels ``origin_segment`` / ``origin_instance``).
4. **Packed batch** (:func:`pack_scenes`, what ``LaSSM`` takes): the scenes concatenated, plus
   ``offset`` (B,) cumulative voxel counts and ``origin_offset`` (B,) cumulative point counts;
   ``inverse`` stays local to its scene. :data:`MODEL_KEYS` must be present; the label keys
   :data:`LABEL_KEYS` make the model compute losses.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

SCENE_KEYS = ("coord", "color", "superpoint", "segment", "instance")  # scene tensors (step 2)
VOXEL_KEYS = ("coord", "grid_coord", "feat", "color", "segment", "instance")  # one row per voxel (step 3)
POINT_KEYS = ("inverse", "superpoint", "origin_coord", "origin_segment", "origin_instance")  # one per point
LABEL_KEYS = ("origin_segment", "origin_instance")  # present: the model computes losses
MODEL_KEYS = ("feat", "grid_coord", "coord", "offset", "inverse", "superpoint", "origin_coord",
              "origin_offset")  # what LaSSM.forward needs (step 4)
# keys that augmentation subsets together with the points while a scene is still point-level
AUGMENT_POINT_KEYS = ("coord", "color", "normal", "segment", "instance", "elastic_coord", "grid_coord",
                      "origin_coord", "origin_segment", "origin_instance")
# what an augmentation pipeline hands on (its last step, ``collect``): voxel then point level
SCENE_OUTPUT_KEYS = ("coord", "grid_coord", "feat", "segment", "instance",
                     "inverse", "superpoint", "origin_coord", "origin_segment", "origin_instance")


def scene_tensors(arrays: Mapping, device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """Scene arrays (numpy or tensors) -> scene tensors (step 2) on ``device``: coord and color float32,
    superpoint / segment / instance int64 (-1 where a label array is missing)."""
    for key in ("coord", "color", "superpoint"):
        if key not in arrays:
            raise ValueError(f"scene: expected keys coord, color and superpoint, got {sorted(arrays)}")
    n = len(arrays["coord"])
    scene = {"coord": _tensor(arrays["coord"], torch.float32),
             "color": _tensor(arrays["color"], torch.float32),
             "superpoint": _tensor(arrays["superpoint"], torch.int64).reshape(n)}
    for key in ("segment", "instance"):
        values = arrays.get(key)
        scene[key] = (torch.full((n,), -1, dtype=torch.int64, device=scene["coord"].device) if values is None
                      else _tensor(values, torch.int64))
    if arrays.get("normal") is not None:
        scene["normal"] = _tensor(arrays["normal"], torch.float32)
    return {k: v.to(device) for k, v in scene.items()} if device is not None else scene


def _tensor(values, dtype: torch.dtype) -> torch.Tensor:
    """A tensor of ``dtype``: tensors are converted where they are, numpy arrays wrapped without copying."""
    if torch.is_tensor(values):
        return values.to(dtype)
    return torch.as_tensor(np.asarray(values), dtype=dtype)


def pack_scenes(scenes: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate augmented scenes into one packed batch (step 4) with ``offset`` / ``origin_offset``.

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
            # counted on the host, copied without waiting for the device
            counts = torch.tensor([len(s[counted]) for s in scenes])
            counts = counts.to(batch[counted].device, non_blocking=True)
            batch[key] = torch.cumsum(counts, 0)
    return batch


def drop_labels(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch without LABEL_KEYS: the model then predicts without computing losses."""
    return {k: v for k, v in batch.items() if k not in LABEL_KEYS}
