"""Synthetic single-view RGB-D tabletop scenes, written exactly like mOSD's Kinect scans.

mOSD (``../shared/data/mosd/README.md``) has 45 real scans; this makes thousands more in the
same organised-PCD format, so :func:`.mosd.process` reads them unchanged. A frame is:

1. **Scene** (:func:`sample_scene`): a support (table top, floor patch or shelf board, its
   top at z = 0 of the *table frame*), 1-25 objects of :mod:`.tabletop_shapes` placed by
   rejection sampling (resting on the support or stacked on a flat top, some lying or
   tilted, no two oriented bounding boxes overlapping), walls and furniture behind.
2. **Capture** (:mod:`.depth_camera`): a jittered Kinect v1 looking down at the objects,
   analytic ray casting, then the sensor model (noise, disparity steps, projector shadows,
   grazing-angle and edge dropouts) and a shaded colour image.
3. **Labels as in mOSD.** In the learn scans every valid point is table (1) or object (>= 20):
   walls, floor and chairs are NaN with label 0 while the colour image still shows them, and
   the table is cropped to a region around the objects. We do the same (``background_depth``
   can keep the background's depth, labelled 0). Visible object k (placement order) gets the
   decade 10 (k + 2); its pieces disjoint in the depth image (split by occlusion, a mug's
   handle) count up within the decade, like mOSD's part labels.

Frame ``i`` of :func:`write_scenes` is ``generate_frame(frame_seed(seed, i, split))``: the same
seed gives the same arrays, and any frame can be regenerated alone.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pypcd4 import Encoding, PointCloud

from ..cli import run_command
from ..progress import tqdm
from . import depth_camera as cam
from . import mosd
from . import tabletop_shapes as shapes
from .io import DataError, atomic_path
from .preprocess import SceneJob
from .tabletop_shapes import Solid

PCD_FIELDS = ("label", "x", "y", "z", "rgba")
UP = np.array([0.0, 0.0, 1.0])
TRAIN_FAMILIES = {"box": 0.3, "cylinder": 0.18, "bowl": 0.1, "cup": 0.12, "bottle": 0.1,
                  "ellipsoid": 0.1, "compound": 0.1}


@dataclass
class TabletopConfig:
    """What a frame may contain; ranges are sampled uniformly per frame."""

    min_objects: int = 1  # object count range; counts come from three modes:
    max_objects: int = 25
    count_modes: tuple[float, float, float] = (0.45, 0.2, 0.35)  # P(1-5), P(6-9), P(10-max)
    families: dict[str, float] = field(default_factory=lambda: dict(TRAIN_FAMILIES))  # weights
    fill: tuple[float, float] = (0.15, 0.4)  # share of the scatter area object footprints cover
    stack_prob: float = 0.15  # chance an object is put on a flat-topped one
    lie_prob: float = 0.25  # chance a cylinder, bottle or cup lies on its side
    tilt_prob: float = 0.15  # chance of a small tilt about a horizontal axis
    max_tilt: float = 15.0  # degrees
    supports: dict[str, float] = field(default_factory=lambda: {"table": 0.8, "floor": 0.1, "shelf": 0.1})
    table_size: tuple[float, float] = (0.6, 2.0)  # side or diameter of a table top (m)
    crop_prob: float = 0.85  # chance of mOSD's crop to a rectangle around the objects
    background_depth: float = 0.0  # chance walls/floor/furniture keep depth (label 0); mOSD: 0
    furniture: float = 1.5  # mean number of big boxes (cabinets, chairs) around the support
    distance: tuple[float, float] = (0.6, 1.6)  # camera to the looked-at point (m)
    elevation: tuple[float, float] = (25.0, 75.0)  # degrees above the support plane
    roll: float = 4.0  # degrees (std)
    brightness: tuple[float, float] = (0.65, 1.25)  # global gain of the colour image
    colour_noise: tuple[float, float] = (1.0, 6.0)  # per-pixel colour noise std (0-255 levels)
    min_pixels: int = 50  # objects with fewer valid pixels are made invalid, not labelled
    split_parts: bool = True  # disjoint pieces of an object get labels 10 (k + 2) + 1, + 2, ...
    sensor: cam.SensorConfig = field(default_factory=cam.SensorConfig)


def clutter_config() -> TabletopConfig:
    """Clutter validation set: 12-25 objects, an unseen family mix, tighter packing."""
    return TabletopConfig(min_objects=12, count_modes=(0.0, 0.0, 1.0), fill=(0.35, 0.55),
                          families={"box": 0.15, "cylinder": 0.15, "bowl": 0.15, "cup": 0.15,
                                    "bottle": 0.15, "ellipsoid": 0.05, "compound": 0.2},
                          stack_prob=0.25, lie_prob=0.35, supports={"table": 1.0})


# ----------------------------------------------------------------------------- scene sampling


@dataclass
class PlacedObject:
    """One object on the support, in the table frame."""

    family: str
    solids: list[Solid]  # in the table frame
    rotation: np.ndarray  # (3, 3) object -> table frame
    translation: np.ndarray  # (3,) object origin (footprint centre, bottom) in the table frame
    look: cam.Look
    on: int | None = None  # index of the object it is stacked on
    lying: bool = False
    box: tuple[np.ndarray, np.ndarray, np.ndarray] = ()  # oriented box: centre, axes (rows), half


@dataclass
class Scene:
    """Everything of a frame but the camera."""

    support: str  # table, floor or shelf
    surface: list[Solid]  # the support top (label 1)
    background: list[Solid]  # walls, floor, furniture (label 0)
    objects: list[PlacedObject]
    region: np.ndarray  # (2,) half size of the area the objects are scattered over
    crop: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # (2, 2) axes (rows), (2,) lo, hi
    azimuth: float  # radians: direction from the scene centre to the camera


def _orientation(family: str, rng: np.random.Generator, cfg: TabletopConfig):
    turn = shapes.rotation(UP, rng.uniform(0, 2 * np.pi))
    lying = family in ("cylinder", "bottle", "cup") and rng.random() < cfg.lie_prob
    if lying:
        turn = turn @ shapes.rotation((1, 0, 0), np.pi / 2)
    if rng.random() < cfg.tilt_prob:
        axis = [*rng.normal(size=2), 0.0]
        turn = shapes.rotation(axis, np.radians(rng.uniform(3, cfg.max_tilt))) @ turn
    return turn, lying


def _place(family, placed, rng, cfg, inside) -> PlacedObject | None:
    """Try to put one object of ``family`` among ``placed``; None after 30 failed tries."""
    local = shapes.make_object(family, rng)
    look = cam.random_look(rng)
    tops = [i for i, o in enumerate(placed) if o.family in ("box", "cylinder")  # flat, level tops
            and not o.lying and abs(o.rotation[2, 2] - 1) < 1e-9]
    for _ in range(30):
        rotation, lying = _orientation(family, rng, cfg)
        turned = [shapes.posed(s, rotation, np.zeros(3)) for s in local]
        lo, hi = shapes.bounds(turned)
        on = None
        if tops and rng.random() < cfg.stack_prob:
            on = int(rng.choice(tops))
            support = placed[on]
            centre, axes, half = support.box
            if np.any(np.sort(hi[:2] - lo[:2]) > 1.2 * np.sort(2 * half[:2])):
                continue  # a footprint bigger than the top it would sit on
            xy = centre[:2] + axes[:2, :2].T @ (rng.uniform(-0.3, 0.3, 2) * half[:2])
            base = shapes.z_range(support.solids)[1]
        else:
            xy, base = rng.uniform(-1, 1, 2) * inside, 0.0
        offset = np.array([xy[0] - (lo[0] + hi[0]) / 2, xy[1] - (lo[1] + hi[1]) / 2, base - lo[2]])
        corners = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], lo[1]], [hi[0], hi[1]]]) + offset[:2]
        if on is None and np.any(np.abs(corners) > inside + 0.05):
            continue
        solids = [shapes.posed(s, np.eye(3), offset) for s in turned]
        box = shapes.oriented_box(solids, rotation)
        if any(shapes.boxes_overlap(box, other.box, 1e-3) for other in placed):
            continue
        return PlacedObject(family, solids, rotation, offset, look, on, lying, box)
    return None


def _check(cfg: TabletopConfig) -> None:
    if not 1 <= cfg.min_objects <= cfg.max_objects:
        raise DataError(f"min_objects, max_objects: expected 1 <= min <= max, got "
                        f"{cfg.min_objects}, {cfg.max_objects}")
    for name, given, known in (("families", cfg.families, shapes.FAMILIES),
                               ("supports", cfg.supports, ("table", "floor", "shelf"))):
        if not given or set(given) - set(known) or min(given.values()) < 0:
            raise DataError(f"{name}: expected non-negative weights for some of {list(known)}, got {given}")


def _object_count(rng: np.random.Generator, cfg: TabletopConfig) -> int:
    mode = rng.choice(3, p=np.asarray(cfg.count_modes) / sum(cfg.count_modes))
    lo, hi = [(1, 5), (6, 9), (10, max(cfg.max_objects, 10))][mode]
    lo, hi = min(max(lo, cfg.min_objects), cfg.max_objects), max(min(hi, cfg.max_objects), cfg.min_objects)
    return int(rng.integers(lo, hi + 1))


def _surroundings(kind: str, rng: np.random.Generator, region: np.ndarray, azimuth: float,
                  cfg: TabletopConfig):
    """The support top (label 1) and the background solids around it."""
    height = rng.uniform(0.65, 0.8) if kind != "floor" else 0.0
    size = np.maximum(rng.uniform(*cfg.table_size, 2) / 2, region + 0.08)  # half sizes
    if kind == "table" and rng.random() < 0.3:
        radius = max(size[0], float(np.linalg.norm(region)) + 0.08)
        surface = [Solid("cylinder", (radius, radius, 0.0), -rng.uniform(0.02, 0.05), 0.0)]
    elif kind == "table":
        surface = [Solid("box", (size[0], size[1], 0.0), -rng.uniform(0.02, 0.05), 0.0)]
    elif kind == "shelf":
        surface = [Solid("box", (size[0], region[1] + 0.05, 0.0), -0.02, 0.0)]
    else:
        surface = [Solid("box", (4.0, 4.0, 0.0), -0.1, 0.0)]
    background = [] if kind == "floor" else [Solid("box", (6.0, 6.0, 0.0), -height - 0.1, -height)]
    gap = region[1] + 0.05 if kind == "shelf" else float(np.max(size)) + rng.uniform(0.2, 1.5)
    walls = [(azimuth + np.pi, gap)]  # behind the support, seen from the camera; maybe one aside
    if rng.random() < 0.5:
        walls.append((azimuth + rng.choice([-1, 1]) * np.pi / 2, gap + rng.uniform(0, 1)))
    for angle, distance in walls:
        wall = Solid("box", (0.05, 5.0, 0.0), -height - 0.1, 2.5 - height)  # thin along its x
        where = _unit(0.0, angle) * (distance + 0.05)
        background.append(shapes.posed(wall, shapes.rotation(UP, angle), where))
    for _ in range(rng.poisson(cfg.furniture)):  # on the far side: never around the camera
        angle = azimuth + np.pi + rng.uniform(-1.2, 1.2)
        where = _unit(0.0, angle) * (np.max(size) + rng.uniform(0.3, 1.2))
        half = rng.uniform([0.2, 0.2, 0.3], [0.6, 0.6, 1.0])
        box = Solid("box", (half[0], half[1], 0.0), -height, -height + 2 * half[2])
        background.append(shapes.posed(box, shapes.rotation(UP, angle), where))
    return surface, background


def sample_scene(rng: np.random.Generator, cfg: TabletopConfig) -> Scene:
    """Support, objects and background of one frame (no camera yet)."""
    _check(cfg)
    kinds, weights = zip(*cfg.supports.items(), strict=True)
    support = str(rng.choice(kinds, p=np.asarray(weights) / sum(weights)))
    count = _object_count(rng, cfg)
    side = np.sqrt(count * 0.02 / rng.uniform(*cfg.fill))  # footprints ~0.02 m^2 each
    region = np.clip(side / 2 * rng.uniform(0.8, 1.25, 2), 0.1, 0.75)
    if support == "shelf":
        region = np.array([region[0] * 1.5, min(region[1], rng.uniform(0.12, 0.2))])
    azimuth = rng.uniform(0, 2 * np.pi) if support != "shelf" else -np.pi / 2 + rng.uniform(-0.6, 0.6)
    families, weights = zip(*cfg.families.items(), strict=True)
    weights = np.asarray(weights, float) / sum(weights)
    objects: list[PlacedObject] = []
    for _ in range(count):
        placed = _place(str(rng.choice(families, p=weights)), objects, rng, cfg, region)
        if placed is not None:
            objects.append(placed)
    surface, background = _surroundings(support, rng, region, azimuth, cfg)
    crop = None
    if support == "shelf" or rng.random() < cfg.crop_prob:
        view = np.array([np.cos(azimuth), np.sin(azimuth)])
        axes = np.array([[-view[1], view[0]], view])  # across and along the viewing direction
        reach = np.abs(axes) @ region + 0.1  # the scatter area seen in crop axes, plus a margin
        # mOSD keeps ~1 m of table across and ~0.5 m beyond the objects; the near side
        # mostly reaches the image's bottom edge
        crop = (axes, -np.maximum(reach, rng.uniform([0.4, 0.3], [0.8, 0.8])),
                np.maximum(reach, rng.uniform([0.4, 0.6], [0.8, 1.5])))
    return Scene(support, surface, background, objects, region, crop, azimuth)


# ----------------------------------------------------------------------------- one frame


def _camera_pose(scene: Scene, rng: np.random.Generator, cfg: TabletopConfig) -> np.ndarray:
    """camera_from_table (4, 4): looking at a point near the objects from above."""
    target = np.array([*rng.uniform(-0.3, 0.3, 2) * scene.region, rng.uniform(0.0, 0.05)])
    # Beta(2, 3) and Beta(2, 4) put the modes near the mOSD recording set-up (38-45 deg above
    # the table, 0.84-0.97 m: ~42 deg and ~0.85 m by default) and keep wide tails
    elevation = np.radians(np.interp(rng.beta(2, 3), [0, 1], cfg.elevation))
    if scene.support == "shelf":  # the board above would hide a steep view
        elevation = min(elevation, np.radians(45))
    eye = target + np.interp(rng.beta(2, 4), [0, 1], cfg.distance) * _unit(elevation, scene.azimuth)
    return cam.look_at(eye, target, np.radians(rng.normal(0, cfg.roll)))


def _unit(elevation: float, azimuth: float) -> np.ndarray:
    """Unit vector ``elevation`` radians above the table plane, towards ``azimuth``."""
    return np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                     np.sin(elevation)])


def _parts(owner: np.ndarray, part: np.ndarray, depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W) part index within each object: its pieces disjoint in the depth image, by size.

    mOSD gives geometrically disjoint parts of one object their own labels; here a piece is
    a connected set of pixels of one object and solid part (a mug's handle is one) without
    depth jumps. Pieces under 20 pixels join the largest; a decade holds at most 10 parts.
    """
    piece = cam.pieces(np.where(valid, owner * 16 + part, -1), depth)
    size = np.bincount(piece[valid])
    piece_owner = np.zeros(len(size), np.int64)
    piece_owner[piece[valid]] = owner[valid]
    order = np.lexsort((-size, piece_owner))  # pieces by object, largest first
    first = np.searchsorted(piece_owner[order], piece_owner[order])
    rank = np.empty(len(size), np.int64)
    rank[order] = np.arange(len(size)) - first
    rank = np.where(size < 20, 0, np.minimum(rank, 9))
    return np.where(valid, rank[np.maximum(piece, 0)], 0)


def generate_frame(seed: int, cfg: TabletopConfig | None = None) -> dict:
    """One synthetic Kinect frame in mOSD's format, fully determined by ``seed``.

    Returns ``coord`` (480, 640, 3) float32 camera-frame metres (NaN where invalid), ``color``
    (480, 640, 3) uint8, ``label`` (480, 640) uint32 (0 invalid, 1 support, 10 (k + 2) + part
    for visible object k), and metadata: ``objects`` (family, label, pixels, rotation,
    translation in the table frame, ``on`` the index it is stacked on, ``lying``),
    ``camera`` (intrinsics and the 4x4 ``camera_from_table``), ``support`` and ``seed``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed: expected a non-negative integer, got {seed!r}")
    cfg = TabletopConfig() if cfg is None else cfg
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, cfg)
    camera = cam.sample_camera(rng, cfg.sensor)
    pose = _camera_pose(scene, rng, cfg)
    object_solids = [s for o in scene.objects for s in o.solids]
    solids = scene.surface + object_solids + scene.background
    owner_of = np.array([-1] * len(scene.surface) + [k for k, o in enumerate(scene.objects) for _ in o.solids]
                        + [-2] * len(scene.background) + [-3])  # support -1, background -2, none -3
    part_of = np.array([s.part for s in solids] + [0])
    rays = camera.rays()  # (H, W, 3)
    foreground = scene.surface + object_solids
    # walls, floor and furniture stand beyond the support (on the side away from the camera),
    # so they are only cast where the support and objects left the image empty
    depth, index, normal = cam.render(scene.background, camera, pose, first=len(foreground),
                                      below=cam.render(foreground, camera, pose))
    owner, part = owner_of[index], part_of[index]  # index -1 (nothing hit) picks the last entry
    baseline = rng.uniform(*cfg.sensor.baseline)
    # only objects cast projector shadows: the support top lies below both lenses
    shadow = cam.projector_shadow(depth, object_solids, camera, pose, baseline, rays) if baseline > 0 \
        else np.zeros(depth.shape, bool)
    z = cam.measure(depth, normal, shadow, camera, rays, rng, cfg.sensor)

    hit = np.isfinite(depth)
    table_point = np.zeros(rays.shape)  # exact hit points in the table frame
    table_point[hit] = shapes.rotate(rays[hit] * depth[hit, None] - pose[:3, 3], pose[:3, :3].T)
    keep = (owner >= -1) | ((owner == -2) & (rng.random() < cfg.background_depth))
    if scene.crop is not None:
        axes, lo, hi = scene.crop
        along = np.einsum("...j,ij->...i", table_point[..., :2], axes)  # not @: see shapes.rotate
        keep &= np.all((along >= lo) & (along <= hi), axis=-1)
    valid = keep & np.isfinite(z)
    pixels = np.bincount(owner[valid & (owner >= 0)], minlength=len(scene.objects))
    visible = pixels >= cfg.min_pixels
    # objects with too few pixels are dropped (no scene objects at all: nothing to look up)
    valid &= np.append(visible, True)[np.where(owner >= 0, owner, len(visible))]
    decade = np.where(visible, 10 * (np.cumsum(visible) + 1), 0)  # visible object k -> 20, 30, ...
    label = np.zeros(depth.shape, np.uint32)
    label[valid & (owner == -1)] = 1
    things = valid & (owner >= 0)
    label[things] = decade[owner[things]]
    if cfg.split_parts and things.any():
        label[things] += _parts(owner, part, depth, things)[things].astype(np.uint32)
    coord = np.where(valid[..., None], rays * z[..., None], np.nan).astype(np.float32)

    color = _colours(scene, index, table_point, normal, pose, rng, cfg)
    objects = [{"family": o.family, "label": int(decade[k]), "pixels": int(pixels[k]),
                "rotation": o.rotation, "translation": o.translation, "on": o.on, "lying": o.lying}
               for k, o in enumerate(scene.objects)]
    intrinsics = {k: getattr(camera, k) for k in ("fx", "fy", "cx", "cy", "width", "height")}
    return {"coord": coord, "color": color, "label": label, "objects": objects,
            "camera": {**intrinsics, "camera_from_table": pose}, "support": scene.support, "seed": seed}


def _colours(scene, index, table_point, normal, pose, rng, cfg) -> np.ndarray:
    """(H, W, 3) uint8: textures in each object's frame, Lambertian shading, gain and noise."""
    support_look = cam.random_look(rng, str(rng.choice(["wood", "neutral", "any"], p=[0.5, 0.35, 0.15])))
    if support_look.mode != "stripes" and rng.random() < 0.7:
        support_look.mode = "flat"  # table tops are mostly plain
    looks = [support_look] * len(scene.surface) + [o.look for o in scene.objects for _ in o.solids]
    looks += [cam.random_look(rng, "neutral" if s.radii[1] > 4 else "any") for s in scene.background]
    frames = [(np.eye(3), np.zeros(3))] * len(scene.surface)  # textures: table frame, except
    frames += [(o.rotation, o.translation) for o in scene.objects for _ in o.solids]  # objects'
    frames += [(np.eye(3), np.zeros(3))] * len(scene.background)
    base = cam.albedo(looks, frames, index, table_point)
    light = _unit(np.radians(rng.uniform(30, 85)), rng.uniform(0, 2 * np.pi))
    return cam.colour_image(base, normal, index >= 0, pose[:3, :3] @ light, rng, cfg.brightness,
                            cfg.colour_noise)


# ----------------------------------------------------------------------------- writing


def write_pcd(path: str | os.PathLike, frame: dict) -> Path:
    """Write a frame as an organised PCD v0.7 like mOSD's (``label x y z rgba``, U F F F U,
    binary_compressed), atomically."""
    height, width = frame["label"].shape
    coord = np.asarray(frame["coord"], np.float32).reshape(-1, 3)
    rgb = np.asarray(frame["color"], np.uint32).reshape(-1, 3)
    rgba = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]  # PCL's 0x00RRGGBB
    arrays = [np.asarray(frame["label"], np.uint32).ravel(), coord[:, 0], coord[:, 1], coord[:, 2], rgba]
    cloud = PointCloud.from_points(arrays, PCD_FIELDS, [a.dtype for a in arrays])
    cloud.metadata = cloud.metadata.derive(width=width, height=height)
    with atomic_path(path) as tmp:
        cloud.save(tmp, encoding=Encoding.BINARY_COMPRESSED)
    return Path(path)


def frame_seed(seed: int, index: int, split: str = "train") -> int:
    """Seed of frame ``index`` of split ``split``: splits written with one seed never share frames."""
    return int(np.random.SeedSequence([seed, index, *split.encode()]).generate_state(1)[0])


def _write_one(path: Path, seed: int, cfg: TabletopConfig) -> Path:
    return write_pcd(path, generate_frame(seed, cfg))


def write_scenes(raw_root: str | os.PathLike, count: int, seed: int = 0, split: str = "train",
                 cfg: TabletopConfig | None = None, workers: int = 1, prefix: str = "tt") -> list[Path]:
    """Write ``count`` frames to ``raw_root/<split>/<prefix><index:05d>.pcd``.

    Frame i is ``generate_frame(frame_seed(seed, i, split), cfg)``. Files that exist are kept
    (a rerun resumes); ``workers > 1`` uses a process pool. Returns all ``count`` paths.
    """
    for name, value, low in (("count", count, 0), ("seed", seed, 0), ("workers", workers, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise DataError(f"{name}: expected an integer >= {low}, got {value!r}")
    if not split or "/" in split or split.startswith("."):
        raise DataError(f"split: expected a folder name such as 'train', got {split!r}")
    cfg = TabletopConfig() if cfg is None else cfg
    paths = [Path(raw_root) / split / f"{prefix}{i:05d}.pcd" for i in range(count)]
    todo = [(p, frame_seed(seed, i, split)) for i, p in enumerate(paths) if not p.is_file()]
    with tqdm(total=len(todo), desc=f"tabletop {split}", unit="frame", disable=not todo) as bar:
        if workers == 1 or len(todo) <= 1:
            for path, s in todo:
                _write_one(path, s, cfg)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(_write_one, *zip(*todo, strict=True), [cfg] * len(todo), chunksize=4):
                    bar.update()
    return paths


def find_jobs(raw_root: str | os.PathLike, instance_view: str = "object") -> list[SceneJob]:
    """One :func:`.mosd.process` job per ``raw_root/<split>/*.pcd`` (split = folder name): the frames are
    mOSD-format scans, so mOSD's own job finder lists them."""
    root = Path(raw_root)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found; expected <split>/*.pcd tabletop frames")
    return mosd.find_jobs(root, instance_view=instance_view)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write synthetic Kinect tabletop frames (mOSD format).")
    parser.add_argument("raw_root", type=Path, help="frames go to RAW_ROOT/<split>/<prefix><i>.pcd")
    parser.add_argument("--count", type=int, required=True, help="number of frames")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--split", default="train", help="split folder (train, val, val_clutter)")
    parser.add_argument("--clutter", action="store_true", help="use clutter_config(): 12-25 objects")
    parser.add_argument("--workers", type=int, default=1, help="processes")
    parser.add_argument("--prefix", default="tt", help="file name prefix")
    args = parser.parse_args(argv)
    return run_command(lambda: _command(args))


def _command(args) -> None:
    paths = write_scenes(args.raw_root, args.count, args.seed, args.split,
                         clutter_config() if args.clutter else TabletopConfig(), args.workers, args.prefix)
    print(f"{len(paths)} frames in {args.raw_root / args.split}")


if __name__ == "__main__":
    sys.exit(main())
