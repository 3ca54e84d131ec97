"""What every benchmark file layout shares (ScanNet instances and semantic labels, ScanNet++): files of one
integer per line, prediction and GT files paired by scene, GT scenes without a prediction, and the
``mask_path label confidence`` prediction line. Each layout's own rules live in its module
(:mod:`.formats`, :mod:`.semantic`, :mod:`.scannetpp_format`); errors name the file and line.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from ..data.io import DataError, atomic_path


class BenchmarkFileError(DataError):
    """A benchmark file that cannot be read or does not follow the layout; names the file and line."""


def read_lines(path, error: type[Exception] = BenchmarkFileError) -> list[str]:
    path = Path(path)
    try:
        return path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{path}: cannot read ({err})") from err


def read_int_lines(path, error: type[Exception] = BenchmarkFileError, what: str = "integer") -> np.ndarray:
    """(N,) int64 from a file of one integer per line (GT, mask and label files); ``error`` names the
    first line that is not an int64 ``what``."""
    path = Path(path)
    lines = read_lines(path, error)
    try:
        return np.array(lines, dtype=np.int64)
    except (ValueError, OverflowError):
        for n, line in enumerate(lines, start=1):
            try:
                np.int64(int(line))
            except (ValueError, OverflowError):
                raise error(f"{path}, line {n}: expected one {what}, got {line!r}") from None
        raise error(f"{path}: expected one {what} per line") from None


def scene_files(pred_dir, gt_dir, what: str = "prediction", skip: tuple[str, ...] = (),
                error: type[Exception] = BenchmarkFileError) -> list[tuple[str, Path, Path]]:
    """(scene, prediction file, GT file) for every ``<scene>.txt`` in ``pred_dir`` (but ``skip``), sorted
    by scene; a scene without its GT file is an error."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    if not pred_dir.is_dir():
        raise error(f"{pred_dir}: {what} folder not found")
    names = sorted(p.name for p in pred_dir.iterdir()
                   if p.name.endswith(".txt") and p.name not in skip and p.is_file())
    if not names:
        raise error(f"{pred_dir}: no {what} files (<scene>.txt) found")
    for name in names:
        if not (gt_dir / name).is_file():
            raise error(f"{pred_dir / name}: no ground truth for this scene ({gt_dir / name} not found)")
    return [(name[:-4], pred_dir / name, gt_dir / name) for name in names]


def missing_predictions(pred_dir, gt_dir) -> list[str]:
    """Scenes with a GT file in ``gt_dir`` but no prediction file in ``pred_dir``, sorted (the benchmarks
    score only the scenes that have predictions, so these would silently drop out)."""
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    if not gt_dir.is_dir():
        return []
    return sorted(p.name[:-4] for p in gt_dir.iterdir()
                  if p.name.endswith(".txt") and p.is_file() and not (pred_dir / p.name).is_file())


def report_missing(pred_dir, gt_dir, strict: bool, what: str = "prediction",
                   error: type[Exception] = BenchmarkFileError) -> None:
    """Warn about :func:`missing_predictions` on stderr; with ``strict`` they are an error."""
    missing = missing_predictions(pred_dir, gt_dir)
    if missing:
        text = (f"{len(missing)} scene(s) in {gt_dir} have no {what} file in {pred_dir}: "
                f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}")
        if strict:
            raise error(f"{text} (--strict)")
        print(f"warning: {text}; they are not scored (--strict makes this an error)", file=sys.stderr)


def prediction_line(line: str, where: str, root: str, base: str,
                    error: type[Exception] = BenchmarkFileError) -> tuple[str, str, str]:
    """A prediction file's line ``mask_path label confidence`` (single spaces) -> (absolute mask path,
    label text, confidence text); the mask path is relative to ``base`` and must lie inside ``root``."""
    parts = line.split(" ")
    if len(parts) != 3:
        raise error(f"{where}: expected 3 fields separated by single spaces (mask path, label id, "
                    f"confidence), got {len(parts)}: {line!r}")
    rel, label, conf = parts
    if os.path.isabs(rel):
        raise error(f"{where}: expected a mask path relative to {root}, got {rel!r}")
    mask_path = os.path.abspath(os.path.join(base, rel))
    if os.path.commonpath([mask_path, root]) != root or mask_path == root:
        raise error(f"{where}: mask path {rel!r} points outside the prediction folder {root}")
    return mask_path, label, conf


def check_scene_name(scene: str) -> str:
    """``scene`` as a file stem of the benchmark layouts: no spaces or slashes, not "." or ".."."""
    if not scene or any(c in scene for c in " \t\n/\\") or scene in (".", ".."):
        raise ValueError(f"scene: expected a plain file stem without spaces or slashes, got {scene!r}")
    return scene


def prediction_arrays(masks, label_ids, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene's predictions as arrays, checked: (K, N) masks, (K,) integer label ids, (K,) finite float64
    scores (what every benchmark layout writes; each format adds its own checks of ids and scores)."""
    masks = np.asarray(masks)
    label_ids = np.asarray(label_ids).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if masks.ndim != 2:
        raise ValueError(f"masks: expected shape (K, N), got {masks.shape}")
    if not len(label_ids) == len(scores) == masks.shape[0]:
        raise ValueError(f"label_ids, scores: expected {masks.shape[0]} entries like masks, got "
                         f"{len(label_ids)} and {len(scores)}")
    if not np.isfinite(scores).all():
        raise ValueError("scores: expected finite confidences")
    if label_ids.size and not np.array_equal(label_ids, np.round(label_ids)):
        raise ValueError(f"label_ids: expected integers, got {label_ids}")
    return masks, label_ids, scores


def write_results_json(path, results: dict) -> None:
    """``results`` as JSON, NaN as null (a class without GT), atomically."""
    def safe(obj):
        if isinstance(obj, dict):
            return {k: safe(v) for k, v in obj.items()}
        return None if isinstance(obj, float) and math.isnan(obj) else obj

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(safe(results), indent=2) + "\n")
