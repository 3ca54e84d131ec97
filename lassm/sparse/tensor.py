"""The sparse voxel tensor shared by both convolution backends.

A batch of scenes is one packed tensor: ``coords`` (N, 4) int32 rows ``[batch, x, y, z]`` and
``feats`` (N, C), plus the integer ``spatial_shape`` (X, Y, Z) the coordinates live in. Kernel
maps built by one layer are cached in ``maps`` under the layer's ``indice_key`` and reused by
every later layer with that key (the same convention as spconv's ``indice_key``), including
the inverse convolution that upsamples back onto a downsampling's voxel set.
"""

from __future__ import annotations

import math

import torch

BACKENDS = ("auto", "torch", "spconv")
MAX_KEY = 2**62  # voxel keys (linear_keys, with kernel padding) must stay below this in int64
KEY_PAD = 8  # padding margin the key-space check leaves for kernel radii and downsampling


def spconv_available() -> bool:
    try:
        import spconv.pytorch  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(name: str, device: torch.device | str) -> str:
    """``auto`` -> ``spconv`` on a CUDA device when spconv imports, else ``torch``.

    The one place the sparse-convolution fast path is chosen (STYLE rule 8).
    """
    if name not in BACKENDS:
        raise ValueError(f"sparse_backend: unknown backend {name!r}; expected one of {BACKENDS}")
    device = torch.device(device)
    if name == "auto":
        return "spconv" if device.type == "cuda" and spconv_available() else "torch"
    if name == "spconv" and not spconv_available():
        raise ValueError("sparse_backend='spconv' but spconv is not installed "
                         "(pip install spconv-cu126 on a GPU machine, spconv for the CPU forward); "
                         "use 'torch' or 'auto'")
    return name


class SparseTensor:
    """Voxel features of a packed batch; see the module docstring.

    Build one with :meth:`from_voxels` (which validates the input); layers derive new tensors
    with :meth:`replace` (same voxels, new features) and share the ``maps`` cache.
    """

    __slots__ = ("feats", "coords", "spatial_shape", "batch_size", "backend", "maps")

    def __init__(self, feats: torch.Tensor, coords: torch.Tensor, spatial_shape: tuple[int, int, int],
                 batch_size: int, backend: str = "torch", maps: dict | None = None):
        self.feats = feats  # (N, C)
        self.coords = coords  # (N, 4) int32 [batch, x, y, z]
        self.spatial_shape = tuple(int(s) for s in spatial_shape)
        self.batch_size = int(batch_size)
        self.backend = backend  # "torch" or "spconv" (already resolved)
        self.maps = {} if maps is None else maps

    @classmethod
    def from_voxels(cls, feats: torch.Tensor, coords: torch.Tensor,
                    spatial_shape: tuple[int, int, int] | None = None, batch_size: int | None = None,
                    backend: str = "auto", check: bool = True,
                    voxel_size: float | None = None,
                    bounds: tuple[list[int], list[int]] | None = None) -> SparseTensor:
        """Validate and wrap voxels.

        coords: (N, 4) integer ``[batch, x, y, z]`` with batch ids 0..B-1, every scene non-empty.
        spatial_shape: defaults to the coordinate maximum + 1 per axis.
        check: verify non-negative, in-shape, unique voxels (one sort; skip only for trusted input).
        voxel_size: metres per voxel, only used to state the extent in metres in error messages.
        bounds: the per-column minimum and maximum of ``coords`` as host ints, when the caller already has
        them (no host round trip here); they must be exactly those of ``coords``.
        """
        if coords.dim() != 2 or coords.shape[1] != 4:
            raise ValueError(f"coords: expected shape (N, 4) [batch, x, y, z], got {tuple(coords.shape)}")
        if coords.dtype.is_floating_point or coords.dtype == torch.bool:
            raise ValueError(f"coords: expected an integer tensor, got {coords.dtype}")
        if feats.dim() != 2:
            raise ValueError(f"feats: expected shape (N, C), got {tuple(feats.shape)}")
        if feats.shape[0] != coords.shape[0]:
            raise ValueError(f"feats has {feats.shape[0]} rows but coords has {coords.shape[0]}; "
                             "they must describe the same voxels")
        if coords.shape[0] == 0:
            raise ValueError("coords: empty batch (no voxels)")
        if feats.device != coords.device:
            raise ValueError(f"feats on {feats.device} but coords on {coords.device}")
        lo, hi = (torch.stack([coords.min(0).values, coords.max(0).values]).tolist() if bounds is None
                  else (list(bounds[0]), list(bounds[1])))  # one host copy, or none
        if max(hi) >= 2**31:
            raise ValueError(_too_large(f"coordinate maximum {hi[1:]} (batch id {hi[0]}) does not fit int32",
                                        hi[1:], voxel_size))
        coords = coords.to(torch.int32).contiguous()
        if min(lo) < 0:
            raise ValueError(f"coords: negative entries (minimum per column {lo}); batch ids and grid "
                             "coordinates must be >= 0 (shift the grid by its minimum first)")
        if spatial_shape is None:
            spatial_shape = tuple(h + 1 for h in hi[1:])
        spatial_shape = tuple(int(s) for s in spatial_shape)
        if len(spatial_shape) != 3:
            raise ValueError(f"spatial_shape: expected 3 sizes, got {spatial_shape}")
        batches = max(hi[0] + 1, int(batch_size or 0))
        cells = batches * math.prod(s + 2 * KEY_PAD for s in spatial_shape)  # Python ints: exact
        if cells >= MAX_KEY:
            raise ValueError(_too_large(f"{batches} x {spatial_shape} voxels exceed the int64 voxel keys",
                                        spatial_shape, voxel_size))
        outside = [axis for axis in range(3) if hi[axis + 1] >= spatial_shape[axis]]
        if outside:
            raise ValueError(f"coords: maximum {hi[1:]} lies outside spatial_shape {spatial_shape} "
                             f"on axis {outside}")
        found_batches = hi[0] + 1
        batch_size = found_batches if batch_size is None else int(batch_size)
        if found_batches > batch_size:
            raise ValueError(f"coords: batch id {hi[0]} but batch_size is {batch_size}")
        if check:
            # scenes without voxels and duplicate voxels, found on the device, reported in one host round trip
            counts = torch.zeros(batch_size, dtype=torch.long, device=coords.device).index_add_(
                0, coords[:, 0].long(), torch.ones_like(coords[:, 0], dtype=torch.long))
            keys = torch.sort(linear_keys(coords, spatial_shape)).values
            dup = keys[1:] == keys[:-1]
            empty_scene, duplicate = torch.stack([(counts == 0).any(), dup.any()]).tolist()
            if empty_scene:
                empty = torch.nonzero(counts == 0).flatten().tolist()
                raise ValueError(f"coords: scene(s) {empty} of the batch have no voxels "
                                 "(empty batch entries)")
            if duplicate:
                first = keys[1:][dup][0]
                example = unravel_keys(first.view(1), spatial_shape)[0].tolist()
                raise ValueError(f"coords: {int(dup.sum())} duplicate voxel(s), e.g. {example}; "
                                 "voxelize so that each [batch, x, y, z] appears once")
        return cls(feats, coords, spatial_shape, batch_size, resolve_backend(backend, feats.device))

    def replace(self, feats: torch.Tensor) -> SparseTensor:
        """The same voxels (and kernel-map cache) with new features."""
        return SparseTensor(feats, self.coords, self.spatial_shape, self.batch_size, self.backend, self.maps)

    def __len__(self) -> int:
        return self.coords.shape[0]

    def __repr__(self) -> str:
        return (f"SparseTensor(voxels={len(self)}, channels={self.feats.shape[1]}, "
                f"shape={self.spatial_shape}, batch={self.batch_size}, backend={self.backend})")


def _too_large(reason: str, extent, voxel_size: float | None) -> str:
    """The error for a cloud too large for the voxel grid, with its extent in voxels (and metres)."""
    metres = "" if voxel_size is None else (
        f" = {[round(e * voxel_size, 1) for e in extent]} m at a voxel size of {voxel_size:g} m")
    return (f"coords: coordinates too large for the voxel grid: extent {list(extent)} voxels{metres}; "
            f"{reason}. Check the scan's units (millimetres? divide by 1000) or crop it")


def linear_keys(coords: torch.Tensor, spatial_shape, pad: int = 0) -> torch.Tensor:
    """(N,) int64 row-major index of ``[batch, x+pad, y+pad, z+pad]`` in a grid widened by ``pad``.

    With ``pad`` >= the kernel radius, every neighbour of a voxel stays inside the widened grid,
    so a kernel offset is one constant added to the key.
    """
    sx, sy, sz = (s + 2 * pad for s in spatial_shape)
    c = coords.long()
    return ((c[:, 0] * sx + c[:, 1] + pad) * sy + c[:, 2] + pad) * sz + c[:, 3] + pad


def unravel_keys(keys: torch.Tensor, spatial_shape, pad: int = 0) -> torch.Tensor:
    """Inverse of :func:`linear_keys`: (N, 4) int32 coordinates."""
    sx, sy, sz = (s + 2 * pad for s in spatial_shape)
    z = keys % sz
    y = (keys // sz) % sy
    x = (keys // (sz * sy)) % sx
    b = keys // (sz * sy * sx)
    return torch.stack([b, x - pad, y - pad, z - pad], 1).to(torch.int32)
