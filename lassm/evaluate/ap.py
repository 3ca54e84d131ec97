"""ScanNet-protocol instance-segmentation AP, as the reference's `SPInsEvaluator` has it (REFERENCE_SPEC 9).

Two steps. `scene_matches` associates one scene's predicted point masks with its ground-truth instances
(spec 9.1): a prediction/GT intersection matrix from one bincount, the points each prediction puts on
void, the sizes. `InstanceEvaluator` collects those per scene and turns them into the ScanNet benchmark's
AP (spec 9.2): per overlap threshold and class, a greedy match of GTs to predictions in prediction order,
duplicates and unmatched predictions as false positives unless they mostly cover ignored points, and the
benchmark's centred-step integration of the precision-recall curve. `evaluate_predictions` runs both on
model outputs and raw scene labels; `prediction_matches` and `evaluate_matches` are its two halves, for
scenes associated apart (a DDP validation: each process its own scenes) and scored together.
This module knows arrays only; it imports no model code.
The benchmark's file layout is :mod:`lassm.evaluate.formats`, a split's export :mod:`lassm.evaluate.export`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.labels import compact_instances, train_labels

# The reference's thresholds: np.arange(0.5, 0.95, 0.05) stops before 0.95, so the mean AP averages the
# nine values 0.50..0.90 (spec 9.2). These exact floats matter: 0.6 is 0.6000000000000001, and a match
# needs IoU strictly above the threshold.
DEFAULT_OVERLAPS = tuple(float(t) for t in np.arange(0.5, 0.95, 0.05))
AP25_OVERLAP = 0.25  # evaluated besides `overlaps`, reported as AP25 only (spec 9.2)
MIN_REGION_SIZE = 100  # points; smaller predictions are dropped, smaller GTs ignored (spec 9.1, 9.2)


def _numpy(x) -> np.ndarray:
    """A torch tensor (any device) or array-like as a numpy array."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# ------------------------------------------------------------------------------- 9.1 per scene


@dataclass
class SceneMatches:
    """One scene's prediction/GT association (REFERENCE_SPEC 9.1), the only state 9.2 needs.

    Predictions keep their input order (the model's, score-descending), which sets the matching order.
    """

    pred_scores: np.ndarray  # (K,) float64 confidences of the predictions with >= min_region_size points
    pred_classes: np.ndarray  # (K,) int64 train labels
    pred_counts: np.ndarray  # (K,) int64 points per prediction mask
    pred_void: np.ndarray  # (K,) int64 points of each prediction on void (train label -1)
    gt_classes: np.ndarray  # (G,) int64 train label of each GT (its first point's), never -1
    gt_counts: np.ndarray  # (G,) int64 points per GT; GTs below min_region_size are kept here, ignored in 9.2
    intersection: np.ndarray  # (K, G) int64 shared points; 0 where prediction and GT classes differ

    def __getstate__(self) -> dict:
        """Pickled (e.g. gathered from the processes of a DDP validation) with the intersection as its
        nonzero entries: only same-class pairs can be nonzero, a few per prediction of the K x G matrix."""
        state = dict(self.__dict__)
        rows, cols = np.nonzero(self.intersection)
        state["intersection"] = (self.intersection.shape, rows, cols, self.intersection[rows, cols])
        return state

    def __setstate__(self, state: dict) -> None:
        shape, rows, cols, values = state["intersection"]
        intersection = np.zeros(shape, dtype=np.int64)
        intersection[rows, cols] = values
        self.__dict__.update(state, intersection=intersection)

    @property
    def iou(self) -> np.ndarray:
        """(K, G) float64 intersection over union; 0 for pairs of different classes."""
        union = self.pred_counts[:, None] + self.gt_counts[None, :] - self.intersection  # (K, G)
        return self.intersection / np.maximum(union, 1)


def scene_matches(
    pred_masks,
    pred_scores,
    pred_classes,
    gt_instance,
    gt_class,
    min_region_size: int = MIN_REGION_SIZE,
) -> SceneMatches:
    """Associate one scene's predictions with its GT instances at point level (REFERENCE_SPEC 9.1).

    pred_masks: (K, N) bool (nonzero = in the mask); pred_scores: (K,); pred_classes: (K,) train labels.
    gt_instance: (N,) instance ids, -1 = none (compact 0..G-1 in practice); gt_class: (N,) train labels,
    -1 = void (unlabelled and, for ScanNet, wall/floor). Torch tensors or numpy arrays.
    A GT's class is the label of its first point; GTs whose class is -1 are dropped. Predictions with
    fewer than `min_region_size` points are dropped. Only same-class pairs are recorded (others read 0).
    """
    masks = _numpy(pred_masks) != 0  # (K, N)
    scores = _numpy(pred_scores).astype(np.float64).reshape(-1)
    classes = _numpy(pred_classes).astype(np.int64).reshape(-1)
    instance = _numpy(gt_instance).astype(np.int64).reshape(-1)
    label = _numpy(gt_class).astype(np.int64).reshape(-1)
    num_points = instance.shape[0]
    if label.shape[0] != num_points:
        raise ValueError(f"gt_class: expected {num_points} labels like gt_instance, got {label.shape[0]}")
    if masks.ndim != 2 or masks.shape[1] != num_points:
        raise ValueError(f"pred_masks: expected shape (K, {num_points}), got {masks.shape}")
    if not scores.shape[0] == classes.shape[0] == masks.shape[0]:
        raise ValueError(f"pred_scores, pred_classes: expected {masks.shape[0]} entries like pred_masks, "
                         f"got {scores.shape[0]} and {classes.shape[0]}")
    if min_region_size < 1:
        raise ValueError(f"min_region_size: expected a positive point count, got {min_region_size}")

    # Predictions: drop the small ones (9.1: vert_count < min_region_size).
    counts = masks.sum(axis=1)  # (K,)
    keep = counts >= min_region_size
    masks, scores, classes, counts = masks[keep], scores[keep], classes[keep], counts[keep]

    # GTs: one per unique id, class from its first occurrence, void-class GTs dropped.
    has_id = instance >= 0
    ids, first, inverse, gt_counts = np.unique(instance[has_id], return_index=True, return_inverse=True,
                                               return_counts=True)
    gt_classes = label[np.flatnonzero(has_id)[first]]  # (G0,)
    kept_gt = gt_classes != -1
    num_gt = int(kept_gt.sum())
    column = np.full(len(ids), num_gt, dtype=np.int64)  # dropped GTs go to the "no GT" column num_gt
    column[kept_gt] = np.arange(num_gt)
    point_gt = np.full(num_points, num_gt, dtype=np.int64)  # (N,) GT column of each point
    point_gt[has_id] = column[inverse.reshape(-1)]

    # One bincount over the (prediction, point) pairs: code = gt column * 2 + void flag.
    codes_per_pred = (num_gt + 1) * 2
    point_code = point_gt * 2 + (label == -1)  # (N,)
    rows, cols = np.nonzero(masks)  # (P,) pairs
    table = np.bincount(rows * codes_per_pred + point_code[cols], minlength=len(scores) * codes_per_pred)
    table = table.reshape(len(scores), num_gt + 1, 2)  # (K, G+1, void)
    intersection = table[:, :num_gt, :].sum(axis=2)  # (K, G)
    void = table[:, :, 1].sum(axis=1)  # (K,)

    gt_classes, gt_counts = gt_classes[kept_gt], gt_counts[kept_gt]
    intersection = np.where(classes[:, None] == gt_classes[None, :], intersection, 0)  # same class only
    as_int = [a.astype(np.int64) for a in (counts, void, gt_classes, gt_counts, intersection)]
    return SceneMatches(scores, classes, *as_int)


# ------------------------------------------------------------------------------- 9.2 AP


def _scene_examples(m: SceneMatches, tau: float, min_region_size: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One scene's scored examples at overlap `tau` (REFERENCE_SPEC 9.2 step 2), all classes at once.

    Classes never interact (only same-class pairs exist), so the per-class loops of the reference run
    together here. Returns the examples' (classes, y_true, y_score) and the classes of the GTs that no
    prediction matched (the hard false negatives).
    """
    above = m.iou > tau  # (K, G) strict, as the reference
    big = m.gt_counts >= min_region_size  # (G,) the GTs that count
    visited = np.zeros(len(m.pred_scores), dtype=bool)
    ex_class, ex_true, ex_score, missed = [], [], [], []
    # 2b: GTs in order; the first unvisited prediction above tau (prediction order) is the match.
    for g in np.flatnonzero(big):
        candidates = np.flatnonzero(above[:, g] & ~visited)
        if len(candidates) == 0:
            missed.append(m.gt_classes[g])
            continue
        visited[candidates[0]] = True  # later candidates are duplicates and stay unvisited
        # The reference keeps a running max for the GT and emits min(running max, new) as a false positive
        # per duplicate: the GT ends with the largest score, the duplicates with all the others.
        scores = np.sort(m.pred_scores[candidates])  # ascending
        ex_class += [m.gt_classes[g]] * len(candidates)
        ex_true += [1.0] + [0.0] * (len(candidates) - 1)
        ex_score += [scores[-1]] + list(scores[:-1])
    # 2d: a prediction above tau with no GT (small ones included) is a false positive unless more than a
    # fraction tau of it lies on void or on same-class GTs too small to count.
    unmatched = ~above.any(axis=1)  # (K,)
    num_ignore = m.pred_void + m.intersection[:, ~big].sum(axis=1)  # (K,)
    false_pos = unmatched & (num_ignore / m.pred_counts <= tau)
    classes = np.concatenate([np.asarray(ex_class, dtype=np.int64), m.pred_classes[false_pos]])
    y_true = np.concatenate([np.asarray(ex_true, dtype=np.float64), np.zeros(int(false_pos.sum()))])
    y_score = np.concatenate([np.asarray(ex_score, dtype=np.float64), m.pred_scores[false_pos]])
    return classes, y_true, y_score, np.asarray(missed, dtype=np.int64)


def average_precision(y_true: np.ndarray, y_score: np.ndarray, hard_false_negatives: int
                      ) -> tuple[float, float, float]:
    """ScanNet-benchmark AP of one class at one overlap (REFERENCE_SPEC 9.2 step 3).

    One precision/recall point per distinct score (thresholding at it), then an artificial point
    (precision 1, recall 0); AP = sum_j p_j (r_{j-1} - r_{j+1}) / 2 with r_{-1} = r_0 and r_{end+1} = 0.
    Returns (AP, precision, recall), the last two at the best F1 = 2pr / (p + r + 1e-4).
    """
    order = np.argsort(y_score, kind="stable")
    y_score, y_true = y_score[order], y_true[order]  # ascending scores
    cumsum = np.concatenate([[0.0], np.cumsum(y_true)])  # (n+1,) trues strictly before each index
    _, first = np.unique(y_score, return_index=True)  # first index of each distinct score
    before = cumsum[first]  # trues below the threshold
    tp = cumsum[-1] - before  # examples at or above the threshold that are true
    fp = len(y_score) - first - tp
    fn = before + hard_false_negatives
    precision = np.append(tp / (tp + fp), 1.0)
    recall = np.append(tp / (tp + fn), 0.0)
    padded = np.concatenate([recall[:1], recall, [0.0]])
    step_widths = (padded[:-2] - padded[2:]) / 2  # centred: (r_{j-1} - r_{j+1}) / 2
    ap = float(np.dot(precision, step_widths))
    f1 = 2 * precision * recall / (precision + recall + 1e-4)
    best = int(np.argmax(f1))
    return ap, float(precision[best]), float(recall[best])


def _nanmean(values: np.ndarray) -> float:
    """Mean of the finite entries, NaN (without a warning) when there are none."""
    values = np.asarray(values, dtype=np.float64)
    finite = ~np.isnan(values)
    return float(values[finite].mean()) if finite.any() else float("nan")


class InstanceEvaluator:
    """Accumulates scenes and computes the ScanNet-protocol AP (REFERENCE_SPEC 9.2).

    class_names: instance class names in train-label order (0..C-1).
    overlaps: the thresholds averaged into AP (default 0.50..0.90, nine values); 0.5 must be among them.
    0.25 is always evaluated in addition and reported as AP25 only.
    """

    def __init__(self, class_names: Sequence[str], overlaps: Sequence[float] = DEFAULT_OVERLAPS,
                 min_region_size: int = MIN_REGION_SIZE):
        self.class_names = tuple(class_names)
        if not self.class_names:
            raise ValueError("class_names: expected at least one instance class name, got none")
        overlaps = tuple(float(t) for t in overlaps)
        if not overlaps or any(not 0.0 < t < 1.0 for t in overlaps):
            raise ValueError(f"overlaps: expected thresholds in (0, 1), got {overlaps}")
        if not np.isclose(overlaps, 0.5).any():
            raise ValueError(f"overlaps: expected 0.5 among the thresholds (for AP50), got {overlaps}")
        if min_region_size < 1:
            raise ValueError(f"min_region_size: expected a positive point count, got {min_region_size}")
        self.overlaps = overlaps
        self.all_overlaps = overlaps + (AP25_OVERLAP,)  # the reference's list: [0.5..0.9] + [0.25]
        self.min_region_size = int(min_region_size)
        self.scenes: list[SceneMatches] = []

    def add(self, pred_masks, pred_scores, pred_classes, gt_instance, gt_class) -> SceneMatches:
        """Add one scene (arguments as `scene_matches`); returns its association."""
        m = scene_matches(pred_masks, pred_scores, pred_classes, gt_instance, gt_class, self.min_region_size)
        num_classes = len(self.class_names)
        if m.pred_classes.size and (m.pred_classes.min() < 0 or m.pred_classes.max() >= num_classes):
            raise ValueError(f"pred_classes: expected train labels in 0..{num_classes - 1}, got "
                             f"{m.pred_classes.min()}..{m.pred_classes.max()}")
        if m.gt_classes.size and m.gt_classes.max() >= num_classes:
            raise ValueError(f"gt_class: expected train labels in -1..{num_classes - 1}, got up to "
                             f"{m.gt_classes.max()}")
        self.scenes.append(m)
        return m

    def ap_matrix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(C, T) AP, precision and recall (at best F1) per class and threshold of `all_overlaps`.

        NaN where a class has no GT of min_region_size points in any scene; 0 where it has GT but no
        prediction (spec 9.2 step 3).
        """
        num_classes, num_taus = len(self.class_names), len(self.all_overlaps)
        ap = np.full((num_classes, num_taus), np.nan)
        prec, rec = ap.copy(), ap.copy()
        has_gt = np.zeros(num_classes, dtype=bool)
        has_pred = np.zeros(num_classes, dtype=bool)
        for m in self.scenes:
            has_gt[m.gt_classes[m.gt_counts >= self.min_region_size]] = True
            has_pred[m.pred_classes] = True
        for t, tau in enumerate(self.all_overlaps):
            parts = [_scene_examples(m, tau, self.min_region_size) for m in self.scenes]
            classes = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
            y_true = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
            y_score = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0)
            missed = np.bincount(np.concatenate([p[3] for p in parts]) if parts else np.zeros(0, np.int64),
                                 minlength=num_classes)
            for c in range(num_classes):
                if has_gt[c] and has_pred[c]:
                    sel = classes == c
                    ap[c, t], prec[c, t], rec[c, t] = average_precision(y_true[sel], y_score[sel], missed[c])
                elif has_gt[c]:
                    ap[c, t], prec[c, t], rec[c, t] = 0.0, 0.0, 0.0
        return ap, prec, rec

    def compute(self) -> dict:
        """AP (mean over `overlaps`), AP50, AP25, Prec50, Rec50: means over classes with GT (spec 9.2 step 4).

        Also "per_class": {name: {"AP", "AP50", "AP25", "Prec50", "Rec50", "AP_per_overlap"}} (NaN for
        classes without GT) and "overlaps". Plain floats, so the dict pickles and JSON-dumps.
        """
        ap, prec, rec = self.ap_matrix()  # (C, T)
        main = np.arange(len(self.overlaps))  # columns averaged into AP
        i50 = int(np.flatnonzero(np.isclose(self.overlaps, 0.5))[0])
        i25 = len(self.all_overlaps) - 1
        per_class = {}
        for c, name in enumerate(self.class_names):
            with np.errstate(invalid="ignore"):
                class_ap = float(np.mean(ap[c, main]))  # plain mean: NaN when the class has no GT
            per_class[name] = {
                "AP": class_ap, "AP50": float(ap[c, i50]), "AP25": float(ap[c, i25]),
                "Prec50": float(prec[c, i50]), "Rec50": float(rec[c, i50]),
                "AP_per_overlap": {round(tau, 2): float(ap[c, t]) for t, tau in enumerate(self.all_overlaps)},
            }
        return {
            "AP": _nanmean(ap[:, main]),  # NaN-mean over classes x thresholds, as the reference's all_ap
            "AP50": _nanmean(ap[:, i50]),
            "AP25": _nanmean(ap[:, i25]),
            "Prec50": _nanmean(prec[:, i50]),
            "Rec50": _nanmean(rec[:, i50]),
            "per_class": per_class,
            "overlaps": list(self.all_overlaps),
        }

    def format_table(self, results: dict | None = None) -> str:
        """A per-class text table of AP / AP50 / AP25 (NaN = no GT) with the class-mean row last."""
        results = self.compute() if results is None else results
        width = max(12, *(len(n) for n in self.class_names))
        line = "-" * (width + 27)
        rows = [f"{'class':<{width}} {'AP':>8} {'AP50':>8} {'AP25':>8}", line]
        for name, r in results["per_class"].items():
            rows.append(f"{name:<{width}} {r['AP']:>8.3f} {r['AP50']:>8.3f} {r['AP25']:>8.3f}")
        rows += [line, f"{'average':<{width}} {results['AP']:>8.3f} {results['AP50']:>8.3f} "
                       f"{results['AP25']:>8.3f}"]
        return "\n".join(rows)


# ------------------------------------------------------------------------------- model outputs


def evaluate_predictions(predictions: Sequence, scenes: Sequence[dict], class_names: Sequence[str],
                         stuff_classes: Sequence[int] = (), min_region_size: int = MIN_REGION_SIZE) -> dict:
    """ScanNet-protocol AP of per-scene predictions against raw scene labels (REFERENCE_SPEC 9).

    predictions: one per scene, with `scores` (K,), `classes` (K,) train labels and `masks` (K, N) bool
    (like `lassm.model.postprocess.Prediction`; torch or numpy). scenes: dicts with the raw per-point
    "segment" (N,) semantic labels (indices into `class_names`, -1 = unlabelled) and "instance" (N,) ids.
    class_names: all semantic classes; stuff_classes: the indices among them that are not instances.
    GT train labels and instance ids come from `lassm.data.labels` (spec 2.3). Returns `compute()`'s dict.
    """
    if len(predictions) != len(scenes):
        raise ValueError(f"predictions: expected one per scene ({len(scenes)}), got {len(predictions)}")
    matches = [prediction_matches(pred, scene, class_names, stuff_classes, min_region_size, f"scenes[{i}]")
               for i, (pred, scene) in enumerate(zip(predictions, scenes, strict=True))]
    return evaluate_matches(matches, class_names, stuff_classes, min_region_size)


def _evaluator(class_names: Sequence[str], stuff_classes: Sequence[int], min_region_size: int
               ) -> InstanceEvaluator:
    """The evaluator of the instance classes: `class_names` without the stuff classes, in order."""
    stuff = set(stuff_classes)
    return InstanceEvaluator([n for i, n in enumerate(class_names) if i not in stuff],
                             min_region_size=min_region_size)


def prediction_matches(pred, scene: dict, class_names: Sequence[str], stuff_classes: Sequence[int] = (),
                       min_region_size: int = MIN_REGION_SIZE, where: str = "scene") -> SceneMatches:
    """One scene of :func:`evaluate_predictions` (same arguments, one prediction and one scene): its
    association (9.1), all that the metrics need of it. A split's scenes can be matched apart (e.g. by the
    processes of a DDP validation) and scored together by :func:`evaluate_matches`, in scene order."""
    if "segment" not in scene or "instance" not in scene:
        raise ValueError(f"{where}: expected keys 'segment' and 'instance', got {sorted(scene)}")
    label = train_labels(torch.as_tensor(scene["segment"]), len(class_names), tuple(stuff_classes))
    instance = compact_instances(torch.as_tensor(scene["instance"]), label)
    evaluator = _evaluator(class_names, stuff_classes, min_region_size)  # checks the predicted classes
    return evaluator.add(pred.masks, pred.scores, pred.classes, instance, label)


def evaluate_matches(matches: Sequence[SceneMatches], class_names: Sequence[str],
                     stuff_classes: Sequence[int] = (), min_region_size: int = MIN_REGION_SIZE) -> dict:
    """The metrics (`compute()`'s dict) of scenes' associations from :func:`prediction_matches`; the same
    numbers, bit for bit, as :func:`evaluate_predictions` on those scenes in the same order."""
    evaluator = _evaluator(class_names, stuff_classes, min_region_size)
    evaluator.scenes.extend(matches)
    return evaluator.compute()
