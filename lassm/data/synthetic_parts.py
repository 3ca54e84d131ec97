"""Geometry of the synthetic rooms: mesh parts, then the furniture built from them.

Parts are triangulated grids at a target vertex spacing (boxes, elliptic cylinders, wavy
sheets, wall panels with rectangular holes), each welded into one connected surface with
outward-facing triangles (the Segmentator's vertex normals average face normals, so the
winding must be consistent). Furniture builders return an :class:`Item` in a local frame:
width along x, depth along y with the front facing +y, z up from the floor, origin at the
centre of the footprint. Every part of an item stays a separate mesh component from the
items around it, so no superpoint can span two objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EX, EY, EZ = np.eye(3)


@dataclass
class Part:
    """A triangle mesh piece with float colours."""

    vertices: np.ndarray  # (n, 3) float64 metres
    faces: np.ndarray  # (m, 3) int64, counter-clockwise seen from outside
    colors: np.ndarray  # (n, 3) float64 RGB in [0, 1]


@dataclass
class Item:
    """One object: ``label`` is its raw ScanNet category, None for unannotated clutter."""

    label: str | None
    part: Part

    def __post_init__(self):
        self.label = None if self.label is None else str(self.label)  # rng.choice gives np.str_


# ----------------------------------------------------------------------------- primitives


def merge(parts: list[Part]) -> Part:
    """Concatenate parts into one mesh (components stay unwelded)."""
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    return Part(
        np.concatenate([p.vertices for p in parts]),
        np.concatenate([p.faces + o for p, o in zip(parts, offsets, strict=True)]),
        np.concatenate([p.colors for p in parts]),
    )


def moved(part: Part, yaw: float = 0.0, offset=(0.0, 0.0, 0.0)) -> Part:
    """Rotate by ``yaw`` about z, then translate. Yaw maps local +y to (-sin, cos)."""
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return Part(part.vertices @ rot.T + np.asarray(offset, float), part.faces, part.colors)


def weld(part: Part, tol: float = 1e-6) -> Part:
    """Merge vertices closer than ``tol`` and drop faces that collapse (cone tips, seams)."""
    keys = np.round(part.vertices / tol).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    faces = inverse.reshape(-1)[part.faces]
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return Part(part.vertices[first], faces[ok], part.colors[first])


def sheet(points: np.ndarray, keep: np.ndarray | None = None) -> Part:
    """Triangulate a grid of points (na, nb, 3); faces point along d/da x d/db.

    ``keep`` (na-1, nb-1) bool drops grid cells (holes); unused vertices are removed.
    """
    na, nb = points.shape[:2]
    idx = np.arange(na * nb).reshape(na, nb)
    v00, v10, v01, v11 = idx[:-1, :-1], idx[1:, :-1], idx[:-1, 1:], idx[1:, 1:]
    tri1 = np.stack([v00, v10, v11], axis=-1)  # (na-1, nb-1, 3)
    tri2 = np.stack([v00, v11, v01], axis=-1)
    if keep is None:
        keep = np.ones((na - 1, nb - 1), bool)
    faces = np.concatenate([tri1[keep], tri2[keep]])
    vertices = points.reshape(-1, 3)
    used = np.zeros(len(vertices), bool)
    used[faces] = True
    remap = np.cumsum(used) - 1
    return Part(vertices[used], remap[faces], np.zeros((used.sum(), 3)))


def steps(length: float, spacing: float, cuts=()) -> np.ndarray:
    """Coordinates 0..length no further apart than ``spacing``, with breaks at ``cuts``."""
    knots = np.unique(np.clip(np.concatenate([[0.0, length], np.asarray(cuts, float)]), 0, length))
    out = [np.zeros(1)]
    for a, b in zip(knots[:-1], knots[1:], strict=True):
        n = max(1, int(np.ceil((b - a) / spacing - 1e-9)))
        out.append(np.linspace(a, b, n + 1)[1:])
    return np.concatenate(out)


def plane(origin, a_dir, a_len, b_dir, b_len, spacing) -> Part:
    a, b = steps(a_len, spacing), steps(b_len, spacing)
    pts = np.asarray(origin, float) + a[:, None, None] * a_dir + b[None, :, None] * b_dir
    return sheet(pts)


def box(lo, hi, spacing, skip=()) -> Part:
    """Axis-aligned closed box between corners ``lo`` and ``hi`` (sides in ``skip`` left out)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    sx, sy, sz = hi - lo
    sides = {  # name: (origin, a_dir, a_len, b_dir, b_len) with a x b pointing outward
        "bottom": (lo, EY, sy, EX, sx),
        "top": ((lo[0], lo[1], hi[2]), EX, sx, EY, sy),
        "back": (lo, EX, sx, EZ, sz),
        "front": ((lo[0], hi[1], lo[2]), EZ, sz, EX, sx),
        "left": (lo, EZ, sz, EY, sy),
        "right": ((hi[0], lo[1], lo[2]), EY, sy, EZ, sz),
    }
    return weld(merge([plane(*args, spacing) for name, args in sides.items() if name not in skip]))


def cylinder(center, z0, z1, radius, spacing, top_scale=1.0, caps=("bottom", "top")) -> Part:
    """Vertical (elliptic, optionally tapered) cylinder; ``radius`` is r or (rx, ry)."""
    rx, ry = np.broadcast_to(np.asarray(radius, float), (2,))
    cx, cy = center
    n = max(8, int(np.ceil(2 * np.pi * max(rx, ry) / spacing)))
    theta = np.linspace(0.0, 2 * np.pi, n + 1)  # (n+1,) seam welded below
    z = z0 + steps(z1 - z0, spacing)
    scale = np.interp(z, [z0, z1], [1.0, top_scale])
    side = np.stack([cx + rx * np.cos(theta)[:, None] * scale, cy + ry * np.sin(theta)[:, None] * scale,
                     np.broadcast_to(z, (n + 1, len(z)))], axis=-1)  # (n+1, nz, 3)
    parts = [sheet(side)]
    r = steps(1.0, spacing / max(rx, ry))  # radial fractions 0..1
    for cap, zc, sc in (("bottom", z0, 1.0), ("top", z1, top_scale)):
        if cap in caps:
            ring = sc * r[:, None]  # (nr, 1) radial fractions
            disc = np.stack([cx + rx * ring * np.cos(theta), cy + ry * ring * np.sin(theta),
                             np.full((len(r), n + 1), zc)], axis=-1)  # (nr, n+1, 3) radial x angle
            parts.append(sheet(disc if cap == "top" else disc.transpose(1, 0, 2)))
    return weld(merge(parts))


def wall_sheet(length, height, holes, spacing) -> Part:
    """Wall in the local x-z plane facing +y, with rectangular ``holes`` (u0, u1, z0, z1)."""
    holes = np.asarray(holes, float).reshape(-1, 4)
    z = steps(height, spacing, holes[:, 2:].ravel())
    u = steps(length, spacing, holes[:, :2].ravel())
    zc, uc = (z[:-1] + z[1:])[:, None] / 2, (u[:-1] + u[1:])[None, :] / 2  # cell centres
    keep = np.ones((len(z) - 1, len(u) - 1), bool)
    for u0, u1, z0, z1 in holes:
        keep &= ~((uc > u0) & (uc < u1) & (zc > z0) & (zc < z1))
    pts = z[:, None, None] * EZ + u[None, :, None] * EX  # (nz, nu, 3): z x x = +y
    return sheet(pts, keep)


def wavy_sheet(width, height, spacing, amplitude, wavelength, phase=0.0) -> Part:
    """Curtain-like sheet in the x-z plane facing +y, pleated along x; x from -w/2, z from 0."""
    z, x = steps(height, spacing), steps(width, spacing) - width / 2
    y = amplitude * np.sin(2 * np.pi * x / wavelength + phase)
    pts = np.stack(np.broadcast_arrays(x[None, :], y[None, :], z[:, None]), axis=-1)  # (nz, nx, 3)
    return sheet(pts)


# ----------------------------------------------------------------------------- colours

WOOD = ((0.55, 0.38, 0.22), (0.72, 0.55, 0.36), (0.40, 0.26, 0.16), (0.80, 0.68, 0.50))
FABRIC = ((0.35, 0.40, 0.55), (0.55, 0.22, 0.20), (0.30, 0.45, 0.30), (0.70, 0.65, 0.55),
          (0.25, 0.25, 0.28), (0.60, 0.50, 0.65), (0.80, 0.60, 0.30))
PAINT = ((0.92, 0.92, 0.90), (0.85, 0.84, 0.80), (0.95, 0.92, 0.85), (0.78, 0.85, 0.88))
METAL = ((0.72, 0.72, 0.74), (0.30, 0.30, 0.32), (0.88, 0.88, 0.90))
DARK = ((0.12, 0.12, 0.13), (0.20, 0.18, 0.17))


def pick(rng, palette) -> np.ndarray:
    return np.asarray(palette[rng.integers(len(palette))]) * rng.uniform(0.9, 1.1)


def paint(part: Part, rgb, rng, pattern: str = "plain", noise: float = 0.025) -> Part:
    """Colour a part in place: base colour, a texture ``pattern``, per-vertex noise."""
    v, base = part.vertices, np.asarray(rgb, float)
    colors = np.broadcast_to(base, v.shape).copy()
    phase = rng.uniform(0, 2 * np.pi, 3)
    if pattern == "wood":  # wavy grain bands along the longer horizontal axis
        ax = int(np.ptp(v[:, 1]) > np.ptp(v[:, 0]))
        t = v[:, ax] + 0.3 * np.sin(7 * v[:, 1 - ax] + 5 * v[:, 2] + phase[0])
        colors *= (1 + 0.09 * np.sin(2 * np.pi * t / 0.12 + phase[1]))[:, None]
    elif pattern == "fabric":  # soft blotches plus a stronger weave noise below
        colors *= (1 + 0.06 * np.sin(9 * v[:, 0] + phase[0]) * np.sin(8 * v[:, 1] + 6 * v[:, 2]))[:, None]
        noise *= 1.6
    elif pattern == "stripes":  # two-tone stripes along x
        colors[np.sin(2 * np.pi * v[:, 0] / rng.uniform(0.15, 0.4) + phase[0]) > 0] *= 0.75
    elif pattern == "tiles":  # grout lines on a square grid over the part's two longest axes
        axes = np.argsort(np.ptp(v, axis=0))[1:]
        tile = rng.uniform(0.15, 0.6)
        frac = np.abs((v[:, axes] / tile + 0.5) % 1.0 - 0.5)
        colors[(frac < 0.04).any(axis=1)] = 0.55 * base + 0.2
    elif pattern == "planks":  # floor boards: one shade per board
        board = np.floor(v[:, 0] / rng.uniform(0.12, 0.22))
        colors *= (1 + 0.12 * np.sin(board * 12.9898 + phase[0]))[:, None]
    elif pattern == "image":  # smooth random colour field, like a photo or painting
        k = rng.uniform(2, 12, (3, 3))
        colors = 0.5 + 0.4 * np.sin(v[:, [0, 2, 1]] @ k + phase)
    part.colors = colors + rng.normal(0.0, noise, v.shape)
    return part


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
