"""Synthetic rooms: room layout and furnishing, the first stage of :mod:`.synthetic`.

A room of a given type gets its size, doors and windows (holes cut into the walls, filled
with a door leaf or window frame, maybe curtains) and furniture from
:mod:`.synthetic_furniture`, placed in groups (a bed with its nightstands, a table with its
chairs) against walls or free on the floor without overlapping. Every draw comes from the
one ``rng`` passed in, in a fixed order, so a seed gives the same room every time.
"""

from __future__ import annotations

import numpy as np

from . import synthetic_furniture as F
from . import synthetic_parts as P

ROOM_TYPES = ("bedroom", "office", "bathroom", "living room", "kitchen")


# ----------------------------------------------------------------------------- layout

ROOM_DIMS = {  # (width, depth) ranges in metres
    "bedroom": ((3.2, 4.5), (3.4, 5.0)), "office": ((3.8, 6.0), (3.6, 5.5)),
    "bathroom": ((2.5, 3.4), (2.4, 3.3)), "living room": ((4.2, 6.5), (3.8, 5.5)),
    "kitchen": ((3.4, 5.0), (3.2, 4.6)),
}


def _rot(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _m(item: F.Item, x=0.0, y=0.0, z=0.0, yaw=0.0):
    """A member of a group placed as one: an item and its pose in the group frame."""
    return item, yaw, np.array([x, y, z], float)


def _extent(members) -> tuple[np.ndarray, np.ndarray]:
    """(3,) lower and upper corners of the group's bounding box in the group frame."""
    points = np.concatenate([item.part.vertices @ _rot(yaw).T + o for item, yaw, o in members])
    return points.min(axis=0), points.max(axis=0)


def _top(item: F.Item, x: float, y: float, radius: float) -> float:
    """Height of the surface of ``item`` around (x, y): where to set things on it."""
    v = item.part.vertices
    near = np.abs(v[:, :2] - (x, y)).max(axis=1) < radius
    return float(v[near, 2].max() if near.any() else v[:, 2].max())


class Layout:
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
            members = [_m(F.door(rng, s, w, h, opening) if kind == "door" else F.window(rng, s, w, h))]
            if curtains:
                bottom = 0.02 - z0 if rng.random() < 0.6 else -0.1  # floor-length or sill-length
                for sign in (-1, 1):
                    members.append(_m(F.curtain(rng, s, side, h + 0.15 - bottom),
                                      x=sign * (w / 2 + side / 2 - 0.08), y=0.18, z=bottom))
            self._commit(members, yaw, offset, boxes)
            self.holes[k].append((u - w / 2, u + w / 2, z0, z0 + h))
            return True
        return False


# ----------------------------------------------------------------------------- furnishing


def _table_with_chairs(rng, s, label: str):
    """A table with matching chairs pushed a little under it on its long sides."""
    table, chair = F.table(rng, s, label), F.chair(rng, s)
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
    desk, chair = F.desk(rng, s), F.chair(rng, s, chair_label)
    lo, hi = _extent([_m(desk)])
    _, chi = _extent([_m(chair)])
    x = (lo[0] + hi[0] - 0.45) / 2
    y = hi[1] + chi[1] - rng.uniform(0.02, 0.12)  # seat front a little under the desk
    members = [_m(desk), _m(chair, x=x, y=y, yaw=np.pi + rng.normal(0, 0.15))]
    if monitor:
        members.append(_on_top(desk, F.small_object(rng, s, "monitor"), x, -0.05, s))
    return members


def _on_top(base: F.Item, item: F.Item, x: float, y: float, s: float, yaw=0.0):
    return _m(item, x=x, y=y, z=_top(base, x, y, max(0.08, 1.5 * s)), yaw=yaw)


def _pictures(room: Layout, count: int, required: bool):
    for i in range(count):
        picture = F.picture(room.rng, room.s)
        z = room.rng.uniform(1.35, 1.7)
        room.against_wall([_m(picture)], z=z, gap=0.003, required=required and i == 0)


def _clutter(room: Layout, count: int):
    """Small props: some annotated as ``box`` (a ScanNet200-only class), most unlabelled."""
    for _ in range(count):
        label = "box" if room.rng.random() < 0.4 else None
        room.against_wall([_m(F.small_object(room.rng, room.s, label))], gap=room.rng.uniform(0.01, 0.3))


def _bedroom(room: Layout, rng, s):
    room.opening("door", required=True)
    room.opening("window", required=True, curtains=True)
    if rng.random() < 0.4:
        room.opening("window", curtains=rng.random() < 0.5)
    bed = F.bed(rng, s)
    lo, hi = _extent([_m(bed)])
    members = [_m(bed)]
    for x in ([0.0] if hi[0] - lo[0] < 1.2 else [lo[0] / 2, hi[0] / 2]):
        members.append(_on_top(bed, F.small_object(rng, s, "pillow"), x, lo[1] + 0.3, s, rng.normal(0, 0.1)))
    for sign in (-1, 1) if rng.random() < 0.6 else (rng.choice([-1, 1]),):
        stand = F.cabinet(rng, s, "nightstand", w=rng.uniform(0.4, 0.55), d=rng.uniform(0.35, 0.45))
        slo, shi = _extent([_m(stand)])
        x = hi[0] + 0.01 - slo[0] if sign > 0 else lo[0] - 0.01 - shi[0]
        members.append(_m(stand, x=x, y=lo[1] - slo[1]))
        if rng.random() < 0.5:
            lamp, z = F.small_object(rng, s, "lamp"), _top(stand, 0.0, 0.0, 0.1)
            members.append(_m(lamp, x=x, y=lo[1] - slo[1], z=z))
    room.against_wall(members, required=True)
    wardrobe = F.cabinet(rng, s, "cabinet", h=rng.uniform(1.7, 2.1), d=rng.uniform(0.5, 0.6))
    room.against_wall([_m(wardrobe)], required=True)
    if rng.random() < 0.5:
        room.against_wall(_desk_with_chair(rng, s, "chair", monitor=False))
    room.against_wall([_m(F.other_furniture(rng, s, rng.choice(["trash can", "ottoman"])))], required=True)
    _pictures(room, int(rng.integers(1, 3)), required=True)
    _clutter(room, int(rng.integers(0, 3)))


def _office(room: Layout, rng, s):
    room.opening("door", required=True)
    for i in range(int(rng.integers(1, 3))):
        room.opening("window", required=i == 0, curtains=rng.random() < 0.3)
    for i in range(int(rng.integers(1, 3))):
        room.against_wall(_desk_with_chair(rng, s, "office chair", monitor=True), required=i == 0)
    room.in_room(_table_with_chairs(rng, s, "table"), required=True)
    for i in range(int(rng.integers(1, 3))):
        room.against_wall([_m(F.bookshelf(rng, s))], required=i == 0)
    room.against_wall([_m(F.cabinet(rng, s, "file cabinet", w=rng.uniform(0.4, 0.5), d=0.6))], required=True)
    room.against_wall([_m(F.other_furniture(rng, s, "trash can"))], required=True)
    if rng.random() < 0.3:
        room.against_wall([_m(F.refrigerator(rng, s, "mini fridge"))])
    _pictures(room, int(rng.integers(1, 3)), required=True)
    _clutter(room, int(rng.integers(1, 4)))


def _bathroom(room: Layout, rng, s):
    room.opening("door", required=True)
    if rng.random() < 0.5:
        room.opening("window")
    tub = F.bathtub(rng, s)
    lo, hi = _extent([_m(tub)])
    width, bottom = rng.uniform(0.45, 0.9) * (hi[0] - lo[0]), rng.uniform(0.35, 0.55)
    curtain = F.curtain(rng, s, width, 1.95 - bottom, "shower curtain")
    rod = P.box((lo[0], hi[1] - 0.055, 1.95), (hi[0], hi[1] - 0.03, 1.975), s)
    rod = F.Item(None, P.paint(rod, (0.8, 0.8, 0.8), rng))  # unannotated, as often in ScanNet
    x = rng.choice([-1, 1]) * ((hi[0] - lo[0]) / 2 - width / 2)  # drawn to one end
    members = [_m(tub), _m(curtain, x=x, y=hi[1] - 0.05, z=bottom), _m(rod)]
    room.against_wall(members, u="corner", required=True)
    room.against_wall([_m(F.toilet(rng, s))], required=True)
    if rng.random() < 0.75:
        top = F.counter(rng, s, "bathroom counter", w=rng.uniform(0.8, 1.3))
        placed = room.against_wall([_m(top), _on_top(top, F.sink(rng, s), 0.0, 0.0, s)], required=True)
        cabinet = F.cabinet(rng, s, "bathroom cabinet", w=rng.uniform(0.5, 0.8))
        room.against_wall([_m(cabinet)], wall=placed[0], u=placed[1], z=rng.uniform(1.3, 1.45))
    else:
        room.against_wall([_m(F.sink(rng, s, pedestal=True))], required=True)
    if rng.random() < 0.5:
        room.against_wall([_m(F.other_furniture(rng, s, "trash can"))])
    _pictures(room, int(rng.random() < 0.3), required=False)


def _living_room(room: Layout, rng, s):
    room.opening("door", required=True)
    room.opening("window", required=True, curtains=True)
    if rng.random() < 0.5:
        room.opening("window", curtains=rng.random() < 0.5)
    couch = F.couch(rng, s)
    lo, hi = _extent([_m(couch)])
    members = [_m(couch)]
    if rng.random() < 0.5:
        members += [_on_top(couch, F.small_object(rng, s, "pillow"), x, lo[1] + 0.4, s, rng.normal(0, 0.2))
                    for x in (lo[0] + 0.5, hi[0] - 0.5)]
    if rng.random() < 0.85:
        table = F.table(rng, s, "coffee table")
        tlo, thi = _extent([_m(table)])
        members.append(_m(table, y=hi[1] + rng.uniform(0.3, 0.5) - tlo[1]))
    room.against_wall(members, required=True)
    for i in range(int(rng.integers(1, 3))):
        room.in_room([_m(F.chair(rng, s, "armchair"))], required=i == 0)
    room.against_wall([_m(F.bookshelf(rng, s))], required=True)
    room.in_room([_m(F.other_furniture(rng, s, "ottoman"))], required=True)
    if rng.random() < 0.5:
        table = F.table(rng, s, "end table")
        room.against_wall([_m(table), _on_top(table, F.small_object(rng, s, "lamp"), 0.0, 0.0, s)])
    if rng.random() < 0.5:
        room.against_wall([_m(F.cabinet(rng, s, "cabinet", h=rng.uniform(0.45, 0.6)))])
    _pictures(room, int(rng.integers(1, 4)), required=True)
    _clutter(room, int(rng.integers(0, 3)))


def _kitchen(room: Layout, rng, s):
    room.opening("door", required=True)
    room.opening("window", required=True, curtains=rng.random() < 0.3)
    top = F.counter(rng, s, rng.choice(["counter", "kitchen counter"]), w=rng.uniform(1.4, 2.6))
    lo, hi = _extent([_m(top)])
    fridge = F.refrigerator(rng, s)
    flo, fhi = _extent([_m(fridge)])
    x = hi[0] + 0.01 - flo[0] if rng.random() < 0.5 else lo[0] - 0.01 - fhi[0]
    sink_x = rng.uniform(lo[0] + 0.4, hi[0] - 0.4)
    members = [_m(top), _on_top(top, F.sink(rng, s), sink_x, 0.0, s), _m(fridge, x=x, y=lo[1] - flo[1])]
    wall, u = room.against_wall(members, required=True)
    count = int(rng.integers(1, 4))
    w = (hi[0] - lo[0]) / count
    uppers = [_m(F.cabinet(rng, s, "kitchen cabinet", w=w - 0.01), x=(i - (count - 1) / 2) * w)
              for i in range(count)]
    room.against_wall(uppers, wall=wall, u=u, z=rng.uniform(1.4, 1.5))
    room.in_room(_table_with_chairs(rng, s, rng.choice(["table", "dining table"])), required=True)
    room.against_wall([_m(F.other_furniture(rng, s, "trash can"))], required=True)
    _pictures(room, int(rng.random() < 0.5), required=False)
    _clutter(room, int(rng.integers(0, 3)))


FURNISH = {"bedroom": _bedroom, "office": _office, "bathroom": _bathroom,
           "living room": _living_room, "kitchen": _kitchen}


def furnish_room(rng, room_type: str, spacing: float) -> Layout:
    """Draw a room of ``room_type`` (size, openings, furniture) from ``rng``; furniture at
    vertex ``spacing``. Returns the layout: its ``placed`` items and wall ``holes``."""
    room = Layout(rng, room_type, spacing)
    FURNISH[room_type](room, rng, spacing)
    return room
