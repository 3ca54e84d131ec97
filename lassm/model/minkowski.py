"""MinkowskiEngine state_dicts in our layout: Mask3D's ``Res16UNet34C`` backbone (the ScanNet200 recipe's
starting point, spec 4.2 and 10.2) and the authors' whole ScanNet200 LaSSM checkpoint, whose backbone was
trained with MinkowskiEngine and whose decoder keys are ours already.

=====================================================  ==================================================
MinkowskiEngine / Mask3D key                            lassm key
=====================================================  ==================================================
``<conv>.kernel``  (K, C_in, C_out), K = k^3            ``<conv>.weight`` (C_out, k, k, k, C_in)
``<conv>.kernel``  (C_in, C_out)  (1x1x1 convolution)   ``<conv>.weight`` (C_out, 1, 1, 1, C_in), see below
``<norm>.bn.{weight,bias,running_*,num_batches_*}``     ``<norm>.{weight,bias,running_*,num_batches_*}``
``final.kernel``, ``final.bias``                         dropped (the layer is never called, spec 4.2)
``conv0p1s1.kernel`` at the top level (a bare backbone)  every key gets ``backbone.`` in front
=====================================================  ==================================================

Kernel offsets: MinkowskiEngine enumerates a cubic kernel with the x offset varying fastest
(its ``kernel_region`` iterator increments axis 0 first; offsets -r..r for odd kernels, 0..1
for the stride-2 kernel), spconv flattens ``(kx, ky, kz)`` with z fastest. The conversion
reorders the K axis accordingly. 1x1x1 weights are stored so that spconv's reading of them
(the ``(C_out, 1, 1, 1, C_in)`` buffer taken as a ``(C_in, C_out)`` matrix) gives back the
MinkowskiEngine matrix.

Wrapper prefixes (``module.`` from DDP and the like) are removed by the caller
(:func:`lassm.model.checkpoint.lassm_state_dict`) before these functions see the keys.
"""

from __future__ import annotations

import torch

BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
BARE_STEM = "conv0p1s1.kernel"  # Res16UNet34C's first convolution: a file holding it at the top level is bare


def is_minkowski(state: dict) -> bool:
    """Whether a (prefix-stripped) state_dict holds MinkowskiEngine entries: convolution ``.kernel`` tensors.
    Our modules never name a parameter ``kernel``, so one such key tells the layouts apart."""
    return any(key.endswith(".kernel") for key in state)


def minkowski_kernel_to_spconv(kernel: torch.Tensor) -> torch.Tensor:
    """(K, C_in, C_out) MinkowskiEngine kernel (x fastest) -> (C_out, k, k, k, C_in) weight.

    ValueError when K is not a cube (k^3) or the tensor is neither 2- nor 3-dimensional."""
    if kernel.dim() == 2:  # 1x1x1 convolution
        c_in, c_out = kernel.shape
        return kernel.contiguous().reshape(c_out, 1, 1, 1, c_in)
    if kernel.dim() != 3:
        raise ValueError(f"expected a (K, C_in, C_out) or (C_in, C_out) kernel, "
                         f"got shape {tuple(kernel.shape)}")
    volume, c_in, c_out = kernel.shape
    k = round(volume ** (1 / 3))
    if k ** 3 != volume:
        raise ValueError(f"kernel with {volume} offsets is not a cube")
    # index = x + k*y + k*k*z  ->  axes (z, y, x, C_in, C_out)  ->  (C_out, x, y, z, C_in)
    return kernel.reshape(k, k, k, c_in, c_out).permute(4, 2, 1, 0, 3).contiguous()


def describe_kernel(shape: tuple[int, ...], minkowski: bool) -> str:
    """A convolution weight's shape for a person: ``5x5x5, 3 -> 32 channels``."""
    if minkowski:
        if len(shape) == 2:
            return f"1x1x1, {shape[0]} -> {shape[1]} channels"
        k = round(shape[0] ** (1 / 3))
        size = f"{k}x{k}x{k}" if k ** 3 == shape[0] else f"{shape[0]} offsets"
        return f"{size}, {shape[1]} -> {shape[2]} channels"
    return f"{'x'.join(map(str, shape[1:4]))}, {shape[4]} -> {shape[0]} channels"


def minkowski_to_lassm(state_dict: dict, prefix: str = "", source: str = "checkpoint") -> dict:
    """Rename and reshape a MinkowskiEngine Res16UNet34C state_dict (see the module table).

    prefix: only keys starting with it are kept, with it in front (e.g. ``"backbone."``); "" keeps
    every key, converting those in MinkowskiEngine's layout and passing the rest (a decoder's) unchanged.
    A kernel that cannot be converted raises ValueError naming ``source`` and the key.
    """
    out = {}
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if not key.startswith(prefix):
            continue
        parts = key.split(".")
        if len(parts) >= 2 and parts[-2] == "final" and parts[-1] in ("kernel", "bias"):
            continue
        if parts[-1] == "kernel":
            try:
                out[key[: -len("kernel")] + "weight"] = minkowski_kernel_to_spconv(value)
            except ValueError as err:
                raise ValueError(f"{source}: {key} {tuple(value.shape)}: {err}; not a MinkowskiEngine "
                                 f"convolution kernel of (k^3, C_in, C_out)") from None
            continue
        if len(parts) >= 3 and parts[-2] == "bn" and parts[-1] in BN_FIELDS:
            key = ".".join(parts[:-2] + parts[-1:])
        out[key] = value
    return out


def minkowski_sources(state: dict) -> dict[str, tuple[str, tuple[int, ...]]]:
    """For each converted key of a MinkowskiEngine state_dict (prefix-stripped), the file's own key and
    shape, so that a mismatch can be reported in the file's terms."""
    out = {}
    for key, value in state.items():
        if key.endswith(".kernel") and torch.is_tensor(value):
            out[key[: -len("kernel")] + "weight"] = (key, tuple(value.shape))
    return out


def convert_minkowski(state: dict, source: str = "checkpoint") -> tuple[dict, dict]:
    """A prefix-stripped MinkowskiEngine state_dict (a bare Res16UNet34C, a ``backbone.*`` one, or a whole
    LaSSM model) -> (our state_dict, :func:`minkowski_sources` of it), backbone keys under ``backbone.``."""
    if BARE_STEM in state:
        state = {f"backbone.{k}": v for k, v in state.items()}
    return minkowski_to_lassm(state, "", source), minkowski_sources(state)
