"""Evaluation: ScanNet-protocol AP (`ap`), benchmark file layout (`formats`; ScanNet++'s own toolkit format:
`scannetpp_format`), the semantic-label benchmark (`semantic`), a split's export (`export`).

    from lassm.evaluate import evaluate_predictions, evaluate_benchmark, evaluate_split, export_split

`python -m lassm.evaluate --pred DIR --gt DIR` scores benchmark files (`formats.main`; with `--semantic`,
per-vertex label files: class IoU and mIoU);
`python -m lassm.export` (or `python -m lassm.evaluate.export`) writes them for a checkpoint.
The export names load `export` (and with it the model) on first use, so the AP and the file formats need
no model code, and `python -m lassm.evaluate.export` runs without the package having imported it first.
"""

from __future__ import annotations

import importlib

from .ap import (
    AP25_OVERLAP,
    DEFAULT_OVERLAPS,
    MIN_REGION_SIZE,
    InstanceEvaluator,
    SceneMatches,
    average_precision,
    evaluate_matches,
    evaluate_predictions,
    prediction_matches,
    scene_matches,
)
from .formats import (
    CLASS_LISTS,
    MASK_FOLDER,
    RESULT_FILE,
    BenchmarkFileError,
    benchmark_classes,
    dataset_label_ids,
    evaluate_benchmark,
    format_results,
    main,
    read_ints,
    read_mask,
    read_prediction_file,
    scene_files,
    write_gt,
    write_predictions,
)
from .scannetpp_format import ScanNetPPFileError, evaluate_scannetpp, toolkit_classes, toolkit_label_ids
from .semantic import SemanticEvaluator, evaluate_semantic, read_labels, semantic_classes, write_labels

EXPORT_NAMES = ("BENCHMARK_OF", "benchmark_name", "semantic_label_ids", "instance_label_ids", "label_ids_of",
                "split_dataset", "scene_arrays", "scene_count", "find_scene", "predict_split", "write_scene",
                "export_split", "evaluate_split", "write_scene_view")


def __getattr__(name: str):
    """The names of `lassm.evaluate.export`, imported on first use (PEP 562)."""
    if name in EXPORT_NAMES:
        return getattr(importlib.import_module(f"{__name__}.export"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AP25_OVERLAP", "DEFAULT_OVERLAPS", "MIN_REGION_SIZE", "InstanceEvaluator", "SceneMatches",
    "average_precision", "evaluate_matches", "evaluate_predictions", "prediction_matches", "scene_matches",
    "CLASS_LISTS", "MASK_FOLDER", "RESULT_FILE", "BenchmarkFileError", "benchmark_classes",
    "dataset_label_ids", "evaluate_benchmark", "format_results", "main", "read_ints", "read_mask",
    "read_prediction_file", "scene_files", "write_gt", "write_predictions",
    "SemanticEvaluator", "evaluate_semantic", "read_labels", "semantic_classes", "write_labels",
    "ScanNetPPFileError", "evaluate_scannetpp", "toolkit_classes", "toolkit_label_ids",
    *EXPORT_NAMES,
]
