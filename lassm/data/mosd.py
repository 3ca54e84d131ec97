"""mOSD real tabletop scans: Kinect PCD files -> processed scenes.

The modified Object Segmentation Database (``../shared/data/mosd/README.md``) holds organised
640x480 clouds with fields ``label x y z rgba`` in the camera frame; invalid pixels have NaN
coordinates. Some test scans are stored unorganised (``HEIGHT 1``, invalid points removed).
:func:`read_pcd` reads both, and :func:`process` hands the points to
:func:`lassm.data.singleview.process_single_view`, the preprocessing shared with the synthetic
tabletops and with scans of your own (pixel-grid mesh or kNN graph, support-plane frame,
Segmentator superpoints, labels; see that module). Per scene it saves ``coord``, ``color``,
``normal``, ``superpoint`` (raw Segmentator ids), ``segment`` (``CLASS_LABELS_MOSD =
("table", "object")``), ``instance`` (the job option ``instance_view``), ``instance_object``,
``instance_part``, ``point_index`` (the file rows kept), ``table_from_camera``,
``plane_inlier_fraction``, ``plane_tilt_degrees`` and ``scene_id``.

Only valid points are kept (finite coordinates, positive depth; with a grid, also in at least
one triangle: the isolated ones, 0-12 per scan, are flying pixels). Some scans (learn5,
learn25, learn26) mark invalid pixels as x = y = -0 with only z NaN, so all three coordinates
are checked, not x alone.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
from pypcd4 import PointCloud

from ..config.schema import ScanConfig, single_view_scan
from .io import DataError
from .preprocess import SceneJob
from .singleview import INSTANCE_VIEWS, check_view, grid_mesh, process_single_view, valid_pixels

# The single-view steps live in lassm.data.singleview; these names stay importable from here.
__all__ = ["INSTANCE_VIEWS", "MOSD_SCAN", "SCENE_GROUPS", "find_jobs", "grid_mesh", "process", "read_pcd",
           "scene_group", "valid_pixels"]

GREY = 128  # colour of points in files without rgb / rgba
FLAT_SPLIT = "test"  # split of the scans lying directly in raw_root
COLOR_FIELDS = ("rgba", "rgb")  # packed 0x00RRGGBB in 4 bytes (uint32 or float32 bits)
# Scene groups of the learn set by file number (README): every group gets val scenes.
SCENE_GROUPS = {
    "single boxes": range(0, 17),
    "stacked boxes": range(17, 25),
    "occluded": range(25, 33),
    "cylindrical": range(33, 45),
}
MOSD_SCAN = single_view_scan()  # what the mosd and tabletop presets use (config.presets.mosd)


def scene_group(name: str) -> str | None:
    """The SCENE_GROUPS group of a learn scene by its name (``learn22``, ``learn22.pcd``), else None."""
    number = _scene_number(Path(name))
    return next((group for group, numbers in SCENE_GROUPS.items() if number in numbers), None)


# ----------------------------------------------------------------------------- reading


def read_pcd(path: str | os.PathLike) -> dict:
    """Read one scan with pypcd4: organised (image grid) or unorganised (``HEIGHT 1``).

    Fields may come in any order; ``x y z`` (float) are required, ``label`` (unsigned or signed
    integer) and ``rgb`` / ``rgba`` (packed 4-byte colour) are optional, others are ignored.
    Returns ``coord`` float32 metres (NaN rows kept), ``color`` uint8 RGB (grey 128 with a
    warning when the file has no colour), ``label`` uint32 or None, and ``grid_shape``: (H, W)
    for an organised cloud, whose arrays are then images (H, W, 3) / (H, W); None for an
    unorganised one (N, 3) / (N,), rows in file order; ``has_color``. Raises :class:`DataError` naming the
    file for a missing, unreadable or inconsistent file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: PCD file not found")
    try:
        cloud = PointCloud.from_path(path)
    except Exception as err:  # pypcd4 raises pydantic, lzf, struct and numpy errors
        reason = f"{type(err).__name__}: {err}"
        raise DataError(f"{path}: unreadable or truncated PCD ({reason})") from err
    try:  # a damaged header can parse yet describe arrays that do not fit
        meta, data = cloud.metadata, cloud.pc_data
        names = data.dtype.names or ()
        if len(meta.count) != len(meta.fields):
            raise DataError(f"{path}: header has {len(meta.fields)} FIELDS but {len(meta.count)} COUNT "
                            "entries; expected one count per field")
        counts = dict(zip(meta.fields, meta.count, strict=True))
        if not {"x", "y", "z"} <= set(names):
            raise DataError(f"{path}: fields {list(meta.fields)}; expected at least x, y, z")
        if meta.points != meta.width * meta.height or len(data) != meta.points:
            raise DataError(
                f"{path}: {len(data)} points read, header POINTS {meta.points}; expected "
                f"WIDTH x HEIGHT = {meta.width * meta.height}"
            )
        color_field = next((f for f in COLOR_FIELDS if f in names), None)
        label_field = "label" if "label" in names else None
        kinds = {"x": "f", "y": "f", "z": "f", label_field: "ui", color_field: "uif"}
        for name, kind in kinds.items():
            if name is not None and (data.dtype[name].kind not in kind or counts.get(name, 1) != 1):
                raise DataError(f"{path}: field {name!r} is {data.dtype[name]} x {counts.get(name)}; "
                                f"expected one value of kind {kind!r}")
        if color_field is not None and data.dtype[color_field].itemsize != 4:
            raise DataError(f"{path}: field {color_field!r} must be a packed 4-byte colour")

        coord = np.stack([data[k] for k in "xyz"], axis=-1).astype(np.float32)  # (N, 3)
        if color_field is None:
            warnings.warn(f"{path}: no rgb or rgba field; colour set to grey ({GREY})", stacklevel=2)
            color = np.full((len(data), 3), GREY, np.uint8)
        else:
            # PCL packs colour as 0x00RRGGBB; pypcd4 gives the raw bits (uint32 for TYPE U, float32
            # for the "float-packed" TYPE F variant), so reinterpret rather than convert.
            packed = np.ascontiguousarray(data[color_field]).view(np.uint32).reshape(-1)
            color = np.stack([(packed >> s) & 255 for s in (16, 8, 0)], axis=-1).astype(np.uint8)
        label = None if label_field is None else data[label_field].astype(np.uint32)  # (N,)
        shape = (meta.height, meta.width) if meta.height > 1 and meta.width > 1 else None
        if shape is not None:  # row-major image order
            coord, color = coord.reshape(*shape, 3), color.reshape(*shape, 3)
            label = None if label is None else label.reshape(shape)
        return {"coord": coord, "color": color, "label": label, "grid_shape": shape,
                "has_color": color_field is not None}
    except DataError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as err:
        raise DataError(f"{path}: inconsistent PCD header and data ({type(err).__name__}: {err})") from err


# ----------------------------------------------------------------------------- protocol


def _scene_number(path: Path) -> int:
    """k of a learn scene ``learn<k>`` or ``learn<k>.pcd``; -1 for any other name."""
    match = re.fullmatch(r"learn(\d+)(\.pcd)?", path.name)
    return int(match.group(1)) if match else -1


def _natural(path: Path) -> list:
    """Sort key: scan7 before scan10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _learn_split(files: list[Path], val_fraction: float, seed: int) -> set[Path]:
    """The val scenes among learn<k>.pcd files, stratified over SCENE_GROUPS (seeded)."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(scene_group(path.name) or "other", []).append(path)
    rng = np.random.default_rng(seed)
    val: set[Path] = set()
    for members in groups.values():
        count = 0 if val_fraction == 0 else max(1, round(val_fraction * len(members)))
        count = min(count, len(members) - 1)  # keep a train scene in every group
        val.update(members[i] for i in rng.permutation(len(members))[:count])
    return val


def find_jobs(
    raw_root: str | os.PathLike,
    val_fraction: float = 0.2,
    instance_view: str = "object",
    seed: int = 0,
    scan: ScanConfig | None = None,
) -> list[SceneJob]:
    """One job per scan under ``raw_root``, in natural order of file names, from two layouts:

    - mOSD's ``learn/learn<k>.pcd``: split into train / val, stratified over SCENE_GROUPS: in
      each group ``round(val_fraction x size)`` scenes (at least one while ``val_fraction >
      0``) go to val, picked by a seeded permutation, so val covers every kind of scene. Scene
      numbers outside the README's groups form one more group.
    - any other ``<split>/*.pcd`` folder (e.g. ``test/``): split = the folder's name; and
      ``*.pcd`` directly in ``raw_root``: split ``FLAT_SPLIT``.

    ``scan`` (default MOSD_SCAN) travels in each job's options to :func:`process`.
    """
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction: expected a number in [0, 1), got {val_fraction}")
    check_view(instance_view)
    root = Path(raw_root)
    expected = "mOSD's learn/learn<k>.pcd scans, <split>/*.pcd or *.pcd"
    if not root.is_dir():
        raise DataError(f"{root}: folder not found; expected {expected}")
    learn = root / "learn"
    files = sorted((p for p in learn.glob("learn*.pcd") if re.fullmatch(r"learn\d+\.pcd", p.name)),
                   key=_scene_number)
    val = _learn_split(files, val_fraction, seed)
    placed = [(p, "val" if p in val else "train") for p in files]
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p != learn and not p.name.startswith("."))
    for folder in folders:
        placed += [(p, folder.name) for p in sorted(folder.glob("*.pcd"), key=_natural)]
    placed += [(p, FLAT_SPLIT) for p in sorted(root.glob("*.pcd"), key=_natural)]
    if not placed:
        raise DataError(f"{root}: no PCD scans found; expected {expected}")
    options = {"instance_view": instance_view, **({"scan": scan} if scan is not None else {})}
    return [SceneJob(p.stem, split, p, dict(options)) for p, split in placed]


def process(job: SceneJob) -> dict[str, np.ndarray]:
    """Process one scan into the processed-scene arrays (see the module docstring)."""
    view = check_view(job.options.get("instance_view", "object"))
    pcd = read_pcd(job.source)
    label = None if pcd["label"] is None else pcd["label"].reshape(-1)
    arrays = process_single_view(pcd["coord"].reshape(-1, 3), pcd["color"].reshape(-1, 3),
                                 grid_shape=pcd["grid_shape"], label=label,
                                 scan=job.options.get("scan") or MOSD_SCAN, name=str(job.source),
                                 instance_view=view)
    return {**arrays, "scene_id": np.array(job.name)}
