"""The one path from stored or scanned arrays to instances (ARCHITECTURE.md).

Training validation, ``lassm.predict``, ``lassm.evaluate.export``, the benchmarks, the decoder
trace and the notebooks all come through here, so a scene gets the same answer whichever door it
enters by::

    model, cfg = load_model("outputs/mosd-3/model_best.pth")  # the model and the config it was trained with
    pred = predict_arrays(model, cfg, arrays, device)           # masks over the points of `arrays`

``arrays`` are scene arrays (:mod:`lassm.data.batch`): ``coord``, ``color``, ``superpoint`` and
optionally ``segment`` / ``instance``. Preprocessing is validation's (spec 3.3): the config's
augmentation settings (``cfg.augment``) in validation mode. Its one random choice, the point that
represents each voxel (spec 11.1.7), comes from a generator seeded by ``cfg.seed`` alone, fresh for
every scene: a scene gets the same voxels whether it is the fifth of a validation split or a scan
given to ``predict`` on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from . import augment
from .config import Config
from .config import preset as make_preset
from .data.batch import drop_labels, pack_scenes, scene_tensors
from .data.io import DataError
from .data.labels import compact_instances, train_labels
from .model import LaSSM, Prediction, load_lassm_checkpoint
from .model.checkpoint import read_checkpoint
from .model.geometric_split import partition_clusters, split_prediction


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None or "auto": CUDA when available, else the CPU; otherwise the named device, checked."""
    if device is None or str(device) in ("auto", ""):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {device!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device} requested but CUDA is not available here; use --device cpu")
    return device


def stores_config(blob) -> bool:
    """Whether a loaded checkpoint carries its config (ours do; the authors' do not)."""
    return isinstance(blob, dict) and isinstance(blob.get("config"), dict)


def load_model(checkpoint: str | Path, preset: str | None = None, variant: str | None = None,
               device: str | torch.device | None = None, trusted: bool = False) -> tuple[LaSSM, Config]:
    """The model of a checkpoint, in eval mode on ``device`` (None: CUDA when available), and its config.

    Our checkpoints (``model_best.pth``, ``model_last.pth``) carry their config and load strictly.
    A foreign one (the authors' ``.pth``) needs ``preset`` (and ``variant``, default "-3") to build
    the model; every model parameter must then be in the file. The file is read as data only, unless
    ``trusted`` opts in to unpickling a legacy file from a source you trust (``--trust-checkpoint``).
    """
    path = Path(checkpoint)
    return model_from_checkpoint(read_checkpoint(path, trusted=trusted), path, preset, variant, device)


def model_from_checkpoint(blob, path: str | Path, preset: str | None = None, variant: str | None = None,
                          device: str | torch.device | None = None) -> tuple[LaSSM, Config]:
    """:func:`load_model` for a checkpoint already read (``blob``, from the file ``path``)."""
    path = Path(path)
    if preset is not None:
        cfg = make_preset(preset, variant=variant or "-3")
    elif stores_config(blob):
        if variant is not None:
            raise ValueError(f"variant: only used with --preset; {path} carries its own config")
        try:
            cfg = Config.from_dict(blob["config"])
        except (TypeError, ValueError) as err:
            raise DataError(f"{path}: its stored config does not fit this version of lassm ({err})") from err
    else:
        raise DataError(f"{path}: the checkpoint stores no config; pass --preset NAME (and --variant) "
                        f"to say which model it holds, e.g. --preset scannet --variant -3")
    model = LaSSM(cfg.model)
    try:
        report = load_lassm_checkpoint(model, blob, strict=preset is None)
    except ValueError as err:
        raise DataError(f"{path}: {err}") from err
    if report.missing:
        raise DataError(f"{path}: does not hold the {preset} model: {len(report.missing)} parameters "
                        f"missing, e.g. {report.missing[:3]}")
    if report.unexpected:
        print(f"note: {path}: {len(report.unexpected)} entries not used by the model, e.g. "
              f"{report.unexpected[:3]}", file=sys.stderr)
    return model.to(resolve_device(device)).eval(), cfg


def step_generator(seed: int, epoch: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """The generator of one step's augmentation: a function of (seed, epoch, step, rank) only."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + step * 64 + rank)
    return g


def val_generator(cfg: Config, device: torch.device) -> torch.Generator:
    """Validation's generator for any one scene: seeded by ``cfg.seed`` only, not by the scene's place in
    its split (before, the split index entered the seed, so a scan predicted alone could pick other
    voxel representatives than the same scene validated in a split)."""
    return step_generator(cfg.seed, 0, 0, 0, torch.device(device))


def val_scene(arrays, cfg: Config, device: str | torch.device) -> dict[str, torch.Tensor]:
    """Scene arrays (numpy or tensors) -> one augmented scene, as validation preprocesses it."""
    device = torch.device(device)
    pipeline = augment.val_pipeline(cfg.augment)
    return pipeline(scene_tensors(arrays, device), val_generator(cfg, device))


def prepare_input(arrays, cfg: Config, device: str | torch.device) -> dict[str, torch.Tensor]:
    """Scene arrays -> the packed model batch of one scene, exactly as validation prepares it.

    The labels are dropped from the batch, so the model predicts without computing losses.
    """
    return drop_labels(pack_scenes([val_scene(arrays, cfg, device)]))


@torch.no_grad()
def predict_arrays(model: LaSSM, cfg: Config, arrays, device: str | torch.device) -> Prediction:
    """One scene's instances (eval mode): masks over the points of ``arrays``, best first; cut along the
    gaps between objects when ``model.postprocess.split_radius`` > 0 (:mod:`lassm.model.geometric_split`)."""
    model.eval()
    pred = model.predict(prepare_input(arrays, cfg, device))[0]
    post = cfg.model.postprocess
    if post.split_radius > 0:
        if cfg.data.scan.frame != "support_plane":
            raise ValueError(f"model.postprocess.split_radius: the geometric split needs single-view scans "
                             f"in the support plane's frame (data.scan.frame 'support_plane'), got "
                             f"{cfg.data.scan.frame!r}; set it to 0")
        coord = _numpy(arrays["coord"])  # validation hands over the scene as tensors on the model's device
        if post.split_mode == "partition":
            normal = arrays.get("normal") if post.split_convex_degrees > 0 else None
            colour = _numpy(arrays["color"]) if post.split_colour_cut > 0 else None
            pred = partition_clusters(pred, coord, post.split_radius, post.npoint_thr,
                                      normal=None if normal is None else _numpy(normal),
                                      convex_degrees=post.split_convex_degrees, colour=colour,
                                      colour_cut=post.split_colour_cut)
        else:
            pred = split_prediction(pred, coord, post.split_radius, post.npoint_thr)
    return pred


def _numpy(values) -> np.ndarray:
    return values.detach().cpu().numpy() if torch.is_tensor(values) else np.asarray(values)


def has_labels(arrays) -> bool:
    """Whether the scene carries semantic labels (a split without them can be exported, not scored)."""
    segment = arrays.get("segment")
    return segment is not None and bool((np.asarray(segment) >= 0).any())


def gt_instances(arrays, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth in the model's label space: (N,) train labels (-1 = stuff or unlabelled) and (N,)
    compact instance ids 0..K-1 of instance-class points (-1 = none)."""
    label = train_labels(torch.as_tensor(np.asarray(arrays["segment"])), len(cfg.data.class_names),
                         tuple(cfg.data.stuff_classes))
    instance = compact_instances(torch.as_tensor(np.asarray(arrays["instance"])), label)
    return label, instance


def open_model(checkpoint: str | Path, preset: str = "synthetic", variant: str = "-3",
               device: str | torch.device | None = None, trusted: bool = False) -> tuple[LaSSM, Config, dict]:
    """A checkpoint's model and config as the notebooks open it, and what the file says about itself.

    Our checkpoints carry their config (``preset``/``variant`` are then ignored); a foreign one is built
    from ``preset`` and ``variant``. ``info``: ``foreign``, ``epoch`` and ``step`` it was saved at and its
    validation ``metrics`` (None where the file does not say), and ``summary``, one line for a person.
    ``trusted``: as for :func:`load_model`.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found; train one with notebooks/03_train.ipynb "
                        f"(or python -m lassm.train) or pass -p checkpoint PATH")
    blob = read_checkpoint(path, trusted=trusted)  # read once: the model and what the file says
    foreign = not stores_config(blob)
    state = blob.get("state") if isinstance(blob, dict) else None
    metrics = blob.get("metrics") if isinstance(blob, dict) else None
    model, cfg = model_from_checkpoint(blob, path, preset if foreign else None,
                                       variant if foreign else None, device)
    info = {"foreign": foreign, "epoch": (state or {}).get("epoch"), "step": (state or {}).get("step"),
            "metrics": metrics}
    saved = (f"saved after epoch {info['epoch']} (step {info['step']})" if info["epoch"] is not None
             else "no training state stored")
    scores = (f", validation AP {metrics['AP']:.3f} AP50 {metrics['AP50']:.3f} AP25 {metrics['AP25']:.3f}"
              if isinstance(metrics, dict) and "AP50" in metrics else "")
    info["summary"] = (f"{path} ({cfg.release or cfg.data.name}{', foreign' if foreign else ''}): {saved}"
                       f"{scores}; on {next(model.parameters()).device}")
    return model, cfg, info


def override_split(cfg: Config, radius: float | None = None, mode: str = "partition",
                   convex: float | None = None, colour: float | None = None) -> None:
    """Single-view post-processing of a loaded model, over its checkpoint's setting (None keeps it):
    ``radius`` and ``mode`` set ``model.postprocess.split_radius`` and ``split_mode`` (masks against the
    gaps between objects, :mod:`lassm.model.geometric_split`), ``convex`` ``split_convex_degrees`` (the
    partition's clusters divided along concave creases first; 0 = off), ``colour`` ``split_colour_cut``
    (smooth concave joints between superpoints of different colour cut too; 0 = off). The values are
    checked, naming the fields."""
    post = cfg.model.postprocess
    if radius is not None:
        post.split_radius, post.split_mode = radius, mode
    if convex is not None:
        post.split_convex_degrees = convex
        if convex == 0:
            post.split_colour_cut = 0.0  # no convex division, nothing for the colours to refine
    if colour is not None:
        post.split_colour_cut = colour
    if radius is not None or convex is not None or colour is not None:
        post.__post_init__()
