"""Instance segmentation of one scan of your own: read, superpoints, model, masks to files.

    python -m lassm.predict outputs/synthetic/model_best.pth room.ply --out predictions/
    python -m lassm.predict authors_scannet.pth room.ply --out predictions/ --preset scannet --variant -3

The scan can be a triangle mesh ``.ply`` (ScanNet's Segmentator superpoints on the mesh, as in
preprocessing, REFERENCE_SPEC 1.1 step 2), a point-cloud ``.ply`` without faces, a ``.pcd`` or an
``.npy`` array (N, 3) xyz or (N, 6) xyz + rgb in 0..255; point clouds get the kNN-graph
superpoints of :func:`lassm.data.superpoints.segment_points`. Points with non-finite coordinates
are dropped (``point_index`` in the output says which input rows were kept). A scan without
colours gets a constant grey, which the model has never seen in training: expect worse masks.

Reading is :mod:`lassm.data.scans`; loading and preprocessing are :mod:`lassm.inference`, the path
validation and export take (spec 3.3, with the generator validation uses for a split's first scene),
so a scan predicted here gets exactly the masks validation would give it.
Outputs in ``--out``: ``<stem>_instances.npz`` (masks, classes, class_names, scores,
superpoint, point_index, instance) and ``<stem>_instances.ply`` coloured by instance.
"""

from __future__ import annotations

import argparse
import colorsys
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

from .data.io import Mesh, atomic_path, write_mesh_ply
from .data.scans import GREY, read_scan, scan_superpoints
from .inference import load_model, predict_arrays
from .model import Prediction

# ----------------------------------------------------------------------------- outputs


def point_instances(masks: np.ndarray) -> np.ndarray:
    """(N,) the instance of each point, -1 for none; masks (K, N) sorted by score, so the first wins."""
    if masks.shape[0] == 0:
        return np.full(masks.shape[1], -1, np.int64)
    return np.where(masks.any(axis=0), masks.argmax(axis=0), -1).astype(np.int64)


def instance_palette(count: int) -> np.ndarray:
    """(count, 3) uint8 distinct saturated colours (golden-ratio hues), never grey."""
    hues = (np.arange(count) * 0.618033988749895) % 1.0
    values = np.where(np.arange(count) % 2 == 0, 0.95, 0.7)
    rgb = [colorsys.hsv_to_rgb(h, 0.85, v) for h, v in zip(hues, values, strict=True)]
    return (np.asarray(rgb, np.float64).reshape(count, 3) * 255).round().astype(np.uint8)


def write_outputs(out_dir: str | Path, stem: str, scan: dict, superpoint: np.ndarray, pred: Prediction,
                  class_names: tuple[str, ...]) -> tuple[Path, Path]:
    """``<stem>_instances.npz`` and ``<stem>_instances.ply`` in ``out_dir``, each written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    masks = pred.masks.cpu().numpy()  # (K, N) bool
    classes = pred.classes.cpu().numpy().astype(np.int64)  # (K,) train labels = instance-class indices
    owner = point_instances(masks)  # (N,)
    npz_path, ply_path = out_dir / f"{stem}_instances.npz", out_dir / f"{stem}_instances.ply"
    with atomic_path(npz_path) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no suffix
        np.savez_compressed(
            f, masks=masks, classes=classes, scores=pred.scores.cpu().numpy().astype(np.float32),
            class_names=np.array([class_names[c] for c in classes], dtype=str).reshape(len(classes)),
            superpoint=superpoint, point_index=scan["point_index"], instance=owner)
    palette = np.concatenate([instance_palette(len(masks)), np.full((1, 3), GREY, np.uint8)])
    colors = palette[owner]  # (N, 3); owner -1 picks the grey last row
    if scan["faces"] is not None:
        write_mesh_ply(ply_path, Mesh(vertices=scan["coord"], colors=colors, faces=scan["faces"]))
    else:
        vertex = np.empty(len(colors), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"),
                                              ("green", "u1"), ("blue", "u1"), ("instance", "<i4")])
        for i, k in enumerate("xyz"):
            vertex[k] = scan["coord"][:, i]
        for i, k in enumerate(("red", "green", "blue")):
            vertex[k] = colors[:, i]
        vertex["instance"] = owner
        with atomic_path(ply_path) as tmp, open(tmp, "wb") as f:
            PlyData([PlyElement.describe(vertex, "vertex")]).write(f)
    return npz_path, ply_path


def summary(pred: Prediction, class_names: tuple[str, ...], top: int = 10) -> str:
    """Instance count per class and the ``top`` best instances with score and size."""
    classes = pred.classes.cpu().tolist()
    sizes = pred.masks.sum(dim=1).cpu().tolist()
    scores = pred.scores.cpu().tolist()
    lines = [f"instances: {len(classes)}"]
    for name, count in Counter(class_names[c] for c in classes).most_common():
        lines.append(f"  {name:<24} {count}")
    if classes:
        lines.append(f"top {min(top, len(classes))} instances:")
        lines.append(f"  {'#':>4}  {'class':<24} {'score':>6} {'points':>8}")
    for i in range(min(top, len(classes))):
        lines.append(f"  {i:>4}  {class_names[classes[i]]:<24} {scores[i]:>6.3f} {sizes[i]:>8}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line


def run(checkpoint, scan_path, out_dir, preset=None, variant=None, device=None, viewpoint=None,
        top: int = 10) -> tuple[Path, Path]:
    """The whole command: read, superpoints, predict, write, print a summary; returns the two paths."""
    started = time.perf_counter()
    model, cfg = load_model(checkpoint, preset, variant, device)
    device = next(model.parameters()).device
    loaded = time.perf_counter()
    scan = read_scan(scan_path)
    superpoint = scan_superpoints(scan, viewpoint)
    read = time.perf_counter()
    arrays = {"coord": scan["coord"], "color": scan["color"], "superpoint": superpoint}
    pred = predict_arrays(model, cfg, arrays, device)
    predicted = time.perf_counter()
    names = cfg.data.instance_class_names  # Prediction.classes index the non-stuff classes (evaluate.py)
    paths = write_outputs(out_dir, Path(scan_path).stem, scan, superpoint, pred, names)
    written = time.perf_counter()
    kind = "mesh" if scan["faces"] is not None else "point cloud"
    dropped = scan["num_input"] - len(scan["coord"])
    print(f"{scan_path}: {kind}, {len(scan['coord'])} points"
          + (f" ({dropped} non-finite dropped)" if dropped else "")
          + f", {int(superpoint.max()) + 1} superpoints"
          + ("" if scan["has_color"] else f", no colours (constant grey {GREY} used)"))
    print(f"device {device}; seconds: model load {loaded - started:.1f}, read + superpoints "
          f"{read - loaded:.1f}, predict {predicted - read:.1f}, write {written - predicted:.1f}")
    print(summary(pred, names, top))
    print(f"wrote {paths[0]} and {paths[1]}")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lassm.predict",
        description="Instance masks for one scan (.ply mesh or cloud, .pcd, .npy).")
    parser.add_argument("checkpoint", help="model_best.pth / model_last.pth of a run, or a foreign .pth "
                                           "with --preset")
    parser.add_argument("scan", help="mesh or point-cloud .ply, .pcd, or .npy of shape (N, 3) / (N, 6)")
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--preset", default=None,
                        help="build the model from this preset (for foreign checkpoints)")
    parser.add_argument("--variant", default=None, help="decoder variant of --preset: -3 (default) or -0")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1")
    parser.add_argument("--viewpoint", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                        help="sensor position that point-cloud normals face (default: bounding-box centre)")
    parser.add_argument("--top", type=int, default=10, help="instances listed in the summary")
    args = parser.parse_args(argv)
    try:
        run(args.checkpoint, args.scan, args.out, args.preset, args.variant, args.device, args.viewpoint,
            args.top)
    except ValueError as err:  # DataError and bad parameters: the message names the file or parameter
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
