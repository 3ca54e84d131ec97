"""A checkpoint's predictions on a processed split: the benchmark file layout, and per-scene scores.

    python -m lassm.export outputs/scannet-3/model_best.pth --split val --out outputs/scannet-3/bench_val
    python -m lassm.evaluate --pred outputs/scannet-3/bench_val/predictions \\
                             --gt outputs/scannet-3/bench_val/gt --classes scannet20

``--format scannetpp`` writes the ScanNet++ toolkit's own files instead (label id = index in its 100
semantic classes, GT semantic id * 1000 + instance; :mod:`lassm.evaluate.scannetpp_format`), for a model
with ScanNet++ classes; score them with ``python -m lassm.evaluate --format scannetpp``.

``--out`` receives ``predictions/`` (``<scene>.txt`` + ``predicted_masks/``, what the ScanNet test
server takes, zipped) and, for labelled splits, ``gt/`` (``<scene>.txt``, label_id * 1000 + instance
per vertex), both in the layout of :mod:`lassm.evaluate.formats`; and the semantic-label benchmark's
``semantic/`` (``<scene>.txt``, the superpoint head's label id per vertex, 0 = background) with, for
labelled splits, ``gt_semantic/`` (the scene's label id per vertex, 0 = unannotated), the layout of
:mod:`lassm.evaluate.semantic`. Scenes are predicted as validation
does (:func:`lassm.inference.predict_arrays`), on the processed points
(every mesh vertex for ScanNet). A rerun skips scenes whose files are already there, so an interrupted
export resumes; ``--overwrite`` redoes them. ``python -m lassm.evaluate.export`` is the same command.

Label ids: the model's train labels index the preset's instance classes
(``cfg.data.instance_class_names``); each is written with the benchmark id of the class of that name
(:func:`lassm.evaluate.formats.benchmark_classes`). Ground-truth semantic indices map to the dataset's
ids (:func:`semantic_label_ids`), stuff and unlabelled points end up as 0 (void either way).

:func:`evaluate_split` scores a split in memory for the notebooks: the overall ScanNet-protocol
result of :class:`lassm.evaluate.ap.InstanceEvaluator` and each scene's own AP, AP50 and AP25.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..cli import add_split_arguments, check_output_dir, dash_values, run_command
from ..config import Config
from ..data.dataset import SceneDataset
from ..data.io import DataError
from ..data.labels import CLASS_LABELS_20, CLASS_LABELS_200, VALID_CLASS_IDS_20, VALID_CLASS_IDS_200
from ..inference import gt_instances, has_labels, open_model, override_split, predict_arrays
from ..model import LaSSM, Prediction
from .ap import InstanceEvaluator
from .formats import MASK_FOLDER, benchmark_classes, write_gt, write_predictions
from .scannetpp_format import toolkit_label_ids
from .scannetpp_format import write_gt as write_gt_pp
from .scannetpp_format import write_predictions as write_predictions_pp
from .semantic import GT_FOLDER, PRED_FOLDER, SemanticEvaluator, semantic_classes, write_labels

# the benchmark class list of each data preset (synthetic rooms carry ScanNet20 labels)
BENCHMARK_OF = {"synthetic": "scannet20", "scannet": "scannet20", "scannet200": "scannet200",
                "scannetpp": "scannetpp", "mosd": "mosd"}
FORMATS = ("scannet", "scannetpp")  # ScanNet's benchmark files (any preset), the ScanNet++ toolkit's
FORMAT_FILE = "benchmark_format.txt"  # in --out: the format its files are in, so a rerun never mixes two

# ------------------------------------------------------------------------------- label ids


def benchmark_name(cfg: Config) -> str:
    """The class list (`lassm.evaluate.formats.CLASS_LISTS`) of the config's dataset."""
    if cfg.data.name not in BENCHMARK_OF:
        raise ValueError(f"data.name: no benchmark class list for {cfg.data.name!r}; "
                         f"expected one of {sorted(BENCHMARK_OF)}")
    return BENCHMARK_OF[cfg.data.name]


def semantic_label_ids(cfg: Config) -> np.ndarray:
    """(C,) the benchmark label id of every semantic class index of ``cfg.data.class_names``.

    ScanNet20 / ScanNet200 use their official ids (by class name); ScanNet++ and mOSD, which have
    none, use index + 1 (as :mod:`lassm.evaluate.formats`).
    """
    name = benchmark_name(cfg)
    names = cfg.data.class_names
    if name in ("scannet20", "scannet200"):
        table = dict(zip(CLASS_LABELS_20, VALID_CLASS_IDS_20, strict=True)) if name == "scannet20" else \
            dict(zip(CLASS_LABELS_200, VALID_CLASS_IDS_200, strict=True))
        missing = [n for n in names if n not in table]
        if missing:
            raise ValueError(f"data.class_names: {missing[:3]} are not {name} classes")
        return np.array([table[n] for n in names], dtype=np.int64)
    return np.arange(1, len(names) + 1, dtype=np.int64)


def label_ids_of(segment, cfg: Config) -> np.ndarray:
    """(N,) benchmark label ids of (N,) semantic labels (indices of ``cfg.data.class_names``), -1 -> 0."""
    segment = np.asarray(segment).astype(np.int64)
    return np.where(segment >= 0, semantic_label_ids(cfg)[np.clip(segment, 0, None)], 0)


def instance_label_ids(cfg: Config) -> np.ndarray:
    """(C_inst,) the benchmark label id of each train label (the model's predicted classes)."""
    names, ids = benchmark_classes(benchmark_name(cfg))
    table = dict(zip(names, ids, strict=True))
    missing = [n for n in cfg.data.instance_class_names if n not in table]
    if missing:
        raise ValueError(f"data.class_names: instance classes {missing[:3]} are not in the "
                         f"{benchmark_name(cfg)} benchmark")
    return np.array([table[n] for n in cfg.data.instance_class_names], dtype=np.int64)


# ------------------------------------------------------------------------------- scenes of a split


def split_dataset(cfg: Config, split: str, root: str | None = None) -> SceneDataset:
    """The processed scenes of ``split`` under ``root`` (default: the config's data root)."""
    return SceneDataset.for_config(cfg.data, root or cfg.data.root, split,
                                   with_normal=cfg.model.postprocess.split_convex_degrees > 0)


def scene_arrays(dataset: SceneDataset, index: int) -> dict[str, np.ndarray]:
    """One processed scene as numpy arrays: coord, color, superpoint, segment, instance."""
    return {k: v.numpy() for k, v in dataset[index].items() if torch.is_tensor(v)}


def find_scene(dataset: SceneDataset, scene: str = "", default: int = 0) -> int:
    """The index of the scene named ``scene`` in ``dataset`` (``default`` when empty); ValueError naming
    the split and a few of its scenes when there is no such scene."""
    names = [dataset.name(i) for i in range(len(dataset.scenes))]
    if scene and scene not in names:
        raise ValueError(f"scene: {scene!r} is not in {dataset.scenes[0].parent} ({len(names)} scenes, "
                         f"e.g. {names[:3]})")
    return names.index(scene) if scene else default


def scene_count(dataset: SceneDataset, max_scenes: int = 0) -> int:
    """How many scenes a run over ``dataset`` covers: all, or the first ``max_scenes`` when positive."""
    return len(dataset.scenes) if max_scenes <= 0 else min(max_scenes, len(dataset.scenes))


def predict_split(model: LaSSM, cfg: Config, dataset: SceneDataset, device: str | torch.device,
                  max_scenes: int = 0) -> Iterator[tuple[int, str, dict, Prediction]]:
    """(index, scene name, arrays, prediction) per scene, predicted as validation does."""
    for i in range(scene_count(dataset, max_scenes)):
        arrays = scene_arrays(dataset, i)
        yield i, dataset.name(i), arrays, predict_arrays(model, cfg, arrays, device)


# ------------------------------------------------------------------------------- export and scores


def write_scene(out: Path, name: str, arrays: dict, pred: Prediction, cfg: Config,
                fmt: str = "scannet") -> None:
    """The scene's prediction file and masks, its semantic file (when ``pred`` has semantics) and, when the
    scene has labels, its GT files, in format ``fmt``; the prediction file last, as the sign of a finished
    scene."""
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")
    if pred.semantic is not None:
        write_labels(out / PRED_FOLDER, name, label_ids_of(pred.semantic.cpu().numpy(), cfg))
    if has_labels(arrays):
        write_labels(out / GT_FOLDER, name, label_ids_of(arrays["segment"], cfg))
    if fmt == "scannetpp":
        return write_scene_scannetpp(out, name, arrays, pred, cfg)
    ids = instance_label_ids(cfg)
    classes = pred.classes.cpu().numpy()
    write_predictions(out / "predictions", name, pred.masks.cpu().numpy(), ids[classes],
                      pred.scores.float().cpu().numpy())
    if has_labels(arrays):
        write_gt(out / "gt", name, label_ids_of(arrays["segment"], cfg), arrays["instance"],
                 classes=benchmark_name(cfg))


def write_scene_scannetpp(out: Path, name: str, arrays: dict, pred: Prediction, cfg: Config) -> None:
    """``write_scene`` in the ScanNet++ toolkit's format: classes by name to its label ids, the GT from the
    scene's semantic classes (column 0: the smallest object) and instance ids."""
    ids = toolkit_label_ids(cfg.data.instance_class_names, "data.class_names", instance_only=True)
    write_predictions_pp(out / "predictions", name, pred.masks.cpu().numpy(), ids[pred.classes.cpu().numpy()],
                         pred.scores.float().cpu().numpy())
    if has_labels(arrays):
        segment = arrays["segment"]
        semantic = toolkit_label_ids(cfg.data.class_names, "data.class_names")
        write_gt_pp(out / "gt", name, np.where(segment >= 0, semantic[np.clip(segment, 0, None)], -1),
                    arrays["instance"])


def export_split(model: LaSSM, cfg: Config, split: str, out: str | Path, device: str | torch.device,
                 root: str | None = None, max_scenes: int = 0, overwrite: bool = False,
                 fmt: str = "scannet") -> dict[str, list]:
    """Write ``out/predictions`` and ``out/semantic`` (and ``out/gt``, ``out/gt_semantic``) of a split, the
    instance files in format ``fmt`` (``FORMATS``); returns {"written": names, "skipped": names}."""
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")
    if fmt == "scannetpp":  # before the model runs: a model without ScanNet++ classes cannot be written
        toolkit_label_ids(cfg.data.instance_class_names, "data.class_names", instance_only=True)
    out = Path(out)
    check_format(out, fmt, overwrite)
    dataset = split_dataset(cfg, split, root)
    done: dict[str, list] = {"written": [], "skipped": []}
    for i in range(scene_count(dataset, max_scenes)):
        name = dataset.name(i)
        if not overwrite and (out / "predictions" / f"{name}.txt").is_file() \
                and (out / PRED_FOLDER / f"{name}.txt").is_file():  # an older export has no semantic/
            done["skipped"].append(name)  # the scene file is written last: its masks are complete
            continue
        arrays = scene_arrays(dataset, i)
        pred = predict_arrays(model, cfg, arrays, device)
        remove_scene_predictions(out / "predictions", name)  # a rerun with fewer masks leaves none stale
        write_scene(out, name, arrays, pred, cfg, fmt)
        done["written"].append(name)
    return done


def check_format(out: Path, fmt: str, overwrite: bool) -> None:
    """Record ``fmt`` in ``out``; refuse to resume an export of another format there (ValueError), unless
    ``overwrite`` (every scene is then rewritten). An export older than the record counts as "scannet"."""
    record = out / FORMAT_FILE
    before = record.read_text().strip() if record.is_file() else \
        "scannet" if any((out / "predictions").glob("*.txt")) else fmt
    if before != fmt and not overwrite:
        raise ValueError(f"--format: {out} holds a {before} export; use another --out for {fmt}, or "
                         f"--overwrite to redo every scene")
    out.mkdir(parents=True, exist_ok=True)
    record.write_text(fmt + "\n")


def remove_scene_predictions(pred_dir: Path, name: str) -> None:
    """Delete a scene's prediction file (first: it must never point at deleted masks) and its mask files
    ``predicted_masks/<name>_<k>.txt``; another scene's masks (``<name>_001_000.txt``) are not matched."""
    (pred_dir / f"{name}.txt").unlink(missing_ok=True)
    own = re.compile(rf"{re.escape(name)}_\d+\.txt")
    masks = pred_dir / MASK_FOLDER
    if masks.is_dir():
        for path in masks.iterdir():
            if own.fullmatch(path.name):
                path.unlink()


def evaluate_split(model: LaSSM, cfg: Config, split: str, device: str | torch.device,
                   root: str | None = None, max_scenes: int = 0) -> dict:
    """The split's ScanNet-protocol result ("overall", as ``lassm.evaluate.evaluate_predictions`` gives it),
    "per_scene" rows and "semantic", the semantic-label benchmark's class IoU and mIoU of the superpoint head
    (:class:`lassm.evaluate.semantic.SemanticEvaluator`, as ``python -m lassm.evaluate --semantic`` on the
    exported files).

    Each row: scene, AP, AP50, AP25 (NaN where the scene has no GT instance), gt (GT instances of
    instance classes), predictions (the model's masks). Predictions are not kept, so a split of any size fits.
    """
    dataset = split_dataset(cfg, split, root)
    instance_names = cfg.data.instance_class_names
    evaluator = InstanceEvaluator(instance_names)
    semantic = SemanticEvaluator(*semantic_classes(benchmark_name(cfg)))
    rows = []
    for _, name, arrays, pred in predict_split(model, cfg, dataset, device, max_scenes):
        if not has_labels(arrays):
            raise DataError(f"{dataset.scenes[0].parent / name}: no labels ({cfg.data.segment_key}.npy); "
                            f"a split without ground truth cannot be evaluated, export it instead")
        label, instance = gt_instances(arrays, cfg)  # (N,) train labels, (N,) compact instance ids
        evaluator.add(pred.masks, pred.scores, pred.classes, instance, label)
        semantic.add(label_ids_of(arrays["segment"], cfg), label_ids_of(pred.semantic.cpu().numpy(), cfg))
        scene_only = InstanceEvaluator(instance_names)  # the same labels, this scene alone
        scene_only.add(pred.masks, pred.scores, pred.classes, instance, label)
        own = scene_only.compute()
        rows.append({"scene": name, "AP": own["AP"], "AP50": own["AP50"], "AP25": own["AP25"],
                     "gt": int(instance.max().item()) + 1 if len(instance) else 0,
                     "predictions": int(len(pred.scores))})
    return {"overall": evaluator.compute(), "per_scene": rows, "semantic": semantic.compute()}


def write_scene_view(checkpoint: str | Path, path: str | Path, split: str = "val", scene: str = "",
                     root: str | None = None, device: str | torch.device | None = None,
                     max_points: int = 200_000, min_score: float = 0.4) -> dict:
    """A standalone HTML page of one scene: ground truth | the checkpoint's prediction (matched pairs in
    the same colour, IoU written on them, a legend with each instance's class), written atomically.

    scene: a scene of ``split`` (default the first); root: the data root (default the checkpoint's).
    The page shows the predictions scored at least ``min_score`` (the AP50 counts them all).
    Returns ``scene``, ``path``, ``AP50`` (this scene alone) and the checkpoint's one-line ``summary``.
    """
    from ..viz import prediction_vs_gt_figure, save_html

    model, cfg, info = open_model(checkpoint, device=device)
    dataset = split_dataset(cfg, split, root)
    index = find_scene(dataset, scene)
    name, arrays = dataset.name(index), scene_arrays(dataset, index)
    pred = predict_arrays(model, cfg, arrays, next(model.parameters()).device)
    label, instance = gt_instances(arrays, cfg)  # (N,) train labels, (N,) compact instance ids
    classes = cfg.data.instance_class_names
    names = {int(i): classes[int(label[instance == i][0])] for i in torch.unique(instance[instance >= 0])}
    scene_only = InstanceEvaluator(classes)
    scene_only.add(pred.masks, pred.scores, pred.classes, instance, label)
    ap50 = scene_only.compute()["AP50"]
    scores = pred.scores.float().cpu().numpy()  # (K,)
    shown = scores >= min_score
    title = f"{name} ({split}): ground truth | predictions scored >= {min_score:g}; AP50 {ap50:.3f} (all)"
    fig = prediction_vs_gt_figure(arrays["coord"], instance.numpy(), pred.masks.cpu().numpy()[shown],
                                  scores[shown], max_points=max_points, title=title, instance_names=names)
    return {"scene": name, "path": save_html(fig, path), "AP50": ap50, "summary": info["summary"]}


# ------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """`python -m lassm.export CHECKPOINT --split SPLIT --out DIR`, or `python -m lassm.evaluate.export`."""
    parser = argparse.ArgumentParser(prog="python -m lassm.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="model_best.pth / model_last.pth (a foreign .pth: with --preset)")
    parser.add_argument("--split", default="val", help="processed split folder under the data root")
    parser.add_argument("--out", required=True, help="folder for predictions/, semantic/, gt/, gt_semantic/")
    parser.add_argument("--data-root", default=None, help="processed data root (default: the checkpoint's)")
    parser.add_argument("--max-scenes", type=int, default=0, help="only the first N scenes (0 = all)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--preset", default=None, help="for a checkpoint without a stored config")
    parser.add_argument("--variant", default=None,
                        help="decoder variant of --preset: -3 (default) or -0 (scannetpp also -3-sc, -0-sc)")
    parser.add_argument("--format", default="scannet", choices=FORMATS,
                        help="scannet: ScanNet's benchmark files (default); scannetpp: the ScanNet++ "
                             "toolkit's (label id = index in its 100 semantic classes; a ScanNet++ model)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo scenes already exported (their old mask files are removed first)")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow unpickling a legacy checkpoint; only for files from a source you trust")
    add_split_arguments(parser)
    args = parser.parse_args(dash_values(argv))
    return run_command(lambda: _command(args))


def _command(args) -> None:
    out = Path(args.out)
    check_output_dir(out, "--out")  # before the model runs: a file there, or no write permission
    if args.max_scenes < 0:
        raise ValueError(f"--max-scenes: expected 0 (all) or a positive number, got {args.max_scenes}")
    model, cfg, info = open_model(args.checkpoint, args.preset, args.variant, args.device,
                                  trusted=args.trust_checkpoint)
    # None keeps the checkpoint's
    override_split(cfg, args.split_radius, args.split_mode, args.split_convex, args.split_colour)
    print(info["summary"])  # which epoch, step and validation scores the checkpoint carries
    device = next(model.parameters()).device
    done = export_split(model, cfg, args.split, out, device, args.data_root, args.max_scenes, args.overwrite,
                        args.format)
    print(f"{len(done['written'])} scenes written, {len(done['skipped'])} already there: "
          f"{out / 'predictions'}")
    if (out / "gt").is_dir():
        how = "--format scannetpp" if args.format == "scannetpp" else f"--classes {benchmark_name(cfg)}"
        print(f"score them: python -m lassm.evaluate --pred {out / 'predictions'} --gt {out / 'gt'} {how}")
        print(f"semantic labels: python -m lassm.evaluate --semantic --pred {out / PRED_FOLDER} "
              f"--gt {out / GT_FOLDER} --classes {benchmark_name(cfg)}")


if __name__ == "__main__":
    raise SystemExit(main())
