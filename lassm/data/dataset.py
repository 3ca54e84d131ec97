"""Processed scenes as a torch Dataset, and packing augmented scenes into one batch (REFERENCE_SPEC 2.1, 3.2).

A scene folder ``<root>/<split>/<scene>/`` holds ``<key>.npy`` arrays (``lassm.data.io``). The
dataset yields per-point tensors with Pointcept's key names; augmentation (``lassm.augment``)
then runs per scene on the training device, and :func:`lassm.data.batch.pack_scenes` concatenates the results
with cumulative offsets (the batch format is documented in :mod:`lassm.data.batch`).

    ds = SceneDataset("data/synthetic", "train", segment_key="segment20")
    scene = ds[0]  # coord (N, 3) float32, color (N, 3) float32 0..255, segment, instance, superpoint
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .batch import scene_tensors
from .io import DataError, load_scene, scene_is_done


class SceneDataset(torch.utils.data.Dataset):
    """The finished scenes of one split, repeated ``loop`` times (the reference's dataset loop, 2.1).

    segment_key / instance_key name the arrays loaded as ``segment`` and ``instance`` (e.g.
    ``segment20`` or ``segment200``, ``instance_object`` for mOSD). Missing label arrays read as -1,
    as in the reference; ScanNet++'s (N, 3) multi-label arrays keep their first column. ``class_map``
    relabels ``segment`` (label k becomes class_map[k]; -1 and labels beyond the map become -1).
    """

    def __init__(self, root: str | os.PathLike, split: str, segment_key: str = "segment20",
                 instance_key: str = "instance", loop: int = 1, with_normal: bool = False,
                 require_labels: bool = False, class_map: tuple[int, ...] = ()):
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
        self.class_map = np.asarray(class_map, np.int64)
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
        labels = {}
        for key, source in (("segment", self.segment_key), ("instance", self.instance_key)):
            values = arrays.get(source)
            if values is not None and values.ndim == 2:  # ScanNet++: up to three labels per vertex; column 0
                values = values[:, 0]
            if values is not None and len(values) != n:
                raise DataError(f"{folder}: {source}.npy has {len(values)} rows, coord.npy {n}")
            if key == "segment" and values is not None and len(self.class_map):
                known = (values >= 0) & (values < len(self.class_map))
                values = np.where(known, self.class_map[np.where(known, values, 0)], -1)
            labels[key] = values
        scene = {"name": folder.name, **scene_tensors({"coord": arrays["coord"], "color": arrays["color"],
                                                       "superpoint": arrays["superpoint"], **labels})}
        if self.with_normal and "normal" in arrays:
            scene["normal"] = torch.from_numpy(arrays["normal"].astype(np.float32))
        return scene

    @classmethod
    def for_config(cls, data, root: str | os.PathLike, split: str, **kwargs) -> SceneDataset:
        """The split as ``data`` (a ``DataConfig``) reads it: its label arrays and class map."""
        return cls(root, split, data.segment_key, data.instance_key, class_map=data.class_map, **kwargs)


def keep_as_list(scenes: list[dict]) -> list[dict]:
    """DataLoader collate: scenes stay separate, since they are augmented one by one on the device."""
    return scenes
