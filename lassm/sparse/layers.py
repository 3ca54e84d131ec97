"""Sparse convolution layers with one parameter layout and two backends.

Every convolution stores ``weight`` as spconv 2.x does, ``(C_out, kx, ky, kz, C_in)``, and an
optional ``bias``, so a state_dict loads on either backend and matches spconv modules key for
key. The backend travels with the input :class:`SparseTensor` (``x.backend``):

* ``torch``: kernel maps from :mod:`lassm.sparse.kernel_map` and the gather-GEMM autograd
  functions of :mod:`lassm.sparse.gather_gemm`; CPU and GPU, trainable.
* ``spconv``: the same call through spconv's own convolution with our weight tensors. spconv's
  CPU build is forward-only and needs one torch thread (it gives wrong results otherwise), so
  CPU calls are wrapped in :func:`single_thread` and refuse to build a graph for backward.

:class:`SparseSequential` applies plain ``nn`` modules (BatchNorm1d, ReLU, Identity) to the
features and sparse modules to the tensor, like spconv's container of the same name.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from .gather_gemm import SparseConvFunction
from .kernel_map import DownMap, SubmMap, build_down_map, build_subm_map
from .tensor import SparseTensor


@contextlib.contextmanager
def single_thread():
    """Run with one torch thread: spconv's CPU forward gives wrong, varying results with more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Autocast's dtype when autocast is on for the features' device, else the features' dtype."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


class SparseModule(nn.Module):
    """A module whose forward takes and returns a :class:`SparseTensor`."""


class SparseConv(SparseModule):
    """Base of the three convolutions: parameters, init, dtype handling and dispatch."""

    subm = inverse = False
    stride = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = False,
                 indice_key: str | None = None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_size
        self.indice_key = indice_key
        k = kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, k, k, k, in_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # spconv's default: kaiming-uniform with a = sqrt(5) over fan_in = C_in * kernel volume,
        # i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the same bound for the bias.
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size ** 3)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, bias={self.bias is not None}, indice_key={self.indice_key!r}")

    def kernel_matrix(self, dtype: torch.dtype) -> torch.Tensor:
        """(K, C_in, C_out) view of the weight for the gather-GEMM functions."""
        k3 = self.kernel_size ** 3
        return self.weight.to(dtype).reshape(self.out_channels, k3, self.in_channels).permute(1, 2, 0)

    def forward(self, x: SparseTensor) -> SparseTensor:
        if x.feats.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: input has {x.feats.shape[1]} channels, "
                             f"expected {self.in_channels}")
        if x.backend == "spconv":
            return self._forward_spconv(x)
        dtype = _compute_dtype(x.feats)
        with torch.autocast(x.feats.device.type, enabled=False):
            out = self._forward_torch(x, x.feats.to(dtype))
        if self.bias is not None:
            out = out.replace(out.feats + self.bias.to(dtype))
        return out

    def _forward_torch(self, x: SparseTensor, feats: torch.Tensor) -> SparseTensor:
        raise NotImplementedError

    def _cached(self, x: SparseTensor, kind: type, build):
        """The kernel map under ``indice_key`` (built on first use), checked against ``x``."""
        if self.indice_key is None:
            return build()
        found = x.maps.get(self.indice_key)
        if found is None:
            found = x.maps[self.indice_key] = build()
        if not isinstance(found, kind):
            raise ValueError(f"indice_key {self.indice_key!r} holds a {type(found).__name__}, "
                             f"but {type(self).__name__} needs a {kind.__name__}")
        return found

    # spconv backend ---------------------------------------------------------------------

    def _spconv_module(self):
        module = self.__dict__.get("_spconv")
        if module is None:
            import spconv.pytorch as spconv

            cls = {(True, False): spconv.SubMConv3d, (False, False): spconv.SparseConv3d,
                   (False, True): spconv.SparseInverseConv3d}[(self.subm, self.inverse)]
            kwargs = {"bias": self.bias is not None, "indice_key": self.indice_key}
            if self.subm:
                kwargs["padding"] = self.kernel_size // 2
            elif not self.inverse:
                kwargs["stride"] = self.stride
            # Not registered as a submodule: it only lends its forward; parameters stay ours.
            module = cls(self.in_channels, self.out_channels, self.kernel_size, **kwargs)
            module.weight = module.bias = None  # ours are passed to each call
            self.__dict__["_spconv"] = module
        return module

    def _forward_spconv(self, x: SparseTensor) -> SparseTensor:
        import spconv.pytorch as spconv

        module = self._spconv_module()
        on_cpu = x.feats.device.type == "cpu"
        if on_cpu and torch.is_grad_enabled() and (x.feats.requires_grad or self.weight.requires_grad):
            raise RuntimeError("spconv's CPU build has no backward pass; use sparse_backend='torch' "
                               "for training on the CPU (or run under torch.no_grad())")
        dtype = _compute_dtype(x.feats)
        if dtype == torch.bfloat16:
            dtype = torch.float32  # spconv has no bfloat16 kernels (CPU autocast's dtype)
        weight = self.weight.to(dtype)
        bias = None if self.bias is None else self.bias.to(dtype)
        tensor = spconv.SparseConvTensor(x.feats.to(dtype), x.coords, list(x.spatial_shape), x.batch_size,
                                         indice_dict=x.maps)
        with single_thread() if on_cpu else contextlib.nullcontext():
            out = module._conv_forward(self.training, tensor, weight, bias)
        return SparseTensor(out.features, out.indices, tuple(out.spatial_shape), x.batch_size, "spconv",
                            out.indice_dict)


class SubMConv3d(SparseConv):
    """Submanifold convolution: output voxels = input voxels, ``out[v] = sum_k x[v + o_k] W_k``."""

    subm = True

    def _forward_torch(self, x: SparseTensor, feats: torch.Tensor) -> SparseTensor:
        if self.kernel_size == 1:
            # spconv 2.x computes a 1x1x1 conv as feats @ weight.view(C_in, C_out): the
            # (C_out, 1, 1, 1, C_in) buffer is read as (C_in, C_out), not transposed. Matching
            # it keeps checkpoints interchangeable between the backends.
            return x.replace(feats @ self.weight.to(feats.dtype).view(self.in_channels, self.out_channels))
        kmap = self._cached(x, SubmMap, lambda: build_subm_map(x.coords, x.spatial_shape, self.kernel_size))
        if kmap.pairs.n_in != len(x) or kmap.kernel_size != self.kernel_size:
            raise ValueError(f"indice_key {self.indice_key!r} was built for {kmap.pairs.n_in} voxels and "
                             f"kernel {kmap.kernel_size}, reused on {len(x)} voxels and kernel "
                             f"{self.kernel_size}")
        return x.replace(SparseConvFunction.apply(feats, self.kernel_matrix(feats.dtype), kmap.pairs, False))


class SparseConv3d(SparseConv):
    """Kernel-2 stride-2 convolution (downsampling), spconv's ``SparseConv3d(k=2, s=2)``."""

    stride = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, stride: int = 2,
                 bias: bool = False, indice_key: str | None = None):
        if kernel_size != 2 or stride != 2:
            raise ValueError(f"SparseConv3d supports kernel_size=2, stride=2 (the U-Nets' "
                             f"downsampling); got kernel_size={kernel_size}, stride={stride}")
        super().__init__(in_channels, out_channels, 2, bias, indice_key)

    def _forward_torch(self, x: SparseTensor, feats: torch.Tensor) -> SparseTensor:
        kmap = self._cached(x, DownMap, lambda: build_down_map(x.coords, x.spatial_shape))
        if kmap.pairs.n_in != len(x):
            raise ValueError(f"indice_key {self.indice_key!r} was built for {kmap.pairs.n_in} voxels, "
                             f"reused on {len(x)}")
        out = SparseConvFunction.apply(feats, self.kernel_matrix(feats.dtype), kmap.pairs, False)
        return SparseTensor(out, kmap.out_coords, kmap.out_shape, x.batch_size, x.backend, x.maps)


class SparseInverseConv3d(SparseConv):
    """Upsampling onto exactly the voxels that the ``indice_key`` downsampling started from."""

    inverse = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, bias: bool = False,
                 indice_key: str | None = None):
        if kernel_size != 2 or indice_key is None:
            raise ValueError("SparseInverseConv3d needs kernel_size=2 and the indice_key of the downsampling "
                             f"it inverts; got kernel_size={kernel_size}, indice_key={indice_key!r}")
        super().__init__(in_channels, out_channels, 2, bias, indice_key)

    def _forward_torch(self, x: SparseTensor, feats: torch.Tensor) -> SparseTensor:
        kmap = x.maps.get(self.indice_key)
        if not isinstance(kmap, DownMap):
            raise ValueError(f"SparseInverseConv3d: no downsampling map under indice_key "
                             f"{self.indice_key!r}; run the matching SparseConv3d first")
        if kmap.pairs.n_out != len(x):
            raise ValueError(f"SparseInverseConv3d: indice_key {self.indice_key!r} has "
                             f"{kmap.pairs.n_out} coarse voxels, input has {len(x)}")
        # same pairs, read from coarse to fine, same kernel slot k (as spconv does)
        out = SparseConvFunction.apply(feats, self.kernel_matrix(feats.dtype), kmap.pairs, True)
        return SparseTensor(out, kmap.in_coords, kmap.in_shape, x.batch_size, x.backend, x.maps)


class SparseSequential(nn.Sequential, SparseModule):
    """``nn.Sequential`` over a :class:`SparseTensor`: dense modules act on its features."""

    def forward(self, x: SparseTensor) -> SparseTensor:
        for module in self:
            if isinstance(module, SparseModule):
                x = module(x)
            else:
                x = x.replace(module(x.feats))
        return x
