"""Synthetic single-view RGB-D tabletop scenes, written exactly like mOSD's Kinect scans.

mOSD (``../shared/data/mosd/README.md``) has 45 real scans; this makes thousands more in the
same organised-PCD format, so :func:`.mosd.process` reads them unchanged. A frame is:

1. **Scene** (:func:`.tabletop_scene.sample_scene`): a support (table top, floor patch or shelf
   board, its top at z = 0 of the *table frame*), 1-25 objects of :mod:`.tabletop_shapes` placed
   by rejection sampling (resting on the support, stacked on a flat top or pushed against another,
   some lying or tilted, no two oriented bounding boxes overlapping), walls and furniture behind.
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
from .tabletop_scene import (
    TRAIN_FAMILIES,
    PlacedObject,
    Scene,
    TabletopConfig,
    clutter_config,
    dense_config,
    sample_scene,
    unit_vector,
)
from .workers import process_pool

__all__ = ["PCD_FIELDS", "TRAIN_FAMILIES", "PlacedObject", "Scene", "TabletopConfig", "clutter_config",
           "dense_config", "find_jobs", "frame_seed", "generate_frame", "sample_scene", "write_pcd",
           "write_scenes"]

PCD_FIELDS = ("label", "x", "y", "z", "rgba")


# ----------------------------------------------------------------------------- one frame


def _camera_pose(scene: Scene, rng: np.random.Generator, cfg: TabletopConfig) -> np.ndarray:
    """camera_from_table (4, 4): looking at a point near the objects from above."""
    target = np.array([*rng.uniform(-0.3, 0.3, 2) * scene.region, rng.uniform(0.0, 0.05)])
    # Beta(2, 3) and Beta(2, 4) put the modes near the mOSD recording set-up (38-45 deg above
    # the table, 0.84-0.97 m: ~42 deg and ~0.85 m by default) and keep wide tails
    elevation = np.radians(np.interp(rng.beta(2, 3), [0, 1], cfg.elevation))
    if scene.support == "shelf":  # the board above would hide a steep view
        elevation = min(elevation, np.radians(45))
    eye = target + np.interp(rng.beta(2, 4), [0, 1], cfg.distance) * unit_vector(elevation, scene.azimuth)
    return cam.look_at(eye, target, np.radians(rng.normal(0, cfg.roll)))



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
    light = unit_vector(np.radians(rng.uniform(30, 85)), rng.uniform(0, 2 * np.pi))
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
            with process_pool(workers) as pool:
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
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--clutter", action="store_true", help="clutter_config(): 12-25 objects, another mix")
    kind.add_argument("--dense", action="store_true", help="dense_config(): 12-25 objects, training mix")
    parser.add_argument("--contact", type=float, default=0.0,
                        help="chance an object is pushed against another (touching clutter)")
    parser.add_argument("--occlude", type=float, default=0.0,
                        help="chance each object on the support gets a narrow, tall occluder in front of it")
    parser.add_argument("--workers", type=int, default=1, help="processes")
    parser.add_argument("--prefix", default="tt", help="file name prefix")
    args = parser.parse_args(argv)
    return run_command(lambda: _command(args))


def _command(args) -> None:
    for flag, value in (("--contact", args.contact), ("--occlude", args.occlude)):
        if not 0 <= value <= 1:
            raise DataError(f"{flag}: expected a chance in [0, 1], got {value}")
    make = clutter_config if args.clutter else dense_config if args.dense else TabletopConfig
    cfg = make(contact_prob=args.contact)
    cfg.occlude_prob = args.occlude
    paths = write_scenes(args.raw_root, args.count, args.seed, args.split, cfg, args.workers, args.prefix)
    print(f"{len(paths)} frames in {args.raw_root / args.split}")


if __name__ == "__main__":
    sys.exit(main())
