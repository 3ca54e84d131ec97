"""Tabletop objects as unions of convex solids, with analytic ray intersection.

Every solid is a convex body (box, elliptic cylinder, cone frustum or ellipsoid) cut to a slab
``z0 <= z <= z1`` of its own frame, minus an optional convex *cavity* (the open inside of a
cup or bowl). A ray meets a convex set in one interval, so the first hit of ``body - cavity``
is the body's entry unless that lies inside the cavity, then the cavity's exit (the inner
wall). An object is a list of solids sharing one label; a union needs no extra work because
the renderer (:mod:`.depth_camera`) keeps the nearest hit per pixel.

The shape families of :data:`FAMILIES` build objects in an object frame with z up, the
bottom at z = 0 and the footprint centred on the origin; sizes are in metres (3-35 cm).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

KINDS = ("box", "cylinder", "frustum", "ellipsoid")
EPS = 1e-9


@dataclass
class Solid:
    """A convex body cut to ``z0 <= z <= z1`` of its frame, minus an optional cavity.

    ``radii`` by kind: box (half x, half y, -), cylinder (rx, ry, -), frustum (radius at z0,
    radius at z1, -), ellipsoid (a, b, c) centred on the origin.
    """

    kind: str  # one of KINDS
    radii: tuple[float, float, float]
    z0: float  # slab of the solid's own frame that is kept
    z1: float
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))  # (3, 3) own -> parent frame
    centre: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,) own origin in parent
    cavity: Solid | None = None  # subtracted solid, expressed in the same parent frame
    part: int = 0  # part index within the object (a mug's handle is part 1)

    def local_half_extents(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned box (centre, half extents) of the solid in its own frame."""
        a, b, c = self.radii
        lo, hi = self.z0, self.z1
        if self.kind == "frustum":
            a = b = max(a, b)
        if self.kind == "ellipsoid":
            lo, hi = max(lo, -c), min(hi, c)
        return np.array([0.0, 0.0, (lo + hi) / 2]), np.array([a, b, (hi - lo) / 2])


def posed(solid: Solid, rotation: np.ndarray, offset) -> Solid:
    """The solid moved by ``p -> rotation @ p + offset`` (its cavity too)."""
    offset = np.asarray(offset, float)
    cavity = None if solid.cavity is None else posed(solid.cavity, rotation, offset)
    return replace(solid, rotation=rotation @ solid.rotation,
                   centre=rotation @ solid.centre + offset, cavity=cavity)


def rotate(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``points @ matrix.T`` for (..., 3) points, without BLAS.

    OpenBLAS multithreads an (N, 3) x (3, 3) product and, on a busy CPU or next to other
    worker processes, waits on its threads: up to 50x slower than this einsum.
    """
    return np.einsum("...j,ij->...i", points, matrix)


def rotation(axis, angle: float) -> np.ndarray:
    """Rotation matrix (3, 3) by ``angle`` radians about ``axis`` (Rodrigues)."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


# ----------------------------------------------------------------------------- support, containment


def support(solid: Solid, direction) -> float:
    """max over the solid of ``direction . p`` (parent frame): exact for every kind.

    The cavity is ignored: it opens at the top, so it never changes an extreme point that
    placement (lowest point, top height, bounding boxes) asks for.
    """
    g = solid.rotation.T @ np.asarray(direction, float)  # direction in the solid's frame
    base = float(np.asarray(direction, float) @ solid.centre)
    a, b, c = solid.radii
    rho = float(np.hypot(g[0] * a, g[1] * b))  # support of the (scaled) cross-section
    if solid.kind == "box":
        return base + abs(g[0]) * a + abs(g[1]) * b + max(g[2] * solid.z0, g[2] * solid.z1)
    if solid.kind == "cylinder":
        return base + rho + max(g[2] * solid.z0, g[2] * solid.z1)
    if solid.kind == "frustum":
        ring = float(np.hypot(g[0], g[1]))
        return base + max(g[2] * solid.z0 + a * ring, g[2] * solid.z1 + b * ring)
    # ellipsoid: the free support point if it lies in the slab, else a rim of the slab
    scaled = np.array([a, b, c]) ** 2 * g
    norm = float(np.sqrt(max(g @ scaled, EPS)))
    best = -np.inf
    if solid.z0 - 1e-12 <= scaled[2] / norm <= solid.z1 + 1e-12:
        best = norm
    for z in (solid.z0, solid.z1):
        if abs(z) <= c:
            shrink = np.sqrt(max(0.0, 1 - (z / c) ** 2))
            best = max(best, g[2] * z + shrink * rho)
    return base + best


def z_range(solids: list[Solid]) -> tuple[float, float]:
    """Lowest and highest z of a union of solids (parent frame)."""
    up = np.array([0.0, 0.0, 1.0])
    return min(-support(s, -up) for s in solids), max(support(s, up) for s in solids)


def bounds(solids: list[Solid], axes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Box (lo, hi) of a union of solids along the rows of ``axes`` (default x, y, z)."""
    axes = np.eye(3) if axes is None else axes
    lo = np.array([min(-support(s, -u) for s in solids) for u in axes])
    hi = np.array([max(support(s, u) for s in solids) for u in axes])
    return lo, hi


def oriented_box(solids: list[Solid], rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box of a union of solids along the columns of ``rotation``: centre, axes (rows), half sizes."""
    axes = rotation.T
    lo, hi = bounds(solids, axes)
    return axes.T @ ((lo + hi) / 2), axes, (hi - lo) / 2


def boxes_overlap(a, b, tol: float) -> bool:
    """Separating-axis test of two :func:`oriented_box` es; overlaps up to ``tol`` (m) pass."""
    (ca, A, ha), (cb, B, hb) = a, b
    axes = np.concatenate([A, B, np.cross(A[:, None], B[None]).reshape(9, 3)])  # 15 candidates
    length = np.linalg.norm(axes, axis=1)
    axes = axes[length > 1e-9] / length[length > 1e-9, None]  # parallel edges give no axis
    reach = np.abs(axes @ A.T) @ ha + np.abs(axes @ B.T) @ hb
    return bool(np.all(reach - np.abs(axes @ (cb - ca)) > tol))


def _inside_convex(solid: Solid, points: np.ndarray) -> np.ndarray:
    p = rotate(points - solid.centre, solid.rotation.T)  # (N, 3) in the solid's frame
    a, b, c = solid.radii
    inside = (p[:, 2] >= solid.z0) & (p[:, 2] <= solid.z1)
    if solid.kind == "box":
        return inside & (np.abs(p[:, 0]) <= a) & (np.abs(p[:, 1]) <= b)
    if solid.kind == "cylinder":
        return inside & ((p[:, 0] / a) ** 2 + (p[:, 1] / b) ** 2 <= 1)
    if solid.kind == "frustum":
        radius = a + (b - a) * (p[:, 2] - solid.z0) / (solid.z1 - solid.z0)
        return inside & (np.hypot(p[:, 0], p[:, 1]) <= radius)
    return inside & (((p / np.array([a, b, c])) ** 2).sum(axis=1) <= 1)


def contains(solid: Solid, points: np.ndarray) -> np.ndarray:
    """(N,) bool: which of the (N, 3) parent-frame points lie inside the solid."""
    inside = _inside_convex(solid, points)
    if solid.cavity is not None:
        inside &= ~_inside_convex(solid.cavity, points)
    return inside


# ----------------------------------------------------------------------------- ray intersection


def _slab(o: float, d: np.ndarray, lo: float, hi: float):
    """Interval of t with lo <= o + t d <= hi; (-inf, inf) or empty when d == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        ta, tb = (lo - o) * inv, (hi - o) * inv
    ta = np.where(np.isnan(ta), -np.inf, ta)  # o exactly on a face and d == 0: count as inside
    tb = np.where(np.isnan(tb), np.inf, tb)
    return np.minimum(ta, tb), np.maximum(ta, tb)


def _quadric(A: np.ndarray, B: np.ndarray, C: np.ndarray):
    """Interval where A t^2 + 2 B t + C <= 0 for A > 0 (empty when there is no real root)."""
    disc = B * B - A * C
    root = np.sqrt(np.maximum(disc, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t0, t1 = (-B - root) / A, (-B + root) / A
    miss = (disc < 0) | (A <= EPS)
    inside_parallel = (A <= EPS) & (C <= 0)  # ray parallel to the axis, inside the tube
    t0 = np.where(miss, np.where(inside_parallel, -np.inf, np.inf), t0)
    t1 = np.where(miss, np.where(inside_parallel, np.inf, -np.inf), t1)
    return t0, t1


def _body_interval(solid: Solid, o: np.ndarray, d: np.ndarray):
    """Ray interval (t0, t1) with the body, in the solid's frame, ignoring the slab.

    ``o`` is one origin (3,) for all rays ``d`` (N, 3) or one per ray (N, 3)."""
    a, b, c = solid.radii
    if solid.kind == "box":
        x0, x1 = _slab(o[..., 0], d[:, 0], -a, a)
        y0, y1 = _slab(o[..., 1], d[:, 1], -b, b)
        return np.maximum(x0, y0), np.minimum(x1, y1)
    if solid.kind in ("cylinder", "ellipsoid"):
        scale = np.array([a, b, c if solid.kind == "ellipsoid" else np.inf])
        os_, ds = o / scale, d / scale  # the unit circle / sphere
        if o.ndim == 1:  # one origin (the camera's)
            return _quadric((ds * ds).sum(1), np.einsum("nj,j->n", ds, os_), float(os_ @ os_) - 1)
        return _quadric((ds * ds).sum(1), (ds * os_).sum(1), (os_ * os_).sum(1) - 1)  # one per ray
    # frustum: x^2 + y^2 <= w(z)^2 with w = a + k (z - z0), on the nappe where w > 0
    k = (b - a) / (solid.z1 - solid.z0)
    w0 = a + k * (o[..., 2] - solid.z0)
    A = d[:, 0] ** 2 + d[:, 1] ** 2 - (k * d[:, 2]) ** 2
    B = o[..., 0] * d[:, 0] + o[..., 1] * d[:, 1] - k * d[:, 2] * w0
    C = o[..., 0] ** 2 + o[..., 1] ** 2 - w0 ** 2
    A = np.where(np.abs(A) < EPS, EPS, A)
    root = np.sqrt(np.maximum(B * B - A * C, 0.0))
    ra, rb = (-B - root) / A, (-B + root) / A
    r0, r1 = np.minimum(ra, rb), np.maximum(ra, rb)
    miss = B * B - A * C < 0
    # A < 0: the ray crosses both nappes and is inside outside [r0, r1]; keep the side of
    # the root whose radius is positive (the slab always lies on that nappe)
    outer_first = w0 + k * d[:, 2] * r0 > 0
    t0 = np.where(A > 0, r0, np.where(outer_first, -np.inf, r1))
    t1 = np.where(A > 0, r1, np.where(outer_first, r0, np.inf))
    return np.where(miss, np.inf, t0), np.where(miss, -np.inf, t1)


def _normal(solid: Solid, p: np.ndarray, on_cap: np.ndarray) -> np.ndarray:
    """Outward unit normals (N, 3), solid frame, at points p on the body or on a slab cap."""
    n = np.zeros(p.shape)
    n[:, 2] = np.where(p[:, 2] > (solid.z0 + solid.z1) / 2, 1.0, -1.0)  # caps: +-z
    body = np.flatnonzero(~on_cap)  # only these need the body's gradient (a table is all cap)
    if len(body) == 0:
        return n
    q = p[body]
    a, b, c = solid.radii
    if solid.kind == "box":
        side = np.abs(q[:, 0]) / a >= np.abs(q[:, 1]) / b  # on an x face rather than a y face
        g = np.zeros(q.shape)
        g[side, 0], g[~side, 1] = np.sign(q[side, 0]), np.sign(q[~side, 1])
    elif solid.kind == "cylinder":
        g = q * np.array([1 / a**2, 1 / b**2, 0.0])
    elif solid.kind == "frustum":
        k = (b - a) / (solid.z1 - solid.z0)
        g = np.column_stack([q[:, 0], q[:, 1], -k * (a + k * (q[:, 2] - solid.z0))])
    else:
        g = q / np.array([a, b, c]) ** 2
    n[body] = g / (np.linalg.norm(g, axis=1, keepdims=True) + 1e-30)
    return n


def _interval(solid: Solid, o: np.ndarray, d: np.ndarray):
    """(t_in, t_out, entry on a cap, exit on a cap) of the convex part, solid frame."""
    t0, t1 = _body_interval(solid, o, d)
    s0, s1 = _slab(o[..., 2], d[:, 2], solid.z0, solid.z1)
    return np.maximum(t0, s0), np.minimum(t1, s1), s0 > t0, s1 < t1


def _cavity_frame(solid: Solid) -> tuple[np.ndarray, np.ndarray]:
    """(Q, q) with ``p_cavity = Q p + q`` for a point p in the solid's frame."""
    cav = solid.cavity
    return cav.rotation.T @ solid.rotation, cav.rotation.T @ (solid.centre - cav.centre)


def intersect_local(solid: Solid, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First hit of rays ``o + t * d`` given in the solid's own frame: o (3,), d (N, 3).

    Returns ``t`` (N,) (inf on a miss) and the surface hit (N,) int8: 0 body, 1 slab cap, 2
    cavity wall, 3 cavity cap (see :func:`normal_local`). Rays must start outside the solid
    (the camera always does).
    """
    t_in, t_out, cap_in, _ = _interval(solid, o, d)
    hit = (t_in <= t_out) & (t_in > EPS)
    t, code = np.where(hit, t_in, np.inf), cap_in.astype(np.int8)
    if solid.cavity is not None:
        Q, q = _cavity_frame(solid)
        dc = d if np.allclose(Q, np.eye(3)) else rotate(d, Q)  # cavities are rarely turned
        c_in, c_out, _, cap_out = _interval(solid.cavity, Q @ o + q, dc)
        in_cavity = hit & (c_in <= t_in) & (t_in < c_out)
        wall = in_cavity & (c_out < t_out)  # the inner wall, seen through the opening
        t = np.where(in_cavity, np.where(wall, c_out, np.inf), t)
        code = np.where(wall, 2 + cap_out, code).astype(np.int8)
    return t, code


def normal_local(solid: Solid, points: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Outward unit normals (N, 3) at hit points (solid frame) with :func:`intersect_local`'s codes."""
    normal = _normal(solid, points, code == 1)
    inner = code >= 2
    if solid.cavity is not None and inner.any():  # the wall of A - B faces into the cavity
        Q, q = _cavity_frame(solid)
        local = rotate(points[inner], Q) + q
        normal[inner] = -rotate(_normal(solid.cavity, local, code[inner] == 3), Q.T)
    return normal


def intersect(solid: Solid, origin: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First hit of rays ``origin + t * directions`` (parent frame): t (N,), normals (N, 3)."""
    R = solid.rotation
    o, d = R.T @ (np.asarray(origin, float) - solid.centre), rotate(directions, R.T)
    t, code = intersect_local(solid, o, d)
    hit = np.isfinite(t)
    normal = np.zeros(d.shape)
    normal[hit] = rotate(normal_local(solid, o + t[hit, None] * d[hit], code[hit]), R)
    return t, normal


def column_intervals(solids: list[Solid], origins: np.ndarray, direction) -> tuple[np.ndarray, np.ndarray]:
    """Where parallel rays ``origins + t * direction`` (parent frame) enter and leave a union.

    Per ray (N,): the first entry and the last exit over the solids' convex bodies (cavities
    filled in, so a column through a cup reads as solid from wall to wall); inf / -inf on a miss.
    Placement uses it to slide an object against others and to test two objects for overlap.
    """
    origins = np.asarray(origins, float)
    enter, leave = np.full(len(origins), np.inf), np.full(len(origins), -np.inf)
    for solid in solids:
        o = rotate(origins - solid.centre, solid.rotation.T)
        d = np.broadcast_to(solid.rotation.T @ np.asarray(direction, float), o.shape)
        t0, t1, _, _ = _interval(solid, o, d)
        hit = t0 <= t1
        enter = np.where(hit, np.minimum(enter, t0), enter)
        leave = np.where(hit, np.maximum(leave, t1), leave)
    return enter, leave


# ----------------------------------------------------------------------------- shape families


def _box(rng: np.random.Generator) -> list[Solid]:
    """Boxes of all aspect ratios: cubes, books, long boxes, cartons (mOSD's cereal boxes)."""
    kind = rng.choice(["cube", "book", "long", "carton", "any"], p=[0.2, 0.2, 0.15, 0.3, 0.15])
    dims = {"cube": np.full(3, rng.uniform(0.04, 0.2)) * rng.uniform(0.9, 1.1, 3),
            "book": rng.uniform([0.12, 0.09, 0.015], [0.3, 0.22, 0.05]),
            "long": rng.uniform([0.18, 0.04, 0.03], [0.35, 0.1, 0.1]),
            "carton": rng.uniform([0.14, 0.1, 0.04], [0.32, 0.22, 0.1]),
            "any": rng.uniform(0.03, 0.35, 3)}[kind]
    length, width, thick = np.sort(dims)[::-1]
    # which face is down: books lie flat, cartons mostly stand on their small face
    p_up = {"book": [0.75, 0.15, 0.1], "carton": [0.3, 0.2, 0.5], "long": [0.6, 0.25, 0.15]}
    up = rng.choice(3, p=p_up.get(kind, [1 / 3] * 3))
    fx, fy, height = [(length, width, thick), (length, thick, width), (width, thick, length)][up]
    return [Solid("box", (fx / 2, fy / 2, 0.0), 0.0, height)]


def _cylinder(rng: np.random.Generator) -> list[Solid]:
    """Cans, flat tins and tall tubes; a few have an elliptic cross-section."""
    kind = rng.choice(["can", "tin", "tall"], p=[0.45, 0.3, 0.25])
    r, h = {"can": rng.uniform([0.025, 0.07], [0.045, 0.16]),
            "tin": rng.uniform([0.06, 0.03], [0.12, 0.1]),
            "tall": rng.uniform([0.03, 0.15], [0.05, 0.3])}[kind]
    ry = r * (rng.uniform(0.7, 1.0) if rng.random() < 0.15 else 1.0)
    return [Solid("cylinder", (r, ry, 0.0), 0.0, h)]


def _bowl(rng: np.random.Generator) -> list[Solid]:
    """An open hemispherical shell with a flat foot, or a truncated cone with a cavity."""
    wall = rng.uniform(0.004, 0.008)
    if rng.random() < 0.5:
        R = rng.uniform(0.06, 0.14)
        c = R * rng.uniform(0.45, 0.9)  # depth of the bowl
        foot = c * rng.uniform(0.05, 0.25)  # the flat base cuts this much off the bottom
        centre = np.array([0.0, 0.0, c - foot])  # the rim lies at the ellipsoid's centre
        cavity = Solid("ellipsoid", (R - wall, R - wall, c - wall), -c + foot + wall, c, centre=centre)
        return [Solid("ellipsoid", (R, R, c), -c + foot, 0.0, centre=centre, cavity=cavity)]
    r0, r1, h = rng.uniform([0.03, 0.07, 0.04], [0.06, 0.15, 0.1])
    k, base = (r1 - r0) / h, rng.uniform(0.004, 0.01)
    top = h + 0.02  # the cavity pokes out of the top: the bowl is open
    cavity = Solid("frustum", (r0 + k * base - wall, r0 + k * top - wall, 0.0), base, top)
    return [Solid("frustum", (r0, r1, 0.0), 0.0, h, cavity=cavity)]


def _cup(rng: np.random.Generator) -> list[Solid]:
    """A cylindrical shell open at the top, often with a handle (a rectangular ring, part 1)."""
    r, h, wall = rng.uniform([0.03, 0.06, 0.003], [0.05, 0.13, 0.006])
    cup = Solid("cylinder", (r, r, 0.0), 0.0, h,
                cavity=Solid("cylinder", (r - wall, r - wall, 0.0), 0.006, h + 0.02))
    if rng.random() > 0.6:
        return [cup]
    half_x, half_y, ring = rng.uniform(0.012, 0.02), rng.uniform(0.003, 0.006), 0.006
    half_z, zc = h * rng.uniform(0.25, 0.35), h * rng.uniform(0.45, 0.55)
    x0, x1 = r - 0.004, r - 0.004 + 2 * half_x  # the ring's inner side sinks into the wall
    hole = Solid("box", ((x1 - ring - r) / 2, half_y + 0.01, 0.0), zc - half_z + ring,
                 zc + half_z - ring, centre=np.array([(x1 - ring + r) / 2, 0.0, 0.0]))
    handle = Solid("box", (half_x, half_y, 0.0), zc - half_z, zc + half_z,
                   centre=np.array([(x0 + x1) / 2, 0.0, 0.0]), cavity=hole, part=1)
    return [cup, posed(handle, rotation((0, 0, 1), rng.uniform(0, 2 * np.pi)), np.zeros(3))]


def _bottle(rng: np.random.Generator) -> list[Solid]:
    """Body cylinder, conical shoulder, narrow neck and sometimes a wider cap."""
    r, body, shoulder = rng.uniform([0.025, 0.1, 0.02], [0.05, 0.2, 0.06])
    neck_r, neck = rng.uniform([0.01, 0.02], [0.016, 0.05])
    top = body + shoulder + neck
    solids = [Solid("cylinder", (r, r, 0.0), 0.0, body),
              Solid("frustum", (r, neck_r, 0.0), body, body + shoulder),
              Solid("cylinder", (neck_r, neck_r, 0.0), body + shoulder - 1e-3, top)]
    if rng.random() < 0.5:
        solids.append(Solid("cylinder", (neck_r + 0.002,) * 2 + (0.0,), top - 0.015, top))
    return solids


def _ellipsoid(rng: np.random.Generator) -> list[Solid]:
    """Balls and ellipsoids (fruit, toys) in a random orientation."""
    radii = np.full(3, rng.uniform(0.03, 0.09)) if rng.random() < 0.4 else rng.uniform(0.03, 0.12, 3)
    turn = rotation(rng.normal(size=3), rng.uniform(0, np.pi))
    return [posed(Solid("ellipsoid", tuple(radii), -radii[2], radii[2]), turn, np.zeros(3))]


def _compound(rng: np.random.Generator) -> list[Solid]:
    """2-4 overlapping primitives unioned into one object: a blob of ellipsoids or blocks."""
    blob = rng.random() < 0.5
    solids: list[Solid] = []
    for _ in range(rng.integers(2, 5)):
        if blob:
            radii = rng.uniform(0.025, 0.08, 3)
            piece = Solid("ellipsoid", tuple(radii), -radii[2], radii[2])
        elif rng.random() < 0.6:
            half = rng.uniform(0.015, 0.08, 3)
            piece = Solid("box", (half[0], half[1], 0.0), -half[2], half[2])
        else:
            r, half = rng.uniform([0.015, 0.015], [0.06, 0.08])
            piece = Solid("cylinder", (r, r, 0.0), -half, half)
        turn = rotation(rng.normal(size=3), rng.uniform(0, np.pi)) if blob else \
            rotation((0, 0, 1), rng.uniform(0, np.pi)) @ rotation((1, 0, 0), np.pi / 2 * rng.integers(2))
        if solids:  # the new piece's centre lies inside the previous piece's box: they overlap
            lo, hi = bounds(solids[-1:])
            offset = (lo + hi) / 2 + rng.uniform(-0.45, 0.45, 3) * (hi - lo)
        else:
            offset = np.zeros(3)
        solids.append(posed(piece, turn, offset))
    return solids


FAMILIES: dict[str, Callable[[np.random.Generator], list[Solid]]] = {
    "box": _box, "cylinder": _cylinder, "bowl": _bowl, "cup": _cup, "bottle": _bottle,
    "ellipsoid": _ellipsoid, "compound": _compound,
}


def make_object(family: str, rng: np.random.Generator) -> list[Solid]:
    """Solids of one object of ``family``: bottom at z = 0, footprint centred on the origin."""
    solids = FAMILIES[family](rng)
    lo, hi = bounds(solids)
    shift = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]])
    return [posed(s, np.eye(3), shift) for s in solids]
