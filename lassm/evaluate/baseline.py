"""A model-free geometric baseline for single-view tabletop scans: table plane + Euclidean clustering.

The classic tabletop segmentation (a RANSAC support plane, then the points above it grouped into
clusters whose points lie within ``radius`` of each other, as PCL's Euclidean cluster extraction
does). Processed mOSD / tabletop scenes are already in the support plane's frame (the plane is the
RANSAC fit of preprocessing, z = height above it), so the baseline keeps the points higher than
``height``, links every two of them closer than ``radius`` and calls each connected group of at
least ``min_points`` points an object (score 1). It separates objects that do not touch and merges
those that do, so it says how much of a split is solved by geometry alone; a model should beat it
where objects touch or stack.

    python -m lassm.evaluate.baseline --root data/tabletop --split val_clutter
    python -m lassm.evaluate.baseline --root data/mosd --split train --sweep   # choose the radius

Choose ``radius`` / ``height`` on a training split (``--sweep``), never on the scans you report.
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np
import torch

from ..config import preset
from ..data.dataset import SceneDataset
from ..data.labels import train_labels
from ..model.geometric_split import convex_segments, euclidean_clusters
from .ap import InstanceEvaluator, evaluate_predictions

# Defaults chosen on the 36 mOSD learn-split training scans (``--sweep``, 2026-11-30; README).
RADIUS = 0.015  # metres: points closer than this belong to one cluster
HEIGHT = 0.005  # metres above the support plane: lower points are the table
MIN_POINTS = 100  # smaller clusters are dropped (the evaluation ignores GT instances under 100 points)


def baseline_prediction(coord: np.ndarray, thing_class: int, radius: float = RADIUS, height: float = HEIGHT,
                        min_points: int = MIN_POINTS, convex_degrees: float = 0.0,
                        normal: np.ndarray | None = None, superpoint: np.ndarray | None = None,
                        colour_cut: float = 0.0, colour: np.ndarray | None = None) -> SimpleNamespace:
    """The baseline's prediction for one scene, as ``evaluate_predictions`` reads it: one mask per
    cluster (:func:`lassm.model.geometric_split.euclidean_clusters`), score 1, class ``thing_class``
    (a train label). ``convex_degrees`` > 0: the clusters divided along concave creases first
    (:func:`lassm.model.geometric_split.convex_segments`, which needs ``normal`` and ``superpoint``; with
    ``colour_cut`` > 0 also ``colour``, smooth concave joints between superpoints of different colour cut)."""
    cluster = euclidean_clusters(coord, radius, height, min_points)
    if convex_degrees > 0:
        if normal is None or superpoint is None:
            raise ValueError("convex_degrees: the convex division needs the scene's normals and superpoints")
        cluster = convex_segments(coord, normal, superpoint, cluster, convex_degrees, min_points,
                                  colour=colour, colour_cut=colour_cut)
    count = int(cluster.max()) + 1
    masks = cluster[None, :] == np.arange(count)[:, None]
    return SimpleNamespace(masks=torch.as_tensor(masks), scores=torch.ones(count),
                           classes=torch.full((count,), thing_class, dtype=torch.long))


def baseline_split(root: str, split: str, preset_name: str = "tabletop", **params) -> dict:
    """The baseline's ScanNet-protocol AP over ``<root>/<split>`` (scenes read as the preset reads them;
    one thing class, as mOSD and the tabletop frames have)."""
    data = preset(preset_name).data
    things = [i for i in range(len(data.class_names)) if i not in data.stuff_classes]
    if len(things) != 1:
        raise ValueError(f"preset {preset_name!r}: the baseline needs exactly one instance class, "
                         f"got {len(things)}")
    thing = int(train_labels(torch.tensor([things[0]]), len(data.class_names), data.stuff_classes)[0])
    convex = params.get("convex_degrees", 0) > 0
    dataset = SceneDataset.for_config(data, root, split, require_labels=True, with_normal=convex)
    predictions, scenes = [], []
    for i in range(len(dataset.scenes)):
        arrays = {k: v.numpy() for k, v in dataset[i].items() if torch.is_tensor(v)}
        extra = {"normal": arrays["normal"], "superpoint": arrays["superpoint"]} if convex else {}
        if params.get("colour_cut", 0) > 0:
            extra["colour"] = arrays["color"]
        predictions.append(baseline_prediction(arrays["coord"], thing, **params, **extra))
        scenes.append({"segment": arrays["segment"], "instance": arrays["instance"]})
    results = evaluate_predictions(predictions, scenes, data.class_names, data.stuff_classes)
    return {**results, "class_names": list(data.class_names), "stuff": list(data.stuff_classes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lassm.evaluate.baseline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="processed scenes: <root>/<split>/<scene>/")
    parser.add_argument("--split", default="val")
    parser.add_argument("--preset", default="tabletop", choices=("mosd", "tabletop"),
                        help="how the scenes are read (label arrays, classes)")
    parser.add_argument("--radius", type=float, default=RADIUS, help="cluster distance (m)")
    parser.add_argument("--height", type=float, default=HEIGHT, help="table cut above the plane (m)")
    parser.add_argument("--min-points", type=int, default=MIN_POINTS, help="smallest cluster kept")
    parser.add_argument("--convex", type=float, default=0.0, metavar="DEGREES",
                        help="divide the clusters along concave creases first, joints within DEGREES "
                             "smooth (0 = off; the tabletop preset's partition uses 45)")
    parser.add_argument("--colour-cut", type=float, default=0.0, metavar="DISTANCE",
                        help="with --convex: smooth concave joints also need their superpoints' mean colours "
                             "within DISTANCE (RGB 0-1) to hold (0 = off)")
    parser.add_argument("--sweep", action="store_true",
                        help="score radius 0.5-3 cm x height 0.5-2 cm (on a training split)")
    args = parser.parse_args(argv)
    if args.sweep:
        print("radius  height   AP     AP50   AP25")
        for radius in (0.005, 0.0075, 0.01, 0.015, 0.02, 0.03):
            for height in (0.005, 0.01, 0.02):
                r = baseline_split(args.root, args.split, args.preset, radius=radius, height=height,
                                   min_points=args.min_points)
                scores = "  ".join(f"{r[k]:.3f}" for k in ("AP", "AP50", "AP25"))
                print(f"{radius:.4f}  {height:.3f}  {scores}", flush=True)
        return 0
    results = baseline_split(args.root, args.split, args.preset, radius=args.radius, height=args.height,
                             min_points=args.min_points, convex_degrees=args.convex,
                             colour_cut=args.colour_cut)
    print(f"geometric baseline (radius {args.radius} m, height {args.height} m"
          + (f", convex division at {args.convex:g} degrees" if args.convex else "")
          + (f", colour cut {args.colour_cut:g}" if args.colour_cut else "")
          + f"), {args.root}/{args.split}")
    names = [n for i, n in enumerate(results["class_names"]) if i not in results["stuff"]]
    print(InstanceEvaluator(names).format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
