"""Named stages of the model and the training step, and the hook that marks them (free when nobody listens).

The model, the criterion and the training step mark their stages with ``with stage(BACKBONE):``.
Normally that is a shared no-op context. A listener (``lassm.bench.timing.StageTimer``, for
``python -m lassm.bench model``) registered with :func:`add_listener` receives every stage as
``listener.span(name)``, a context manager around the stage's work.

Every stage name is defined here once; the benchmark tables list them in :func:`stage_names` order.
Knows nothing of the benchmarks (ARCHITECTURE.md: the model never imports ``bench``).
"""

from __future__ import annotations

import contextlib
from typing import Protocol

# the stages, in the order a training step or an inference runs them
TO_DEVICE = "to_device"  # scene tensors to the device (lassm.train.load_batch, inference benchmark)
VOXELISE = "voxelise"  # augmentation / validation pipeline and packing
BACKBONE = "backbone"  # sparse U-Net (LaSSM.forward)
POOLING = "pooling"  # voxel features -> superpoint features
QUERY_INIT = "query_init"  # superpoint heads, top-ratio + FPS query selection (decoder)
HEAD0 = "head0"  # the prediction head on the initial queries
LAYERS_GRAPH = "layers (CUDA graph)"  # the whole layer stack replayed as one CUDA graph (inference)
TARGETS = "targets"  # per-scene instance targets on superpoints
MATCHING = "matching"  # Hungarian matching (inside LOSSES: timed exclusively)
LOSSES = "losses"  # the criterion less its matching
BACKWARD = "backward"
OPTIMISER = "optimiser"  # unscale, clipping, AdamW
POSTPROCESS = "postprocess"  # final stage -> scored point masks

BEFORE_LAYERS = (TO_DEVICE, VOXELISE, BACKBONE, POOLING, QUERY_INIT)
TRAIN_TAIL = (TARGETS, MATCHING, LOSSES, BACKWARD, OPTIMISER)
INFER_TAIL = (POSTPROCESS,)
STAGES = (*BEFORE_LAYERS, HEAD0, LAYERS_GRAPH, *TRAIN_TAIL, *INFER_TAIL)  # every fixed name; plus layer1..


def layer_stage(index: int) -> str:
    """Stage of decoder layer ``index`` with its prediction head: 0 is the initial head (``head0``)."""
    return f"layer{index}" if index else HEAD0


def stage_names(num_layers: int, mode: str) -> tuple[str, ...]:
    """The stages of one training step (``mode="train"``) or one inference (``"infer"``), in order."""
    if mode not in ("train", "infer"):
        raise ValueError(f"mode: expected 'train' or 'infer', got {mode!r}")
    layers = tuple(layer_stage(i) for i in range(num_layers + 1))
    return (*BEFORE_LAYERS, *layers, *(TRAIN_TAIL if mode == "train" else INFER_TAIL))


# ------------------------------------------------------------------------------- the hook


class StageListener(Protocol):
    def span(self, name: str) -> contextlib.AbstractContextManager: ...


_NULL = contextlib.nullcontext()
_LISTENERS: list[StageListener] = []  # the listening timer, if any (at most one)


def stage(name: str) -> contextlib.AbstractContextManager:
    """Context marking a stage named ``name``; a no-op unless a listener is registered."""
    return _LISTENERS[0].span(name) if _LISTENERS else _NULL


def add_listener(listener: StageListener) -> None:
    """Send every stage to ``listener`` until :func:`remove_listener`; one listener at a time."""
    if _LISTENERS:
        raise RuntimeError("stages: another listener (StageTimer) is already active")
    _LISTENERS.append(listener)


def remove_listener(listener: StageListener) -> None:
    if listener in _LISTENERS:
        _LISTENERS.remove(listener)


@contextlib.contextmanager
def paused():
    """No stage is sent inside the block (e.g. while a CUDA graph is captured, which forbids syncs)."""
    saved = list(_LISTENERS)
    _LISTENERS.clear()
    try:
        yield
    finally:
        _LISTENERS[:] = saved
