"""The superpoint oracle: how well a split could score if every superpoint were given to the right instance.

LaSSM predicts masks over superpoints, so a superpoint that spans two objects caps what any model can
reach. The oracle gives each superpoint to the instance that holds most of its points (or to none, when
unlabelled or stuff points hold most of them), makes one mask per ground-truth instance from those
superpoints, scores every mask 1 and evaluates them with the ScanNet protocol (:mod:`lassm.evaluate.ap`).
Its AP is the ceiling the superpoints set; 1.000 means they never merge two instances by majority.

    python -m lassm.evaluate.oracle --preset mosd --root data/mosd --split val
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np
import torch

from ..config import PRESETS, preset
from ..data.dataset import SceneDataset
from ..data.labels import compact_instances, train_labels
from .ap import InstanceEvaluator, evaluate_predictions


def superpoint_counts(superpoint: np.ndarray, instance: np.ndarray, num_inst: int) -> np.ndarray:
    """(S, G + 1) points of each instance in each superpoint; column G counts points of no instance.

    superpoint: (N,) compact ids 0..S-1; instance: (N,) compact ids 0..G-1, -1 = none."""
    counts = np.zeros((int(superpoint.max()) + 1 if superpoint.size else 0, num_inst + 1), np.int64)
    np.add.at(counts, (superpoint, np.where(instance >= 0, instance, num_inst)), 1)
    return counts


def superpoint_oracle(segment: np.ndarray, instance: np.ndarray, superpoint: np.ndarray,
                      num_classes_total: int, stuff_classes: tuple[int, ...]) -> SimpleNamespace:
    """The oracle's prediction for one scene (scores, classes, masks), as ``evaluate_predictions`` reads it.

    segment, instance: (N,) raw labels (-1 = none); superpoint: (N,) any integer ids. Each ground-truth
    instance's mask is the union of the superpoints whose majority (ties: the lower id) it is; an
    instance that is the majority of no superpoint gets no mask.
    """
    label = train_labels(torch.as_tensor(segment), num_classes_total, stuff_classes)
    inst = compact_instances(torch.as_tensor(instance), label).numpy()  # (N,) 0..G-1, -1 = none
    sp = np.unique(superpoint, return_inverse=True)[1].ravel()  # (N,) compact 0..S-1
    num_inst = int(inst.max()) + 1 if inst.size and inst.max() >= 0 else 0
    owner = superpoint_counts(sp, inst, num_inst).argmax(1)  # (S,) majority instance (G = none)
    masks = owner[sp][None, :] == np.arange(num_inst)[:, None]  # (G, N)
    keep = masks.any(1)
    first = np.array([np.flatnonzero(inst == g)[0] for g in range(num_inst)], dtype=np.int64)
    classes = label.numpy()[first] if num_inst else np.zeros(0, np.int64)  # each instance's own class
    return SimpleNamespace(masks=torch.as_tensor(masks[keep]), scores=torch.ones(int(keep.sum())),
                           classes=torch.as_tensor(classes[keep]))


def oracle_split(preset_name: str, root: str, split: str) -> dict:
    """The oracle's ScanNet-protocol AP over every scene of ``<root>/<split>`` as the preset reads it."""
    data = preset(preset_name).data
    dataset = SceneDataset.for_config(data, root, split, require_labels=True)
    predictions, scenes = [], []
    for i in range(len(dataset.scenes)):
        arrays = {k: v.numpy() for k, v in dataset[i].items() if torch.is_tensor(v)}
        predictions.append(superpoint_oracle(arrays["segment"], arrays["instance"], arrays["superpoint"],
                                             len(data.class_names), data.stuff_classes))
        scenes.append({"segment": arrays["segment"], "instance": arrays["instance"]})
    results = evaluate_predictions(predictions, scenes, data.class_names, data.stuff_classes)
    return {**results, "class_names": list(data.class_names), "stuff": list(data.stuff_classes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lassm.evaluate.oracle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="synthetic", choices=sorted(PRESETS),
                        help="how the scenes are read (label arrays, classes, stuff)")
    parser.add_argument("--root", required=True, help="processed scenes: <root>/<split>/<scene>/")
    parser.add_argument("--split", default="val")
    args = parser.parse_args(argv)
    results = oracle_split(args.preset, args.root, args.split)
    print(f"superpoint oracle, {args.root}/{args.split}")
    instance_names = [n for i, n in enumerate(results["class_names"]) if i not in results["stuff"]]
    print(InstanceEvaluator(instance_names).format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
