"""Instance segmentation of scans of your own: read, preprocess as the checkpoint's training data was,
predict, write masks, a coloured PLY and an HTML view.

    python -m lassm.predict outputs/mosd-3/model_best.pth scan.pcd --out predictions/
    python -m lassm.predict outputs/mosd-3/model_best.pth scans/ --out predictions/    # a whole folder
    python -m lassm.predict outputs/mosd-3/model_best.pth "scans/*.pcd" --out predictions/
    python -m lassm.predict authors_scannet.pth room.ply --out predictions/ --preset scannet --variant -3

Scans: a triangle mesh ``.ply``, a point-cloud ``.ply`` without faces, a ``.pcd`` (organised or not) or
an ``.npy`` array (N, 3) xyz or (N, 6) xyz + rgb in 0..255. The checkpoint's config says how its
training scenes were made (``data.scan``, :func:`lassm.data.scans.load_scan`): ScanNet-like meshes in
their own frame, or single RGB-D views (mOSD, tabletop) put into their support-plane frame with
pixel-grid or kNN-graph superpoints; ``--frame`` overrides it, and says so. Loading and preprocessing
are :mod:`lassm.inference`, the path validation and export take, so a scan predicted here gets the
masks the dataset path gives the same file. Points with non-finite coordinates (and, for single views,
pixels in no surface triangle) are left out: ``point_index`` says which rows of the file were used.

Outputs in ``--out``, per scan (each written atomically; a rerun skips scans already done unless
``--overwrite``): ``<stem>_instances.npz`` (masks, classes, class_names, scores, superpoint,
point_index, instance, coord, semantic, and for single views table_from_camera), ``<stem>_instances.ply``
(the scan's points coloured by instance), ``<stem>_instances.html`` (a 3-D view, instance, semantic or
scan colours; plotly.js is written once beside it) and ``<stem>_semantic.txt`` (the semantic-label
benchmark's format, :mod:`lassm.evaluate.semantic`: one label id per point used, in ``point_index``
order, 0 = background).

Semantic labels come from the superpoint semantic head of the same forward pass
(``Prediction.semantic``): in the npz, ``semantic`` is each point's index into the checkpoint's
``data.class_names`` (-1 = background: the head has no stuff classes) and ``semantic_class_names``
that list; the text file holds the class's benchmark id (:func:`lassm.evaluate.export.semantic_label_ids`).
"""

from __future__ import annotations

import argparse
import colorsys
import glob
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

from .cli import add_split_arguments, check_output_dir, dash_values, run_command
from .config import Config
from .data.io import DataError, Mesh, atomic_path, save_npz, write_mesh_ply
from .data.scans import GREY, SCAN_SUFFIXES, load_scan
from .evaluate.export import semantic_label_ids
from .evaluate.semantic import write_labels
from .inference import open_model, override_split, predict_arrays
from .model import LaSSM, Prediction

# ----------------------------------------------------------------------------- which scans


def find_scans(sources: list[str | Path]) -> list[Path]:
    """Files, folders (their scans, not recursive) and glob patterns -> scan files in a stable order."""
    found: list[Path] = []
    for source in map(str, sources):
        path = Path(source)
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.suffix.lower() in SCAN_SUFFIXES)
            if not matches:
                raise DataError(f"{path}: no scans ({', '.join(SCAN_SUFFIXES)}) in this folder")
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(source):
            matches = sorted(Path(p) for p in glob.glob(source) if Path(p).suffix.lower() in SCAN_SUFFIXES)
            if not matches:
                raise DataError(f"{source}: the pattern matches no scan files")
        else:
            raise DataError(f"{path}: scan file not found")
        found.extend(m for m in matches if m not in found)
    stems = Counter(p.stem for p in found)
    clashes = sorted(s for s, n in stems.items() if n > 1)
    if clashes:
        raise DataError(f"scans: several files share the name {clashes[0]!r} and would write the same "
                        f"outputs; predict them into separate --out folders")
    return found


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


def output_paths(out_dir: str | Path, stem: str) -> dict[str, Path]:
    out_dir = Path(out_dir)
    paths = {k: out_dir / f"{stem}_instances.{k}" for k in ("npz", "ply", "html")}
    return {**paths, "semantic": out_dir / f"{stem}_semantic.txt"}


def semantic_colors(semantic: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, 3) uint8: one colour per semantic class, grey for background (-1)."""
    palette = np.concatenate([instance_palette(num_classes), np.full((1, 3), GREY, np.uint8)])
    return palette[np.where(semantic >= 0, semantic, num_classes)]


def write_outputs(out_dir: str | Path, stem: str, scan: dict, pred: Prediction,
                  class_names: tuple[str, ...], html: bool = True, semantic_names: tuple[str, ...] = (),
                  semantic_ids: np.ndarray | None = None) -> dict[str, Path]:
    """The scan's npz, PLY, (with ``html``) HTML view and, when ``pred`` carries semantic labels, its
    semantic file in ``out_dir``; the npz is written last, so its presence marks a finished scan.

    class_names: the instance classes (``Prediction.classes`` index them); semantic_names: every class of
    the dataset (``Prediction.semantic`` indexes them; without them no semantic outputs are written);
    semantic_ids: (len(semantic_names),) the benchmark label id of each, for the semantic file (default:
    index + 1).
    """
    paths = output_paths(out_dir, stem)
    semantic = None if pred.semantic is None or not semantic_names else \
        pred.semantic.cpu().numpy().astype(np.int64)  # (N,)
    if semantic is not None and len(semantic) and semantic.max() >= len(semantic_names):
        raise ValueError(f"semantic_names: expected at least {semantic.max() + 1} class names, got "
                         f"{len(semantic_names)}")
    masks = pred.masks.cpu().numpy()  # (K, N) bool
    classes = pred.classes.cpu().numpy().astype(np.int64)  # (K,) train labels = instance-class indices
    owner = point_instances(masks)  # (N,)
    extra = {} if scan["plane"] is None else {"table_from_camera": scan["plane"]["table_from_camera"]}
    if semantic is not None:
        extra.update(semantic=semantic, semantic_class_names=np.array(semantic_names, dtype=str))
    # the npz compresses on a thread (zlib lets go of the GIL) while the other files are written, and
    # is renamed into place after them
    with atomic_path(paths["npz"]) as tmp, ThreadPoolExecutor(1) as pool:
        saving = pool.submit(
            save_npz, tmp, masks=masks, classes=classes, scores=pred.scores.float().cpu().numpy(),
            class_names=np.array([class_names[c] for c in classes], dtype=str).reshape(len(classes)),
            superpoint=scan["superpoint"], point_index=scan["point_index"], instance=owner,
            coord=scan["coord"], **extra)
        if semantic is not None:
            ids = np.arange(1, len(semantic_names) + 1) if semantic_ids is None else np.asarray(semantic_ids)
            label_ids = np.where(semantic >= 0, ids[np.clip(semantic, 0, None)], 0)  # (N,) 0 = background
            write_labels(out_dir, paths["semantic"].stem, label_ids)
        palette = np.concatenate([instance_palette(len(masks)), np.full((1, 3), GREY, np.uint8)])
        colors = palette[owner]  # (N, 3); owner -1 picks the grey last row
        write_instances_ply(paths["ply"], scan, colors, owner)
        if html:
            modes = {} if semantic is None else {"semantic": semantic_colors(semantic, len(semantic_names))}
            write_html_view(paths["html"], scan, colors, title=f"{stem}: {len(masks)} instances", **modes)
        saving.result()
    return paths


def write_instances_ply(path: Path, scan: dict, colors: np.ndarray, owner: np.ndarray) -> None:
    """The scan's points (or mesh) in the file's coordinates, coloured by instance; clouds also carry
    each point's ``instance`` (-1 = none)."""
    if scan["faces"] is not None:
        write_mesh_ply(path, Mesh(vertices=scan["source_coord"], colors=colors, faces=scan["faces"]))
        return
    vertex = np.empty(len(colors), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"),
                                          ("green", "u1"), ("blue", "u1"), ("instance", "<i4")])
    for i, k in enumerate("xyz"):
        vertex[k] = scan["source_coord"][:, i]
    for i, k in enumerate(("red", "green", "blue")):
        vertex[k] = colors[:, i]
    vertex["instance"] = owner
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        PlyData([PlyElement.describe(vertex, "vertex")]).write(f)


def write_html_view(path: Path, scan: dict, instance_colors: np.ndarray, title: str,
                    semantic: np.ndarray | None = None) -> Path | None:
    """A standalone 3-D view (points by instance, by semantic class when ``semantic`` (N, 3) colours are
    given, or by the scan's colours); plotly.js is written once into the same folder. Needs plotly (the
    ``notebooks`` extra); without it, a note and no file."""
    try:
        from .viz import save_html, scene_view_figure
    except ImportError:
        print(f"note: plotly is not installed; no HTML view for {path.stem}", file=sys.stderr)
        return None
    modes = {"instance": instance_colors}
    if semantic is not None:
        modes["semantic"] = semantic
    if scan["has_color"]:
        modes["scan colours"] = scan["color"]
    fig = scene_view_figure(scan["coord"], modes, max_points=300_000, title=title)
    return save_html(fig, path, plotlyjs="directory")


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


# ----------------------------------------------------------------------------- the command


def segment_scan(model: LaSSM, cfg: Config, path: str | Path, device, frame: str | None = None,
                 viewpoint=None) -> tuple[dict, Prediction]:
    """One scan file -> (its preprocessed arrays, :func:`lassm.data.scans.load_scan`, and its instances)."""
    scan = load_scan(path, cfg.data.scan, frame=frame, viewpoint=viewpoint)
    return scan, predict_arrays(model, cfg, scan, device)


def describe(path: Path, scan: dict, pred: Prediction) -> str:
    dropped = scan["num_input"] - len(scan["coord"])
    line = (f"{path}: {scan['kind']}, {len(scan['coord'])} points"
            + (f" ({dropped} of {scan['num_input']} left out: invalid or in no surface)" if dropped else "")
            + f", {int(np.unique(scan['superpoint']).size)} superpoints, {len(pred.scores)} instances")
    if scan["plane"] is not None:
        line += (f"; support plane: {scan['plane']['inlier_fraction']:.0%} of points, "
                 f"tilt {scan['plane']['tilt_degrees']:.1f} deg from the camera's up")
    if not scan["has_color"]:
        line += f"; no colours (constant grey {GREY} used)"
    return line


def run(checkpoint, scans, out_dir, preset=None, variant=None, device=None, viewpoint=None, top: int = 10,
        frame: str | None = None, html: bool = True, overwrite: bool = False,
        trusted: bool = False, split: tuple[float, str] | None = None, convex: float | None = None,
        colour: float | None = None) -> list[dict]:
    """The whole command over one or more scans (files, folders, globs): one model load, a progress bar,
    a line and a summary per scan; a scan that fails is reported and the others go on. Returns one row
    per scan: scan, status ("done", "skipped", "failed"), points, instances, seconds, paths or error.
    ``trusted``: allow unpickling a legacy checkpoint (:func:`lassm.inference.load_model`). ``split``:
    (radius, mode) overriding the checkpoint's ``model.postprocess.split_radius`` and ``split_mode``
    (single-view scans: masks cut along the gaps between objects, :mod:`lassm.model.geometric_split`).
    ``convex``: degrees overriding ``model.postprocess.split_convex_degrees`` (the partition's clusters
    divided along concave creases first; 0 = off); ``colour``: ``model.postprocess.split_colour_cut``
    (smooth concave joints between superpoints of different colour cut too; 0 = off)."""
    from .progress import tqdm

    paths = find_scans([scans] if isinstance(scans, (str, Path)) else scans)
    check_outputs(out_dir, paths)
    started = time.perf_counter()
    model, cfg, info = open_model(checkpoint, preset, variant, device, trusted=trusted)
    radius, mode = split if split is not None else (None, "partition")
    override_split(cfg, radius, mode, convex, colour)  # None keeps the checkpoint's setting
    print(info["summary"])  # which epoch, step and validation scores the checkpoint carries
    device = next(model.parameters()).device
    used = frame or cfg.data.scan.frame
    print(f"{checkpoint}: {cfg.release or cfg.data.name} model on {device}, loaded in "
          f"{time.perf_counter() - started:.1f} s; scans preprocessed in the '{used}' frame"
          + (f" (--frame overrides the checkpoint's '{cfg.data.scan.frame}')" if frame and
             frame != cfg.data.scan.frame else " (as its training data)"))
    names = cfg.data.instance_class_names  # Prediction.classes index the non-stuff classes
    semantic_ids = label_table(cfg)  # Prediction.semantic indexes cfg.data.class_names
    rows = []
    for path in tqdm(paths, desc="predict", unit="scan", disable=len(paths) < 2):
        if not overwrite and output_paths(out_dir, path.stem)["npz"].is_file():
            rows.append({"scan": str(path), "status": "skipped"})
            continue
        begin = time.perf_counter()
        try:
            scan, pred = segment_scan(model, cfg, path, device, frame, viewpoint)
            written = write_outputs(out_dir, path.stem, scan, pred, names, html, cfg.data.class_names,
                                    semantic_ids)
        except (DataError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            rows.append({"scan": str(path), "status": "failed", "error": str(err)})
            continue
        seconds = time.perf_counter() - begin
        print(describe(path, scan, pred) + f"; {seconds:.1f} s")
        if len(paths) == 1:
            print(summary(pred, names, top))
        print("wrote " + ", ".join(str(p) for p in written.values() if p.is_file()))
        rows.append({"scan": str(path), "status": "done", "points": len(scan["coord"]),
                     "instances": len(pred.scores), "seconds": seconds, "paths": written})
    if len(paths) > 1:
        print(summary_table(rows))
    return rows


def label_table(cfg: Config) -> np.ndarray | None:
    """The benchmark label id of each of ``cfg.data.class_names`` (export's table); None (index + 1) for a
    dataset without a benchmark class list."""
    try:
        return semantic_label_ids(cfg)
    except ValueError:
        return None


def check_outputs(out_dir: str | Path, paths: list[Path]) -> None:
    """Before the model loads: ``out_dir`` can be a folder (it, or its first existing parent, is a
    writable folder) and no scan's output path is a folder."""
    check_output_dir(out_dir, "--out")
    for path in paths:
        for written in output_paths(out_dir, path.stem).values():
            if written.is_dir():
                raise IsADirectoryError(f"--out: {written} is a folder; the output file of {path} goes there")


def summary_table(rows: list[dict]) -> str:
    lines = [f"{'scan':<40} {'status':<8} {'points':>8} {'instances':>9} {'seconds':>8}"]
    for r in rows:
        seconds = f"{r['seconds']:.1f}" if "seconds" in r else ""
        lines.append(f"{Path(r['scan']).name:<40} {r['status']:<8} {r.get('points', ''):>8} "
                     f"{r.get('instances', ''):>9} {seconds:>8}")
    counts = Counter(r["status"] for r in rows)
    lines.append(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lassm.predict",
        description="Instance masks for scans (.ply mesh or cloud, .pcd, .npy; files, folders or globs).")
    parser.add_argument("checkpoint", help="model_best.pth / model_last.pth of a run, or a foreign .pth "
                                           "with --preset")
    parser.add_argument("scan", nargs="+", help="scan files, folders of scans, or glob patterns")
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--preset", default=None,
                        help="build the model from this preset (for foreign checkpoints)")
    parser.add_argument("--variant", default=None,
                        help="decoder variant of --preset: -3 (default) or -0 (scannetpp also -3-sc, -0-sc)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1")
    parser.add_argument("--frame", default=None, choices=("dataset", "support_plane"),
                        help="override the checkpoint's scan preprocessing: the file's own frame, or a "
                             "single RGB-D view put into its support-plane frame")
    parser.add_argument("--viewpoint", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                        help="dataset frame: sensor position that point-cloud normals face "
                             "(default: bounding-box centre)")
    parser.add_argument("--top", type=int, default=10, help="instances listed in a one-scan summary")
    parser.add_argument("--no-html", action="store_true", help="skip the HTML views")
    parser.add_argument("--overwrite", action="store_true", help="redo scans whose outputs exist")
    add_split_arguments(parser)
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow unpickling a legacy checkpoint; only for files from a source you trust")
    args = parser.parse_args(dash_values(argv))
    return run_command(lambda: _command(args))


def _command(args) -> int:
    """Exit status 1 when some scans failed (each reported, the others written); bad input raises (2)."""
    if args.top < 0:
        raise ValueError(f"--top: expected 0 or more instances, got {args.top}")
    split = None if args.split_radius is None else (args.split_radius, args.split_mode)
    rows = run(args.checkpoint, args.scan, args.out, args.preset, args.variant, args.device,
               args.viewpoint, args.top, args.frame, not args.no_html, args.overwrite, args.trust_checkpoint,
               split, args.split_convex, args.split_colour)
    return 1 if any(r["status"] == "failed" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
