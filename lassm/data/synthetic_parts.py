"""Geometry of the synthetic rooms: mesh parts and their colours.

Parts are triangulated grids at a target vertex spacing (boxes, elliptic cylinders, wavy
sheets, wall panels with rectangular holes), each welded into one connected surface with
outward-facing triangles (the Segmentator's vertex normals average face normals, so the
winding must be consistent). :func:`paint` colours a part with a texture pattern; the
palettes are the materials furniture and walls are drawn from. The furniture built from
these parts is in :mod:`.synthetic_furniture`.
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
