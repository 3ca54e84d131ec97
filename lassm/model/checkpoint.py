"""Checkpoint files: reading them as data only, writing them atomically, and loading weights trained
elsewhere into our modules.

:func:`read_checkpoint` is the one loader of every checkpoint in lassm (ours, the authors', Mask3D's):
``torch.load(weights_only=True)``, which rebuilds tensors, numbers, strings and containers and never
runs code from the file, so a checkpoint downloaded from anywhere is safe to open.
:func:`save_checkpoint` writes one atomically (an interrupted write leaves the old file).

SpUNet-v2m1 needs no conversion: :class:`lassm.model.SpUNet` has the reference's module
names and spconv's weight layout, so the authors' ``backbone.*`` entries load as they are.

Mask3D's ``Res16UNet34C`` was trained with MinkowskiEngine, whose state_dict differs:

=====================================================  ==================================================
MinkowskiEngine / Mask3D key                            lassm key
=====================================================  ==================================================
``<conv>.kernel``  (K, C_in, C_out), K = k^3            ``<conv>.weight`` (C_out, k, k, k, C_in)
``<conv>.kernel``  (C_in, C_out)  (1x1x1 convolution)   ``<conv>.weight`` (C_out, 1, 1, 1, C_in), see below
``<norm>.bn.{weight,bias,running_*,num_batches_*}``     ``<norm>.{weight,bias,running_*,num_batches_*}``
``final.kernel``, ``final.bias``                         dropped (the layer is never called, spec 4.2)
``module.`` prefix (DDP)                                 removed
=====================================================  ==================================================

Kernel offsets: MinkowskiEngine enumerates a cubic kernel with the x offset varying fastest
(its ``kernel_region`` iterator increments axis 0 first; offsets -r..r for odd kernels, 0..1
for the stride-2 kernel), spconv flattens ``(kx, ky, kz)`` with z fastest. The conversion
reorders the K axis accordingly. 1x1x1 weights are stored so that spconv's reading of them
(the ``(C_out, 1, 1, 1, C_in)`` buffer taken as a ``(C_in, C_out)`` matrix) gives back the
MinkowskiEngine matrix.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import NamedTuple

import torch

from ..data.io import DataError, atomic_path

_BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"):
    """A checkpoint file's contents, loaded as data only (never code); DataError names the file otherwise.

    A file that needs Python objects beyond tensors and plain data (a pickled class, a function) is
    refused rather than unpickled: such a file can run arbitrary code when opened.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: holds Python objects other than tensors and plain data ({first[:200]}); "
                        f"lassm opens checkpoints as data only and will not unpickle code from a file. "
                        f"Re-save its state_dict with torch.save(...) in a trusted session.") from err
    except Exception as err:  # torch raises RuntimeError, EOFError, struct.error, zipfile errors, ...
        raise DataError(f"{path}: not a readable torch checkpoint, truncated or corrupt "
                        f"({type(err).__name__}: {str(err)[:200]})") from err


def save_checkpoint(obj: dict, path: str | Path) -> Path:
    """Write ``obj`` with torch.save atomically: readers see the old file or the whole new one."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def minkowski_kernel_to_spconv(kernel: torch.Tensor) -> torch.Tensor:
    """(K, C_in, C_out) MinkowskiEngine kernel (x fastest) -> (C_out, k, k, k, C_in) weight."""
    if kernel.dim() == 2:  # 1x1x1 convolution
        c_in, c_out = kernel.shape
        return kernel.contiguous().reshape(c_out, 1, 1, 1, c_in)
    volume, c_in, c_out = kernel.shape
    k = round(volume ** (1 / 3))
    if k ** 3 != volume:
        raise ValueError(f"kernel with {volume} offsets is not a cube")
    # index = x + k*y + k*k*z  ->  axes (z, y, x, C_in, C_out)  ->  (C_out, x, y, z, C_in)
    return kernel.reshape(k, k, k, c_in, c_out).permute(4, 2, 1, 0, 3).contiguous()


def minkowski_to_lassm(state_dict: dict, prefix: str = "") -> dict:
    """Rename and reshape a MinkowskiEngine Res16UNet34C state_dict (see the module table).

    prefix: kept in front of every key (e.g. ``"backbone."`` when the file stores the backbone
    inside a whole model); keys not starting with it are ignored.
    """
    out = {}
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name.startswith("final."):
            continue
        if name.endswith(".kernel"):
            out[prefix + name[: -len("kernel")] + "weight"] = minkowski_kernel_to_spconv(value)
            continue
        parts = name.split(".")
        if len(parts) >= 3 and parts[-2] == "bn" and parts[-1] in _BN_FIELDS:
            name = ".".join(parts[:-2] + parts[-1:])
        out[prefix + name] = value
    return out


def load_minkowski_backbone(model: torch.nn.Module, path: str | Path, prefix: str = "backbone.") -> None:
    """Load a Mask3D/MinkowskiEngine checkpoint into :class:`~lassm.model.Res16UNet34C`, strictly.

    Unlike the reference's silent non-strict load (spec 11.2.12), a file whose keys do not
    match (for example prefixed ``unet.`` instead of ``backbone.``) is an error.
    """
    blob = read_checkpoint(path)
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict (or a dict with 'state_dict')")
    converted = minkowski_to_lassm(state, prefix)
    converted = {k[len(prefix):]: v for k, v in converted.items()}
    if not converted:
        found = sorted({k.split(".")[0] for k in state})[:5]
        raise ValueError(f"{path}: no keys start with {prefix!r} (first-level names found: {found})")
    missing, unexpected = model.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: does not match {type(model).__name__}: missing {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}")



WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")  # DDP, Lightning-style wrappers, torch.compile


class LoadReport(NamedTuple):
    missing: list[str]  # model parameters the checkpoint did not provide
    unexpected: list[str]  # checkpoint entries the model has no place for
    skipped: list[str]  # entries dropped on purpose (skip_keys)


def _state_dict_of(blob, source: str) -> dict:
    """The state_dict inside a checkpoint: its ``model``/``state_dict``/``net`` entry or the dict itself."""
    if isinstance(blob, dict):
        for key in ("state_dict", "model", "net"):
            if isinstance(blob.get(key), dict):
                return blob[key]
        if all(isinstance(v, torch.Tensor) for v in blob.values()):
            return blob
    raise ValueError(f"{source}: expected a state_dict or a dict holding one under 'state_dict', "
                     f"'model' or 'net'")


def strip_prefixes(state_dict: dict, prefixes: tuple[str, ...] = WRAPPER_PREFIXES) -> dict:
    """Remove wrapper prefixes (repeatedly: ``module._orig_mod.x`` -> ``x``) from every key."""
    out = {}
    for key, value in state_dict.items():
        stripped = True
        while stripped:
            stripped = False
            for p in prefixes:
                if key.startswith(p):
                    key, stripped = key[len(p):], True
        out[key] = value
    return out


def load_lassm_checkpoint(model: torch.nn.Module, source, skip_keys: tuple[str, ...] = (),
                          strict: bool = False) -> LoadReport:
    """Load a Pointcept-format LaSSM checkpoint (the authors' released ``model_best.pth``) or ours.

    source: a path, or an already loaded checkpoint / state_dict. Wrapper prefixes (``module.``
    from DDP and the like) are stripped; entries whose key contains any of ``skip_keys`` are
    dropped (the reference's ScanNet++ loader skips ``sp_seg_head.2`` and ``out_cls.2``, the only
    class-count-dependent layers, spec 10.2). Shapes must match. Returns what was missing and
    unexpected; ``strict=True`` turns either into an error instead.
    """
    name = str(source) if isinstance(source, (str, Path)) else "checkpoint"
    if isinstance(source, (str, Path)):
        source = read_checkpoint(source)
    state = strip_prefixes(_state_dict_of(source, name))
    skipped = sorted(k for k in state if any(s in k for s in skip_keys))
    state = {k: v for k, v in state.items() if k not in set(skipped)}
    own = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} vs model {tuple(own[k].shape)}" for k, v in state.items()
             if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise ValueError(f"{name}: shapes differ from the model's for {len(wrong)} entries: {wrong[:4]}"
                         f"{' ...' if len(wrong) > 4 else ''} (a different class count? skip those keys)")
    missing, unexpected = model.load_state_dict(state, strict=False)
    report = LoadReport(sorted(missing), sorted(unexpected), skipped)
    if strict and (report.missing or report.unexpected):
        raise ValueError(f"{name}: does not match {type(model).__name__}: missing {report.missing[:5]}, "
                         f"unexpected {report.unexpected[:5]}")
    return report
