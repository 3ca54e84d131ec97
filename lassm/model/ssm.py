"""The Mamba2 mixer of LaSSM's SSM block (REFERENCE_SPEC 6.7) and its selective scan.

The scan exists three times (STYLE: the mamba_ssm pattern):

* :func:`ssd_sequential` — the recurrence in the paper's symbols, one step at a time; the
  reference for tests;
* :func:`ssd_chunked` — the same result by the chunked state-space-duality algorithm in plain
  PyTorch (quadratic within a chunk, a short recurrence across chunks); runs anywhere;
* mamba_ssm's Triton ``mamba_chunk_scan_combined`` — used on CUDA when importable.

For one sequence, head h, state S_h (P x N), zero initial state:

    S_t = exp(dt_t A) S_{t-1} + dt_t x_t B_t^T,      y_t = S_t C_t + D x_t.

Shapes: x (b, l, h, p), dt (b, l, h), A (h,), B and C (b, l, n) (one group shared by all
heads), D (h,).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types

import torch
import torch.nn.functional as F
from torch import nn

from .ssd_configs import pin_ssd_configs

# ------------------------------------------------------------------------------- the scan


def ssd_sequential(x, dt, A, B, C, D=None) -> torch.Tensor:
    """The recurrence, step by step: (b, l, h, p)."""
    b, length, h, p = x.shape
    state = x.new_zeros(b, h, p, B.shape[-1])  # (b, h, p, n)
    ys = []
    for t in range(length):
        decay = torch.exp(dt[:, t] * A)  # (b, h)
        inject = torch.einsum("bh,bhp,bn->bhpn", dt[:, t], x[:, t], B[:, t])
        state = decay[..., None, None] * state + inject
        ys.append(torch.einsum("bhpn,bn->bhp", state, C[:, t]))
    y = torch.stack(ys, 1)
    return y if D is None else y + x * D[:, None]


def _segment_sums(a: torch.Tensor) -> torch.Tensor:
    """(..., T) -> (..., T, T): entry [i, j] = a_{j+1} + ... + a_i for i >= j, -inf above.

    Built by masked cumulative sums rather than differences of one cumsum, which lose
    precision when the decays are long.
    """
    length = a.shape[-1]
    rep = a[..., None].expand(*a.shape, length)  # [..., i, j] = a_i
    strict = torch.tril(torch.ones(length, length, dtype=torch.bool, device=a.device), -1)
    sums = torch.cumsum(rep.masked_fill(~strict, 0), dim=-2)
    keep = torch.tril(torch.ones(length, length, dtype=torch.bool, device=a.device))
    return sums.masked_fill(~keep, -math.inf)


def ssd_chunked(x, dt, A, B, C, D=None, chunk_size: int = 256) -> torch.Tensor:
    """State-space duality in chunks of ``chunk_size`` steps: (b, l, h, p), same as sequential."""
    b, length, h, p = x.shape
    pad = (-length) % chunk_size
    if pad:  # zero steps (dt = 0) change no state and give zero outputs
        x, dt = F.pad(x, (0, 0, 0, 0, 0, pad)), F.pad(dt, (0, 0, 0, pad))
        B, C = F.pad(B, (0, 0, 0, pad)), F.pad(C, (0, 0, 0, pad))
    n_chunks = x.shape[1] // chunk_size
    xs = (x * dt[..., None]).view(b, n_chunks, chunk_size, h, p)  # dt_t x_t, (b, c, T, h, p)
    Bc = B.view(b, n_chunks, chunk_size, -1)  # (b, c, T, n)
    Cc = C.view(b, n_chunks, chunk_size, -1)
    a = (dt * A).view(b, n_chunks, chunk_size, h).permute(0, 3, 1, 2)  # log decay, (b, h, c, T)
    a_cum = torch.cumsum(a, -1)

    # within a chunk: y_i = sum_{j<=i} C_i.B_j exp(a_{j+1}+..+a_i) dt_j x_j
    decay = torch.exp(_segment_sums(a))  # (b, h, c, T, T)
    y = torch.einsum("bcin,bcjn,bhcij,bcjhp->bcihp", Cc, Bc, decay, xs)

    # state left at the end of each chunk by its own steps, then carried across chunks
    to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (b, h, c, T)
    chunk_states = torch.einsum("bcjn,bhcj,bcjhp->bchpn", Bc, to_end, xs)
    chunk_decay = torch.exp(a_cum[..., -1])  # (b, h, c)
    state = x.new_zeros(b, h, p, Bc.shape[-1])
    entering = []
    for c in range(n_chunks):
        entering.append(state)
        state = chunk_decay[:, :, c, None, None] * state + chunk_states[:, c]
    entering = torch.stack(entering, 1)  # (b, c, h, p, n) state before each chunk
    y = y + torch.einsum("bcin,bchpn,bhci->bcihp", Cc, entering, torch.exp(a_cum))
    y = y.reshape(b, n_chunks * chunk_size, h, p)[:, :length]
    x = x[:, :length]
    return y if D is None else y + x * D[:, None]


def _import_without_init(package: str, module: str):
    """Import ``package.module`` when ``package/__init__`` needs a CUDA extension that is absent.

    mamba_ssm's ``__init__`` imports its compiled selective-scan extension; its Triton SSD
    kernels need none. Register an empty package with the right path, then import the module.
    """
    try:
        return importlib.import_module(f"{package}.{module}")
    except ImportError:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return None
        stub = types.ModuleType(package)
        stub.__path__ = list(spec.submodule_search_locations)
        sys.modules[package] = stub
        try:
            return importlib.import_module(f"{package}.{module}")
        except ImportError:
            del sys.modules[package]
            return None


_TRITON = {}


def triton_ssd():
    """mamba_ssm's ``mamba_chunk_scan_combined`` if importable, else None (cached); its kernels keep one
    launch configuration each (:mod:`lassm.model.ssd_configs`)."""
    if "fn" not in _TRITON:
        module = _import_without_init("mamba_ssm", "ops.triton.ssd_combined")
        _TRITON["fn"] = getattr(module, "mamba_chunk_scan_combined", None) if module else None
        if _TRITON["fn"] is not None:
            pin_ssd_configs()  # one launch configuration per kernel: no minutes of autotuning per process
    return _TRITON["fn"]


def selective_scan(x, dt, A, B, C, D, chunk_size: int = 256, use_triton: bool = True) -> torch.Tensor:
    """The scan with the fast path where it exists (one group: B, C are (b, l, n))."""
    fn = triton_ssd() if (use_triton and x.is_cuda) else None
    if fn is not None:
        return fn(x, dt, A, B[:, :, None], C[:, :, None], chunk_size, D=D)
    return ssd_chunked(x, dt, A, B, C, D, chunk_size)


# ------------------------------------------------------------------------------- the mixer


def causal_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                          use_kernel: bool = True) -> torch.Tensor:
    """SiLU(causal depthwise conv) over time: x (b, l, d), weight (d, 1, w) -> (b, l, d)."""
    if use_kernel and x.is_cuda:
        fn = causal_conv1d_kernel()
        if fn is not None:
            return fn(x.transpose(1, 2), weight.squeeze(1), bias, activation="silu").transpose(1, 2)
    width = weight.shape[-1]
    out = F.conv1d(x.transpose(1, 2), weight, bias, padding=width - 1, groups=x.shape[-1])
    return F.silu(out[..., : x.shape[1]]).transpose(1, 2)


def causal_conv1d_kernel():
    """The causal-conv1d package's ``causal_conv1d_fn`` when it and its CUDA extension import, else None."""
    if "conv" not in _TRITON:
        fn = None
        try:  # the Python wrapper needs its compiled extension to be usable
            importlib.import_module("causal_conv1d_cuda")
            fn = importlib.import_module("causal_conv1d").causal_conv1d_fn
        except ImportError:
            fn = None
        _TRITON["conv"] = fn
    return _TRITON["conv"]


class Mamba2Mixer(nn.Module):
    """LaSSM's Mamba2 mixer (spec 6.7): parameter names and shapes follow the reference.

    Differs from the standard Mamba2 block on purpose, as the reference does (spec 11.1.12):
    the output is LayerNorm(y) * SiLU(z), not a gated RMSNorm of y * SiLU(z).
    """

    def __init__(self, d_model: int = 256, d_state: int = 64, head_dim: int = 64, expand: int = 2,
                 conv_kernel: int = 4, chunk_size: int = 256, dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_floor: float = 1e-4, use_kernels: bool = True):
        super().__init__()
        inner = expand * d_model  # E
        if inner % head_dim:
            raise ValueError(f"head_dim: {head_dim} does not divide the inner width {inner}")
        self.inner, self.heads, self.head_dim, self.d_state = inner, inner // head_dim, head_dim, d_state
        self.chunk_size, self.use_kernels = chunk_size, use_kernels
        conv_width = inner + 2 * d_state  # x, B, C
        self.in_proj = nn.Linear(d_model, inner + conv_width + self.heads, bias=False)
        self.conv1d = nn.Conv1d(conv_width, conv_width, conv_kernel, groups=conv_width,
                                padding=conv_kernel - 1)
        dt = torch.exp(torch.rand(self.heads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_log = nn.Parameter(torch.log(torch.empty(self.heads).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(self.heads))
        self.norm = nn.LayerNorm(inner)
        self.out_proj = nn.Linear(inner, d_model, bias=False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """(b, l, d_model) independent sequences -> (b, l, d_model)."""
        b, length, _ = u.shape
        z, xbc, dt = torch.split(self.in_proj(u), [self.inner, self.conv1d.in_channels, self.heads], -1)
        dt = F.softplus(dt + self.dt_bias)  # (b, l, H); no clamping (time_step_limit (0, inf))
        xbc = causal_depthwise_conv(xbc, self.conv1d.weight, self.conv1d.bias, self.use_kernels)
        x, B, C = torch.split(xbc, [self.inner, self.d_state, self.d_state], -1)
        A = -torch.exp(self.A_log.float())  # (H,)
        y = selective_scan(x.reshape(b, length, self.heads, self.head_dim), dt, A, B, C, self.D,
                           self.chunk_size, self.use_kernels)
        y = y.reshape(b, length, self.inner)
        y = self.norm(y.float()) * F.silu(z.float())  # computed in float32, as the reference
        return self.out_proj(y.to(u.dtype))
