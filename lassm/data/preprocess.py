"""Run a dataset's per-scene preprocessing over many scenes: in parallel, resumable, atomic.

Each dataset module (``scannet``, ``scannetpp``, ``mosd``, ...) lists its work as
:class:`SceneJob` items and provides a pure function ``job -> {key: array}``. This driver
skips scenes that are already finished, writes each result atomically with
:func:`~lassm.data.io.write_scene`, shows a progress bar and reports failures by scene.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .io import DataError, scene_is_done, write_scene


@dataclass(frozen=True)
class SceneJob:
    """One scene to process: written to ``<out_root>/<split>/<name>/``."""

    name: str
    split: str
    source: Path  # the raw scene file or folder
    options: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)  # processed now
    skipped: list[str] = field(default_factory=list)  # finished by an earlier run
    failed: dict[str, str] = field(default_factory=dict)  # scene -> error message

    def __str__(self) -> str:
        return f"{len(self.done)} processed, {len(self.skipped)} already done, {len(self.failed)} failed"


def _process_and_write(process: Callable, job: SceneJob, out_root: Path) -> str:
    arrays = process(job)
    write_scene(out_root / job.split / job.name, arrays)
    return job.name


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

    With ``raise_on_error`` a failed scene stops the run after the other running scenes end,
    raising :class:`DataError` that lists every failure; finished scenes stay on disk.
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
    if workers == 1 or len(todo) <= 1:
        for job in todo:
            try:
                summary.done.append(_process_and_write(process, job, out_root))
            except DataError as err:
                summary.failed[job.name] = str(err)
                if raise_on_error:
                    break
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_process_and_write, process, job, out_root): job for job in todo}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    summary.done.append(future.result())
                except DataError as err:
                    summary.failed[job.name] = str(err)
                except Exception as err:  # a crash in a worker: keep its traceback readable
                    summary.failed[job.name] = "".join(traceback.format_exception_only(err)).strip()
                    if not raise_on_error:
                        continue
                    raise
                if summary.failed and raise_on_error:
                    for other in futures:
                        other.cancel()
                bar.update()
    bar.close()
    if summary.failed and raise_on_error:
        lines = "\n".join(f"  {name}: {msg}" for name, msg in summary.failed.items())
        raise DataError(f"preprocessing failed for {len(summary.failed)} scene(s):\n{lines}")
    return summary
