"""ScanNet's semantic-label benchmark: per-point label files and class IoU (issue 21).

Follows ScanNet's `BenchmarkScripts/3d_evaluation/evaluate_semantic_label.py`:

- files: PRED_DIR/<scene>.txt and GT_DIR/<scene>.txt, one integer label id per vertex and line (ScanNet20:
  NYU40 ids); the two files of a scene must have the same number of lines. The scenes are the prediction
  files (every `*.txt` at the top of PRED_DIR except the official output name
  `semantic_label_evaluation.txt`); each needs its GT file.
- a vertex counts only when its GT id is one of the evaluated classes: unannotated (0) and every other id
  is ignored, whatever was predicted there.
- one confusion matrix over all scenes. For class c: tp = vertices of GT c predicted c; fn = the other
  vertices of GT c, whatever id they were predicted (another class, 0, an id that is not evaluated); fp =
  vertices predicted c whose GT is another evaluated class. IoU = tp / (tp + fp + fn), NaN when that is 0
  (no GT and no prediction of c). mIoU is the mean over the classes that are not NaN (the official script
  prints only the class IoUs; the benchmark's average is their mean).

Class lists (`semantic_classes`): every class of the dataset, stuff included, with the label ids of
:mod:`lassm.evaluate.formats`: ScanNet20's 20 NYU40 ids (wall 1, floor 2), ScanNet200's 200 ids, ScanNet++'s
100 and mOSD's 2 classes as class index + 1. Deliberate differences, errors that name the file and line
instead of the official script's behaviour: a predicted id the dataset does not define (the official script
counts it as a miss below its matrix size, the highest class id + 1, crashes above it and counts a negative
id as the class with the highest id; `unknown_labels="skip"`, CLI `--skip-unknown-labels`, counts it as a
miss), and files that are not one integer per line.
Predicted ids the dataset defines but does not evaluate (NYU40's 13, 40, ...) are misses, as officially.

LaSSM's superpoint semantic head has no column per stuff class (`lassm.model.postprocess.point_semantics`):
points it calls background are written as 0, so the model's wall and floor IoU on ScanNet are 0.

    python -m lassm.evaluate --semantic --pred DIR/semantic --gt DIR/gt_semantic --classes scannet20
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..cli import check_output_file
from ..data.io import DataError, atomic_path
from ..data.labels import (
    CLASS_LABELS_20,
    CLASS_LABELS_200,
    CLASS_LABELS_MOSD,
    CLASS_LABELS_PP,
    VALID_CLASS_IDS_20,
    VALID_CLASS_IDS_200,
)
from .files import read_int_lines, report_missing, scene_files, write_results_json

SEMANTIC_CLASS_LISTS = ("scannet20", "scannet200", "scannetpp", "mosd")
SEMANTIC_RESULT_FILE = "semantic_label_evaluation.txt"  # the official script's output name; never a scene
PRED_FOLDER, GT_FOLDER = "semantic", "gt_semantic"  # export's folders beside predictions/ and gt/
UNANNOTATED = 0  # the label id of a vertex without a class (GT) or with background predicted


def semantic_classes(name: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(class names, label ids) of every class evaluated for class list ``name``, stuff included."""
    if name == "scannet20":
        return CLASS_LABELS_20, VALID_CLASS_IDS_20
    if name == "scannet200":
        return CLASS_LABELS_200, VALID_CLASS_IDS_200
    if name == "scannetpp":
        return CLASS_LABELS_PP, tuple(range(1, len(CLASS_LABELS_PP) + 1))
    if name == "mosd":
        return CLASS_LABELS_MOSD, tuple(range(1, len(CLASS_LABELS_MOSD) + 1))
    raise ValueError(f"classes: expected one of {SEMANTIC_CLASS_LISTS}, got {name!r}")


def defined_label_ids(name: str) -> frozenset[int]:
    """Every id a label file of class list ``name`` may hold: 0 and the dataset's ids (ScanNet20: NYU40's
    1..40, of which 20 are evaluated)."""
    _, ids = semantic_classes(name)
    if name == "scannet20":
        return frozenset(range(0, 41))
    return frozenset((UNANNOTATED, *ids))


# ------------------------------------------------------------------------------- files


def write_labels(out_dir, scene: str, label_ids) -> Path:
    """Write ``out_dir/<scene>.txt``: one integer label id per vertex and line (0 = none), atomically."""
    if not scene or any(c in scene for c in " \t\n/\\") or scene in (".", ".."):
        raise ValueError(f"scene: expected a plain file stem without spaces or slashes, got {scene!r}")
    values = np.asarray(label_ids)
    if values.ndim != 1:
        raise ValueError(f"label_ids: expected shape (N,), got {values.shape}")
    if values.dtype.kind not in "iu" and not np.array_equal(values, np.round(values)):
        raise ValueError("label_ids: expected integer label ids")
    values = values.astype(np.int64)
    if values.size and values.min() < 0:
        raise ValueError(f"label_ids: expected ids >= 0 (0 = none), got {int(values.min())}")
    path = Path(out_dir) / f"{scene}.txt"
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{v}\n" for v in values.tolist()))
    return path


def read_labels(path) -> np.ndarray:
    """(N,) int64 label ids of a file with one integer per line; a DataError names the file and line."""
    return read_int_lines(path, DataError, "integer label id")


# ------------------------------------------------------------------------------- the protocol


class SemanticEvaluator:
    """The official confusion matrix over scenes added one by one, on label ids (module docstring).

    Rows: the K evaluated classes (GT); columns: the K classes and one "not an evaluated class" column.
    """

    def __init__(self, names: tuple[str, ...], ids: tuple[int, ...]):
        if len(names) != len(ids) or len(set(ids)) != len(ids):
            raise ValueError(f"ids: expected {len(names)} distinct label ids, one per class, got {ids}")
        self.names, self.ids = tuple(names), np.asarray(ids, dtype=np.int64)
        self.order = np.argsort(self.ids, kind="stable")  # sorted position -> class index
        self.sorted_ids = self.ids[self.order]
        size = len(ids)
        self.confusion = np.zeros((size, size + 1), dtype=np.int64)  # (K, K+1) GT class x predicted class

    def class_index(self, label_ids: np.ndarray) -> np.ndarray:
        """(N,) class index of each id, K (the extra column) for ids that are not evaluated."""
        size = len(self.ids)
        if size == 0 or len(label_ids) == 0:
            return np.full(len(label_ids), size, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.sorted_ids, label_ids), 0, size - 1)
        return np.where(self.sorted_ids[pos] == label_ids, self.order[pos], size)

    def add(self, gt_ids, pred_ids) -> None:
        """One scene: (N,) GT and (N,) predicted label ids of the same vertices."""
        gt_ids = np.asarray(gt_ids, np.int64).reshape(-1)
        pred_ids = np.asarray(pred_ids, np.int64).reshape(-1)
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"pred_ids: expected {len(gt_ids)} labels like gt_ids, got {len(pred_ids)}")
        size = len(self.ids)
        gt, pred = self.class_index(gt_ids), self.class_index(pred_ids)
        keep = gt < size  # GT outside the evaluated classes is ignored
        self.confusion += np.bincount(gt[keep] * (size + 1) + pred[keep],
                                      minlength=size * (size + 1)).reshape(size, size + 1)

    def compute(self) -> dict:
        """{"miou", "classes": {name: {"iou", "tp", "union"}}}; a class without GT or prediction is NaN."""
        size = len(self.ids)
        tp = np.diagonal(self.confusion[:, :size])  # (K,)
        fn = self.confusion.sum(1) - tp  # every other prediction on the class's GT vertices
        fp = self.confusion[:, :size].sum(0) - tp  # the class predicted on another evaluated class
        union = tp + fp + fn
        classes = {name: {"iou": float(tp[c] / union[c]) if union[c] else math.nan, "tp": int(tp[c]),
                          "union": int(union[c])} for c, name in enumerate(self.names)}
        ious = [r["iou"] for r in classes.values() if not math.isnan(r["iou"])]
        return {"miou": float(np.mean(ious)) if ious else math.nan, "classes": classes}


def evaluate_semantic(pred_dir, gt_dir, classes: str = "scannet20", unknown_labels: str = "error") -> dict:
    """Class IoU and mIoU of the label files in ``pred_dir`` against ``gt_dir`` (module docstring).

    Returns {"miou", "classes": {name: {"iou", "tp", "union"}}, "num_scenes"}.
    """
    if unknown_labels not in ("error", "skip"):
        raise ValueError(f"unknown_labels: expected 'error' or 'skip', got {unknown_labels!r}")
    names, ids = semantic_classes(classes)
    defined = np.array(sorted(defined_label_ids(classes)), dtype=np.int64)
    evaluator = SemanticEvaluator(names, ids)
    pairs = scene_files(pred_dir, gt_dir, "semantic prediction", (SEMANTIC_RESULT_FILE,), DataError)
    for _scene, pred_file, gt_file in pairs:
        pred, gt = read_labels(pred_file), read_labels(gt_file)
        if len(pred) != len(gt):
            raise DataError(f"{pred_file}: {len(pred)} lines, but its GT {gt_file} has {len(gt)} (one label "
                            f"per vertex in both)")
        unknown = np.flatnonzero(~np.isin(pred, defined))
        if len(unknown) and unknown_labels == "error":
            raise DataError(f"{pred_file}, line {unknown[0] + 1}: label id {pred[unknown[0]]} is not a "
                            f"{classes} label id (0 or one of the dataset's ids; --skip-unknown-labels "
                            f"counts such vertices as misses)")
        evaluator.add(gt, pred)
    return {**evaluator.compute(), "num_scenes": len(pairs)}


def format_semantic(results: dict) -> str:
    """A readable table: class, IoU and tp/union per class, then mIoU (nan = no GT and no prediction)."""
    width = max(15, *(len(n) for n in results["classes"]))
    line = "-" * (width + 28)
    rows = [f"{'class':<{width}} {'IoU':>8}  {'tp / union':>17}", line]
    for name, r in results["classes"].items():
        rows.append(f"{name:<{width}} {r['iou']:>8.3f}  {r['tp']:>8}/{r['union']:<8}")
    rows += [line, f"{'mIoU':<{width}} {results['miou']:>8.3f}"]
    return "\n".join(rows)


# ------------------------------------------------------------------------------- command line


def semantic_command(args) -> None:
    """`python -m lassm.evaluate --semantic ...` (the flags of `lassm.evaluate.formats.main`)."""
    if args.json:
        check_output_file(args.json, "--json")
    gt_dir, pred_dir = Path(args.gt), Path(args.pred)
    report_missing(pred_dir, gt_dir, args.strict, "semantic prediction", DataError)
    unknown = "skip" if args.skip_unknown_labels else "error"
    results = evaluate_semantic(pred_dir, gt_dir, args.classes or "scannet20", unknown)
    print(format_semantic(results))
    if args.json:
        write_results_json(args.json, results)
