"""Checkpoint files: reading them as data only, writing them atomically, and loading weights trained
elsewhere into our modules.

:func:`read_checkpoint` is the one loader of every checkpoint in lassm (ours, the authors', Mask3D's):
``torch.load(weights_only=True)``, which rebuilds tensors, numbers, strings and containers and never
runs code from the file, so a checkpoint downloaded from anywhere is safe to open. Beyond torch's
own allowlist it accepts numpy scalars (:data:`NUMPY_SCALARS`): the authors' Pointcept checkpoints
store ``best_metric_value`` as one; everything else in them (``epoch``, the ``state_dict``, AdamW's
state, the PolyLR/OneCycleLR scheduler state, the GradScaler state or None) is plain already. A file
that needs more is refused unless the caller opts in with ``trusted=True`` (``--trust-checkpoint``).
:func:`save_checkpoint` writes one atomically (an interrupted write leaves the old file), optionally
keeping the file it replaces; :func:`plain` turns metrics into the plain types such files hold;
:func:`read_newest` falls back to an older file; :class:`RunLock` keeps a second run out of the folder.

SpUNet-v2m1 needs no conversion: :class:`lassm.model.SpUNet` has the reference's module
names and spconv's weight layout, so the authors' ``backbone.*`` entries load as they are. Mask3D's
``Res16UNet34C`` was trained with MinkowskiEngine, whose state_dict differs (:mod:`lassm.model.minkowski`
has the table). :func:`lassm_state_dict` is the one place that recognises a checkpoint's layout and
converts it, so a MinkowskiEngine file (a backbone alone, or the authors' whole ScanNet200 model) works
wherever a checkpoint is taken: ``train.init_weights``, :func:`load_lassm_checkpoint`,
:func:`lassm.inference.load_model` (and with it ``predict`` and ``export``).
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..data.io import DataError, atomic_path
from .minkowski import convert_minkowski, describe_kernel, is_minkowski
from .minkowski import minkowski_kernel_to_spconv as minkowski_kernel_to_spconv  # re-exported
from .minkowski import minkowski_to_lassm as minkowski_to_lassm  # re-exported


def _numpy_scalar_globals() -> list:
    """What unpickling a numpy scalar needs: its reconstructor (under numpy 2's module name and numpy 1's,
    which files written with numpy 1 carry), ``numpy.dtype`` and the numeric dtype classes. None of
    them builds anything but a number."""
    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    codes = "?bhilqBHILQefdg"  # bool, signed and unsigned integers, floats
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
            np.dtype, *{type(np.dtype(c)) for c in codes}]


NUMPY_SCALARS = _numpy_scalar_globals()  # allowed on top of torch's weights_only allowlist


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", trusted: bool = False):
    """A checkpoint file's contents, loaded as data only (never code); DataError names the file otherwise.

    A file that needs Python objects beyond tensors, plain data and numpy scalars (a pickled class, a
    function) is refused rather than unpickled: such a file can run arbitrary code when opened.
    ``trusted=True`` is the explicit opt-in for such legacy files from a source you trust: a full
    unpickle (``weights_only=False``), announced on stderr.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found")
    try:
        if trusted:
            print(f"warning: {path}: opened as a trusted checkpoint (full unpickling, weights_only=False); "
                  f"a malicious file can run code now", file=sys.stderr, flush=True)
            return torch.load(path, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(NUMPY_SCALARS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if trusted:
            raise DataError(f"{path}: not a readable torch checkpoint ({str(err)[:200]})") from err
        unsafe = _unsafe_globals(path)
        raise DataError(f"{path}: holds Python objects other than tensors and plain data"
                        f"{f' ({unsafe})' if unsafe else ''}; lassm opens checkpoints as data only and will "
                        f"not unpickle code from a file. If you trust where it came from, opt in with "
                        f"--trust-checkpoint (trusted=True in Python), or re-save its state_dict with "
                        f"torch.save(...) in a trusted session.") from None
    except Exception as err:  # torch raises RuntimeError, EOFError, struct.error, zipfile errors, ...
        raise DataError(f"{path}: not a readable torch checkpoint, truncated or corrupt "
                        f"({type(err).__name__}: {str(err)[:200]})") from err


def _unsafe_globals(path: Path) -> str:
    """The names the refused file asks for (found without unpickling it), for the error message."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - only a hint for the message
        return ""
    return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")


def plain(value):
    """``value`` with numpy/torch scalars and arrays turned into Python numbers and lists, recursively
    through dicts (keys too), lists and tuples: what a checkpoint we write holds (weights_only reads it)."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray) or torch.is_tensor(value):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def save_checkpoint(obj: dict, path: str | Path, previous: str | Path | None = None) -> Path:
    """Write ``obj`` with torch.save atomically: readers see the old file or the whole new one.

    previous: where the file being replaced is kept (``model_prev.pth``), moved there only once the new
    file is completely written, so a crash leaves either the old pair or the new one.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
        if previous is not None and path.is_file():
            os.replace(path, previous)
    return path


def read_newest(paths: list[Path], map_location: str | torch.device = "cpu", tidy: bool = False):
    """(contents, path) of the first readable checkpoint of ``paths`` (newest first, e.g. ``model_last.pth``
    then ``model_prev.pth``); None when none exists; DataError naming them all when none can be read.

    An unreadable file (truncated by a crash or a full disk, or refused as code) is skipped with a note;
    with ``tidy`` it is renamed to ``<name>.unreadable`` once an older one was read, so that the next
    rotation does not push the good previous file out for it.
    """
    paths, errors = [Path(p) for p in paths], {}
    for path in paths:
        if not path.is_file():
            continue
        try:
            blob = read_checkpoint(path, map_location=map_location)
        except DataError as err:
            errors[path] = str(err)
            print(f"note: {err}; trying the previous checkpoint", file=sys.stderr, flush=True)
            continue
        for bad in errors if tidy else ():
            os.replace(bad, bad.with_name(bad.name + ".unreadable"))
            print(f"note: {bad} set aside as {bad.name}.unreadable", file=sys.stderr, flush=True)
        return blob, path
    if errors:
        raise DataError(f"none of {', '.join(map(str, paths))} can be read: {'; '.join(errors.values())}")
    return None


def restore(paths: list[Path], model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler,
            model_config: dict, map_location: str | torch.device = "cpu", tidy: bool = False) -> dict | None:
    """Resume a run: the newest readable checkpoint of ``paths`` (:func:`read_newest`) loaded into the
    model, optimiser and loss scaler; returns its training state, None when there is no checkpoint yet.

    ValueError when it was written by another model config; DataError naming every file when none of
    them can be read.
    """
    try:
        found = read_newest(paths, map_location, tidy)
    except DataError as err:
        raise DataError(f"{err}. Set train.resume=False to start over (or use another "
                        f"train.experiment)") from err
    if found is None:
        return None
    ckpt, path = found
    if ckpt.get("config", {}).get("model") != model_config:
        raise ValueError(f"{path}: was written by a different model config; use another "
                         f"train.experiment or set train.resume=False")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    return ckpt["state"]


class RunLock:
    """``<run_dir>/train.lock`` (pid and host, created atomically with O_EXCL) while a run writes its
    checkpoints into the folder: a second run there would rotate ``model_last``/``model_prev`` under the
    first one's feet, so it refuses to start. A lock left by a process no longer alive on this host is
    taken over with a note. Removed when the run ends, also on an exception."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path, self.enabled, self.host = Path(run_dir) / "train.lock", enabled, socket.gethostname()

    def owner(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):  # vanished, or its creator has not written it yet
            return {}

    def __enter__(self):
        if not self.enabled:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                owner = self.owner()
                pid, host = owner.get("pid"), owner.get("host")
                if not (host == self.host and isinstance(pid, int) and not _alive(pid)):
                    raise ValueError(f"{self.path}: another run (pid {pid} on {host}) is training into "
                                     f"{self.path.parent}; wait for it or stop it, or use another train."
                                     f"experiment (delete the lock only if that process is gone)") from None
                print(f"note: {self.path}: taking over the stale lock of pid {pid}, which is no longer "
                      f"running", file=sys.stderr, flush=True)
                self.path.unlink(missing_ok=True)
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "host": self.host}, f)
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled and self.owner().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")  # DDP, Lightning-style wrappers, torch.compile


class LoadReport(NamedTuple):
    missing: list[str]  # model parameters the checkpoint did not provide
    unexpected: list[str]  # checkpoint entries the model has no place for
    skipped: list[str]  # entries dropped on purpose (skip_keys)
    minkowski: bool = False  # the file was in MinkowskiEngine's layout and was converted


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


class Converted(NamedTuple):
    state: dict  # our key names and weight layout
    minkowski: bool  # converted from MinkowskiEngine's layout
    sources: dict  # converted weight key -> (the file's key, its shape), for messages in the file's terms


def lassm_state_dict(blob, source: str = "checkpoint") -> Converted:
    """Any checkpoint's weights in our layout: the one place where a checkpoint's layout is recognised.

    blob: a loaded checkpoint or a state_dict. Ours and the authors' Pointcept files (SpUNet) only lose
    their wrapper prefixes (``module.`` ...). A MinkowskiEngine-keyed file (``.kernel`` entries: Mask3D's
    Res16UNet34C backbone, bare or under ``backbone.``, or the authors' whole ScanNet200 model) has its
    kernels reordered and its norms renamed (:mod:`lassm.model.minkowski`). A kernel that is no
    MinkowskiEngine kernel is a ValueError naming ``source`` and the key.
    """
    state = strip_prefixes(_state_dict_of(blob, source))
    if not is_minkowski(state):
        return Converted(state, False, {})
    converted, sources = convert_minkowski(state, source)
    return Converted(converted, True, sources)


def _mismatch(key: str, value: torch.Tensor, own: torch.Tensor, sources: dict) -> str:
    """One entry whose shape does not fit, in the file's terms where it came from a MinkowskiEngine kernel."""
    if key in sources and own.dim() == 5:
        file_key, shape = sources[key]
        return (f"{file_key} {shape} is a {describe_kernel(shape, True)} kernel where the model's {key} "
                f"is {describe_kernel(tuple(own.shape), False)}")
    return f"{key} {tuple(value.shape)} vs model {tuple(own.shape)}"


def check_shapes(model: torch.nn.Module, converted: Converted, source: str) -> None:
    """ValueError naming ``source`` and the entries whose shape (or kernel volume) the model cannot take."""
    own = model.state_dict()
    wrong = [_mismatch(k, v, own[k], converted.sources) for k, v in converted.state.items()
             if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise ValueError(f"{source}: shapes differ from the model's for {len(wrong)} entries: {wrong[:4]}"
                         f"{' ...' if len(wrong) > 4 else ''} (another backbone or kernel size? a different "
                         f"class count? skip those keys)")


def load_minkowski_backbone(model: torch.nn.Module, path: str | Path, prefix: str = "backbone.",
                            trusted: bool = False) -> None:
    """Load a Mask3D/MinkowskiEngine checkpoint into :class:`~lassm.model.Res16UNet34C` alone, strictly.

    The keys under ``prefix`` are the backbone's (a bare file's get ``backbone.`` when converted). Unlike
    the reference's silent non-strict load (spec 11.2.12), a file whose keys do not match (for example
    prefixed ``unet.`` instead of ``backbone.``) is an error. ``trusted``: see :func:`read_checkpoint`.
    """
    converted = lassm_state_dict(read_checkpoint(path, trusted=trusted), str(path))
    state = {k[len(prefix):]: v for k, v in converted.state.items() if k.startswith(prefix)}
    if not state:
        found = sorted({k.split(".")[0] for k in converted.state})[:5]
        raise ValueError(f"{path}: no keys start with {prefix!r} (first-level names found: {found})")
    sources = {k[len(prefix):]: v for k, v in converted.sources.items() if k.startswith(prefix)}
    check_shapes(model, Converted(state, converted.minkowski, sources), str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: does not match {type(model).__name__}: missing {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}")


def load_lassm_checkpoint(model: torch.nn.Module, source, skip_keys: tuple[str, ...] = (),
                          strict: bool = False, trusted: bool = False) -> LoadReport:
    """Load any LaSSM checkpoint: ours, the authors' Pointcept ``model_best.pth`` (SpUNet or, for
    ScanNet200, MinkowskiEngine-keyed), or a MinkowskiEngine backbone alone (Mask3D's Res16UNet34C).

    source: a path, or an already loaded checkpoint / state_dict. :func:`lassm_state_dict` strips wrapper
    prefixes and converts MinkowskiEngine layouts; entries whose key contains any of ``skip_keys`` are
    dropped (the reference's ScanNet++ loader skips ``sp_seg_head.2`` and ``out_cls.2``, the only
    class-count-dependent layers, spec 10.2). Shapes and kernel volumes must match (ValueError naming the
    file and the key otherwise), and at least one entry must fit the model: a file of which nothing
    loads (other key names) is refused, where the reference would silently keep the random init (spec
    11.2.12). Returns what was missing and unexpected; ``strict=True`` turns either into an error
    instead. A path is read as data only unless ``trusted`` (:func:`read_checkpoint`).
    """
    name = str(source) if isinstance(source, (str, Path)) else "checkpoint"
    if isinstance(source, (str, Path)):
        source = read_checkpoint(source, trusted=trusted)
    converted = lassm_state_dict(source, name)
    skipped = sorted(k for k in converted.state if any(s in k for s in skip_keys))
    state = {k: v for k, v in converted.state.items() if k not in set(skipped)}
    converted = converted._replace(state=state)
    check_shapes(model, converted, name)
    own = model.state_dict()
    if own and state and not any(k in own for k in state):
        raise ValueError(f"{name}: none of its {len(state)} entries is a parameter of {type(model).__name__} "
                         f"(its keys: {sorted(state)[:3]} ...; the model's: {sorted(own)[:3]} ...)")
    missing, unexpected = model.load_state_dict(state, strict=False)
    report = LoadReport(sorted(missing), sorted(unexpected), skipped, converted.minkowski)
    if strict and (report.missing or report.unexpected):
        raise ValueError(f"{name}: does not match {type(model).__name__}: missing {report.missing[:5]}, "
                         f"unexpected {report.unexpected[:5]}")
    return report


def load_initial_weights(model: torch.nn.Module, path: str | Path, skip_keys: tuple[str, ...] = (),
                         trusted: bool = False, hint: str = "") -> LoadReport:
    """A training run's initial weights (``train.init_weights``): :func:`load_lassm_checkpoint`, non-strict,
    of any layout. A missing file is a FileNotFoundError naming it and ``hint`` (where it comes from), where
    the reference would silently train from random weights (spec 10.2)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"train.init_weights: {path} not found{f' ({hint})' if hint else ''}; set "
                                f"train.init_weights=PATH to the file, or train.init_weights=\"\" to train "
                                f"from random weights")
    return load_lassm_checkpoint(model, path, skip_keys=skip_keys, trusted=trusted)
