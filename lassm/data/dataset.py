"""Processed scenes as a torch Dataset, and packing augmented scenes into one batch (REFERENCE_SPEC 2.1, 3.2).
A training run's splits (:func:`training_set`, :func:`validation_set`) and what each process loads of each
epoch (:func:`epoch_steps`, :class:`EpochBatches`).

A scene folder ``<root>/<split>/<scene>/`` holds ``<key>.npy`` arrays (``lassm.data.io``). The
dataset yields per-point tensors with Pointcept's key names; augmentation (``lassm.augment``)
then runs per scene on the training device, and :func:`lassm.data.batch.pack_scenes` concatenates the results
with cumulative offsets (the batch format is documented in :mod:`lassm.data.batch`).

    ds = SceneDataset("data/synthetic", "train", segment_key="segment20")
    scene = ds[0]  # coord (N, 3) float32, color (N, 3) float32 0..255, segment, instance, superpoint
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .batch import scene_tensors
from .io import DataError, load_scene, scene_is_done

if TYPE_CHECKING:  # lassm.config imports lassm.data (labels): only the annotations name it
    from ..config import Config


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


# ------------------------------------------------------------------------------- a training run's data


def training_set(cfg: Config) -> torch.utils.data.Dataset:
    """The training split, with the scenes of ``data.extra_train`` folders joined (repeated
    ``data.extra_train_loop`` times each)."""
    data = cfg.data
    parts = [SceneDataset.for_config(data, data.root, data.train_split, require_labels=True)]
    for folder in data.extra_train:
        folder = Path(folder)
        parts.append(SceneDataset.for_config(data, folder.parent, folder.name, loop=data.extra_train_loop,
                                             require_labels=True))
    return parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)


def validation_set(cfg: Config) -> SceneDataset:
    """The validation split (under ``data.val_root`` when set, else ``data.root``)."""
    data = cfg.data
    return SceneDataset.for_config(data, data.val_root or data.root, data.val_split, require_labels=True,
                                   with_normal=cfg.model.postprocess.split_convex_degrees > 0)


def epoch_steps(scenes: int, tc, world: int = 1) -> int:
    """Steps of one epoch: ``tc.loop`` passes over ``scenes`` in global batches of ``batch_size x world``,
    the last partial batch dropped as the reference does (spec 10.4), at most ``tc.steps_per_epoch``
    (large synthetic sets: an epoch is then a random part of the set); at least one."""
    steps = max(1, scenes * tc.loop // (tc.batch_size * world))
    return min(steps, tc.steps_per_epoch) if tc.steps_per_epoch else steps


class EpochBatches:
    """The training loader's batch sampler: this process's scene indices for each step of epoch ``epoch``
    (set before each pass). An epoch is ``loop`` passes over the set, shuffled together (spec 10.1) by a
    generator of the seed and the epoch; process ``rank`` takes its ``batch_size`` of each global batch.

    One loader with this sampler serves the whole run, so its worker processes start once: a loader per
    epoch started ``num_workers`` new ones in every process at every epoch (seconds each, and DDP epochs
    can be a few steps).
    """

    def __init__(self, size: int, tc, seed: int, rank: int = 0, world: int = 1):
        self.size, self.tc, self.seed, self.rank, self.world = size, tc, seed, rank, world
        self.steps = epoch_steps(size, tc, world)
        self.epoch = 0

    def batches(self, epoch: int) -> list[list[int]]:
        tc, per_step, passes = self.tc, self.tc.batch_size * self.world, self.size * self.tc.loop
        shuffle = torch.Generator().manual_seed(self.seed * 7919 + epoch)  # the epoch's data order
        order = torch.randperm(passes, generator=shuffle) % self.size  # loop 1: a permutation of the set
        if passes < per_step:  # tiny datasets: repeat scenes to fill one step
            order = order.repeat(math.ceil(per_step / passes))
        mine = slice(self.rank * tc.batch_size, (self.rank + 1) * tc.batch_size)  # this process's part
        return [order[i * per_step:(i + 1) * per_step][mine].tolist() for i in range(self.steps)]

    def __iter__(self):
        return iter(self.batches(self.epoch))

    def __len__(self) -> int:
        return self.steps
