"""Run a dataset's per-scene preprocessing over many scenes: in parallel, resumable, atomic.

Each dataset module (``scannet``, ``scannetpp``, ``mosd``, ...) lists its work as
:class:`SceneJob` items and provides a pure function ``job -> {key: array}``. This driver
skips scenes that are already finished, writes each result atomically with
:func:`~lassm.data.io.write_scene`, shows a progress bar, and keeps going past a failed scene:
every failure is printed as it happens, kept in the summary with its source file and reason,
and written to ``<out_root>/failures.json`` (the failures of the latest run, ``[]`` if none).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..progress import tqdm
from .io import DataError, scene_is_done, write_json, write_scene
from .workers import process_pool

FAILURES_FILE = "failures.json"


@dataclass(frozen=True)
class SceneJob:
    """One scene to process: written to ``<out_root>/<split>/<name>/``."""

    name: str
    split: str
    source: Path  # the raw scene file or folder
    options: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Failure:
    """A scene that could not be processed."""

    scene: str
    split: str
    source: str  # the raw file or folder
    reason: str  # the error message (DataError messages name the file and what was expected)


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)  # processed now
    skipped: list[str] = field(default_factory=list)  # finished by an earlier run
    failures: list[Failure] = field(default_factory=list)  # in the order they happened

    @property
    def failed(self) -> dict[str, str]:
        """scene -> reason of every failure."""
        return {f.scene: f.reason for f in self.failures}

    def failure_lines(self) -> str:
        return "\n".join(f"  {f.scene}: {f.reason}" for f in self.failures)

    def __str__(self) -> str:
        return f"{len(self.done)} processed, {len(self.skipped)} already done, {len(self.failures)} failed"


def _process_and_write(process: Callable, job: SceneJob, out_root: Path) -> str:
    arrays = process(job)
    write_scene(out_root / job.split / job.name, arrays)
    return job.name


def _reason(err: BaseException) -> str:
    """DataError: its message. Anything else (a bug, a crashed worker): type and message, and
    the innermost lassm frame when the traceback is local (not from a worker process)."""
    if isinstance(err, DataError):
        return str(err)
    text = "".join(traceback.format_exception_only(type(err), err)).strip()
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f"{os.sep}lassm{os.sep}" in f.filename]
    return f"{text} (at {frames[-1].filename}:{frames[-1].lineno})" if frames else text


def run_jobs(
    jobs: list[SceneJob],
    process: Callable[[SceneJob], dict],
    out_root: str | os.PathLike,
    workers: int = 1,
    overwrite: bool = False,
    desc: str = "scenes",
    raise_on_error: bool = True,
) -> RunSummary:
    """Process ``jobs`` with ``process`` (a picklable module-level function) into ``out_root``.

    Every scene is tried; a failure (any exception of that scene) is printed, recorded in the
    summary and in ``<out_root>/failures.json``, and leaves no scene folder. At the end, with
    ``raise_on_error``, a :class:`DataError` lists the failures; finished scenes stay on disk.
    """
    if workers < 1:
        raise DataError(f"workers: expected an integer >= 1, got {workers}")
    out_root = Path(out_root)
    summary = RunSummary()
    todo = []
    for job in jobs:
        if not overwrite and scene_is_done(out_root / job.split / job.name):
            summary.skipped.append(job.name)
        else:
            todo.append(job)
    bar = tqdm(total=len(todo), desc=desc, unit="scene", disable=not todo)

    def failed(job: SceneJob, err: BaseException) -> None:
        summary.failures.append(Failure(job.name, job.split, str(job.source), _reason(err)))
        bar.write(f"failed: {job.split}/{job.name}: {summary.failures[-1].reason}", file=sys.stderr)

    if workers == 1 or len(todo) <= 1:
        for job in todo:
            try:
                summary.done.append(_process_and_write(process, job, out_root))
            except Exception as err:  # one bad scene must not stop the others
                failed(job, err)
            bar.update()
    else:
        with process_pool(workers) as pool:
            futures = {pool.submit(_process_and_write, process, job, out_root): job for job in todo}
            for future in as_completed(futures):
                try:
                    summary.done.append(future.result())
                except Exception as err:  # includes a worker that died (BrokenProcessPool)
                    failed(futures[future], err)
                bar.update()
    bar.close()
    write_json(out_root / FAILURES_FILE, [asdict(f) for f in summary.failures])
    if summary.failures and raise_on_error:
        lines = summary.failure_lines()
        raise DataError(f"preprocessing failed for {len(summary.failures)} scene(s):\n{lines}")
    return summary
