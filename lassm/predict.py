"""Instance segmentation of one scan of your own: read, superpoints, model, masks to files.

    python -m lassm.predict outputs/synthetic/model_best.pth room.ply --out predictions/
    python -m lassm.predict authors_scannet.pth room.ply --out predictions/ --preset scannet --variant -3

The scan can be a triangle mesh ``.ply`` (ScanNet's Segmentator superpoints on the mesh, as in
preprocessing, REFERENCE_SPEC 1.1 step 2), a point-cloud ``.ply`` without faces, a ``.pcd`` or an
``.npy`` array (N, 3) xyz or (N, 6) xyz + rgb in 0..255; point clouds get the kNN-graph
superpoints of :func:`lassm.data.superpoints.segment_points`. Points with non-finite coordinates
are dropped (``point_index`` in the output says which input rows were kept). A scan without
colours gets a constant grey, which the model has never seen in training: expect worse masks.

Preprocessing is validation's (``lassm.train.validate``, spec 3.3), with the generator validation
uses for a split's first scene, so a scan predicted here gets exactly the masks validation would
give it. Outputs in ``--out``: ``<stem>_instances.npz`` (masks, classes, class_names, scores,
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
import torch
from plyfile import PlyData, PlyElement

from . import augment
from .config import Config
from .config import preset as make_preset
from .data.dataset import pack_scenes
from .data.io import DataError, Mesh, atomic_path, read_mesh_ply, write_mesh_ply
from .data.superpoints import segment_mesh, segment_points
from .model import LaSSM, Prediction, load_lassm_checkpoint

SCAN_SUFFIXES = (".ply", ".pcd", ".npy")
GREY = 128  # colour of scans without colour, and of points in no instance

# ----------------------------------------------------------------------------- reading a scan


def _ply_vertex_properties(path: Path) -> list[str]:
    """The vertex property names from a PLY header (read as text; the body may be binary)."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if not head.startswith(b"ply"):
        raise DataError(f"{path}: not a PLY file (no 'ply' magic line)")
    header = head.split(b"end_header")[0].decode("ascii", "replace").splitlines()
    props, in_vertex = [], False
    for line in header:
        words = line.split()
        if words[:1] == ["element"]:
            in_vertex = words[1:2] == ["vertex"]
        elif in_vertex and words[:1] == ["property"]:
            props.append(words[-1])
    return props


def _read_ply(path: Path) -> dict:
    """A PLY mesh or cloud; colour is optional (read_mesh_ply requires it, so read xyz ourselves)."""
    if {"red", "green", "blue"} <= set(_ply_vertex_properties(path)):
        mesh = read_mesh_ply(path, require_faces=False)
        return {"coord": mesh.vertices, "color": mesh.colors, "faces": mesh.faces, "has_color": True}
    try:
        ply = PlyData.read(str(path))
        vertex = ply["vertex"].data
        coord = np.stack([vertex[k] for k in "xyz"], axis=1).astype(np.float32)  # (N, 3)
    except Exception as err:  # plyfile raises several types for broken files
        raise DataError(f"{path}: unreadable PLY or no x, y, z vertex properties "
                        f"({type(err).__name__}: {err})") from err
    faces = np.zeros((0, 3), np.int64)
    if "face" in [e.name for e in ply.elements] and len(ply["face"].data):
        lists = ply["face"].data[ply["face"].data.dtype.names[0]]
        if any(len(f) != 3 for f in lists):
            raise DataError(f"{path}: only triangle faces are supported")
        faces = np.stack(lists).astype(np.int64)  # (M, 3)
        if faces.min() < 0 or faces.max() >= len(coord):
            raise DataError(f"{path}: face indices outside 0..{len(coord) - 1}")
    return {"coord": coord, "color": None, "faces": faces, "has_color": False}


def _read_pcd(path: Path) -> dict:
    from pypcd4 import PointCloud

    try:
        data = PointCloud.from_path(path).pc_data
    except Exception as err:  # pypcd4 raises pydantic, lzf, struct and numpy errors
        raise DataError(f"{path}: unreadable or truncated PCD ({type(err).__name__}: {err})") from err
    names = data.dtype.names or ()
    if not {"x", "y", "z"} <= set(names):
        raise DataError(f"{path}: PCD fields {list(names)}; expected at least x, y, z")
    coord = np.stack([data[k] for k in "xyz"], axis=1).astype(np.float32).reshape(-1, 3)
    packed_name = next((k for k in ("rgb", "rgba") if k in names), None)
    if packed_name is None or data.dtype[packed_name].itemsize != 4:
        return {"coord": coord, "color": None, "faces": None, "has_color": False}
    # PCL packs colour as 0x00RRGGBB, in a uint32 or the bits of a float32: reinterpret, not convert
    packed = np.ascontiguousarray(data[packed_name]).view(np.uint32).reshape(-1)
    color = np.stack([(packed >> s) & 255 for s in (16, 8, 0)], axis=1).astype(np.uint8)  # (N, 3)
    return {"coord": coord, "color": color, "faces": None, "has_color": True}


def _read_npy(path: Path) -> dict:
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataError(f"{path}: unreadable .npy file ({type(err).__name__}: {err})") from err
    if array.ndim != 2 or array.shape[1] not in (3, 6) or array.dtype.kind not in "fiu":
        raise DataError(f"{path}: array of shape {array.shape} and dtype {array.dtype}; expected "
                        f"numbers of shape (N, 3) xyz or (N, 6) xyz + rgb in 0..255")
    coord = array[:, :3].astype(np.float32)
    if array.shape[1] == 3:
        return {"coord": coord, "color": None, "faces": None, "has_color": False}
    color = array[:, 3:].astype(np.float64)
    finite = np.isfinite(coord).all(axis=1)
    if len(color[finite]) and (not np.isfinite(color[finite]).all() or color[finite].min() < 0
                               or color[finite].max() > 255):
        raise DataError(f"{path}: colour columns 3..5 must be finite and in 0..255 (got range "
                        f"{np.nanmin(color):g}..{np.nanmax(color):g}); scale 0..1 colours by 255")
    return {"coord": coord, "color": np.clip(np.nan_to_num(color), 0, 255).astype(np.uint8),
            "faces": None, "has_color": True}


def read_scan(path: str | Path) -> dict:
    """Read a scan: ``coord`` (N, 3) float32, ``color`` (N, 3) uint8, ``faces`` (M, 3) int64 or None,
    ``has_color``, ``point_index`` (N,) the kept rows of the file (non-finite points dropped) and
    ``num_input`` the file's point count.

    A PLY with faces is a mesh (faces kept, non-finite vertices are an error); one without is a cloud.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SCAN_SUFFIXES:
        raise DataError(f"{path}: unknown scan format {suffix!r}; expected one of {list(SCAN_SUFFIXES)}")
    if not path.is_file():
        raise DataError(f"{path}: scan file not found")
    scan = {".ply": _read_ply, ".pcd": _read_pcd, ".npy": _read_npy}[suffix](path)
    coord = scan["coord"]
    if len(coord) == 0:
        raise DataError(f"{path}: the scan has no points")
    finite = np.isfinite(coord).all(axis=1)  # (N,)
    if not finite.any():
        raise DataError(f"{path}: all {len(coord)} points have NaN or infinite coordinates")
    faces = scan["faces"]
    is_mesh = faces is not None and len(faces) > 0
    if is_mesh and not finite.all():
        raise DataError(f"{path}: {int((~finite).sum())} mesh vertices have NaN or infinite coordinates")
    color = scan["color"] if scan["has_color"] else np.full((len(coord), 3), GREY, np.uint8)
    keep = np.flatnonzero(finite)  # (N_kept,)
    return {"coord": coord[keep], "color": color[keep], "faces": faces if is_mesh else None,
            "has_color": scan["has_color"], "point_index": keep, "num_input": len(coord)}


def scan_superpoints(scan: dict, viewpoint=None) -> np.ndarray:
    """(N,) int64 compact superpoint ids 0..S-1: mesh Segmentator, or its kNN variant for clouds."""
    if scan["faces"] is not None:
        raw = segment_mesh(scan["coord"], scan["faces"])
    else:
        raw = segment_points(scan["coord"], viewpoint=viewpoint)
    return np.unique(raw, return_inverse=True)[1].astype(np.int64).reshape(-1)


# ----------------------------------------------------------------------------- model


def _device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {device!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device} requested but CUDA is not available here; use --device cpu")
    return device


def load_model(checkpoint: str | Path, preset: str | None = None, variant: str | None = None,
               device: str | torch.device | None = None) -> tuple[LaSSM, Config]:
    """The model of a checkpoint, in eval mode on ``device`` (None: CUDA when available), and its config.

    Our checkpoints (``model_best.pth``, ``model_last.pth``) carry their config and load strictly.
    A foreign one (the authors' ``.pth``) needs ``preset`` (and ``variant``, default "-3") to build
    the model; every model parameter must then be in the file.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise DataError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err})") from err
    if preset is not None:
        cfg = make_preset(preset, variant=variant or "-3")
    elif isinstance(blob, dict) and isinstance(blob.get("config"), dict):
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
    return model.to(_device(device)).eval(), cfg


def prepare_input(arrays: dict, cfg: Config, device: str | torch.device,
                  scene_index: int = 0) -> dict[str, torch.Tensor]:
    """Processed arrays -> the packed model batch of one scene, exactly as validation prepares it.

    arrays: ``coord`` (N, 3), ``color`` (N, 3) 0..255, ``superpoint`` (N,) ids, and optionally
    ``segment`` / ``instance`` (N,) (default -1). The labels are dropped from the batch, as in
    ``lassm.train.validate``, so the model predicts without computing losses. ``scene_index``
    picks validation's generator for the split's scene of that index (its voxel picks).
    """
    from .train import step_generator  # validation's generator for the scene at scene_index

    device = torch.device(device)
    n = len(arrays["coord"])
    scene = {"coord": torch.as_tensor(np.asarray(arrays["coord"]), dtype=torch.float32),
             "color": torch.as_tensor(np.asarray(arrays["color"]), dtype=torch.float32),
             "superpoint": torch.as_tensor(np.asarray(arrays["superpoint"]), dtype=torch.int64)}
    for key in ("segment", "instance"):
        values = arrays.get(key)
        scene[key] = (torch.full((n,), -1, dtype=torch.int64) if values is None
                      else torch.as_tensor(np.asarray(values), dtype=torch.int64))
    scene = {k: v.to(device) for k, v in scene.items()}
    pipeline = augment.val_pipeline(
        augment.augment_config(cfg.data.name, augment.model_variant(cfg.model.decoder.t_layer)))
    batch = pack_scenes([pipeline(scene, step_generator(cfg.seed, 0, scene_index, 0, device))])
    for key in ("origin_segment", "origin_instance"):
        batch.pop(key)
    return batch


@torch.no_grad()
def predict_scan(model: LaSSM, cfg: Config, arrays: dict, device: str | torch.device,
                 scene_index: int = 0) -> Prediction:
    """One scene's instances (fp32, eval mode): masks over the points of ``arrays``, best first."""
    model.eval()
    return model.predict(prepare_input(arrays, cfg, device, scene_index))[0]


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
    pred = predict_scan(model, cfg, arrays, device)
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
