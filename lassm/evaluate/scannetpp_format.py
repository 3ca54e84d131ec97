"""ScanNet++'s own instance benchmark: its file format, label space and evaluation rules (issue 21).

The ScanNet++ benchmark scores instance predictions with the official toolkit (scannetpp/scannetpp,
``semantic/eval/eval_instance.py`` with ``semantic/utils/instance_utils.py``; GT from
``semantic/prep/prepare_semantic_gt.py``). Its layout is ScanNet's, its label space and several rules
are its own. This module writes and reads that layout and scores it; ``lassm.evaluate.formats`` stays
the ScanNet benchmark.

Layout (one submission = PRED_DIR zipped):
- PRED_DIR/<scene>.txt, one line per instance, ``predicted_masks/<scene>_<k:03d>.txt label_id confidence``
  separated by single spaces. A mask file has one integer per line, one line per vertex of the scene's
  ``mesh_aligned_0.05.ply`` in its order; nonzero = in the instance (plain text, no run-length coding).
- label_id: the 0-based index of the class in the toolkit's 100 semantic classes (``top100.txt``,
  ``CLASS_LABELS_PP``), not an index into the instance list. Only the 84 classes of
  ``top100_instance.txt`` (``INSTANCE_CLASS_IDS_PP``, e.g. table = 3, marker = 99) are evaluated; the
  toolkit's file check accepts any id 0..99 and the evaluation skips the other 16 (wall = 0, ...).
- confidence: a float in [0, 1] (the toolkit's file check).
- GT_DIR/<scene>.txt: one integer per vertex, semantic_id * 1000 + instance with instance >= 1, 0 where
  the vertex has no instance (unlabelled, or a class outside the instance list).

Evaluation rules, each as the toolkit has them:
- the scenes are a scene list (e.g. ``splits/nvs_sem_val.txt``); a scene without a prediction or GT file
  is an error. Without a list (the toolkit always has one): every GT file.
- per-scene ignore: the vertices listed in ``<data_root>/<scene>/scans/mesh_aligned_0.05_mask.txt`` (one
  vertex index per line) are removed from the GT and from every mask before anything is counted.
- void = vertices whose GT id // 1000 is not an evaluated class; GT instances need an id >= 1000 and
  100 vertices; predictions under 100 vertices are dropped; matching, false positives and the AP
  integration are ScanNet's (``lassm.evaluate.ap.InstanceEvaluator``), means over 0.50..0.90.
- prediction lines: 3 fields split on single spaces, the mask path relative and inside PRED_DIR, the
  label an integer 0..99, the confidence in [0, 1], the mask file present; a repeated mask path keeps its
  first position with the last line's label and confidence. ``unknown_labels="skip"`` skips label ids
  outside 0..99 instead (the toolkit with its file check turned off).
Deliberate differences, all errors naming the file: a mask value is read as an integer per line (the
toolkit's ``np.loadtxt`` also takes several numbers on a line), one mask file used by two scenes (the
toolkit's result then depends on scene order), and ignore indices outside the mesh (the toolkit skips
them; they mean the mask belongs to another mesh).

GT from processed scenes (``write_gt``): the toolkit labels each vertex with its smallest annotated
object (our preprocessing's column 0, REFERENCE_SPEC 1.2) and gives instances only to instance classes.
It numbers instances by their position in ``segments_anno.json`` and drops position 0 (``inst <= 0`` is
"no instance"), so the file's first group, when of an instance class, is void in its GT. Processed scenes
keep object ids, not positions: ``write_gt`` numbers the instances 1..M and keeps that object.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..data.io import DataError, atomic_path, read_name_list
from ..data.labels import CLASS_LABELS_PP, INSTANCE_CLASS_IDS_PP
from . import files
from .ap import MIN_REGION_SIZE, InstanceEvaluator

MASK_FOLDER = "predicted_masks"  # the toolkit's subfolder for mask files
MESH_MASK_FILE = "mesh_aligned_0.05_mask.txt"  # per scene, under <data_root>/<scene>/scans/
NUM_LABEL_IDS = len(CLASS_LABELS_PP)  # label ids 0..99
EVALUATED_IDS = tuple(int(i) for i in INSTANCE_CLASS_IDS_PP)  # the 84 instance classes' label ids


class ScanNetPPFileError(DataError):
    """A ScanNet++ benchmark file that cannot be read or breaks the format; names the file (and line)."""


# ------------------------------------------------------------------------------- label space


def toolkit_classes() -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(names, label ids) of the 84 evaluated classes; label id = index in the 100 semantic classes."""
    return tuple(CLASS_LABELS_PP[i] for i in EVALUATED_IDS), EVALUATED_IDS


def toolkit_label_ids(names, parameter: str, instance_only: bool = False) -> np.ndarray:
    """(len(names),) the toolkit label id of each class name (its index in ``CLASS_LABELS_PP``).

    instance_only: every name must be one of the 84 evaluated classes. ValueError naming ``parameter``.
    """
    index = {name: i for i, name in enumerate(CLASS_LABELS_PP)}
    allowed = set(EVALUATED_IDS) if instance_only else set(index.values())
    bad = [n for n in names if index.get(n, -1) not in allowed]
    if bad:
        kind = "instance classes (top100_instance.txt)" if instance_only else "classes (top100.txt)"
        raise ValueError(f"{parameter}: {bad[:3]} {'is' if len(bad) == 1 else 'are'} not ScanNet++ benchmark "
                         f"{kind}; the ScanNet++ format needs a model trained on ScanNet++'s classes")
    return np.array([index[n] for n in names], dtype=np.int64)


# ------------------------------------------------------------------------------- writing


def _mask_bytes(mask: np.ndarray) -> bytes:
    """A 0/1 mask as "0\\n1\\n..." text, built in one array (meshes have ~10^5..10^6 vertices)."""
    text = np.full(2 * len(mask), ord("\n"), dtype=np.uint8)
    text[0::2] = ord("0") + mask.astype(np.uint8)
    return text.tobytes()


def write_predictions(out_dir, scene: str, masks, label_ids, scores) -> Path:
    """Write one scene's predictions as the toolkit reads them: ``<scene>.txt`` and its mask files.

    masks: (K, N) bool over the mesh vertices; label_ids: (K,) toolkit ids of evaluated classes
    (:func:`toolkit_label_ids`); scores: (K,) confidences in [0, 1]. Masks first, the scene file last, so a
    scene file never names a missing mask. Returns the scene file's path.
    """
    out_dir = Path(out_dir)
    files.check_scene_name(scene)
    masks, label_ids, scores = files.prediction_arrays(masks, label_ids, scores)
    masks = masks != 0
    bad = sorted(set(label_ids.astype(np.int64).tolist()) - set(EVALUATED_IDS))
    if bad:
        raise ValueError(f"label_ids: {bad[:5]} are not ScanNet++ instance class ids; expected the index of "
                         f"an instance class in the 100 semantic classes (one of {list(EVALUATED_IDS)})")
    if not (np.isfinite(scores) & (scores >= 0) & (scores <= 1)).all():
        raise ValueError(f"scores: expected confidences in [0, 1] (the toolkit's check), got "
                         f"{scores[~((scores >= 0) & (scores <= 1))][:3]}")
    lines = []
    for k in range(masks.shape[0]):
        rel = f"{MASK_FOLDER}/{scene}_{k:03d}.txt"
        with atomic_path(out_dir / rel) as tmp:
            tmp.write_bytes(_mask_bytes(masks[k]))
        lines.append(f"{rel} {int(label_ids[k])} {float(scores[k])!r}\n")
    path = out_dir / f"{scene}.txt"
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines))
    return path


def gt_values(semantic_ids, instance) -> np.ndarray:
    """(N,) the toolkit's GT values: semantic_id * 1000 + instance (1..M) on instance-class vertices, else 0.

    semantic_ids: (N,) toolkit ids 0..99 (negative = unlabelled); instance: (N,) ids, negative = none.
    Instance ids are renumbered 1..M in ascending order (module docstring).
    """
    semantic = np.asarray(semantic_ids).astype(np.int64).reshape(-1)
    instance = np.asarray(instance).astype(np.int64).reshape(-1)
    if semantic.shape != instance.shape:
        raise ValueError(f"instance: expected {len(semantic)} ids like semantic_ids, got {len(instance)}")
    if semantic.size and semantic.max() >= NUM_LABEL_IDS:
        raise ValueError(f"semantic_ids: expected ScanNet++ semantic ids 0..{NUM_LABEL_IDS - 1} (negative = "
                         f"unlabelled), got {semantic.max()}")
    keep = (instance >= 0) & np.isin(semantic, EVALUATED_IDS)  # (N,) vertices of an instance
    unique, inverse = np.unique(instance[keep], return_inverse=True)
    if len(unique) >= 1000:  # semantic * 1000 + instance would run into the next class
        raise ValueError(f"instance: expected fewer than 1000 instances per scene, got {len(unique)}")
    values = np.zeros(len(semantic), dtype=np.int64)
    values[keep] = semantic[keep] * 1000 + inverse.reshape(-1) + 1
    return values


def write_gt(out_dir, scene: str, semantic_ids, instance) -> Path:
    """Write one scene's GT file (:func:`gt_values`, one integer per vertex); returns its path."""
    files.check_scene_name(scene)
    values = gt_values(semantic_ids, instance)
    path = Path(out_dir) / f"{scene}.txt"
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{v}\n" for v in values.tolist()))
    return path


# ------------------------------------------------------------------------------- reading


def read_int_lines(path) -> np.ndarray:
    """(N,) int64 from a file of one integer per line (GT files, mask files, mesh masks)."""
    return files.read_int_lines(path, ScanNetPPFileError)


def read_vertex_mask(path, num_vertices: int) -> np.ndarray:
    """(N,) bool from a mask file: nonzero = in the instance, one line per mesh vertex."""
    path = Path(path)
    try:
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as err:
        raise ScanNetPPFileError(f"{path}: cannot read ({err})") from err
    digits = data[0::2]
    if len(data) == 2 * num_vertices and (data[1::2] == 10).all() and ((digits == 48) | (digits == 49)).all():
        return digits == 49  # the usual "0\n1\n..." text, without parsing each line
    values = read_int_lines(path)
    if len(values) != num_vertices:
        raise ScanNetPPFileError(f"{path}: {len(values)} lines, expected {num_vertices} (one per vertex "
                                 f"of the scene's mesh, as its GT file has)")
    return values != 0


def read_prediction_file(path, pred_dir, unknown_labels: str = "error") -> list[tuple[str, int, float, int]]:
    """(absolute mask path, label id, confidence, line number) per instance, by the toolkit's rules."""
    path, root = Path(path), os.path.abspath(pred_dir)
    entries: dict[str, tuple[int, float, int]] = {}
    base = os.path.dirname(os.path.abspath(path))  # the toolkit joins mask paths to the file's folder
    for n, line in enumerate(files.read_lines(path, ScanNetPPFileError), start=1):
        where = f"{path}, line {n}"
        mask_path, label, conf = files.prediction_line(line, where, root, base, ScanNetPPFileError)
        try:
            label_id = int(label)
        except ValueError:
            raise ScanNetPPFileError(f"{where}: expected an integer label id, got {label!r}") from None
        try:
            confidence = float(conf)
        except ValueError:
            confidence = math.nan
        if not 0.0 <= confidence <= 1.0:
            raise ScanNetPPFileError(f"{where}: expected a confidence in [0, 1], got {conf!r}")
        if not 0 <= label_id < NUM_LABEL_IDS:
            if unknown_labels == "skip":
                continue
            raise ScanNetPPFileError(f"{where}: label id {label_id} is not a ScanNet++ label id (0..99, "
                                     f"the index in the 100 semantic classes; instance classes: "
                                     f"{list(EVALUATED_IDS)})")
        if not os.path.isfile(mask_path):
            raise ScanNetPPFileError(f"{where}: mask file {mask_path} not found")
        entries[mask_path] = (label_id, confidence, n)  # a repeated path keeps its first position
    return [(mask, label, conf, n) for mask, (label, conf, n) in entries.items()]


def read_ignored_vertices(data_root, scene: str, num_vertices: int) -> np.ndarray:
    """(N,) bool: the vertices the toolkit leaves out of the scene (its ``mesh_aligned_0.05_mask.txt``)."""
    path = Path(data_root) / scene / "scans" / MESH_MASK_FILE
    if not path.is_file():
        raise ScanNetPPFileError(f"{path}: mesh mask not found; --data-root must be ScanNet++'s data/ folder "
                                 f"(<data_root>/<scene>/scans/{MESH_MASK_FILE})")
    index = read_int_lines(path)
    bad = index[(index < 0) | (index >= num_vertices)]
    if len(bad):
        raise ScanNetPPFileError(f"{path}: vertex index {bad[0]} outside the scene's {num_vertices} "
                                 f"vertices; is the GT file of another mesh?")
    ignored = np.zeros(num_vertices, dtype=bool)
    ignored[index] = True
    return ignored


def scene_names(gt_dir, scene_list=None) -> list[str]:
    """The scenes to score: the ids of ``scene_list`` (a file, one per line, or a sequence), else every
    ``<scene>.txt`` in ``gt_dir``, sorted."""
    if scene_list is not None:
        if isinstance(scene_list, (str, os.PathLike)):
            names = read_name_list(scene_list, "ScanNet++ scene ids")
        else:
            names = [str(s) for s in scene_list]
        if not names:
            raise ScanNetPPFileError(f"{scene_list}: no scene ids")
        return list(dict.fromkeys(names))
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise ScanNetPPFileError(f"{gt_dir}: GT folder not found")
    names = sorted(p.name[:-4] for p in gt_dir.iterdir() if p.name.endswith(".txt") and p.is_file())
    if not names:
        raise ScanNetPPFileError(f"{gt_dir}: no GT files (<scene>.txt) found")
    return names


# ------------------------------------------------------------------------------- evaluation


def evaluate_scannetpp(pred_dir, gt_dir, data_root=None, scenes=None, unknown_labels: str = "error") -> dict:
    """The ScanNet++ toolkit's instance AP for PRED_DIR against GT_DIR (module docstring for the rules).

    data_root: ScanNet++'s ``data/`` folder, for each scene's mesh mask (None: no vertex is left out).
    scenes: a scene-list file or names (None: every GT file). Returns formats.evaluate_benchmark's dict:
    {"ap", "ap50", "ap25", "classes": {name: {"ap", "ap50", "ap25"}}, "num_scenes"}, NaN without GT.
    """
    if unknown_labels not in ("error", "skip"):
        raise ValueError(f"unknown_labels: expected 'error' or 'skip', got {unknown_labels!r}")
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    names, ids = toolkit_classes()
    class_of = np.full(NUM_LABEL_IDS, -1, dtype=np.int64)  # label id -> class index, -1 = not evaluated
    class_of[list(ids)] = np.arange(len(ids))
    evaluator = InstanceEvaluator(names, min_region_size=MIN_REGION_SIZE)
    owner: dict[str, Path] = {}  # mask path -> the prediction file naming it
    todo = scene_names(gt_dir, scenes)
    for scene in todo:
        pred_file, gt_file = pred_dir / f"{scene}.txt", gt_dir / f"{scene}.txt"
        for file, what in ((pred_file, "prediction"), (gt_file, "GT")):
            if not file.is_file():
                raise ScanNetPPFileError(f"{file}: {what} file of scene {scene} not found (the toolkit needs "
                                         f"both files for every listed scene)")
        gt_all = read_int_lines(gt_file)  # (N,) every mesh vertex
        keep = np.ones(len(gt_all), dtype=bool) if data_root is None else \
            ~read_ignored_vertices(data_root, scene, len(gt_all))  # (N,)
        gt = gt_all[keep]  # (M,) the vertices that count
        label = gt // 1000  # floor division, as the toolkit
        counted = (gt >= 1000) & (label < NUM_LABEL_IDS)  # the toolkit keeps GT ids >= 1000 only
        gt_class = np.full(len(gt), -1, dtype=np.int64)  # (M,) class index, -1 = void
        gt_class[counted] = class_of[label[counted]]
        gt_instance = np.where(gt_class >= 0, gt, -1)  # (M,) GT id, -1 = none (void where gt_class is -1)
        masks, scores, classes = [], [], []
        entries = read_prediction_file(pred_file, pred_dir, unknown_labels)
        for mask_path, label_id, confidence, line in entries:
            if class_of[label_id] < 0:
                continue  # a defined class outside the instance list: skipped, as by the toolkit
            if owner.setdefault(mask_path, pred_file) != pred_file:
                raise ScanNetPPFileError(f"{pred_file}, line {line}: mask file {mask_path} is also used by "
                                         f"{owner[mask_path]}; each scene needs its own mask files")
            masks.append(read_vertex_mask(mask_path, len(gt_all))[keep])
            scores.append(confidence)
            classes.append(class_of[label_id])
        pred_masks = np.stack(masks) if masks else np.zeros((0, len(gt)), dtype=bool)  # (K, M)
        evaluator.add(pred_masks, np.asarray(scores, np.float64), np.asarray(classes, np.int64), gt_instance,
                      gt_class)
    res = evaluator.compute()
    per_class = {name: {"ap": r["AP"], "ap50": r["AP50"], "ap25": r["AP25"]}
                 for name, r in res["per_class"].items()}
    return {"ap": res["AP"], "ap50": res["AP50"], "ap25": res["AP25"], "classes": per_class,
            "num_scenes": len(todo)}
