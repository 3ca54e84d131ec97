"""Tensor transforms on point batches: augmentation and feature assembly (REFERENCE_SPEC 3).

The training/validation augmentation of the reference (spec 3.1, 3.3) as small functions
``(scene, g) -> scene`` on tensors of any device; all randomness comes from the explicit
``torch.Generator`` g (STYLE rule 9), so the reference's random streams are not reproduced bit for bit.
The voxelizers (grid sampling) are in :mod:`lassm.voxelize`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from .config import AugmentConfig
from .data.batch import AUGMENT_POINT_KEYS, SCENE_OUTPUT_KEYS
from .voxelize import Scene, grid_sample_train

MASK3D_MEAN = (0.47793125906962, 0.4303257521323044, 0.3749598901421883)  # spec 3.1 Mask3DNormalizeColorT
MASK3D_STD = (0.2834475483823543, 0.27566157565723015, 0.27018971370874995)


# ----------------------------------------------------------------------------- helpers


def _rand(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(shape or (1,), generator=g, device=g.device)

# A GPU generator's host-side companion for the draws the host needs (does a transform happen, an angle):
# reading a number drawn on the GPU waits for it. Seeded from the GPU generator's seed, so a step's
# augmentation stays a function of its seed; a CPU generator draws everything itself, as before. The last
# few, by id; an entry holds its generator, so no other object takes that id while it is cached.
_HOST_DRAWS: OrderedDict[int, tuple[torch.Generator, torch.Generator]] = OrderedDict()


def _host(g: torch.Generator) -> torch.Generator:
    if g.device.type == "cpu":
        return g
    entry = _HOST_DRAWS.pop(id(g), None) or (g, torch.Generator().manual_seed(g.initial_seed() ^ 0x5DEECE66D))
    _HOST_DRAWS[id(g)] = entry  # the most recent last; the oldest beyond 16 goes
    if len(_HOST_DRAWS) > 16:
        _HOST_DRAWS.popitem(last=False)
    return entry[1]


def _scalar(g: torch.Generator) -> float:  # one U(0, 1) number on the host
    return float(torch.rand(1, generator=_host(g)))


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * _scalar(g)


def _happens(g: torch.Generator, p: float) -> bool:
    return _scalar(g) < p


def _subset(scene: Scene, idx: torch.Tensor) -> Scene:
    """Keep points ``idx`` (in that order) in every point key; superpoints are re-indexed to 0..S'-1."""
    for key in AUGMENT_POINT_KEYS:
        if key in scene:
            scene[key] = scene[key][idx]
    if "superpoint" in scene:
        scene["superpoint"] = torch.unique(scene["superpoint"][idx], return_inverse=True)[1]
    return scene


def _box3(x: torch.Tensor, dim: int) -> torch.Tensor:
    """3-tap [1/3, 1/3, 1/3] filter along ``dim`` with zero padding."""
    moved = torch.nn.functional.pad(x.movedim(dim, -1), (1, 1))
    return ((moved[..., :-2] + moved[..., 1:-1] + moved[..., 2:]) / 3).movedim(-1, dim)


def _smooth(noise: torch.Tensor) -> torch.Tensor:
    """Box-x, box-y, box-z twice on the last three dims of ``noise`` (C, D0, D1, D2)."""
    for dim in (1, 2, 3, 1, 2, 3):
        noise = _box3(noise, dim)
    return noise


def _interp(lattice: torch.Tensor, start: torch.Tensor, step: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Trilinear interpolation of ``lattice`` (C, D0, D1, D2) at ``x`` (N, 3); outside the lattice -> 0."""
    dims = torch.tensor(lattice.shape[1:]).to(x.device, non_blocking=True)  # no wait for the device
    u = (x - start) / step  # (N, 3) lattice index units
    inside = ((u >= 0) & (u <= dims - 1)).all(1)
    i0 = torch.minimum(torch.floor(u).clamp(min=0), dims - 2).long()  # (N, 3) lower corner
    t = (u - i0).clamp(0, 1)
    out = torch.zeros(x.shape[0], lattice.shape[0], dtype=lattice.dtype, device=x.device)
    for corner in range(8):
        bits = [(corner >> a) & 1 for a in range(3)]
        w = torch.ones(x.shape[0], dtype=lattice.dtype, device=x.device)
        for a, b in enumerate(bits):
            w = w * (t[:, a] if b else 1 - t[:, a])
        out += w[:, None] * lattice[:, i0[:, 0] + bits[0], i0[:, 1] + bits[1], i0[:, 2] + bits[2]].T
    return out * inside[:, None]  # (N, C)


# ----------------------------------------------------------------------------- geometric transforms

def mean_shift(scene: Scene, g: torch.Generator) -> Scene:
    """MeanShiftT (3.1): centre the scene on the mean of its points."""
    scene["coord"] = scene["coord"] - scene["coord"].mean(0)
    return scene


def random_dropout(scene: Scene, g: torch.Generator, ratio: float = 0.2, p: float = 0.5) -> Scene:
    """RandomDropoutT (3.1): with probability p keep floor((1 - ratio) N) points, shuffled."""
    if _happens(g, p):
        n = scene["coord"].shape[0]
        keep = torch.randperm(n, generator=g, device=g.device)[: int(n * (1 - ratio))]  # (floor(0.8 N),)
        _subset(scene, keep)
    return scene


def random_flip(scene: Scene, g: torch.Generator, p: float = 0.5) -> Scene:
    """RandomFlipT (3.1): independently negate x, then y (coord and normal)."""
    for axis in (0, 1):
        if _happens(g, p):
            for key in ("coord", "normal"):
                if key in scene:
                    scene[key] = scene[key].clone()
                    scene[key][:, axis] = -scene[key][:, axis]
    return scene


def mask3d_random_flip(scene: Scene, g: torch.Generator, p: float = 0.5) -> Scene:
    """Mask3DRandomFlipT (3.1, ScanNet200): coord_i <- max(coord_i) - coord_i for x, y; normal_i negated."""
    for axis in (0, 1):
        if _happens(g, p):
            scene["coord"] = scene["coord"].clone()
            scene["coord"][:, axis] = scene["coord"][:, axis].max() - scene["coord"][:, axis]
            if "normal" in scene:
                scene["normal"] = scene["normal"].clone()
                scene["normal"][:, axis] = -scene["normal"][:, axis]
    return scene


def rotation_matrix(axis: str, theta: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """The (3, 3) matrix R of RandomRotateT (3.1); points are row vectors, rotated as ``x @ R``."""
    c, s = math.cos(theta), math.sin(theta)
    rows = {"z": [[c, s, 0], [-s, c, 0], [0, 0, 1]],
            "x": [[1, 0, 0], [0, c, s], [0, -s, c]],
            "y": [[c, 0, -s], [0, 1, 0], [s, 0, c]]}
    if axis not in rows:
        raise ValueError(f"axis: expected 'x', 'y' or 'z', got {axis!r}")
    return torch.tensor(rows[axis], dtype=dtype, device=device)


def random_rotate(scene: Scene, g: torch.Generator, angle: tuple[float, float], axis: str,
                  center: tuple[float, float, float] | None = None, p: float = 1.0) -> Scene:
    """RandomRotateT (3.1): theta = U(a0, a1) pi about ``center`` (None: bounding-box centre), prob p."""
    if _scalar(g) > p:
        return scene
    coord = scene["coord"]
    # built on the host and copied without waiting: a host-to-device copy of a fresh tensor otherwise waits
    R = rotation_matrix(axis, _uniform(g, *angle) * math.pi, coord.dtype).to(coord.device, non_blocking=True)
    if center is None:
        c = (coord.min(0).values + coord.max(0).values) / 2
    else:
        c = torch.tensor(center, dtype=coord.dtype).to(coord.device, non_blocking=True)
    scene["coord"] = (coord - c) @ R + c
    if "normal" in scene:
        scene["normal"] = scene["normal"] @ R.to(scene["normal"].dtype)
    return scene


def random_scale(scene: Scene, g: torch.Generator, scale: tuple[float, float] = (0.8, 1.2)) -> Scene:
    """RandomScaleT (3.1): one isotropic factor U(0.8, 1.2)."""
    scene["coord"] = scene["coord"] * _uniform(g, *scale)
    return scene


def random_translation(scene: Scene, g: torch.Generator, std: float = 0.1) -> Scene:
    """RandomTranslationT (3.1): coord += t, t_i ~ Normal(0, 0.1)."""
    t = torch.randn(3, generator=g, device=g.device) * std
    scene["coord"] = scene["coord"] + t.to(scene["coord"].dtype)
    return scene


def random_jitter(scene: Scene, g: torch.Generator, sigma: float = 0.005, clip: float = 0.02) -> Scene:
    """Sensor noise for single-view scans (not in the reference): coord += clip(Normal(0, sigma), +-clip)
    per point and axis, in metres. Depth cameras return each point with millimetre-to-centimetre noise
    that grows with distance; a model trained on cleaner surfaces should not rely on their smoothness."""
    noise = torch.randn(scene["coord"].shape, generator=g, device=g.device) * sigma
    scene["coord"] = scene["coord"] + noise.clamp(-clip, clip).to(scene["coord"].dtype)
    return scene


def custom_elastic_distortion(scene: Scene, g: torch.Generator, params=((10.0, 60.0), (30.0, 180.0)),
                              p: float = 0.95, grid_size: float = 0.02) -> Scene:
    """CustomElasticDistortionT (3.1, 11.1.8): a NEW ``elastic_coord`` = coord / grid_size, distorted with
    probability p; only the voxelizer reads it, ``coord`` is never distorted."""
    x = scene["coord"] / grid_size  # (N, 3) voxel units; float32 when not distorted
    if p > 0 and _happens(g, p):
        x = x.double()  # the reference's interpolated noise is float64
        for gran, mag in params:
            dims = (torch.floor(x.abs().max(0).values / gran) + 3).long().tolist()
            noise = _smooth(torch.randn(3, *dims, generator=g, device=g.device, dtype=torch.float64))
            half = torch.tensor(dims, dtype=x.dtype).to(x.device, non_blocking=True) - 1
            x = x + mag * _interp(noise, -half * gran, torch.full_like(half, 2 * gran), x)  # spacing 2g
    scene["elastic_coord"] = x
    return scene


def elastic_distortion(scene: Scene, g: torch.Generator, params=((0.2, 0.4), (0.8, 1.6)),
                       p: float = 0.95) -> Scene:
    """ElasticDistortionT (3.1, ScanNet200): distorts the metric ``coord`` itself, with probability p."""
    if not _happens(g, p):
        return scene
    x = scene["coord"].double()
    for gran, mag in params:
        lo = x.min(0).values
        dims = (torch.floor((x.max(0).values - lo) / gran) + 3).long().tolist()
        noise = _smooth(torch.randn(3, *dims, generator=g, device=g.device, dtype=torch.float64))
        x = x + mag * _interp(noise, lo - gran, torch.full_like(lo, gran), x)  # nodes min - g .. (spacing g)
    scene["coord"] = x.to(scene["coord"].dtype)  # back to the input dtype (float32)
    return scene


def sphere_crop(scene: Scene, g: torch.Generator, point_max: int | None = 250000,
                sample_rate: float | None = None) -> Scene:
    """SphereCropT (3.1, mode "random"): keep the K points nearest a random point, nearest first."""
    n = scene["coord"].shape[0]
    k = int(sample_rate * n) if sample_rate is not None else point_max
    if k is None or n <= k:
        return scene
    centre = scene["coord"][torch.randint(n, (1,), generator=g, device=g.device)]  # (1, 3)
    d2 = ((scene["coord"] - centre) ** 2).sum(1)
    return _subset(scene, torch.argsort(d2, stable=True)[:k])


# ----------------------------------------------------------------------------- colour transforms

def random_colour_gain(scene: Scene, g: torch.Generator, gain: tuple[float, float] = (1.0, 2.0)) -> Scene:
    """Not in the reference: all colours times one gain U(lo, hi), clamped to [0, 255] (an exposure)."""
    scene["color"] = (scene["color"] * _uniform(g, *gain)).clamp(0, 255)
    return scene


def chromatic_auto_contrast(scene: Scene, g: torch.Generator, p: float = 0.2) -> Scene:
    """ChromaticAutoContrastT (3.1): blend colour with its per-channel min-max stretch, b ~ U(0, 1)."""
    if not _happens(g, p):
        return scene
    color = scene["color"]
    lo, hi = color.min(0).values, color.max(0).values
    span = hi - lo
    # Deliberate difference (11.2.7): a flat channel (hi == lo) is left as is instead of becoming NaN/inf.
    contrast = torch.where(span > 0, (color - lo) * 255 / span.clamp(min=1e-12), color)
    b = _uniform(g, 0.0, 1.0)
    scene["color"] = (1 - b) * color + b * contrast
    return scene


def chromatic_translation(scene: Scene, g: torch.Generator, p: float = 0.95, ratio: float = 0.1) -> Scene:
    """ChromaticTranslationT (3.1): one offset U(-25.5, 25.5) per channel, clamped to [0, 255]."""
    if _happens(g, p):
        t = (_rand(g, 1, 3) - 0.5) * 2 * 255 * ratio  # (1, 3)
        scene["color"] = (scene["color"] + t.to(scene["color"].dtype)).clamp(0, 255)
    return scene


def chromatic_jitter(scene: Scene, g: torch.Generator, p: float = 0.95, std: float = 0.05) -> Scene:
    """ChromaticJitterT (3.1): per point and channel Normal(0, 1) x 0.05 x 255, clamped to [0, 255]."""
    if _happens(g, p):
        noise = torch.randn(scene["color"].shape, generator=g, device=g.device) * std * 255  # (N, 3)
        scene["color"] = (scene["color"] + noise.to(scene["color"].dtype)).clamp(0, 255)
    return scene


def normalize_color(scene: Scene, g: torch.Generator, mode: str = "scannet") -> Scene:
    """NormalizeColorT (x/127.5 - 1) or Mask3DNormalizeColorT ((x/255 - mean)/std), spec 3.1."""
    color = scene["color"]
    if mode == "scannet":
        scene["color"] = color / 127.5 - 1
    elif mode == "mask3d":
        mean = torch.tensor(MASK3D_MEAN, dtype=color.dtype).to(color.device, non_blocking=True)
        std = torch.tensor(MASK3D_STD, dtype=color.dtype).to(color.device, non_blocking=True)
        scene["color"] = (color / 255 - mean) / std
    else:
        raise ValueError(f"mode: expected 'scannet' or 'mask3d', got {mode!r}")
    return scene


# ----------------------------------------------------------------------------- voxelization and output

def copy_origin(scene: Scene, g: torch.Generator) -> Scene:
    """Copy (3.1): point-level coord, segment, instance kept as ``origin_*`` before voxelization."""
    for key in ("coord", "segment", "instance"):
        if key in scene:
            scene[f"origin_{key}"] = scene[key].clone()
    return scene


def assemble_feat(scene: Scene, g: torch.Generator, keys: str = "color+coord") -> Scene:
    """Collect's ``feat`` (3.1): [normalized colour, voxel coord in metres] (6) or colour only (3)."""
    if keys not in ("color+coord", "color"):
        raise ValueError(f"keys: expected 'color+coord' or 'color', got {keys!r}")
    parts = [scene["color"]] + ([scene["coord"]] if keys == "color+coord" else [])
    scene["feat"] = torch.cat([t.float() for t in parts], 1)  # (M, 6) or (M, 3)
    return scene



def collect(scene: Scene, g: torch.Generator) -> Scene:
    """Collect (3.1): the model input of 3.2 (offsets are added by the collate function)."""
    return {k: scene[k] for k in SCENE_OUTPUT_KEYS if k in scene}


# ----------------------------------------------------------------------------- pipelines

@dataclass
class Pipeline:
    """Transforms applied in order to one scene; call as ``pipeline(scene, g)``."""

    steps: list[Callable[[Scene, torch.Generator], Scene]]

    def __call__(self, scene: Scene, g: torch.Generator) -> Scene:
        if "coord" not in scene or "color" not in scene:
            raise ValueError(f"scene: expected keys 'coord' and 'color', got {sorted(scene)}")
        n = scene["coord"].shape[0]
        if n == 0 or any(t.shape[0] != n for t in scene.values()):
            raise ValueError(f"scene: expected a non-empty scene with N rows in every key, "
                             f"got {({k: tuple(t.shape) for k, t in scene.items()})}")
        scene = dict(scene)  # the caller's dict is left alone
        for step in self.steps:
            scene = step(scene, g)
        return scene


def _post(cfg: AugmentConfig) -> list:
    """The steps after voxelization, shared by training and validation (3.3)."""
    if cfg.pipeline not in ("scannet", "scannet200", "scannetpp"):
        raise ValueError(f"cfg.pipeline: expected scannet, scannet200 or scannetpp, got {cfg.pipeline!r}")
    return [partial(normalize_color, mode=cfg.color_norm), partial(assemble_feat, keys=cfg.feat_keys),
            collect]


# SwapChairAndFloorT and InsClassMapT are left out: the model maps raw labels itself (2.3).

def train_pipeline(cfg: AugmentConfig) -> Pipeline:
    """The training transforms of spec 3.3 for ``cfg.pipeline``, in the reference's order."""
    post = _post(cfg)
    crop = partial(sphere_crop, point_max=cfg.sphere_point_max, sample_rate=cfg.sphere_sample_rate)
    tilt = (-cfg.tilt_angle, cfg.tilt_angle)
    colour = [chromatic_auto_contrast, chromatic_translation, chromatic_jitter]
    if cfg.colour_gain is not None:
        colour.insert(0, partial(random_colour_gain, gain=tuple(cfg.colour_gain)))
    if cfg.pipeline == "scannet200":
        return Pipeline([mean_shift, random_dropout, mask3d_random_flip,
                         partial(elastic_distortion, params=cfg.elastic_params, p=cfg.elastic_p),
                         partial(random_rotate, angle=(-1, 1), axis="z", center=(0, 0, 0), p=0.95),
                         partial(random_rotate, angle=tilt, axis="x", p=0.5),
                         partial(random_rotate, angle=tilt, axis="y", p=0.5),
                         random_scale, *colour, crop, copy_origin,
                         partial(grid_sample_train, grid_size=cfg.grid_size, from_elastic=False), *post])
    return Pipeline([mean_shift, random_dropout, random_flip,
                     partial(random_rotate, angle=(-1, 1), axis="z", center=(0, 0, 0), p=0.95),
                     partial(random_rotate, angle=tilt, axis="x", p=0.5),
                     partial(random_rotate, angle=tilt, axis="y", p=0.5),
                     random_scale, random_translation,
                     *([partial(random_jitter, sigma=cfg.jitter_sigma, clip=4 * cfg.jitter_sigma)]
                       if cfg.jitter_sigma > 0 else []),
                     partial(custom_elastic_distortion, params=cfg.elastic_params, p=cfg.elastic_p,
                             grid_size=cfg.grid_size),
                     *colour, crop, copy_origin, grid_sample_train, *post])


def val_pipeline(cfg: AugmentConfig) -> Pipeline:
    """The validation transforms of spec 3.3: no augmentation except ScanNet "-3"'s fixed z rotation."""
    post = _post(cfg)
    if cfg.pipeline == "scannet200":
        return Pipeline([mean_shift, copy_origin,
                         partial(grid_sample_train, grid_size=cfg.grid_size, from_elastic=False), *post])
    rotate = [] if cfg.val_rotate_z is None else [
        partial(random_rotate, angle=(cfg.val_rotate_z, cfg.val_rotate_z), axis="z", center=(0, 0, 0), p=1.0)]
    return Pipeline([mean_shift, *rotate, partial(custom_elastic_distortion, p=0.0, grid_size=cfg.grid_size),
                     copy_origin, grid_sample_train, *post])
