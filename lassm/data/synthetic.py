"""Synthetic rooms: the built-in dataset, written in ScanNet's raw layout (REFERENCE_SPEC 1.1).

A room is a floor, four walls (with holes for doors and windows) and furniture of all 18
ScanNet instance classes built from the parametric parts of :mod:`.synthetic_parts`, laid
out by room type (bedroom, office, bathroom, living room, kitchen), then "scanned": unseen
undersides and backs against walls are removed, holes are punched, wall tops are ragged,
vertices get a few millimetres of noise and colours a lighting falloff. Every object is a
separate mesh component, so ScanNet's Segmentator (kThresh 0.01, segMinVerts 20) never
makes a segment that spans two objects and the aggregation groups are exact unions of
segments, as the preprocessing in :mod:`.scannet` expects.

The same seed gives bit-identical files. ``write_synthetic_scannet`` writes a whole raw
dataset (scenes, labels tsv, split lists) that ``lassm.data.scannet`` reads unchanged.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import synthetic_parts as P
from .io import DataError, Mesh, atomic_path, read_json, write_json, write_mesh_ply
from .labels import CLASS_LABELS_200, VALID_CLASS_IDS_200
from .superpoints import segment_mesh

# Vertex spacing of furniture and of walls/floor (m). "full" matches ScanNet's vh_clean_2
# meshes (1-3 cm); "small" is for tests and smoke runs.
SIZES = {"full": (0.02, 0.025), "small": (0.08, 0.12)}
ROOM_TYPES = ("bedroom", "office", "bathroom", "living room", "kitchen")
SCENE_TYPES = {"bedroom": "Bedroom / Hotel", "office": "Office", "bathroom": "Bathroom",
               "living room": "Living room / Lounge", "kitchen": "Kitchen"}
K_THRESH, SEG_MIN_VERTS = 0.01, 20  # ScanNet's segs files: *_vh_clean_2.0.010000.segs.json

# Raw categories the generator uses -> (nyu40 id, nyu40 class name), as in ScanNet's tsv.
# ScanNet20 classes come from the nyu40 id; ScanNet200 classes from the raw category.
CATEGORIES = {
    "wall": (1, "wall"), "floor": (2, "floor"), "cabinet": (3, "cabinet"),
    "kitchen cabinet": (3, "cabinet"), "file cabinet": (3, "cabinet"),
    "bathroom cabinet": (3, "cabinet"), "bed": (4, "bed"), "chair": (5, "chair"),
    "office chair": (5, "chair"), "armchair": (5, "chair"), "couch": (6, "sofa"),
    "table": (7, "table"), "dining table": (7, "table"), "coffee table": (7, "table"),
    "end table": (7, "table"), "door": (8, "door"), "window": (9, "window"),
    "bookshelf": (10, "bookshelf"), "picture": (11, "picture"), "poster": (11, "picture"),
    "counter": (12, "counter"), "kitchen counter": (12, "counter"),
    "bathroom counter": (12, "counter"), "desk": (14, "desk"), "curtain": (16, "curtain"),
    "refrigerator": (24, "refridgerator"), "mini fridge": (24, "refridgerator"),
    "shower curtain": (28, "shower curtain"), "toilet": (33, "toilet"), "sink": (34, "sink"),
    "bathtub": (36, "bathtub"), "trash can": (39, "otherfurniture"),
    "ottoman": (39, "otherfurniture"), "bench": (39, "otherfurniture"),
    "nightstand": (32, "night stand"), "pillow": (18, "pillow"), "lamp": (35, "lamp"),
    "box": (29, "box"), "monitor": (40, "otherprop"),
}
LABEL_TSV = "scannetv2-labels.combined.tsv"
SPLIT_FILES = {"train": "scannetv2_train.txt", "val": "scannetv2_val.txt"}


@dataclass
class SyntheticRoom:
    """One generated room: the mesh and its ground truth, ready for :func:`write_room`."""

    name: str
    mesh: Mesh
    instance: np.ndarray  # (N,) int64 object id per vertex, -1 = unannotated clutter
    objects: list[tuple[int, str]]  # (object id, raw category), ids 0..K-1
    room_type: str = ""
    seed: int = 0
    size: str = "full"


# ----------------------------------------------------------------------------- layout

ROOM_DIMS = {  # (width, depth) ranges in metres
    "bedroom": ((3.2, 4.5), (3.4, 5.0)), "office": ((3.8, 6.0), (3.6, 5.5)),
    "bathroom": ((2.5, 3.4), (2.4, 3.3)), "living room": ((4.2, 6.5), (3.8, 5.5)),
    "kitchen": ((3.4, 5.0), (3.2, 4.6)),
}


def _rot(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _m(item: P.Item, x=0.0, y=0.0, z=0.0, yaw=0.0):
    """A member of a group placed as one: an item and its pose in the group frame."""
    return item, yaw, np.array([x, y, z], float)


def _extent(members) -> tuple[np.ndarray, np.ndarray]:
    """(3,) lower and upper corners of the group's bounding box in the group frame."""
    points = np.concatenate([item.part.vertices @ _rot(yaw).T + o for item, yaw, o in members])
    return points.min(axis=0), points.max(axis=0)


def _top(item: P.Item, x: float, y: float, radius: float) -> float:
    """Height of the surface of ``item`` around (x, y): where to set things on it."""
    v = item.part.vertices
    near = np.abs(v[:, :2] - (x, y)).max(axis=1) < radius
    return float(v[near, 2].max() if near.any() else v[:, 2].max())


class _Layout:
    """Free space of one room while it is furnished: occupied boxes and wall holes.

    Room frame: x in [0, width], y in [0, depth], z up. Wall k starts at ``corners[k]`` and
    runs along yaw k * 90 degrees with the room on its left, so an item posed with that yaw
    has its back to the wall and its front (+y) towards the room.
    """

    def __init__(self, rng, room_type: str, spacing: float):
        self.rng, self.room_type, self.s = rng, room_type, spacing
        (w0, w1), (d0, d1) = ROOM_DIMS[room_type]
        self.width, self.depth = rng.uniform(w0, w1), rng.uniform(d0, d1)
        self.height = rng.uniform(2.4, 2.9)
        self.lengths = (self.width, self.depth, self.width, self.depth)
        self.corners = np.array([(0, 0, 0), (self.width, 0, 0), (self.width, self.depth, 0),
                                 (0, self.depth, 0)], float)
        self.holes = [[] for _ in range(4)]  # per wall: (u0, u1, z0, z1) door/window openings
        self.boxes = []  # (2, 3) world bounding boxes of what is placed
        self.placed = []  # (Item, yaw, offset): pose in the room frame

    def _boxes(self, members, yaw, offset, extra=()) -> list[np.ndarray]:
        out = []
        for lo, hi in [_extent([m]) for m in members] + list(extra):
            corners = np.array(np.meshgrid(*zip(lo, hi, strict=True))).reshape(3, -1).T  # (8, 3)
            world = corners @ _rot(yaw).T + offset
            out.append(np.stack([world.min(axis=0), world.max(axis=0)]))
        return out

    def _free(self, boxes, inside=True) -> bool:
        for box in boxes:
            if inside and ((box[0, :2] < -1e-6).any() or box[1, 0] > self.width + 1e-6
                           or box[1, 1] > self.depth + 1e-6):
                return False
            if any(np.all(box[0] < b[1] - 1e-3) and np.all(b[0] < box[1] - 1e-3) for b in self.boxes):
                return False  # touching is fine, overlapping is not
        return True

    def _commit(self, members, yaw, offset, boxes):
        for item, y, o in members:
            self.placed.append((item, yaw + y, offset + _rot(yaw) @ o))
        self.boxes += boxes

    def _wall_pose(self, k: int, u: float, y: float, z: float):
        yaw = k * np.pi / 2
        return yaw, self.corners[k] + _rot(yaw) @ np.array([u, y, z])

    def against_wall(self, members, wall=None, u=None, z=0.0, gap=0.005, required=False, tries=60):
        """Put a group with its back ``gap`` from a wall (at ``u`` along it, or random, or a
        "corner"). A ``required`` group goes in even if it must overlap. Returns (wall, u)."""
        lo, hi = _extent(members)
        for attempt in range(tries + int(required)):
            forced = attempt == tries
            k = wall if wall is not None else int(np.argmax(self.lengths) if forced else self.rng.integers(4))
            length = self.lengths[k]
            if hi[0] - lo[0] > length and not forced:
                continue
            if u == "corner":
                at = -lo[0] if self.rng.random() < 0.5 else length - hi[0]
            else:
                at = self.rng.uniform(-lo[0], max(-lo[0], length - hi[0])) if u is None else u
            yaw, offset = self._wall_pose(k, at, gap - lo[1], z)
            boxes = self._boxes(members, yaw, offset)
            if forced or self._free(boxes):
                self._commit(members, yaw, offset, boxes)
                return k, at
        return None

    def in_room(self, members, required=False, tries=80):
        """Put a group anywhere on the floor, turned by a multiple of 90 degrees plus jitter."""
        for attempt in range(tries + int(required)):
            yaw = self.rng.integers(4) * np.pi / 2 + self.rng.normal(0, 0.1)
            offset = np.array([self.rng.uniform(0, self.width), self.rng.uniform(0, self.depth), 0])
            if attempt == tries:
                offset = np.array([self.width / 2, self.depth / 2, 0])
            boxes = self._boxes(members, yaw, offset)
            if attempt == tries or self._free(boxes):
                self._commit(members, yaw, offset, boxes)
                return True
        return False

    def opening(self, kind: str, required=False, curtains=False, tries=60) -> bool:
        """Cut a door or window into a wall and fill it (windows optionally with curtains)."""
        rng, s = self.rng, self.s
        for attempt in range(tries + int(required)):
            k = int(self.rng.integers(4))
            if kind == "door":
                w, h, z0 = rng.uniform(0.8, 0.95), rng.uniform(2.0, 2.1), 0.0
            else:
                z0 = rng.uniform(0.8, 1.0)
                w, h = rng.uniform(0.7, 1.6), min(rng.uniform(0.9, 1.3), self.height - 0.25 - z0)
            if w + 0.4 > self.lengths[k]:
                continue
            u = rng.uniform(0.2 + w / 2, self.lengths[k] - 0.2 - w / 2)
            side = rng.uniform(0.3, 0.55) if curtains else 0.0  # curtain panel width
            lo = (-w / 2 - 0.1 - side, 0.0, -z0 if kind == "door" or curtains else -0.05)
            hi = (w / 2 + 0.1 + side, w + 0.05 if kind == "door" else 0.25, h + 0.2)  # door swing
            yaw, offset = self._wall_pose(k, u, 0.0, z0)
            boxes = self._boxes([], yaw, offset, extra=[(np.array(lo), np.array(hi))])
            if attempt < tries and not self._free(boxes):
                continue
            opening = rng.uniform(0.3, 1.7) if rng.random() < 0.6 else 0.0
            members = [_m(P.door(rng, s, w, h, opening) if kind == "door" else P.window(rng, s, w, h))]
            if curtains:
                bottom = 0.02 - z0 if rng.random() < 0.6 else -0.1  # floor-length or sill-length
                for sign in (-1, 1):
                    members.append(_m(P.curtain(rng, s, side, h + 0.15 - bottom),
                                      x=sign * (w / 2 + side / 2 - 0.08), y=0.18, z=bottom))
            self._commit(members, yaw, offset, boxes)
            self.holes[k].append((u - w / 2, u + w / 2, z0, z0 + h))
            return True
        return False


# ----------------------------------------------------------------------------- furnishing


def _table_with_chairs(rng, s, label: str):
    """A table with matching chairs pushed a little under it on its long sides."""
    table, chair = P.table(rng, s, label), P.chair(rng, s)
    lo, hi = _extent([_m(table)])
    clo, chi = _extent([_m(chair)])
    span = (hi[0] - lo[0]) / 2 - 0.1 - (chi[0] - clo[0]) / 2  # keep clear of the table legs
    count = max(1, int((hi[0] - lo[0] - 0.2) // (chi[0] - clo[0] + 0.05)))
    members = [_m(table)]
    for yaw, y in ((0.0, lo[1] - chi[1]), (np.pi, hi[1] + chi[1])):
        for x in np.linspace(-span, span, count) if count > 1 else [0.0]:
            if len(members) > 1 and rng.random() < 0.25:
                continue  # an empty seat
            push = rng.uniform(0.05, 0.15) * (1 if yaw == 0 else -1)
            x += rng.uniform(-0.03, 0.03)
            members.append(_m(chair, x=x, y=y + push, yaw=yaw + rng.normal(0, 0.06)))
    return members


def _desk_with_chair(rng, s, chair_label: str, monitor: bool):
    """A desk with its chair in the knee space (left of the drawers) and maybe a monitor."""
    desk, chair = P.desk(rng, s), P.chair(rng, s, chair_label)
    lo, hi = _extent([_m(desk)])
    _, chi = _extent([_m(chair)])
    x = (lo[0] + hi[0] - 0.45) / 2
    y = hi[1] + chi[1] - rng.uniform(0.02, 0.12)  # seat front a little under the desk
    members = [_m(desk), _m(chair, x=x, y=y, yaw=np.pi + rng.normal(0, 0.15))]
    if monitor:
        members.append(_on_top(desk, P.small_object(rng, s, "monitor"), x, -0.05, s))
    return members


def _on_top(base: P.Item, item: P.Item, x: float, y: float, s: float, yaw=0.0):
    return _m(item, x=x, y=y, z=_top(base, x, y, max(0.08, 1.5 * s)), yaw=yaw)


def _pictures(room: _Layout, count: int, required: bool):
    for i in range(count):
        picture = P.picture(room.rng, room.s)
        z = room.rng.uniform(1.35, 1.7)
        room.against_wall([_m(picture)], z=z, gap=0.003, required=required and i == 0)


def _clutter(room: _Layout, count: int):
    """Small props: some annotated as ``box`` (a ScanNet200-only class), most unlabelled."""
    for _ in range(count):
        label = "box" if room.rng.random() < 0.4 else None
        room.against_wall([_m(P.small_object(room.rng, room.s, label))], gap=room.rng.uniform(0.01, 0.3))


def _bedroom(room: _Layout, rng, s):
    room.opening("door", required=True)
    room.opening("window", required=True, curtains=True)
    if rng.random() < 0.4:
        room.opening("window", curtains=rng.random() < 0.5)
    bed = P.bed(rng, s)
    lo, hi = _extent([_m(bed)])
    members = [_m(bed)]
    for x in ([0.0] if hi[0] - lo[0] < 1.2 else [lo[0] / 2, hi[0] / 2]):
        members.append(_on_top(bed, P.small_object(rng, s, "pillow"), x, lo[1] + 0.3, s, rng.normal(0, 0.1)))
    for sign in (-1, 1) if rng.random() < 0.6 else (rng.choice([-1, 1]),):
        stand = P.cabinet(rng, s, "nightstand", w=rng.uniform(0.4, 0.55), d=rng.uniform(0.35, 0.45))
        slo, shi = _extent([_m(stand)])
        x = hi[0] + 0.01 - slo[0] if sign > 0 else lo[0] - 0.01 - shi[0]
        members.append(_m(stand, x=x, y=lo[1] - slo[1]))
        if rng.random() < 0.5:
            lamp, z = P.small_object(rng, s, "lamp"), _top(stand, 0.0, 0.0, 0.1)
            members.append(_m(lamp, x=x, y=lo[1] - slo[1], z=z))
    room.against_wall(members, required=True)
    wardrobe = P.cabinet(rng, s, "cabinet", h=rng.uniform(1.7, 2.1), d=rng.uniform(0.5, 0.6))
    room.against_wall([_m(wardrobe)], required=True)
    if rng.random() < 0.5:
        room.against_wall(_desk_with_chair(rng, s, "chair", monitor=False))
    room.against_wall([_m(P.other_furniture(rng, s, rng.choice(["trash can", "ottoman"])))], required=True)
    _pictures(room, int(rng.integers(1, 3)), required=True)
    _clutter(room, int(rng.integers(0, 3)))


def _office(room: _Layout, rng, s):
    room.opening("door", required=True)
    for i in range(int(rng.integers(1, 3))):
        room.opening("window", required=i == 0, curtains=rng.random() < 0.3)
    for i in range(int(rng.integers(1, 3))):
        room.against_wall(_desk_with_chair(rng, s, "office chair", monitor=True), required=i == 0)
    room.in_room(_table_with_chairs(rng, s, "table"), required=True)
    for i in range(int(rng.integers(1, 3))):
        room.against_wall([_m(P.bookshelf(rng, s))], required=i == 0)
    room.against_wall([_m(P.cabinet(rng, s, "file cabinet", w=rng.uniform(0.4, 0.5), d=0.6))], required=True)
    room.against_wall([_m(P.other_furniture(rng, s, "trash can"))], required=True)
    if rng.random() < 0.3:
        room.against_wall([_m(P.refrigerator(rng, s, "mini fridge"))])
    _pictures(room, int(rng.integers(1, 3)), required=True)
    _clutter(room, int(rng.integers(1, 4)))


def _bathroom(room: _Layout, rng, s):
    room.opening("door", required=True)
    if rng.random() < 0.5:
        room.opening("window")
    tub = P.bathtub(rng, s)
    lo, hi = _extent([_m(tub)])
    width, bottom = rng.uniform(0.45, 0.9) * (hi[0] - lo[0]), rng.uniform(0.35, 0.55)
    curtain = P.curtain(rng, s, width, 1.95 - bottom, "shower curtain")
    rod = P.box((lo[0], hi[1] - 0.055, 1.95), (hi[0], hi[1] - 0.03, 1.975), s)
    rod = P.Item(None, P.paint(rod, (0.8, 0.8, 0.8), rng))  # unannotated, as often in ScanNet
    x = rng.choice([-1, 1]) * ((hi[0] - lo[0]) / 2 - width / 2)  # drawn to one end
    members = [_m(tub), _m(curtain, x=x, y=hi[1] - 0.05, z=bottom), _m(rod)]
    room.against_wall(members, u="corner", required=True)
    room.against_wall([_m(P.toilet(rng, s))], required=True)
    if rng.random() < 0.75:
        top = P.counter(rng, s, "bathroom counter", w=rng.uniform(0.8, 1.3))
        placed = room.against_wall([_m(top), _on_top(top, P.sink(rng, s), 0.0, 0.0, s)], required=True)
        cabinet = P.cabinet(rng, s, "bathroom cabinet", w=rng.uniform(0.5, 0.8))
        room.against_wall([_m(cabinet)], wall=placed[0], u=placed[1], z=rng.uniform(1.3, 1.45))
    else:
        room.against_wall([_m(P.sink(rng, s, pedestal=True))], required=True)
    if rng.random() < 0.5:
        room.against_wall([_m(P.other_furniture(rng, s, "trash can"))])
    _pictures(room, int(rng.random() < 0.3), required=False)


def _living_room(room: _Layout, rng, s):
    room.opening("door", required=True)
    room.opening("window", required=True, curtains=True)
    if rng.random() < 0.5:
        room.opening("window", curtains=rng.random() < 0.5)
    couch = P.couch(rng, s)
    lo, hi = _extent([_m(couch)])
    members = [_m(couch)]
    if rng.random() < 0.5:
        members += [_on_top(couch, P.small_object(rng, s, "pillow"), x, lo[1] + 0.4, s, rng.normal(0, 0.2))
                    for x in (lo[0] + 0.5, hi[0] - 0.5)]
    if rng.random() < 0.85:
        table = P.table(rng, s, "coffee table")
        tlo, thi = _extent([_m(table)])
        members.append(_m(table, y=hi[1] + rng.uniform(0.3, 0.5) - tlo[1]))
    room.against_wall(members, required=True)
    for i in range(int(rng.integers(1, 3))):
        room.in_room([_m(P.chair(rng, s, "armchair"))], required=i == 0)
    room.against_wall([_m(P.bookshelf(rng, s))], required=True)
    room.in_room([_m(P.other_furniture(rng, s, "ottoman"))], required=True)
    if rng.random() < 0.5:
        table = P.table(rng, s, "end table")
        room.against_wall([_m(table), _on_top(table, P.small_object(rng, s, "lamp"), 0.0, 0.0, s)])
    if rng.random() < 0.5:
        room.against_wall([_m(P.cabinet(rng, s, "cabinet", h=rng.uniform(0.45, 0.6)))])
    _pictures(room, int(rng.integers(1, 4)), required=True)
    _clutter(room, int(rng.integers(0, 3)))


def _kitchen(room: _Layout, rng, s):
    room.opening("door", required=True)
    room.opening("window", required=True, curtains=rng.random() < 0.3)
    top = P.counter(rng, s, rng.choice(["counter", "kitchen counter"]), w=rng.uniform(1.4, 2.6))
    lo, hi = _extent([_m(top)])
    fridge = P.refrigerator(rng, s)
    flo, fhi = _extent([_m(fridge)])
    x = hi[0] + 0.01 - flo[0] if rng.random() < 0.5 else lo[0] - 0.01 - fhi[0]
    sink_x = rng.uniform(lo[0] + 0.4, hi[0] - 0.4)
    members = [_m(top), _on_top(top, P.sink(rng, s), sink_x, 0.0, s), _m(fridge, x=x, y=lo[1] - flo[1])]
    wall, u = room.against_wall(members, required=True)
    count = int(rng.integers(1, 4))
    w = (hi[0] - lo[0]) / count
    uppers = [_m(P.cabinet(rng, s, "kitchen cabinet", w=w - 0.01), x=(i - (count - 1) / 2) * w)
              for i in range(count)]
    room.against_wall(uppers, wall=wall, u=u, z=rng.uniform(1.4, 1.5))
    room.in_room(_table_with_chairs(rng, s, rng.choice(["table", "dining table"])), required=True)
    room.against_wall([_m(P.other_furniture(rng, s, "trash can"))], required=True)
    _pictures(room, int(rng.random() < 0.5), required=False)
    _clutter(room, int(rng.integers(0, 3)))


FURNISH = {"bedroom": _bedroom, "office": _office, "bathroom": _bathroom,
           "living room": _living_room, "kitchen": _kitchen}


def furnish_room(rng, room_type: str, spacing: float) -> _Layout:
    room = _Layout(rng, room_type, spacing)
    FURNISH[room_type](room, rng, spacing)
    return room


# ----------------------------------------------------------------------------- scanning


def _keep_faces(part: P.Part, keep: np.ndarray) -> P.Part:
    """Keep the faces in ``keep`` and drop vertices no face uses any more."""
    faces = part.faces[keep]
    used = np.zeros(len(part.vertices), bool)
    used[faces] = True
    remap = np.cumsum(used) - 1
    return P.Part(part.vertices[used], remap[faces], part.colors[used])


def _face_geometry(part: P.Part):
    tri = part.vertices[part.faces]  # (M, 3, 3)
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1) / 2
    return tri.mean(axis=1), cross / (2 * area[:, None] + 1e-12), area  # centroids, normals, areas


def _scan(part: P.Part, rng, room_size, is_structure: bool) -> P.Part:
    """Scanner-like losses: unseen undersides and wall-facing backs, then a few holes."""
    centre, normal, area = _face_geometry(part)
    keep = np.ones(len(part.faces), bool)
    if not is_structure:
        keep &= normal[:, 2] > -0.5  # undersides: a hand-held scanner never looks up at them
        for axis, size in ((0, room_size[0]), (1, room_size[1])):  # backs hidden against a wall
            keep &= ~((centre[:, axis] < 0.03) & (normal[:, axis] < -0.7))
            keep &= ~((centre[:, axis] > size - 0.03) & (normal[:, axis] > 0.7))
    diagonal = np.linalg.norm(np.ptp(part.vertices, axis=0))
    if diagonal > 0.6:
        for _ in range(rng.poisson(0.04 * area.sum() + 0.3)):
            hole = np.linalg.norm(centre - centre[rng.integers(len(centre))], axis=1)
            hole = hole < rng.uniform(0.03, 0.12) * min(diagonal, 2.0)
            if (keep & ~hole).sum() > 0.8 * keep.sum():  # never lose most of an object
                keep &= ~hole
    return _keep_faces(part, keep)


def _structure(room, rng, spacing: float) -> list[tuple[str, P.Part]]:
    """Floor and four walls with the door/window holes; wall tops left ragged by the scan."""
    width, depth, height = room.width, room.depth, room.height
    floor = P.plane((0, 0, 0), P.EX, width, P.EY, depth, spacing)
    floor_look = [(P.WOOD, "planks"), (P.PAINT, "tiles"), (P.FABRIC, "fabric")][rng.integers(3)]
    wall_look = "tiles" if room.room_type == "bathroom" and rng.random() < 0.5 else \
        "stripes" if rng.random() < 0.1 else "plain"
    if room.room_type == "bathroom":
        floor_look = (P.PAINT + P.DARK, "tiles")
    pieces = [("floor", P.paint(floor, P.pick(rng, floor_look[0]), rng, floor_look[1]))]
    paint = P.pick(rng, P.PAINT)
    for k in range(4):
        length = room.lengths[k]
        wall = P.wall_sheet(length, height, room.holes[k], spacing)
        centre = wall.vertices[wall.faces].mean(axis=1)  # (M, 3) local: x along wall, z up
        top = height - rng.uniform(0.0, 0.25) - 0.2 * (1 + np.sin(centre[:, 0] / rng.uniform(0.3, 1.0)
                                                                  + rng.uniform(0, 6.3)))
        wall = _keep_faces(wall, centre[:, 2] < top)
        wall = P.paint(wall, paint * rng.uniform(0.95, 1.05), rng, wall_look)
        pieces.append(("wall", P.moved(wall, k * np.pi / 2, room.corners[k])))
    return pieces


def _smooth_warp(points: np.ndarray, rng, amplitude: float) -> np.ndarray:
    """(N, 3) displacement: a few random plane waves, like the low-frequency drift of a scan."""
    out = np.zeros_like(points)
    for _ in range(4):
        direction = rng.normal(size=3)
        k = direction / np.linalg.norm(direction) * 2 * np.pi / rng.uniform(0.4, 2.0)
        out += np.sin(points @ k + rng.uniform(0, 6.3))[:, None] * rng.normal(0, amplitude, 3)
    return out


# ----------------------------------------------------------------------------- rooms


def generate_room(seed: int, size: str = "full", room_type: str | None = None) -> SyntheticRoom:
    """Generate one room; the same (seed, size, room_type) always gives the same arrays.

    ``room_type`` defaults to ``ROOM_TYPES[seed % 5]``, so any five consecutive seeds give
    one room of each type and together contain every ScanNet instance class.
    """
    if size not in SIZES:
        raise DataError(f"size: unknown room size {size!r}; expected one of {list(SIZES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed: expected a non-negative integer, got {seed!r}")
    room_type = ROOM_TYPES[seed % len(ROOM_TYPES)] if room_type is None else room_type
    if room_type not in ROOM_TYPES:
        raise DataError(f"room_type: unknown {room_type!r}; expected one of {ROOM_TYPES}")
    rng = np.random.default_rng(seed)
    spacing, structure_spacing = SIZES[size]
    room = furnish_room(rng, room_type, spacing)
    pieces = _structure(room, rng, structure_spacing)
    pieces += [(item.label, P.moved(item.part, yaw, offset)) for item, yaw, offset in room.placed]

    parts, instance, objects = [], [], []
    for label, part in pieces:
        part = _scan(part, rng, (room.width, room.depth), label in ("wall", "floor"))
        if len(part.faces) == 0:
            continue
        object_id = -1 if label is None else len(objects)
        if label is not None:
            objects.append((object_id, label))
        parts.append(part)
        instance.append(np.full(len(part.vertices), object_id, np.int64))
    mesh = P.merge(parts)
    vertices = mesh.vertices + _smooth_warp(mesh.vertices, rng, 0.003)
    vertices += rng.normal(0.0, 0.002, vertices.shape)  # per-vertex depth noise
    light = np.array([rng.uniform(0, room.width), rng.uniform(0, room.depth), room.height])
    falloff = np.linalg.norm(mesh.vertices - light, axis=1) / np.hypot(room.width, room.depth)
    colors = mesh.colors * (1.1 - 0.35 * falloff)[:, None]  # brighter under the light
    colors = np.round(np.clip(colors, 0, 1) * 255).astype(np.uint8)
    return SyntheticRoom(
        name=f"synth{seed:04d}_00",
        mesh=Mesh(vertices.astype(np.float32), colors, mesh.faces.astype(np.int64)),
        instance=np.concatenate(instance), objects=objects,
        room_type=room_type, seed=int(seed), size=size,
    )


# ----------------------------------------------------------------------------- writing


def _scene_files(raw_root: Path, scene: str) -> dict[str, Path]:
    folder = raw_root / "scans" / scene
    return {"ply": folder / f"{scene}_vh_clean_2.ply",
            "segs": folder / f"{scene}_vh_clean_2.0.010000.segs.json",
            "aggregation": folder / f"{scene}.aggregation.json",
            "txt": folder / f"{scene}.txt"}


def _scene_info(room: SyntheticRoom) -> dict[str, str]:
    """The ``<scene>.txt`` lines: ScanNet's keys, plus how the room was generated."""
    return {"axisAlignment": "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1", "colorHeight": "968",
            "colorWidth": "1296", "depthHeight": "480", "depthWidth": "640",
            "numColorFrames": "0", "numDepthFrames": "0",
            "sceneType": SCENE_TYPES[room.room_type], "synthRoomType": room.room_type,
            "synthSeed": str(room.seed), "synthSize": room.size}


def write_room(room: SyntheticRoom, raw_root: str | os.PathLike, scene_name: str) -> Path:
    """Write one room as ``<raw_root>/scans/<scene_name>/`` in ScanNet's raw layout.

    The ``.txt`` goes last, so a folder with it is complete. Returns the scene folder.
    """
    if not scene_name or Path(scene_name).name != scene_name:
        raise DataError(f"scene_name: expected a plain folder name like 'synth0000_00', got {scene_name!r}")
    files = _scene_files(Path(raw_root), scene_name)
    segments = segment_mesh(room.mesh.vertices, room.mesh.faces, K_THRESH, SEG_MIN_VERTS)  # (N,)
    # No segment may hold two objects (or an object and unannotated clutter): then the groups
    # below cover exactly their objects' vertices (REFERENCE_SPEC 1.1 step 4).
    pairs = np.unique(np.stack([segments, room.instance], axis=1), axis=0)
    if len(pairs) != len(np.unique(segments)):
        raise RuntimeError(f"{scene_name}: a segment spans two objects; parts must stay unwelded")
    groups = [{"id": int(i), "objectId": int(i), "segments": np.unique(segments[room.instance == i]).tolist(),
               "label": label} for i, label in room.objects]
    write_mesh_ply(files["ply"], room.mesh)
    write_json(files["segs"], {"params": {"kThresh": str(K_THRESH), "segMinVerts": str(SEG_MIN_VERTS)},
                               "sceneId": scene_name, "segIndices": segments.tolist()})
    write_json(files["aggregation"], {"sceneId": f"scannet.{scene_name}", "appId": "Aggregator.v2",
                                      "segGroups": groups,
                                      "segmentsFile": f"scannet.{files['segs'].name}"})
    with atomic_path(files["txt"]) as tmp:
        tmp.write_text("".join(f"{k} = {v}\n" for k, v in _scene_info(room).items()))
    return files["txt"].parent


def _room_is_written(raw_root: Path, scene: str, seed: int, size: str, room_type: str) -> bool:
    files = _scene_files(raw_root, scene)
    if not all(f.is_file() for f in files.values()):
        return False
    lines = dict(line.split(" = ", 1) for line in files["txt"].read_text().splitlines() if " = " in line)
    return lines.get("synthSeed") == str(seed) and lines.get("synthSize") == size \
        and lines.get("synthRoomType") == room_type


def _make_room(raw_root: Path, scene: str, seed: int, size: str, room_type: str) -> str:
    write_room(generate_room(seed, size, room_type), raw_root, scene)
    return scene


def room_seed(seed: int, index: int) -> int:
    """Seed of room ``index`` of a dataset generated with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def write_label_tsv(path: Path, counts: dict[str, int]) -> None:
    """ScanNet's label table for our raw categories: ``id`` is the ScanNet200 id."""
    header = ("id", "raw_category", "category", "count", "nyu40id", "nyu40class")
    rows = ["\t".join(header)]
    for raw, (nyu40, nyu40class) in CATEGORIES.items():
        cid = VALID_CLASS_IDS_200[CLASS_LABELS_200.index(raw)]
        rows.append("\t".join(map(str, (cid, raw, raw, counts.get(raw, 0), nyu40, nyu40class))))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(rows) + "\n")


def write_synthetic_scannet(
    raw_root: str | os.PathLike, num_rooms: int = 8, seed: int = 0, size: str = "full",
    val_fraction: float = 0.25, workers: int = 1,
) -> list[str]:
    """Write ``num_rooms`` rooms plus the labels tsv and split lists into ``raw_root``.

    Room i is generated from ``room_seed(seed, i)`` as room type ``ROOM_TYPES[(seed + i) % 5]``
    and named ``synth{i:04d}_00``; rooms already written with the same parameters are
    skipped. The last ``round(num_rooms * val_fraction)`` rooms (at least one when
    ``num_rooms >= 2``) form the val split. Returns the scene names.
    """
    if isinstance(num_rooms, bool) or not isinstance(num_rooms, (int, np.integer)) or num_rooms < 1:
        raise DataError(f"num_rooms: expected an integer >= 1, got {num_rooms!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed: expected a non-negative integer, got {seed!r}")
    if size not in SIZES:
        raise DataError(f"size: unknown room size {size!r}; expected one of {list(SIZES)}")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction: expected a number in [0, 1), got {val_fraction!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise DataError(f"workers: expected an integer >= 1, got {workers!r}")
    raw_root = Path(raw_root)
    if raw_root.exists() and not raw_root.is_dir():
        raise DataError(f"raw_root: {raw_root} exists and is not a folder")
    names = [f"synth{i:04d}_00" for i in range(num_rooms)]
    specs = [(name, room_seed(seed, i), size, ROOM_TYPES[(seed + i) % len(ROOM_TYPES)])
             for i, name in enumerate(names)]
    todo = [spec for spec in specs if not _room_is_written(raw_root, *spec)]
    with tqdm(total=len(todo), desc="synthetic rooms", unit="room", disable=not todo) as bar:
        if workers == 1 or len(todo) <= 1:
            for spec in todo:
                _make_room(raw_root, *spec)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
                for future in as_completed([pool.submit(_make_room, raw_root, *spec) for spec in todo]):
                    future.result()
                    bar.update()

    counts: dict[str, int] = {}
    for name in names:
        for group in read_json(_scene_files(raw_root, name)["aggregation"], ("segGroups",))["segGroups"]:
            counts[group["label"]] = counts.get(group["label"], 0) + 1
    write_label_tsv(raw_root / LABEL_TSV, counts)
    num_val = max(1, round(num_rooms * val_fraction)) if num_rooms >= 2 else 0
    for split, scenes in (("train", names[:num_rooms - num_val]), ("val", names[num_rooms - num_val:])):
        with atomic_path(raw_root / SPLIT_FILES[split]) as tmp:
            tmp.write_text("".join(f"{scene}\n" for scene in scenes))
    return names

