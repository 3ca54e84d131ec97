"""From raw scans to processed scene folders, for every supported dataset.

``prepare(dataset, raw_root, out_root)`` is what notebooks/01_preprocess.ipynb calls;
``python -m lassm.data.prepare DATASET RAW_ROOT OUT_ROOT`` does the same from a shell.

Datasets and their raw layouts (see each module's docstring):

- ``synthetic``: built-in procedural rooms, generated into ``raw_root`` in ScanNet's raw
  layout and then processed exactly like ScanNet (the default when no data is given).
- ``scannet`` / ``scannet200``: ScanNet v2 (one processed folder holds both label spaces).
- ``scannetpp``: ScanNet++ v2, plus the training chunks of REFERENCE_SPEC 1.3.
- ``mosd``: the mOSD Kinect tabletop scans (PCD): ``learn/learn<k>.pcd`` and ``<split>/*.pcd``.
- ``tabletop``: synthetic single-view tabletops in mOSD's PCD format, written beforehand by
  ``lassm.data.tabletop.write_scenes`` and processed exactly like mOSD.

A scene that fails does not stop the others: the run goes on, every failure is printed and
written to ``<out_root>/failures.json`` with its file and reason, ``prepare`` returns them in
its summary and the command exits with status 2, listing them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..cli import BAD_INPUT, run_command
from .io import DataError
from .preprocess import FAILURES_FILE, RunSummary, run_jobs

DATASETS = ("synthetic", "scannet", "scannet200", "scannetpp", "mosd", "tabletop")


def _module(dataset: str):
    # Imported lazily: each module pulls its own readers (pypcd4, numba kernels).
    if dataset in ("synthetic", "scannet", "scannet200"):
        from . import scannet as module
    elif dataset == "scannetpp":
        from . import scannetpp as module
    elif dataset == "mosd":
        from . import mosd as module
    elif dataset == "tabletop":
        from . import tabletop as module
    else:
        raise DataError(f"dataset: unknown name {dataset!r}; expected one of {DATASETS}")
    return module


def prepare(
    dataset: str,
    raw_root: str | os.PathLike,
    out_root: str | os.PathLike,
    workers: int = 1,
    overwrite: bool = False,
    num_rooms: int = 8,
    room_size: str = "full",
    seed: int = 0,
    chunk: bool = True,
    **options,
) -> RunSummary:
    """Preprocess ``dataset`` from ``raw_root`` into ``out_root/<split>/<scene>/``.

    Finished scenes are skipped unless ``overwrite``. For ``synthetic``, ``num_rooms`` rooms of
    ``room_size`` ("full" or "small") are first generated from ``seed`` into ``raw_root``.
    For ``scannetpp``, ``chunk`` also writes the training chunks. Other keyword ``options``
    go to the dataset's ``find_jobs``. Failed scenes do not stop the run: they are in the
    returned summary (``summary.failures``) and ``<out_root>/failures.json``.
    """
    module = _module(dataset)
    if dataset == "synthetic":
        from .synthetic import write_synthetic_scannet

        write_synthetic_scannet(raw_root, num_rooms=num_rooms, seed=seed, size=room_size, workers=workers)
    jobs = module.find_jobs(raw_root, **options)
    process = getattr(module, "process", None)
    if process is None and dataset == "tabletop":  # its scenes are mOSD-format PCDs
        from .mosd import process
    summary = run_jobs(jobs, process, out_root, workers=workers, overwrite=overwrite, desc=dataset,
                       raise_on_error=False)
    if dataset == "scannetpp" and chunk:
        module.chunk_scenes(out_root, split="train", workers=workers)
    return summary


def synthetic_if_empty(out_root: str | os.PathLike, num_rooms: int, seed: int = 0) -> bool:
    """Generate and preprocess ``num_rooms`` small synthetic rooms into ``out_root`` (raw rooms in
    ``<out_root>_raw``) when it is missing or empty, as a first training run on the built-in data needs;
    True when it did."""
    if os.path.isdir(out_root) and any(os.scandir(out_root)):
        return False
    prepare("synthetic", f"{out_root}_raw", out_root, num_rooms=num_rooms, room_size="small", seed=seed)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lassm.data.prepare", description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("raw_root", type=Path, help="raw scans (for synthetic: where rooms are generated)")
    parser.add_argument("out_root", type=Path, help="processed scenes are written here")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true", help="reprocess finished scenes")
    parser.add_argument("--num-rooms", type=int, default=8, help="synthetic: rooms to generate")
    parser.add_argument("--room-size", default="full", choices=("full", "small"), help="synthetic")
    parser.add_argument("--seed", type=int, default=0, help="synthetic: generator seed")
    args = parser.parse_args(argv)
    return run_command(lambda: _command(args))


def _command(args) -> int:
    summary = prepare(args.dataset, args.raw_root, args.out_root, workers=args.workers,
                      overwrite=args.overwrite, num_rooms=args.num_rooms, room_size=args.room_size,
                      seed=args.seed)
    print(summary)
    if summary.failures:
        print(f"{len(summary.failures)} scene(s) failed (also in {args.out_root / FAILURES_FILE}):\n"
              f"{summary.failure_lines()}", file=sys.stderr)
        return BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
