"""The official ScanNet instance benchmark on its own file format (REFERENCE_SPEC 9, issue 6).

Reads and writes the layout of ScanNet's `BenchmarkScripts/3d_evaluation/evaluate_semantic_instance.py`
and reports its numbers: AP (mean over the nine overlaps 0.50..0.90), AP50 and AP25, overall and per class.

Layout:
- predictions: PRED_DIR/<scene>.txt, one line per predicted instance, `relative/mask/path label_id confidence`
  separated by single spaces; the mask file (path relative to PRED_DIR, inside it) holds one 0/1 per line,
  one line per mesh vertex.
- ground truth: GT_DIR/<scene>.txt, one integer per vertex, label_id * 1000 + instance (instance >= 1);
  0 = unannotated. Vertices whose label_id (= value // 1000) is not one of the evaluated class ids are void.
The scenes evaluated are the prediction files (all `*.txt` at the top of PRED_DIR except the official
output name `semantic_instance_evaluation.txt`).

Label ids (`benchmark_classes`): ScanNet20 and ScanNet200 use the official raw ids without wall and floor
(18 classes; 198 classes, where ScanNet200's floor is id 3 and id 2 is chair, as the official
`VALID_PANOPTIC_IDS = (1, 3)` says). ScanNet++ and mOSD have no official ids: there a label id is the
class's index in `CLASS_LABELS_PP` / `CLASS_LABELS_MOSD` plus one (0 stays "unannotated"), over their
instance classes only: the 84 of `INSTANCE_CLASS_IDS_PP` (ids 4..100), and mOSD's "object" (id 2; "table",
id 1, is stuff).

The protocol is the official one; the matching and AP reuse `lassm.evaluate.ap` (`scene_matches`,
`InstanceEvaluator`, `average_precision`), which follows the same script. Details that the file format
adds, each checked against the official script:
- a prediction line is split on single spaces into exactly 3 fields; the label is read as int(float(x)),
  the confidence as float(x); the mask path must be relative and (after normalisation) inside PRED_DIR.
  Several lines naming the same mask file collapse into one prediction at the first line's position with
  the last line's label and confidence (the official script keys a dict by the mask path).
- mask nonzero = in the instance; a prediction with fewer than 100 vertices is dropped (after the check
  that the mask has one line per GT vertex).
- the official script silently skips prediction labels outside the class list. Here a label the dataset
  defines but does not evaluate (ScanNet's wall, floor and other NYU40 ids 1..40; ScanNet200's 200 ids;
  `dataset_label_ids`) is skipped the same way, and an id the dataset does not define at all is an error
  naming the file and line, unless `unknown_labels="skip"` (CLI `--skip-unknown-labels`) skips it too.
- the official script marks predictions "visited" by mask path across all scenes, so a mask file shared
  by two prediction files makes its result depend on the directory listing order; that is an error here.
- a class with GT whose predictions all end up neither matched nor false positive (all ignored) crashes the
  official script (empty score list); `average_precision` gives AP 0 there, which is what we report.
- classes without GT of at least 100 vertices are NaN (JSON null) and left out of the means.

`main` is the command line `python -m lassm.evaluate --pred PRED_DIR --gt GT_DIR [--classes C] [--json OUT]`;
`--format scannetpp` scores the ScanNet++ toolkit's own format instead (`lassm.evaluate.scannetpp_format`).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..cli import check_output_file, run_command
from ..data.io import atomic_path
from ..data.labels import (
    CLASS_LABELS_20,
    CLASS_LABELS_200,
    CLASS_LABELS_MOSD,
    CLASS_LABELS_PP,
    INSTANCE_CLASS_IDS_PP,
    VALID_CLASS_IDS_20,
    VALID_CLASS_IDS_200,
)
from .ap import MIN_REGION_SIZE, InstanceEvaluator
from .files import (
    BenchmarkFileError,
    check_scene_name,
    prediction_arrays,
    prediction_line,
    read_lines,
    report_missing,
    scene_files,
    write_results_json,
)
from .files import (
    read_int_lines as read_ints,
)
from .scannetpp_format import evaluate_scannetpp
from .semantic import semantic_command

CLASS_LISTS = ("scannet20", "scannet200", "scannetpp", "mosd")
RESULT_FILE = "semantic_instance_evaluation.txt"  # the official script's output name; never a scene
MASK_FOLDER = "predicted_masks"


def benchmark_classes(name: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(class names, label ids) of the instance classes evaluated for class list `name` (module docstring)."""
    if name == "scannet20":
        pairs = zip(CLASS_LABELS_20, VALID_CLASS_IDS_20, strict=True)
    elif name == "scannet200":
        pairs = zip(CLASS_LABELS_200, VALID_CLASS_IDS_200, strict=True)
    elif name == "scannetpp":
        pairs = ((CLASS_LABELS_PP[i], i + 1) for i in INSTANCE_CLASS_IDS_PP)
    elif name == "mosd":
        pairs = ((CLASS_LABELS_MOSD[1], 2),)
    else:
        raise ValueError(f"classes: expected one of {CLASS_LISTS}, got {name!r}")
    if name in ("scannet20", "scannet200"):  # wall and floor are stuff (ScanNet200: ids 1 and 3)
        pairs = ((n, i) for n, i in pairs if n not in ("wall", "floor"))
    names, ids = zip(*pairs, strict=True)
    return tuple(names), tuple(int(i) for i in ids)


def dataset_label_ids(name: str) -> frozenset[int]:
    """Every label id class list `name`'s dataset defines, evaluated or not (ScanNet20: NYU40's 1..40)."""
    _, ids = benchmark_classes(name)  # checks the name
    if name == "scannet20":
        return frozenset(range(1, 41))
    if name == "scannet200":
        return frozenset(int(i) for i in VALID_CLASS_IDS_200)
    if name == "scannetpp":
        return frozenset(range(1, len(CLASS_LABELS_PP) + 1))
    return frozenset(range(1, len(CLASS_LABELS_MOSD) + 1))


# ------------------------------------------------------------------------------- writing


def _write_ints(path: Path, values: np.ndarray) -> None:
    """Write one integer per line, atomically."""
    text = "\n".join(map(str, values.tolist())) + "\n" if len(values) else ""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_predictions(out_dir, scene: str, masks, label_ids, scores) -> Path:
    """Write one scene's predictions: `<scene>.txt` and `predicted_masks/<scene>_<k:03d>.txt`.

    masks: (K, N) bool; label_ids: (K,) benchmark label ids; scores: (K,) confidences.
    The masks are written first, the scene file last, so a scene file never points at missing masks.
    Returns the scene file's path.
    """
    out_dir = Path(out_dir)
    check_scene_name(scene)
    masks, label_ids, scores = prediction_arrays(masks, label_ids, scores)
    lines = []
    for k in range(masks.shape[0]):
        rel = f"{MASK_FOLDER}/{scene}_{k:03d}.txt"
        _write_ints(out_dir / rel, (masks[k] != 0).astype(np.int64))
        lines.append(f"{rel} {int(label_ids[k])} {float(scores[k])!r}\n")
    path = out_dir / f"{scene}.txt"
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines))
    return path


def write_gt(out_dir, scene: str, label_ids, instance, classes: str | None = None) -> Path:
    """Write one scene's GT file: label_id * 1000 + instance per vertex, 0 = unannotated.

    label_ids: (N,) benchmark label ids (<= 0 = unannotated); instance: (N,) ids, -1 = none. Instance ids
    are renumbered 1..M in ascending order (the official convention starts at 1). With `classes` set,
    vertices whose label is not one of its instance classes are written as 0 (the evaluation treats
    them as void either way). Returns the file's path.
    """
    check_scene_name(scene)
    label_ids = np.asarray(label_ids).astype(np.int64).reshape(-1)
    instance = np.asarray(instance).astype(np.int64).reshape(-1)
    if label_ids.shape != instance.shape:
        raise ValueError(f"instance: expected {len(label_ids)} ids like label_ids, got {len(instance)}")
    keep = (instance >= 0) & (label_ids > 0)
    if classes is not None:
        keep &= np.isin(label_ids, benchmark_classes(classes)[1])
    unique, inverse = np.unique(instance[keep], return_inverse=True)
    if len(unique) >= 1000:
        raise ValueError(f"instance: expected fewer than 1000 instances per scene, got {len(unique)}")
    gt = np.zeros(len(label_ids), dtype=np.int64)  # (N,)
    gt[keep] = label_ids[keep] * 1000 + inverse.reshape(-1) + 1
    path = Path(out_dir) / f"{scene}.txt"
    _write_ints(path, gt)
    return path


# ------------------------------------------------------------------------------- reading


def read_mask(path, num_vertices: int, gt_file=None) -> np.ndarray:
    """(N,) bool mask from a mask file; one 0/1 per GT vertex. A mask longer than the scene's
    ``gt_file`` (when given) blames the GT file: the masks come from the scene, a short GT file is the
    usual culprit (truncated, or of another scene)."""
    path = Path(path)
    data = None
    try:
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as err:
        raise BenchmarkFileError(f"{path}: cannot read ({err})") from err
    # Fast path for the usual "0\n1\n..." text; anything else goes through the line parser.
    if len(data) == 2 * num_vertices and (data[1::2] == 10).all() and (data[0::2] <= 49).all() \
            and (data[0::2] >= 48).all():
        return data[0::2] == 49
    values = read_ints(path)
    if gt_file is not None and len(values) > num_vertices:
        raise BenchmarkFileError(f"{gt_file}: {num_vertices} lines (one per vertex), shorter than the "
                                 f"scene's mask {path} with {len(values)} lines; is the GT file truncated "
                                 f"or of another scene?")
    if len(values) != num_vertices:
        raise BenchmarkFileError(f"{path}, line {min(len(values), num_vertices) + 1}: expected "
                                 f"{num_vertices} lines (one per GT vertex), got {len(values)}")
    bad = np.flatnonzero((values != 0) & (values != 1))
    if len(bad):
        raise BenchmarkFileError(f"{path}, line {bad[0] + 1}: expected 0 or 1, got {values[bad[0]]}")
    return values == 1


def read_prediction_file(path, pred_dir) -> dict[str, tuple[int, float, int]]:
    """{absolute mask path: (label id, confidence, line number)} in line order, as the official dict."""
    path, root = Path(path), os.path.abspath(pred_dir)
    entries: dict[str, tuple[int, float, int]] = {}
    for n, line in enumerate(read_lines(path), start=1):
        where = f"{path}, line {n}"
        mask_path, label, conf = prediction_line(line, where, root, root)
        try:
            label_id = int(float(label))
        except (ValueError, OverflowError):
            raise BenchmarkFileError(f"{where}: expected an integer label id, got {label!r}") from None
        try:
            confidence = float(conf)
        except ValueError:
            confidence = math.nan
        if math.isnan(confidence):
            raise BenchmarkFileError(f"{where}: expected a numeric confidence, got {conf!r}")
        entries[mask_path] = (label_id, confidence, n)  # a repeated path keeps its first position
    return entries


# ------------------------------------------------------------------------------- evaluation


def evaluate_benchmark(pred_dir, gt_dir, classes: str = "scannet20", unknown_labels: str = "error",
                       groups: dict[str, str] | None = None) -> dict:
    """The official benchmark's numbers for PRED_DIR against GT_DIR (module docstring for the format).

    Returns {"ap", "ap50", "ap25", "classes": {name: {"ap", "ap50", "ap25"}}, "num_scenes"}; NaN (no GT
    of that class) where the official script has NaN. ``groups`` (scene -> group name): also the same
    numbers over each group's scenes alone, under "groups" ({group: {"ap", "ap50", "ap25",
    "num_scenes"}}, scenes of no group under "other").
    """
    if unknown_labels not in ("error", "skip"):
        raise ValueError(f"unknown_labels: expected 'error' or 'skip', got {unknown_labels!r}")
    names, ids = benchmark_classes(classes)
    known = dataset_label_ids(classes)
    index = {label_id: c for c, label_id in enumerate(ids)}
    sorted_ids = np.array(sorted(ids), dtype=np.int64)
    index_of_sorted = np.array([index[i] for i in sorted_ids.tolist()], dtype=np.int64)
    evaluator = InstanceEvaluator(names, min_region_size=MIN_REGION_SIZE)
    by_group: dict[str, list] = {}  # group -> [evaluator, scenes]
    owner: dict[str, Path] = {}  # mask path -> prediction file naming it
    scenes = scene_files(pred_dir, gt_dir, skip=(RESULT_FILE,))
    for scene, pred_file, gt_file in scenes:
        gt_ids = read_ints(gt_file)  # (N,)
        label = gt_ids // 1000  # floor division, like the official script
        pos = np.clip(np.searchsorted(sorted_ids, label), 0, len(sorted_ids) - 1)
        valid = sorted_ids[pos] == label  # (N,) label is an evaluated class; the rest is void
        gt_class = np.where(valid, index_of_sorted[pos], -1)  # (N,) class index, -1 = void
        gt_instance = np.where(valid, gt_ids, -1)  # (N,) GT id, -1 = none
        masks, scores, pred_classes = [], [], []
        for mask_path, (label_id, confidence, line) in read_prediction_file(pred_file, pred_dir).items():
            if label_id not in index:
                if unknown_labels == "skip" or label_id in known:
                    continue  # the official script's behaviour
                raise BenchmarkFileError(f"{pred_file}, line {line}: label id {label_id} is not a {classes} "
                                         f"label id (instance classes: {list(ids)})")
            if mask_path in owner and owner[mask_path] != pred_file:
                raise BenchmarkFileError(f"{pred_file}, line {line}: mask file {mask_path} is also used by "
                                         f"{owner[mask_path]}; each scene needs its own mask files")
            owner[mask_path] = pred_file
            masks.append(read_mask(mask_path, len(gt_ids), gt_file))
            scores.append(confidence)
            pred_classes.append(index[label_id])
        pred_masks = np.stack(masks) if masks else np.zeros((0, len(gt_ids)), dtype=bool)  # (K, N)
        scored = (pred_masks, np.asarray(scores, dtype=np.float64), np.asarray(pred_classes, np.int64),
                  gt_instance, gt_class)
        evaluator.add(*scored)
        if groups is not None:
            group = by_group.setdefault(groups.get(scene, "other"),
                                        [InstanceEvaluator(names, min_region_size=MIN_REGION_SIZE), 0])
            group[0].add(*scored)
            group[1] += 1
    res = evaluator.compute()
    per_class = {name: {"ap": r["AP"], "ap50": r["AP50"], "ap25": r["AP25"]}
                 for name, r in res["per_class"].items()}
    results = {"ap": res["AP"], "ap50": res["AP50"], "ap25": res["AP25"], "classes": per_class,
               "num_scenes": len(scenes)}
    if groups is not None:
        results["groups"] = {}
        for name in sorted(by_group, key=lambda g: (g == "other", g)):
            group, count = by_group[name]
            r = group.compute()
            results["groups"][name] = {"ap": r["AP"], "ap50": r["AP50"], "ap25": r["AP25"],
                                       "num_scenes": count}
    return results


def scene_groups(spec: str, gt_dir) -> dict[str, str]:
    """``--groups``: "mosd" (the learn scans' groups, lassm.data.mosd.SCENE_GROUPS, by scene name) or a
    text file of "scene,group" lines (a header line "scene,group" is allowed)."""
    if spec == "mosd":
        from ..data.mosd import scene_group

        names = [p.stem for p in Path(gt_dir).glob("*.txt") if p.name != RESULT_FILE]
        return {name: group for name in names if (group := scene_group(name)) is not None}
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--groups: expected 'mosd' or a file of 'scene,group' lines, "
                                f"{spec} is neither")
    groups = {}
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip() or (number == 1 and line.strip().lower() == "scene,group"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not all(parts):
            raise BenchmarkFileError(f"{path}, line {number}: expected 'scene,group', got {line.strip()!r}")
        groups[parts[0]] = parts[1]
    return groups


def format_results(results: dict) -> str:
    """A readable table: class, AP, AP50, AP25 per class, then the average row (nan = no GT)."""
    width = max(15, *(len(n) for n in results["classes"]))
    line = "-" * (width + 27)
    rows = [f"{'class':<{width}} {'AP':>8} {'AP50':>8} {'AP25':>8}", line]
    for name, r in results["classes"].items():
        rows.append(f"{name:<{width}} {r['ap']:>8.3f} {r['ap50']:>8.3f} {r['ap25']:>8.3f}")
    average = f"{results['ap']:>8.3f} {results['ap50']:>8.3f} {results['ap25']:>8.3f}"
    rows += [line, f"{'average':<{width}} {average}"]
    if "groups" in results:
        width = max(15, *(len(g) for g in results["groups"]))
        line = "-" * (width + 35)
        rows += ["", f"{'scene group':<{width}} {'scenes':>7} {'AP':>8} {'AP50':>8} {'AP25':>8}", line]
        for name, r in results["groups"].items():
            scores = f"{r['ap']:>8.3f} {r['ap50']:>8.3f} {r['ap25']:>8.3f}"
            rows.append(f"{name:<{width}} {r['num_scenes']:>7} {scores}")
    return "\n".join(rows)


# ------------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m lassm.evaluate --pred PRED_DIR --gt GT_DIR [--classes ...] [--json OUT.json] [--strict]`."""
    parser = argparse.ArgumentParser(prog="python -m lassm.evaluate",
                                     description="ScanNet instance benchmark AP on the official file layout "
                                                 "(ScanNet++'s own toolkit layout: --format scannetpp).")
    parser.add_argument("--pred", required=True, help="folder of <scene>.txt prediction files")
    parser.add_argument("--gt", required=True, help="folder of <scene>.txt GT files (label*1000+instance)")
    parser.add_argument("--classes", default=None, choices=CLASS_LISTS, help="class list (default scannet20)")
    parser.add_argument("--format", default="scannet", choices=("scannet", "scannetpp"),
                        help="scannet: ScanNet's benchmark files (default); scannetpp: the ScanNet++ "
                             "toolkit's files and rules (label id = index in its 100 semantic classes, 84 "
                             "evaluated)")
    parser.add_argument("--data-root", default=None,
                        help="--format scannetpp: ScanNet++'s data/ folder; each scene's "
                             "scans/mesh_aligned_0.05_mask.txt vertices are left out, as the toolkit does")
    parser.add_argument("--scene-list", default=None,
                        help="--format scannetpp: scene ids to score, one per line (e.g. "
                             "splits/nvs_sem_val.txt; default: every GT file); a scene without files fails")
    parser.add_argument("--groups", default=None,
                        help="also score groups of scenes apart: 'mosd' (the learn scans' groups: single "
                             "boxes, stacked boxes, occluded, cylindrical) or a file of 'scene,group' lines")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    parser.add_argument("--skip-unknown-labels", action="store_true",
                        help="also skip label ids the dataset does not define (as the official script; "
                             "scannetpp: ids outside 0..99)")
    parser.add_argument("--strict", action="store_true",
                        help="GT scenes without a prediction file are an error (default: a warning)")
    parser.add_argument("--semantic", action="store_true",
                        help="score the semantic-label benchmark instead: one label id per vertex in PRED "
                             "and GT files (export's semantic/, gt_semantic/); class IoU and mIoU")
    args = parser.parse_args(argv)
    if args.semantic:
        return run_command(lambda: semantic_command(args))
    return run_command(lambda: _command(args))


def _command(args) -> None:
    if args.json:
        check_output_file(args.json, "--json")  # before scoring, which can take minutes
    if args.format == "scannet" and (args.data_root or args.scene_list):
        raise ValueError("--data-root, --scene-list: only with --format scannetpp")
    if args.format == "scannet":
        report_missing(args.pred, args.gt, args.strict)
    if args.groups and args.format != "scannet":
        raise ValueError("--groups: only with --format scannet")
    unknown = "skip" if args.skip_unknown_labels else "error"
    groups = scene_groups(args.groups, args.gt) if args.groups else None
    results = _scannetpp_results(args, unknown) if args.format == "scannetpp" else \
        evaluate_benchmark(args.pred, args.gt, args.classes or "scannet20", unknown, groups)
    print(format_results(results))
    if args.json:
        write_results_json(args.json, results)


def _scannetpp_results(args, unknown: str) -> dict:
    """`--format scannetpp`: the toolkit's label space and scene list (a listed scene without files fails)."""
    if args.classes not in (None, "scannetpp"):
        raise ValueError(f"--classes: --format scannetpp has its own label space, got {args.classes!r}")
    if not args.data_root:
        print("warning: no --data-root: the toolkit leaves out each scene's mesh_aligned_0.05_mask.txt "
              "vertices, these numbers count them", file=sys.stderr)
    return evaluate_scannetpp(args.pred, args.gt, args.data_root, args.scene_list, unknown)

