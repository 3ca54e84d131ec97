"""Named stages for per-stage timing (``python -m lassm.bench model``), free when nobody listens.

The model, the criterion and the training step mark their stages with ``with stage("backbone"):``.
Normally that is a shared no-op context. Inside ``with StageTimer(device) as timer:`` every
stage boundary synchronises the device and charges the time since the previous boundary to the
innermost open stage, so nested stages give exclusive times ("losses" excludes the "matching"
inside it) and the stages of one run add up to its wall time (less what no stage covers).
The synchronisations serialise the GPU, so a timed run is a little slower than a plain one;
the benchmark reports both.
"""

from __future__ import annotations

import contextlib
import time

import torch

_NULL = contextlib.nullcontext()
_ACTIVE: list[StageTimer] = []  # the listening timer, if any (at most one)


def stage(name: str):
    """Context marking a stage named ``name``; a no-op unless a :class:`StageTimer` is active."""
    return _ACTIVE[0].span(name) if _ACTIVE else _NULL


class StageTimer:
    """Exclusive milliseconds per stage name, summed over repeated entries within one timer."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.ms: dict[str, float] = {}
        self._stack: list[str] = []
        self._last = 0.0

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _charge(self) -> None:
        now = self._now()
        if self._stack:
            name = self._stack[-1]
            self.ms[name] = self.ms.get(name, 0.0) + (now - self._last) * 1e3
        self._last = now

    @contextlib.contextmanager
    def span(self, name: str):
        self._charge()
        self._stack.append(name)
        try:
            yield
        finally:
            self._charge()
            self._stack.pop()

    def __enter__(self) -> StageTimer:
        if _ACTIVE:
            raise RuntimeError("StageTimer: another timer is already active")
        _ACTIVE.append(self)
        self._start = self._now()
        self._last = self._start
        return self

    def __exit__(self, *exc) -> None:
        self.total_ms = (self._now() - self._start) * 1e3
        _ACTIVE.clear()


@contextlib.contextmanager
def paused():
    """No stage is timed inside the block (e.g. while a CUDA graph is captured, which forbids syncs)."""
    saved = list(_ACTIVE)
    _ACTIVE.clear()
    try:
        yield
    finally:
        _ACTIVE[:] = saved
