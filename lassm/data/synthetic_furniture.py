"""Furniture of the synthetic rooms, built from the parts of :mod:`.synthetic_parts`.

Each builder draws its sizes, materials and details from ``rng`` and returns an
:class:`Item` in a local frame: width along x, depth along y with the front facing +y, z up
from the floor, origin at the centre of the footprint. Every part of an item stays a
separate mesh component from the items around it, so no superpoint can span two objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .synthetic_parts import (
    DARK,
    EX,
    EZ,
    FABRIC,
    METAL,
    PAINT,
    WOOD,
    Part,
    box,
    cylinder,
    merge,
    moved,
    paint,
    pick,
    plane,
    wavy_sheet,
)


@dataclass
class Item:
    """One object: ``label`` is its raw ScanNet category, None for unannotated clutter."""

    label: str | None
    part: Part

    def __post_init__(self):
        self.label = None if self.label is None else str(self.label)  # rng.choice gives np.str_


# ----------------------------------------------------------------------------- furniture


def _legs(w, d, h, t, inset, s) -> list[Part]:
    """Four square legs of side ``t`` under a w x d top, from the floor to height h."""
    xs, ys = (-w / 2 + inset, w / 2 - inset - t), (-d / 2 + inset, d / 2 - inset - t)
    return [box((x, y, 0), (x + t, y + t, h), s) for x in xs for y in ys]


def _frame(w, d, t, z0, z1, s) -> list[Part]:
    """Four boards of thickness ``t`` around a w x d rectangle (a basin rim, a tub's sides)."""
    return [box((-w / 2, -d / 2, z0), (w / 2, -d / 2 + t, z1), s),
            box((-w / 2, d / 2 - t, z0), (w / 2, d / 2, z1), s),
            box((-w / 2, -d / 2 + t, z0), (-w / 2 + t, d / 2 - t, z1), s),
            box((w / 2 - t, -d / 2 + t, z0), (w / 2, d / 2 - t, z1), s)]


def chair(rng, s, label="chair") -> Item:
    w, d, sh = rng.uniform(0.42, 0.52), rng.uniform(0.42, 0.5), rng.uniform(0.43, 0.48)
    frame, cover = pick(rng, WOOD if label == "chair" else DARK), pick(rng, FABRIC)
    if label == "office chair":
        legs = [moved(box((0, -0.02, 0.03), (0.3, 0.02, 0.07), s), yaw=a)
                for a in np.arange(5) * 2 * np.pi / 5 + rng.uniform(0, 1)]
        frame_parts = legs + [cylinder((0, 0), 0.07, sh - 0.06, 0.03, s),
                              box((-0.03, -d / 2, sh), (0.03, -d / 2 + 0.03, sh + 0.15), s)]
        cushions = [box((-w / 2, -d / 2, sh - 0.06), (w / 2, d / 2, sh + 0.02), s),
                    box((-w / 2, -d / 2 - 0.02, sh + 0.12),
                        (w / 2, -d / 2 + 0.05, sh + rng.uniform(0.45, 0.6)), s)]
    elif label == "armchair":
        w, d = w + 0.3, d + 0.25
        frame_parts = _legs(w, d, 0.12, 0.04, 0.03, s)
        cushions = [box((-w / 2, -d / 2, 0.12), (w / 2, d / 2, sh), s),
                    box((-w / 2, -d / 2, sh), (w / 2, -d / 2 + 0.18, sh + 0.45), s),
                    box((-w / 2, -d / 2 + 0.18, sh), (-w / 2 + 0.14, d / 2, sh + 0.2), s),
                    box((w / 2 - 0.14, -d / 2 + 0.18, sh), (w / 2, d / 2, sh + 0.2), s)]
    else:
        frame_parts = _legs(w, d, sh - 0.04, 0.035, 0.01, s) + [
            box((-w / 2, -d / 2, sh), (w / 2, -d / 2 + 0.035, sh + rng.uniform(0.38, 0.5)), s)]
        cushions = [box((-w / 2, -d / 2, sh - 0.04), (w / 2, d / 2, sh), s)]
    parts = [paint(p, frame, rng, "wood") for p in frame_parts]
    parts += [paint(p, cover, rng, "fabric") for p in cushions]
    return Item(label, merge(parts))


def table(rng, s, label="table", w=None, d=None) -> Item:
    h = {"coffee table": 0.42, "end table": 0.55}.get(label, 0.74) + rng.uniform(-0.03, 0.03)
    w = w or rng.uniform(*{"coffee table": (0.8, 1.2), "end table": (0.4, 0.55)}.get(label, (1.1, 1.8)))
    d = d or rng.uniform(*{"coffee table": (0.45, 0.65), "end table": (0.4, 0.55)}.get(label, (0.7, 1.0)))
    wood, t = pick(rng, WOOD), rng.uniform(0.025, 0.045)
    if label == "table" and rng.random() < 0.3:  # round pedestal table
        parts = [cylinder((0, 0), h - t, h, (w / 2, d / 2), s), cylinder((0, 0), 0.02, h - t, 0.05, s),
                 cylinder((0, 0), 0.0, 0.02, 0.25, s)]
    else:
        parts = [box((-w / 2, -d / 2, h - t), (w / 2, d / 2, h), s)] + _legs(w, d, h - t, 0.05, 0.04, s)
    return Item(label, merge([paint(p, wood, rng, "wood") for p in parts]))


def desk(rng, s) -> Item:
    w, d, h = rng.uniform(1.1, 1.6), rng.uniform(0.6, 0.8), rng.uniform(0.72, 0.76)
    color = pick(rng, WOOD + PAINT)
    dw = rng.uniform(0.35, 0.45)  # drawer block on the right
    parts = [box((-w / 2, -d / 2, h - 0.03), (w / 2, d / 2, h), s),
             box((-w / 2, -d / 2, 0), (-w / 2 + 0.03, d / 2, h - 0.03), s),
             box((w / 2 - dw, -d / 2, 0), (w / 2, d / 2, h - 0.03), s)]
    parts += [box((w / 2 - dw + 0.02, d / 2, z), (w / 2 - 0.02, d / 2 + 0.015, z + 0.2), s)
              for z in (0.05, 0.28, 0.5)]  # drawer fronts
    return Item("desk", merge([paint(p, color, rng, "wood") for p in parts]))


def bed(rng, s) -> Item:
    w, length = rng.choice([0.95, 1.4, 1.6, 1.8]) + rng.uniform(-0.05, 0.05), rng.uniform(1.95, 2.15)
    fh, mh = rng.uniform(0.2, 0.35), rng.uniform(0.18, 0.26)
    wood = pick(rng, WOOD)
    frame = [box((-w / 2, -length / 2, 0), (w / 2, length / 2, fh), s),
             box((-w / 2, -length / 2 - 0.05, 0), (w / 2, -length / 2, fh + mh + rng.uniform(0.4, 0.7)), s)]
    sheets = box((-w / 2 + 0.02, -length / 2, fh), (w / 2 - 0.02, length / 2 - 0.02, fh + mh), s)
    parts = [paint(p, wood, rng, "wood") for p in frame]
    parts.append(paint(sheets, pick(rng, FABRIC + PAINT), rng, rng.choice(["fabric", "stripes"])))
    return Item("bed", merge(parts))


def couch(rng, s) -> Item:
    w, d, sh = rng.uniform(1.6, 2.4), rng.uniform(0.85, 1.0), rng.uniform(0.4, 0.46)
    arm, back = rng.uniform(0.15, 0.25), rng.uniform(0.18, 0.25)
    parts = [box((-w / 2, -d / 2, 0.08), (w / 2, d / 2, sh - 0.12), s),
             box((-w / 2, -d / 2, sh - 0.12), (w / 2, -d / 2 + back, sh + rng.uniform(0.35, 0.45)), s),
             box((-w / 2, -d / 2 + back, sh - 0.12), (-w / 2 + arm, d / 2, sh + 0.2), s),
             box((w / 2 - arm, -d / 2 + back, sh - 0.12), (w / 2, d / 2, sh + 0.2), s)]
    n = int(rng.integers(2, 4))
    xs = np.linspace(-w / 2 + arm, w / 2 - arm, n + 1)
    parts += [box((a + 0.005, -d / 2 + back, sh - 0.12), (b - 0.005, d / 2, sh), s)
              for a, b in zip(xs[:-1], xs[1:], strict=True)]
    color = pick(rng, FABRIC)
    parts = [paint(p, color, rng, "fabric") for p in parts] + [
        paint(p, pick(rng, DARK), rng) for p in _legs(w, d, 0.08, 0.04, 0.05, s)]
    return Item("couch", merge(parts))


def cabinet(rng, s, label="cabinet", w=None, h=None, d=None) -> Item:
    w = w or rng.uniform(0.4, 1.2)
    d = d or {"kitchen cabinet": 0.35, "bathroom cabinet": 0.18}.get(label, rng.uniform(0.4, 0.6))
    h = h or {"kitchen cabinet": 0.7, "bathroom cabinet": 0.6, "file cabinet": 1.3,
              "nightstand": 0.55}.get(label, rng.uniform(0.7, 2.0))
    color, handle = pick(rng, WOOD + PAINT), pick(rng, METAL)
    parts = [paint(box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), s), color, rng, "wood")]
    rows = max(1, round(h / 0.35)) if label in ("file cabinet", "nightstand") else 1
    cols = 1 if rows > 1 else max(1, round(w / 0.5))
    for i in range(cols):
        for j in range(rows):
            x0, x1 = -w / 2 + w * i / cols + 0.01, -w / 2 + w * (i + 1) / cols - 0.01
            z0, z1 = h * j / rows + 0.01, h * (j + 1) / rows - 0.01
            parts.append(paint(box((x0, d / 2, z0), (x1, d / 2 + 0.015, z1), s), color * 0.95, rng, "wood"))
            if rows > 1:  # drawer pull at the top, door handle on the opening side
                hx, hz = (x0 + x1) / 2, z1 - 0.06
            else:
                hx, hz = (x1 - 0.05 if i % 2 == 0 else x0 + 0.05), (z0 + z1) / 2
            pull = box((hx - 0.04, d / 2 + 0.015, hz - 0.01), (hx + 0.04, d / 2 + 0.035, hz + 0.01), s)
            parts.append(paint(pull, handle, rng))
    return Item(label, merge(parts))


def bookshelf(rng, s) -> Item:
    w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.28, 0.38), rng.uniform(1.2, 2.1)
    color, t = pick(rng, WOOD + PAINT), 0.02
    shelves = np.linspace(0.05, h - t, int(rng.integers(3, 6)) + 1)
    parts = [box((-w / 2, -d / 2, 0), (-w / 2 + t, d / 2, h), s),
             box((w / 2 - t, -d / 2, 0), (w / 2, d / 2, h), s),
             box((-w / 2 + t, -d / 2, 0), (w / 2 - t, -d / 2 + 0.01, h), s)]
    parts += [box((-w / 2 + t, -d / 2 + 0.01, z), (w / 2 - t, d / 2, z + t), s) for z in shelves]
    parts = [paint(p, color, rng, "wood") for p in parts]
    for z, top in zip(shelves[:-1] + t, shelves[1:], strict=True):  # a row of books on most shelves
        x = -w / 2 + t + rng.uniform(0, 0.2)
        while rng.random() < 0.93 and x < w / 2 - t - 0.05:
            bw, bh = rng.uniform(0.02, 0.05), rng.uniform(0.6, 0.9) * (top - z)
            y0 = -d / 2 + 0.02
            book = box((x, y0, z), (x + bw, y0 + rng.uniform(0.15, d - 0.05), z + bh), s)
            parts.append(paint(book, rng.uniform(0.1, 0.9, 3), rng))
            x += bw + 0.002
    return Item("bookshelf", merge(parts))


def counter(rng, s, label="counter", w=None) -> Item:
    w, d, h = w or rng.uniform(1.2, 2.6), rng.uniform(0.55, 0.65), rng.uniform(0.85, 0.92)
    body = cabinet(rng, s, "cabinet", w=w - 0.02, h=h - 0.04, d=d - 0.03).part
    top = box((-w / 2, -d / 2, h - 0.04), (w / 2, d / 2 + 0.02, h), s)
    top = paint(top, pick(rng, PAINT + DARK), rng, "fabric")
    return Item(label, merge([moved(body, offset=(0, -0.015, 0)), top]))


def refrigerator(rng, s, label="refrigerator") -> Item:
    w, d = rng.uniform(0.55, 0.85), rng.uniform(0.6, 0.75)
    h = rng.uniform(0.8, 0.9) if label == "mini fridge" else rng.uniform(1.6, 1.9)
    color = pick(rng, METAL + PAINT)
    split = h * rng.uniform(0.3, 0.4) if h > 1 else h - 0.02
    parts = [box((-w / 2, -d / 2, 0), (w / 2, d / 2 - 0.05, h), s),
             box((-w / 2, d / 2 - 0.05, 0.02), (w / 2, d / 2, split - 0.01), s)]
    if h > 1:
        parts.append(box((-w / 2, d / 2 - 0.05, split + 0.01), (w / 2, d / 2, h), s))
    parts = [paint(p, color, rng) for p in parts]
    handles = [(0.1, split - 0.1), (split + 0.1, min(h - 0.1, split + 0.7))] if h > 1 else [(0.3, h - 0.2)]
    for z0, z1 in handles:
        handle = box((w / 2 - 0.08, d / 2, z0), (w / 2 - 0.05, d / 2 + 0.04, z1), s)
        parts.append(paint(handle, pick(rng, METAL), rng))
    return Item(label, merge(parts))


def toilet(rng, s) -> Item:
    white = pick(rng, PAINT)
    bowl_r = (rng.uniform(0.17, 0.2), rng.uniform(0.22, 0.26))
    y = -0.35 + 0.18 + bowl_r[1]  # bowl centre, in front of the tank
    parts = [cylinder((0, y), 0.0, 0.38, bowl_r, s, top_scale=1.1, caps=("top",)),
             cylinder((0, y), 0.38, 0.41, (bowl_r[0] * 1.15, bowl_r[1] * 1.15), s),
             box((-0.2, -0.35, 0.4), (0.2, -0.17, rng.uniform(0.72, 0.8)), s),
             box((-0.07, -0.3, 0.0), (0.07, y, 0.38), s)]
    return Item("toilet", merge([paint(p, white, rng) for p in parts]))


def sink(rng, s, pedestal=False) -> Item:
    """A basin (open box facing inwards, rim around it) with a tap; on a pedestal if asked."""
    w, d, depth = rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.45), rng.uniform(0.12, 0.18)
    z = 0.7 if pedestal else 0.0
    inner = box((-w / 2 + 0.04, -d / 2 + 0.04, z - depth + 0.15), (w / 2 - 0.04, d / 2 - 0.04, z + 0.15), s,
                skip=("top",))
    inner.faces = inner.faces[:, ::-1]  # the basin is seen from inside
    rim = _frame(w, d, 0.04, z, z + 0.15, s)
    white = pick(rng, PAINT + METAL)
    parts = [paint(p, white, rng) for p in [inner] + rim]
    parts.append(paint(cylinder((0, -d / 2 + 0.02), z + 0.15, z + 0.3, 0.015, s), pick(rng, METAL), rng))
    if pedestal:
        parts.append(paint(cylinder((0, 0), 0.0, z, (0.1, 0.08), s, caps=()), white, rng))
    return Item("sink", merge(parts))


def bathtub(rng, s) -> Item:
    w, d, h, t = rng.uniform(1.5, 1.75), rng.uniform(0.7, 0.8), rng.uniform(0.5, 0.6), 0.07
    white = pick(rng, PAINT)
    parts = _frame(w, d, t, 0.0, h, s) + [box((-w / 2 + t, -d / 2 + t, 0), (w / 2 - t, d / 2 - t, 0.08), s)]
    return Item("bathtub", merge([paint(p, white, rng) for p in parts]))


def curtain(rng, s, width, height, label="curtain") -> Item:
    """A pleated hanging sheet, its top edge at ``height``, facing +y."""
    part = wavy_sheet(width, height, s, rng.uniform(0.02, 0.05), rng.uniform(0.12, 0.25), rng.uniform(0, 6.3))
    return Item(label, paint(part, pick(rng, FABRIC + PAINT), rng, rng.choice(["fabric", "stripes"])))


def door(rng, s, w, h, opening) -> Item:
    """Door leaf hinged at x = -w/2 in a wall hole; local y = 0 is the wall plane."""
    leaf = box((0.005, -0.02, 0.005), (w - 0.01, 0.02, h - 0.01), s)
    knob = cylinder((w - 0.09, 0.035), 1.0, 1.02, 0.03, s)
    hinge = merge([paint(leaf, pick(rng, WOOD + PAINT), rng, "wood"), paint(knob, pick(rng, METAL), rng)])
    trim = pick(rng, PAINT)
    casing = [box((-w / 2 - 0.07, 0, 0), (-w / 2, 0.015, h + 0.07), s),
              box((w / 2, 0, 0), (w / 2 + 0.07, 0.015, h + 0.07), s),
              box((-w / 2, 0, h), (w / 2, 0.015, h + 0.07), s)]
    casing = [paint(p, trim, rng) for p in casing]
    return Item("door", merge([moved(hinge, yaw=opening, offset=(-w / 2, 0, 0))] + casing))


def window(rng, s, w, h) -> Item:
    """Frame, mullion and sill in a wall hole from z = 0 to h; local y = 0 is the wall plane."""
    f = 0.05
    parts = [box((-w / 2, -0.06, 0), (-w / 2 + f, 0.02, h), s),
             box((w / 2 - f, -0.06, 0), (w / 2, 0.02, h), s),
             box((-w / 2 + f, -0.06, h - f), (w / 2 - f, 0.02, h), s),
             box((-w / 2 + f, -0.06, 0), (w / 2 - f, 0.02, f), s),
             box((-0.02, -0.06, f), (0.02, -0.02, h - f), s)]  # mullion
    parts = [paint(p, pick(rng, PAINT + WOOD), rng) for p in parts]
    parts.append(paint(box((-w / 2 - 0.05, 0.0, -0.03), (w / 2 + 0.05, 0.12, 0.0), s), pick(rng, PAINT), rng))
    if rng.random() < 0.4:  # glass is often only partly captured by the scanner
        glass = plane((-w / 2 + f, -0.04, f), EZ, h - 2 * f, EX, w - 2 * f, s)
        parts.append(paint(glass, (0.55, 0.6, 0.65), rng, noise=0.08))
    return Item("window", merge(parts))


def picture(rng, s) -> Item:
    w, h = rng.uniform(0.3, 1.1), rng.uniform(0.3, 0.8)
    frame = box((-w / 2, -0.015, -h / 2), (w / 2, 0.015, h / 2), s)
    canvas = plane((-w / 2 + 0.03, 0.016, -h / 2 + 0.03), EZ, h - 0.06, EX, w - 0.06, s)
    parts = [paint(frame, pick(rng, WOOD + DARK), rng), paint(canvas, (0.5, 0.5, 0.5), rng, "image")]
    return Item(rng.choice(["picture", "poster"]), merge(parts))


def other_furniture(rng, s, label=None) -> Item:
    label = label or rng.choice(["trash can", "ottoman", "bench"])
    color = pick(rng, FABRIC + METAL + DARK)
    if label == "trash can":
        r = rng.uniform(0.12, 0.2)
        parts = [cylinder((0, 0), 0, rng.uniform(0.3, 0.6), r, s, top_scale=1.1, caps=("bottom",))]
    elif label == "ottoman":
        w = rng.uniform(0.4, 0.7)
        parts = [box((-w / 2, -w / 2, 0), (w / 2, w / 2, rng.uniform(0.38, 0.45)), s)]
    else:
        w, d = rng.uniform(0.9, 1.5), rng.uniform(0.3, 0.4)
        parts = [box((-w / 2, -d / 2, 0.4), (w / 2, d / 2, 0.45), s)] + _legs(w, d, 0.4, 0.04, 0.03, s)
    return Item(label, merge([paint(p, color, rng, "fabric") for p in parts]))


def small_object(rng, s, label=None) -> Item:
    """Props: pillows, monitors, lamps, boxes (ScanNet200-only classes), or unlabelled clutter."""
    color = pick(rng, FABRIC + PAINT + DARK)
    if label == "pillow":
        part = box((-0.3, -0.2, 0), (0.3, 0.2, 0.12), s)
    elif label == "monitor":
        part = merge([box((-0.28, -0.02, 0.12), (0.28, 0.02, 0.45), s),  # screen, neck, foot
                      box((-0.02, -0.06, 0), (0.02, -0.02, 0.15), s),
                      box((-0.1, -0.12, 0), (0.1, 0.0, 0.015), s)])
        color = pick(rng, DARK)
    elif label == "lamp":
        shade = cylinder((0, 0), 0.3, 0.5, 0.15, s, top_scale=0.6, caps=())
        part = merge([cylinder((0, 0), 0, 0.35, 0.012, s), shade])
    else:
        w, d, h = rng.uniform(0.1, 0.5, 3)
        part = box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), s) if rng.random() < 0.7 else \
            cylinder((0, 0), 0, h, min(w, d) / 2, s)
    return Item(label, paint(part, color, rng, "fabric"))
