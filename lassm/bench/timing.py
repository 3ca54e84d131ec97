"""The benchmarks' one timing toolkit: device sync, peak memory, median timing, per-stage timing, JSON.

Per-stage timing: the model and the training step mark their stages (:mod:`lassm.model.stages`).
Inside ``with StageTimer(device) as timer:`` every stage boundary synchronises the device and charges
the time since the previous boundary to the innermost open stage, so nested stages give exclusive
times ("losses" excludes the "matching" inside it) and the stages of one run add up to its wall
time (less what no stage covers, reported as ``other``). The synchronisations serialise the GPU, so
a timed run is a little slower than a plain one; :func:`stage_runs` measures both.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from pathlib import Path

import torch

from ..data.io import atomic_path
from ..model import stages
from ..runtime import peak_mb

__all__ = ["StageTimer", "allocated_mb", "peak_mb", "peak_reset", "stage_runs", "summarise_stages", "sync",
           "time_call", "write_rows"]


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_reset(device: torch.device) -> None:
    """Start a new peak-memory window on a GPU (the CPU's resident high-water mark cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def allocated_mb(device: torch.device) -> float:
    """Memory allocated now in MB (CUDA only; 0 on the CPU)."""
    return torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0


def time_call(fn, device: torch.device, repeat: int, warmup: int = 2) -> tuple[float, float]:
    """Median milliseconds over ``repeat`` runs after ``warmup`` runs, and the peak memory (MB)."""
    for _ in range(warmup):
        fn()
    sync(device)
    peak_reset(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), peak_mb(device)


def write_rows(path: str | Path, rows) -> None:
    """The benchmark's rows as an indented JSON file, written atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(rows, indent=1))


# ------------------------------------------------------------------------------- per-stage timing


class StageTimer:
    """Exclusive milliseconds per stage name, summed over repeated entries within one timer."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.ms: dict[str, float] = {}
        self.total_ms = 0.0
        self._stack: list[str] = []
        self._start = self._last = 0.0

    def _now(self) -> float:
        sync(self.device)
        return time.perf_counter()

    def _charge(self) -> None:
        now = self._now()
        if self._stack:
            name = self._stack[-1]
            self.ms[name] = self.ms.get(name, 0.0) + (now - self._last) * 1e3
        self._last = now

    @contextlib.contextmanager
    def span(self, name: str):
        """Called by :func:`lassm.model.stages.stage` while this timer listens."""
        self._charge()
        self._stack.append(name)
        try:
            yield
        finally:
            self._charge()
            self._stack.pop()

    def __enter__(self) -> StageTimer:
        stages.add_listener(self)
        self._start = self._last = self._now()
        return self

    def __exit__(self, *exc) -> None:
        self.total_ms = (self._now() - self._start) * 1e3
        stages.remove_listener(self)


def stage_runs(fn, device: torch.device, repeat: int,
               warmup: int) -> tuple[list[float], list[StageTimer], float]:
    """``fn`` warmed up, then ``repeat`` plain runs (ms) and ``repeat`` stage-timed runs; peak MB."""
    for _ in range(warmup):
        fn()
    peak_reset(device)
    plain = []
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        plain.append((time.perf_counter() - start) * 1e3)
    peak = peak_mb(device)
    timed = []
    for _ in range(repeat):
        with StageTimer(device) as timer:
            fn()
        timed.append(timer)
    return plain, timed, peak


def summarise_stages(timed: list[StageTimer], plain_ms: list[float], names: tuple[str, ...]) -> dict:
    """Median per stage over the timed runs in ``names`` order, then stages ``names`` does not list,
    ``other`` = timed total - stages; ``timed_total_ms`` and the plain runs' median ``total_ms``."""
    seen = {n for t in timed for n in t.ms}
    order = [n for n in names if n in seen] + sorted(seen - set(names))
    result = {n: statistics.median(t.ms.get(n, 0.0) for t in timed) for n in order}
    result["other"] = max(0.0, statistics.median(t.total_ms - sum(t.ms.values()) for t in timed))
    return {"stages": result, "timed_total_ms": statistics.median(t.total_ms for t in timed),
            "total_ms": statistics.median(plain_ms)}
