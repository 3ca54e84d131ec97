"""A virtual Kinect v1: pinhole ray casting of convex solids plus the sensor's failure modes.

The camera frame is the one of mOSD's organised clouds (z forward, y down, x right, metres).
Every pixel's ray is ``t * ((u - cx) / fx, (v - cy) / fy, 1)``, so the ray parameter of a hit
*is* its depth z. A solid is only tested against the pixels inside the projection of its
bounding sphere, which keeps a frame of ~50 small solids at a few million ray tests.

Sensor model (``SensorConfig``), after Khoshelham & Elberink 2012 ("Accuracy and resolution of
Kinect depth data") and the structured-light geometry of the device:

- depth noise: Gaussian with sigma = ``noise`` * z^2, spatially correlated over
  ``noise_scale`` pixels (the disparity is matched over a window, so neighbours err
  together), plus a small per-pixel part ``noise_white`` * z^2;
- disparity quantisation: 1/z is rounded to steps of ``disparity_step`` (1/m), i.e. depth
  steps of ``disparity_step * z^2`` (2.85e-3: ~3 mm at 1 m, as measured on the mOSD scans);
- projector shadows: the IR projector sits ``baseline`` to the camera's right (+x); a surface
  point the projector cannot see gets no pattern and no depth (the black bands left of
  objects in the real scans), found by shadow-mapping a depth render from the projector;
- grazing angles: no return where |cos(ray, normal)| < ``grazing_cos``;
- depth edges: pixels beside a depth jump are dropped with probability ``edge_drop``;
- a few random dropout blobs (dark or specular spots), and the invalid band of
  ``right_band`` columns at the right edge that the registered Kinect depth has (columns
  >= ~570 are NaN in every mOSD scan).

The colour side is deliberately simple: two-colour textures (:class:`Look`) in each
object's frame, ambient + Lambertian shading, exposure, white balance and pixel noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .tabletop_shapes import Solid, intersect_local, normal_local, posed, rotate

WIDTH, HEIGHT = 640, 480
# Depth jumps between neighbouring pixels that count as an edge: |dz| > EDGE_REL * z + EDGE_ABS.
EDGE_REL, EDGE_ABS = 0.02, 0.005


@dataclass
class Camera:
    """Pinhole intrinsics in pixels; the image is ``width`` x ``height``."""

    fx: float = 525.0
    fy: float = 525.0
    cx: float = 319.5
    cy: float = 239.5
    width: int = WIDTH
    height: int = HEIGHT

    def rays(self) -> np.ndarray:
        """(H, W, 3) ray directions with unit z: depth z at a pixel is the point t * ray."""
        v, u = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
        return np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u)], -1)


@dataclass
class SensorConfig:
    """Kinect v1 error model; ranges are sampled uniformly per frame."""

    noise: tuple[float, float] = (0.9e-3, 1.7e-3)  # sigma = noise * z^2 (1/m), correlated
    noise_scale: tuple[float, float] = (3.0, 8.0)  # correlation length of that noise (pixels)
    noise_white: tuple[float, float] = (0.3e-3, 0.7e-3)  # per-pixel sigma / z^2 (1/m)
    disparity_step: tuple[float, float] = (2.7e-3, 3.0e-3)  # 1/z quantum (1/m); 0 = off
    baseline: tuple[float, float] = (0.07, 0.08)  # camera -> projector along +x (m); 0 = off
    grazing_cos: tuple[float, float] = (0.1, 0.25)  # no return below this |cos| of incidence
    edge_drop: tuple[float, float] = (0.2, 0.7)  # drop probability of pixels beside a jump
    edge_width: tuple[int, int] = (1, 2)  # width (pixels) of the band a jump affects
    blobs: float = 1.5  # mean number of dropout blobs per frame (Poisson)
    blob_radius: tuple[float, float] = (3.0, 15.0)  # pixels
    right_band: tuple[int, int] = (64, 72)  # invalid columns at the right edge; (0, 0) = off
    intrinsics_jitter: float = 0.01  # relative jitter of fx, fy; cx, cy move by +-3 px
    max_depth: float = 3.5  # metres: nothing is measured beyond this


def ideal_sensor() -> SensorConfig:
    """A perfect sensor: exact depth wherever a ray hits, no dropouts (for tests)."""
    return SensorConfig(noise=(0.0, 0.0), noise_white=(0.0, 0.0), disparity_step=(0.0, 0.0),
                        baseline=(0.0, 0.0), grazing_cos=(0.0, 0.0), edge_drop=(0.0, 0.0), blobs=0.0,
                        right_band=(0, 0), intrinsics_jitter=0.0, max_depth=np.inf)


def sample_camera(rng: np.random.Generator, cfg: SensorConfig) -> Camera:
    """Kinect v1 intrinsics (fx = fy = 525, centre 319.5, 239.5), slightly jittered."""
    scale = 1 + cfg.intrinsics_jitter * rng.uniform(-1, 1, 2)
    shift = 3 * rng.uniform(-1, 1, 2) * (cfg.intrinsics_jitter > 0)  # same draws either way
    return Camera(525.0 * scale[0], 525.0 * scale[1], 319.5 + shift[0], 239.5 + shift[1])


def look_at(eye, target, roll: float = 0.0) -> np.ndarray:
    """camera_from_world (4, 4) of a camera at ``eye`` looking at ``target``, world z up.

    Camera axes: z forward, x right, y down (x = forward x up, y = forward x x), then rolled
    by ``roll`` radians about the forward axis.
    """
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    rotation = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation, -rotation @ eye
    return pose


# ----------------------------------------------------------------------------- ray casting


def _pixel_box(solid: Solid, camera: Camera) -> tuple[int, int, int, int] | None:
    """Pixel rectangle (v0, v1, u0, u1) that holds the solid's bounding sphere, camera frame."""
    local_centre, half = solid.local_half_extents()
    x, y, z = solid.rotation @ local_centre + solid.centre
    radius = float(np.linalg.norm(half)) * 1.001
    if z + radius <= 0:
        return None  # behind the camera
    if z - radius <= 1e-3:
        return 0, camera.height, 0, camera.width  # around the camera: test every pixel
    near, far = z - radius, z + radius

    def span(lo: float, hi: float, f: float, c: float, size: int) -> tuple[int, int]:
        a = lo / (near if lo < 0 else far)  # min and max of (coordinate / depth) over the box
        b = hi / (near if hi > 0 else far)
        return max(0, int(np.floor(f * a + c))), min(size, int(np.ceil(f * b + c)) + 1)

    u0, u1 = span(x - radius, x + radius, camera.fx, camera.cx, camera.width)
    v0, v1 = span(y - radius, y + radius, camera.fy, camera.cy, camera.height)
    return (v0, v1, u0, u1) if u0 < u1 and v0 < v1 else None


def render(solids: list[Solid], camera: Camera, camera_from_world: np.ndarray,
           below: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, first: int = 0,
           normals: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit per pixel of world-frame ``solids``.

    Returns depth (H, W) float64 (inf where no solid is hit), the index of the hit solid
    (H, W) int32 (-1 none; solid i gets ``first + i``) and the outward unit normal there
    (H, W, 3), camera frame (zeros when ``normals`` is False). With ``below`` (the output of
    an earlier call) only the pixels that call left empty are cast: a background that lies
    behind everything rendered before costs only the rays that reach it.
    """
    shape = (camera.height, camera.width)
    if below is None:
        depth, index, normal = np.full(shape, np.inf), np.full(shape, -1, np.int32), np.zeros((*shape, 3))
    else:
        depth, index, normal = (a.copy() for a in below)
    ray_u = (np.arange(camera.width) - camera.cx) / camera.fx  # ray = (ray_u, ray_v, 1)
    ray_v = (np.arange(camera.height) - camera.cy) / camera.fy
    for i, solid in enumerate(solids):
        solid = posed(solid, camera_from_world[:3, :3], camera_from_world[:3, 3])  # camera frame
        box = _pixel_box(solid, camera)
        if box is None:
            continue
        v0, v1, u0, u1 = box
        best = depth[v0:v1, u0:u1].ravel()  # (n,) a copy of the z-buffer under the block
        todo = np.flatnonzero(np.isinf(best)) if below is not None else slice(None)
        # rays in the solid's frame, R^T (u, v, 1), as an outer sum: no per-ray matrix product
        R = solid.rotation
        block = ray_u[None, u0:u1, None] * R[0] + ray_v[v0:v1, None, None] * R[1] + R[2]
        block = block.reshape(-1, 3)[todo]  # (n, 3)
        o = -R.T @ solid.centre  # the camera centre
        t, code = intersect_local(solid, o, block)  # (n,)
        closer = t < best[todo]  # (n,)
        if not closer.any():
            continue
        where = closer.reshape(v1 - v0, u1 - u0) if below is None else np.zeros((v1 - v0, u1 - u0), bool)
        if below is not None:
            where.ravel()[todo[closer]] = True
        depth[v0:v1, u0:u1][where] = t[closer]  # boolean masks on views: no index arithmetic
        index[v0:v1, u0:u1][where] = first + i
        if normals:
            local = normal_local(solid, o + t[closer, None] * block[closer], code[closer])
            normal[v0:v1, u0:u1][where] = rotate(local, R)
    return depth, index, normal


# ----------------------------------------------------------------------------- sensor model


def projector_shadow(depth: np.ndarray, solids: list[Solid], camera: Camera,
                     camera_from_world: np.ndarray, baseline: float, rays: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose surface point the projector (at camera x = +baseline) misses.

    Shadow mapping: render depth from the projector, move each camera point into the
    projector's frame and compare with the depth the projector sees along that ray. The
    tolerance (1 % of depth + 3 mm) is above the depth change of a grazing surface between
    neighbouring projector pixels, so only real occluders cast shadows.
    """
    projector_from_world = camera_from_world.copy()
    projector_from_world[0, 3] -= baseline
    seen, _, _ = render(solids, camera, projector_from_world, normals=False)
    hit = np.isfinite(depth)
    point = rays[hit] * depth[hit, None]  # (n, 3) camera frame
    point[:, 0] -= baseline  # projector frame (same orientation)
    pu = np.rint(camera.fx * point[:, 0] / point[:, 2] + camera.cx).astype(np.int64)
    pv = np.rint(camera.fy * point[:, 1] / point[:, 2] + camera.cy).astype(np.int64)
    # the projector's field of view is wider than the camera's (mOSD's left column is valid):
    # points beyond the shadow map count as lit
    inside = (pu >= 0) & (pu < camera.width) & (pv >= 0) & (pv < camera.height)
    occluded = np.zeros(len(point), bool)
    lit = seen[pv[inside], pu[inside]]
    z = point[inside, 2]
    occluded[inside] = z > lit + 0.01 * z + 0.003
    shadow = np.zeros(depth.shape, bool)
    shadow[hit] = occluded
    return shadow


def edge_pixels(depth: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour across a depth jump (or a hit/miss border)."""
    z = np.where(np.isfinite(depth), depth, 1e3)
    edge = np.zeros(depth.shape, bool)
    for axis in (0, 1):
        a = np.moveaxis(z, axis, 0)
        near = np.minimum(a[1:], a[:-1])
        jump = np.abs(a[1:] - a[:-1]) > EDGE_REL * near + EDGE_ABS
        e = np.moveaxis(edge, axis, 0)
        e[1:] |= jump
        e[:-1] |= jump
    return edge


def smooth_noise(shape: tuple[int, int], scale: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W) Gaussian field with unit variance at every pixel, correlated over ``scale`` pixels.

    A coarse white grid (one node every ``scale`` pixels) is interpolated bilinearly; the
    interpolated variance ((1-a)^2 + a^2) ((1-b)^2 + b^2) is divided out.
    """
    coarse = rng.normal(size=(int(shape[0] / scale) + 2, int(shape[1] / scale) + 2))
    rows, cols = np.arange(shape[0]) / scale, np.arange(shape[1]) / scale
    i, j = rows.astype(np.int64)[:, None], cols.astype(np.int64)[None, :]
    a, b = (rows % 1)[:, None], (cols % 1)[None, :]
    field = (1 - a) * ((1 - b) * coarse[i, j] + b * coarse[i, j + 1]) \
        + a * ((1 - b) * coarse[i + 1, j] + b * coarse[i + 1, j + 1])
    return field / np.sqrt(((1 - a) ** 2 + a**2) * ((1 - b) ** 2 + b**2))


def measure(depth: np.ndarray, normal: np.ndarray, shadow: np.ndarray, camera: Camera,
            rays: np.ndarray, rng: np.random.Generator, cfg: SensorConfig) -> np.ndarray:
    """The Kinect's depth image (H, W) float64, NaN where it returns nothing.

    ``depth`` is the exact depth (inf where no surface), ``normal`` the surface normals and
    ``shadow`` the projector-shadow mask, all (H, W[, 3]) in the camera frame.
    """
    valid = np.isfinite(depth) & (depth <= cfg.max_depth) & ~shadow
    unit = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
    cos = np.abs((unit * normal).sum(-1))
    valid &= cos >= rng.uniform(*cfg.grazing_cos)
    drop = rng.uniform(*cfg.edge_drop)
    if drop > 0:
        width = int(rng.integers(cfg.edge_width[0], cfg.edge_width[1] + 1))
        band = edge_pixels(depth)
        if width > 1:
            band = ndimage.binary_dilation(band, iterations=width - 1)
        valid &= ~(band & (rng.random(depth.shape, dtype=np.float32) < drop))
    v, u = np.mgrid[0:camera.height, 0:camera.width]
    for _ in range(rng.poisson(cfg.blobs)):
        cv, cu = rng.uniform(0, camera.height), rng.uniform(0, camera.width)
        ra, rb = rng.uniform(*cfg.blob_radius, 2)
        valid &= ((v - cv) / ra) ** 2 + ((u - cu) / rb) ** 2 > 1
    band = int(rng.integers(cfg.right_band[0], cfg.right_band[1] + 1))
    if band > 0:  # a slightly slanted border, as in the real scans (575 at the top, 569 below)
        border = camera.width - band - np.rint(6 * (1 - v[:, :1] / camera.height)).astype(int)
        valid &= u < border
    z = np.where(valid, depth, np.nan)
    sigma, white = rng.uniform(*cfg.noise), rng.uniform(*cfg.noise_white)
    scale = rng.uniform(*cfg.noise_scale)
    if sigma > 0 or white > 0:
        white_noise = rng.standard_normal(z.shape, dtype=np.float32)  # float32: half the cost
        field = sigma * smooth_noise(z.shape, scale, rng) + white * white_noise
        z = z + field * z**2  # per-pixel std sqrt(sigma^2 + white^2) z^2
    step = rng.uniform(*cfg.disparity_step)
    if step > 0:
        with np.errstate(invalid="ignore"):
            z = 1.0 / (np.rint(1.0 / (z * step)) * step)
    return z


# ----------------------------------------------------------------------------- pieces and colour


def pieces(group: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """(H, W) connected pieces: 4-neighbours with the same ``group`` (>= 0) and no depth jump.

    Pixels with group -1 get piece -1; the others get ids 0..P-1.
    """
    valid = group >= 0
    node = np.full(group.shape, -1, np.int64)
    node[valid] = np.arange(valid.sum())
    rows, cols = [], []
    z = np.where(valid, depth, 0.0)
    for a, b in ((np.s_[:, :-1], np.s_[:, 1:]), (np.s_[:-1, :], np.s_[1:, :])):
        near = np.minimum(z[a], z[b])
        link = valid[a] & (group[a] == group[b]) & (np.abs(z[a] - z[b]) <= EDGE_REL * near + EDGE_ABS)
        rows.append(node[a][link])
        cols.append(node[b][link])
    n = int(valid.sum())
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    out = np.full(group.shape, -1, np.int64)
    out[valid] = label
    return out


@dataclass
class Look:
    """A texture in an object's own frame: two colours laid out by ``mode``."""

    mode: str  # flat, two_tone, stripes or checker
    colours: np.ndarray  # (2, 3) RGB in [0, 1]
    axis: np.ndarray  # (3,) unit direction of the pattern
    frequency: float  # stripes / checks per metre
    phase: float

    def paint(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) colours of (N, 3) points in the object frame."""
        s = np.einsum("nj,j->n", points, self.axis)  # not points @ axis: see rotate()
        if self.mode == "flat":
            second = np.zeros(len(points), bool)
        elif self.mode == "two_tone":
            second = s > self.phase
        elif self.mode == "stripes":
            second = np.sin(2 * np.pi * self.frequency * s + self.phase) > 0
        else:
            second = np.floor(points * self.frequency + self.phase).astype(np.int64).sum(1) % 2 == 1
        return self.colours[second.astype(np.int64)]


def _colour(rng: np.random.Generator, kind: str = "any") -> np.ndarray:
    """An RGB colour: saturated or pale for objects; wood, white, grey or dark for furniture."""
    if kind == "wood":
        return np.array([0.75, 0.58, 0.4]) * rng.uniform(0.6, 1.15) + rng.normal(0, 0.03, 3)
    if kind == "neutral":
        return np.full(3, rng.choice([rng.uniform(0.75, 0.95), rng.uniform(0.15, 0.4)])) \
            + rng.normal(0, 0.02, 3)
    hue, sat, val = rng.random(), rng.uniform(0.0, 0.9) ** 0.7, rng.uniform(0.15, 0.95)
    rgb = np.clip(np.abs((hue * 6 + np.array([0.0, 4.0, 2.0])) % 6 - 3) - 1, 0, 1)  # HSV -> RGB
    return val * (1 - sat + sat * rgb)


def random_look(rng: np.random.Generator, kind: str = "any") -> Look:
    """A random texture; ``kind`` is any, wood (furniture) or neutral (walls, white/dark tops)."""
    mode = rng.choice(["flat", "two_tone", "stripes", "checker"], p=[0.4, 0.25, 0.2, 0.15])
    if kind == "wood":
        mode = "stripes"
    first = _colour(rng, kind)
    second = first * rng.uniform(0.85, 0.95) if kind == "wood" else _colour(rng, kind)
    axis = np.eye(3)[rng.integers(3)] if rng.random() < 0.6 else rng.normal(size=3)
    return Look(str(mode), np.clip([first, second], 0, 1), axis / np.linalg.norm(axis),
                rng.uniform(8, 40) if kind != "wood" else rng.uniform(20, 80), rng.uniform(0, 0.1))


def albedo(looks: list[Look], frames: list[tuple[np.ndarray, np.ndarray]], index: np.ndarray,
           points: np.ndarray) -> np.ndarray:
    """(H, W, 3) surface colour in [0, 1]: solid i's texture ``looks[i]`` at the hit points.

    ``points`` (H, W, 3) are world-frame hits, ``index`` the hit solid (-1: none, grey) and
    ``frames[i] = (R, t)`` the texture's frame (``p_world = R p + t``), so a texture moves
    with its object.
    """
    out = np.full((*index.shape, 3), 0.3)
    flat = index.ravel()
    order = np.argsort(flat, kind="stable")  # pixels grouped by solid
    ends = np.searchsorted(flat[order], np.arange(len(looks) + 1))
    for i, (look, (R, t)) in enumerate(zip(looks, frames, strict=True)):
        rows, cols = np.unravel_index(order[ends[i]:ends[i + 1]], index.shape)
        if len(rows):
            out[rows, cols] = look.paint(rotate(points[rows, cols] - t, R.T))
    return out


def colour_image(base: np.ndarray, normal: np.ndarray, lit: np.ndarray, light: np.ndarray,
                 rng: np.random.Generator, brightness: tuple[float, float],
                 noise: tuple[float, float]) -> np.ndarray:
    """(H, W, 3) uint8 RGB: ambient + Lambertian shading, exposure, white balance, noise.

    ``base`` (H, W, 3) albedo in [0, 1], camera-frame ``normal`` and ``light`` direction;
    pixels outside ``lit`` (no surface) keep their albedo.
    """
    ambient = rng.uniform(0.35, 0.65)
    lambert = np.clip(np.einsum("...j,j->...", normal, light), 0, 1)  # not normal @ light: rotate()
    shade = np.where(lit, ambient + (1 - ambient) * lambert, 1.0)
    gain = rng.uniform(*brightness) * rng.uniform(0.92, 1.08, 3)  # exposure, white balance
    grain = rng.standard_normal(base.shape, dtype=np.float32) * rng.uniform(*noise)
    return np.clip(base * shade[..., None] * gain * 255 + grain, 0, 255).astype(np.uint8)
