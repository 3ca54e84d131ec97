"""Scene sampling of the synthetic tabletop frames (:mod:`.tabletop`): what stands where, in the table frame.

A support (table top, floor patch or shelf board, its top at z = 0 of the *table frame*), 1-25
objects of :mod:`.tabletop_shapes` placed by rejection sampling (resting on the support, stacked on a
flat top or pushed against one already placed, some lying or tilted, no two oriented bounding boxes
overlapping by more than 1 mm), walls and furniture behind. :class:`TabletopConfig` says what a frame
may contain; :func:`clutter_config` and :func:`dense_config` are the named variants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import maximum_filter

from . import depth_camera as cam
from . import tabletop_shapes as shapes
from .io import DataError
from .tabletop_shapes import Solid

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
    # chance an object on the support is pushed against one placed before (bounding boxes 0-3 mm
    # apart, as in packed real clutter); 0 draws nothing, so frames made before it existed are unchanged
    contact_prob: float = 0.0
    # chance each object standing on the support gets an occluder: a narrow, tall box or cylinder between it
    # and the camera that cuts it into pieces in the image, as in mOSD's occluded scenes; 0 draws nothing,
    # so frames made before it existed are unchanged
    occlude_prob: float = 0.0
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


def clutter_config(contact_prob: float = 0.0) -> TabletopConfig:
    """Clutter validation set: 12-25 objects, an unseen family mix, tighter packing."""
    return TabletopConfig(min_objects=12, count_modes=(0.0, 0.0, 1.0), fill=(0.35, 0.55),
                          families={"box": 0.15, "cylinder": 0.15, "bowl": 0.15, "cup": 0.15,
                                    "bottle": 0.15, "ellipsoid": 0.05, "compound": 0.2},
                          stack_prob=0.25, lie_prob=0.35, supports={"table": 1.0},
                          contact_prob=contact_prob)


def dense_config(contact_prob: float = 0.0) -> TabletopConfig:
    """Dense training frames: 12-25 objects of the training family mix, footprints 35-55 % of the area."""
    return TabletopConfig(min_objects=12, count_modes=(0.0, 0.0, 1.0), fill=(0.35, 0.55),
                          contact_prob=contact_prob)



def unit_vector(elevation: float, azimuth: float) -> np.ndarray:
    """Unit vector ``elevation`` radians above the table plane, towards ``azimuth``."""
    return np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                     np.sin(elevation)])


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


CONTACT_STEP = 0.0015  # m between the parallel rays of a contact or overlap test


def _columns(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(n, m, 2) centres of a grid of CONTACT_STEP cells covering the rectangle ``lo``-``hi``."""
    a, b = (np.arange(lo[k], hi[k] + CONTACT_STEP, CONTACT_STEP) for k in range(2))
    return np.stack(np.meshgrid(a, b, indexing="ij"), -1)


def _slide(solids: list[Solid], placed: list[PlacedObject], target: np.ndarray,
           rng: np.random.Generator) -> np.ndarray | None:
    """(2,) shift that brings ``solids`` (standing on the support, footprint centred on the origin) in
    along a random horizontal direction, aimed past ``target`` (x, y), until its surface meets the
    first object in its way, then leaves a gap of 0-2 mm: true surface contact, round objects
    included. None when nothing is in the way.

    Rays along the direction, one per CONTACT_STEP cell across it (sideways x height): per ray the
    moving object must stay beyond the farthest exit of everything placed. The exits are dilated by
    one cell, so a surface between two rays cannot slip through.
    """
    angle = rng.uniform(0, 2 * np.pi)
    along = np.array([np.cos(angle), np.sin(angle), 0.0])
    axes = np.array([along, np.cross(UP, along), UP])  # along, sideways, up
    lo, hi = shapes.bounds(solids, axes)
    width = (hi[1] - lo[1]) / 2
    start = target + rng.uniform(-0.8, 0.8) * width * axes[1, :2]  # the moving object's centre, before
    shifted = [shapes.posed(s, np.eye(3), np.array([*start, 0.0])) for s in solids]
    lo, hi = shapes.bounds(shifted, axes)
    across = [shapes.bounds(o.solids, axes[1:]) for o in placed]  # (lo, hi) sideways and up
    ahead = [o for o, (olo, ohi) in zip(placed, across, strict=True)
             if np.all(olo < hi[1:]) and np.all(ohi > lo[1:])]
    if not ahead:
        return None
    grid = _columns(lo[1:], hi[1:])
    origins = (grid[..., :1] * axes[1] + grid[..., 1:] * axes[2]).reshape(-1, 3) - 10.0 * along
    enter = shapes.column_intervals(shifted, origins, along)[0]
    leave = shapes.column_intervals([s for o in ahead for s in o.solids], origins, along)[1]
    leave = maximum_filter(leave.reshape(grid.shape[:2]), size=3, mode="constant", cval=-np.inf).ravel()
    both = np.isfinite(enter) & np.isfinite(leave)
    if not both.any():
        return None
    return start + (float(np.max(leave[both] - enter[both])) + rng.uniform(0.0, 0.002)) * along[:2]


def _overlap(a: list[Solid], b: list[Solid], tol: float) -> bool:
    """Whether two objects share more than ``tol`` (m) of some vertical ray (CONTACT_STEP apart)."""
    (alo, ahi), (blo, bhi) = shapes.bounds(a), shapes.bounds(b)
    lo, hi = np.maximum(alo, blo), np.minimum(ahi, bhi)
    if np.any(hi - lo <= tol):
        return False
    grid = _columns(lo[:2], hi[:2]).reshape(-1, 2)
    origins = np.column_stack([grid, np.full(len(grid), lo[2] - 1.0)])
    (a0, a1), (b0, b1) = shapes.column_intervals(a, origins, UP), shapes.column_intervals(b, origins, UP)
    return bool(np.any(np.minimum(a1, b1) - np.maximum(a0, b0) > tol))


def _place(family, placed, rng, cfg, inside) -> PlacedObject | None:
    """Try to put one object of ``family`` among ``placed``; None after 30 failed tries."""
    local = shapes.make_object(family, rng)
    look = cam.random_look(rng)
    tops = [i for i, o in enumerate(placed) if o.family in ("box", "cylinder")  # flat, level tops
            and not o.lying and abs(o.rotation[2, 2] - 1) < 1e-9]
    grounded = [i for i, o in enumerate(placed) if o.on is None]
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
        elif cfg.contact_prob > 0 and grounded and rng.random() < cfg.contact_prob:
            centred = -np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
            standing = [shapes.posed(s, np.eye(3), centred) for s in turned]
            shift = _slide(standing, placed, placed[int(rng.choice(grounded))].box[0][:2], rng)
            if shift is None:
                continue
            xy, base = shift, 0.0
        else:
            xy, base = rng.uniform(-1, 1, 2) * inside, 0.0
        offset = np.array([xy[0] - (lo[0] + hi[0]) / 2, xy[1] - (lo[1] + hi[1]) / 2, base - lo[2]])
        corners = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], lo[1]], [hi[0], hi[1]]]) + offset[:2]
        if on is None and np.any(np.abs(corners) > inside + 0.05):
            continue
        solids = [shapes.posed(s, np.eye(3), offset) for s in turned]
        box = shapes.oriented_box(solids, rotation)
        # with contact on, overlapping boxes are tested on the solids (round objects may touch);
        # without, the box test alone decides, so frames made before contact existed are unchanged
        if any(shapes.boxes_overlap(box, other.box, 1e-3)
               and (cfg.contact_prob == 0 or _overlap(solids, other.solids, 2e-3)) for other in placed):
            continue
        return PlacedObject(family, solids, rotation, offset, look, on, lying, box)
    return None


def _occluders(objects: list[PlacedObject], rng: np.random.Generator, cfg: TabletopConfig, inside: np.ndarray,
               azimuth: float) -> list[PlacedObject]:
    """Narrow, tall objects standing in front of objects on the support (``cfg.occlude_prob`` each).

    An occluder stands 0.5-6 cm in front of its object, on the line to where the camera usually is
    (towards ``azimuth``), at most 0.45 of the object's width across (so the object shows on both sides of
    it) and about as tall as the object plus its distance to the object's far side, so that from a camera
    near 45 degrees up it hides a strip through the whole object; none overlaps another object."""
    # where the camera usually is, seen from above: 0.85 m x cos 42 degrees out (tabletop._camera_pose)
    eye = 0.63 * unit_vector(0.0, azimuth)[:2]
    added: list[PlacedObject] = []
    for k in rng.permutation(len(objects)):
        target = objects[k]
        if target.on is not None or rng.random() >= cfg.occlude_prob:
            continue
        centre, axes, half = target.box
        toward = (eye - centre[:2]) / max(float(np.linalg.norm(eye - centre[:2])), 1e-6)  # to the camera
        across = np.array([-toward[1], toward[0]])
        near = float(np.abs(axes[:, :2] @ toward) @ half)  # half extents along and across the view
        wide = float(np.abs(axes[:, :2] @ across) @ half)
        if wide < 0.02:
            continue
        radius = rng.uniform(0.008, 0.45 * wide)
        distance = near + radius + rng.uniform(0.005, 0.06)
        xy = centre[:2] + distance * toward + rng.uniform(-0.15, 0.15) * wide * across
        height = min(shapes.z_range(target.solids)[1] + (distance + near) * rng.uniform(1.0, 1.8), 0.45)
        if rng.random() < 0.6:
            solid = Solid("cylinder", (radius, radius, 0.0), 0.0, height)
        else:
            solid = Solid("box", (radius, radius * rng.uniform(0.5, 2.0), 0.0), 0.0, height)
        rotation = shapes.rotation(UP, rng.uniform(0, np.pi))
        solids = [shapes.posed(solid, rotation, np.array([xy[0], xy[1], 0.0]))]
        box = shapes.oriented_box(solids, rotation)
        if np.any(np.abs(xy) + radius > inside + 0.25) or any(
                shapes.boxes_overlap(box, other.box, 1e-3) for other in objects + added):
            continue
        added.append(PlacedObject(solid.kind, solids, rotation, np.array([xy[0], xy[1], 0.0]),
                                  cam.random_look(rng), box=box))
    return added


def _check(cfg: TabletopConfig) -> None:
    for name in ("stack_prob", "contact_prob", "occlude_prob", "lie_prob", "tilt_prob"):
        if not 0 <= getattr(cfg, name) <= 1:
            raise DataError(f"{name}: expected a chance in [0, 1], got {getattr(cfg, name)!r}")
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
        where = unit_vector(0.0, angle) * (distance + 0.05)
        background.append(shapes.posed(wall, shapes.rotation(UP, angle), where))
    for _ in range(rng.poisson(cfg.furniture)):  # on the far side: never around the camera
        angle = azimuth + np.pi + rng.uniform(-1.2, 1.2)
        where = unit_vector(0.0, angle) * (np.max(size) + rng.uniform(0.3, 1.2))
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
    if cfg.occlude_prob > 0:
        occluders = _occluders(objects, rng, cfg, region, azimuth)
        for o in occluders:  # the support and the crop reach them
            lo, hi = shapes.bounds(o.solids)
            region = np.maximum(region, np.maximum(np.abs(lo[:2]), np.abs(hi[:2])))
        objects += occluders
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


