"""Sparse 3-D convolution on two backends (pure PyTorch, spconv) with one weight layout.

Reusable layers that know nothing of LaSSM (ARCHITECTURE.md): :class:`SparseTensor`, the
kernel maps, and the convolution modules that the backbones are built from. On the CPU, the
PyTorch backend's index work runs in numba (:mod:`~lassm.sparse.cpu_index`), with the same results.
"""

from . import cpu_index, gather_gemm, kernel_map
from .layers import (
    SparseConv,
    SparseConv3d,
    SparseInverseConv3d,
    SparseModule,
    SparseSequential,
    SubMConv3d,
    single_thread,
)
from .tensor import BACKENDS, SparseTensor, resolve_backend, spconv_available

__all__ = [
    "BACKENDS", "cpu_index", "gather_gemm", "kernel_map",
    "SparseConv", "SparseConv3d", "SparseInverseConv3d", "SparseModule", "SparseSequential",
    "SparseTensor", "SubMConv3d", "resolve_backend", "single_thread", "spconv_available",
]
