"""Running a study: every (variant, seed) trained by :func:`lassm.train.launch`, resumably.

Each run's :class:`~lassm.config.Config` is :func:`lassm.config.run_config`, the function that
``03_train.ipynb`` resolves its parameters with (decoder variant "-3", resume on, and in smoke mode
:func:`lassm.config.tiny` with the smoke training settings), with the variant's overrides set last.
No notebook is executed per run any more: a run's console output goes to ``train.log`` in its folder.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
import traceback
from pathlib import Path

import torch

from .. import config as lassm_config
from ..data.prepare import synthetic_if_empty
from ..train import launch as train_launch
from .results import read_marker, write_marker
from .variants import NAME_PATTERN, check_variant, study_variants

SYNTHETIC_ROOMS = 8  # rooms generated for an empty synthetic data folder (03_train's prepare_rooms)
SMOKE_ROOMS = 3  # the same in smoke mode
# Fields the runner sets from its arguments: the study layout depends on them
RUNNER_FIELDS = ("seed", "data.root", "train.output_root", "train.experiment")


def _check_data_root(preset: str, data_root: str, root: Path, smoke: bool) -> None:
    """Fail before any run: a given data_root must exist; a non-synthetic preset needs its train split."""
    cfg = lassm_config.preset(preset)
    if data_root:
        path = root / data_root
        if not path.is_dir():
            raise ValueError(f"data_root: {path} does not exist; expected a folder of processed scenes "
                             f"(or empty for the preset's default)")
    elif preset == "synthetic" or smoke:
        return  # synthetic rooms are generated when the default folder is empty
    else:
        path = root / cfg.data.root
    if preset != "synthetic" and not (path / cfg.data.train_split).is_dir():
        raise ValueError(f"data_root: {path} has no '{cfg.data.train_split}' split folder; expected "
                         f"processed {preset} scenes (notebooks/01_preprocess.ipynb writes them)")


def _check_arguments(study: str, seeds: list, preset: str, settings: dict, **counts) -> None:
    if not isinstance(study, str) or not NAME_PATTERN.match(study):
        raise ValueError(f"study: expected letters, digits and . _ + - only, got {study!r}")
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds: expected a non-empty list of integers, got {seeds!r}")
    for pname, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{pname}: expected a positive integer, got {value!r}")
    if preset not in lassm_config.PRESETS:
        raise ValueError(f"preset: unknown name {preset!r}; expected one of {sorted(lassm_config.PRESETS)}")
    if clash := sorted(set(RUNNER_FIELDS) & set(settings)):
        raise ValueError(f"settings: {clash} are set by run_study itself; pass them as arguments")


def _prepare_synthetic(cfg: lassm_config.Config, smoke: bool) -> None:
    """An empty synthetic data folder gets small generated rooms first, as 03_train does."""
    if cfg.data.name == "synthetic":
        synthetic_if_empty(cfg.data.root, SMOKE_ROOMS if smoke else SYNTHETIC_ROOMS, cfg.seed)


def run_study(study: str, variants: list | dict | None, preset: str = "synthetic", data_root: str = "",
              epochs: int = 40, seeds: list[int] = (0,), gpus: int = 1, out_root: str | os.PathLike = "",
              smoke: bool = False, batch_size: int = 2, lr: float = 1e-3, eval_every: int = 10,
              settings: dict | None = None, launch=None, log=print) -> list[dict]:
    """Train every (variant, seed) of a study into ``<out_root>/<study>/<variant>-s<seed>/``; returns one
    dict per run (variant, seed, status: done / skipped / failed, error).

    ``out_root`` defaults to outputs/ablations (smoke: outputs/smoke/ablations), relative to the project
    root. ``settings`` are dotted config fields for every run (e.g. ``{"train.amp": "bf16"}``), set before
    the variant's. ``launch`` is :func:`lassm.train.launch` unless given (tests pass a fake). Every config
    is built and checked before the first run. A run that raises is recorded in ``failed.json`` (error and
    traceback) and the study goes on; Ctrl-C stops it. Finished runs (``done.json``) are skipped.
    """
    seeds, settings = list(seeds), dict(settings or {})
    _check_arguments(study, seeds, preset, settings, epochs=epochs, gpus=gpus, batch_size=batch_size,
                     eval_every=eval_every)
    resolved = {name: check_variant(name, ov, preset) for name, ov in study_variants(study, variants).items()}
    for name, overrides in resolved.items():
        if clash := sorted(set(RUNNER_FIELDS) & set(overrides)):
            raise ValueError(f"variant {name!r}: {clash} are set by run_study itself")
    root = lassm_config.project_root()
    _check_data_root(preset, data_root, root, smoke)
    study_dir = root / (out_root or ("outputs/smoke/ablations" if smoke else "outputs/ablations")) / study
    jobs = []  # (name, seed, run folder, config), all built (and so validated) before anything runs
    for name, overrides in resolved.items():
        for seed in seeds:
            run_dir = study_dir / f"{name}-s{seed}"
            cfg = lassm_config.run_config(preset, run_dir, seed=seed, data_root=data_root, epochs=epochs,
                                          batch_size=batch_size, lr=lr, eval_every=eval_every, smoke=smoke,
                                          settings=settings, overrides=overrides, root=root)
            jobs.append((name, seed, run_dir, cfg))
    launch = launch or train_launch

    # the study's variants in order, kept across reruns (collect() orders its rows by them)
    plan = (read_marker(study_dir / "study.json") or {}).get("variants", {})
    write_marker(study_dir / "study.json", {"variants": {**plan, **resolved}, "preset": preset})
    results = []
    for n, (name, seed, run_dir, cfg) in enumerate(jobs):
        head = f"[{n + 1}/{len(jobs)}] {name} seed {seed}:"
        if (run_dir / "done.json").is_file():
            log(f"{head} finished earlier, skipped")
            results.append({"variant": name, "seed": seed, "status": "skipped"})
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "failed.json").unlink(missing_ok=True)  # retried
        log(f"{head} running {resolved[name] or '(reference)'}")
        marker = {"variant": name, "seed": seed, "overrides": resolved[name], "gpus": gpus}
        started = time.perf_counter()
        try:
            with open(run_dir / "train.log", "a") as out, contextlib.redirect_stdout(out):
                _prepare_synthetic(cfg, smoke)
                launch(cfg, gpus, log=print)
        except Exception as err:  # noqa: BLE001 - any failure of one run is recorded; the study goes on
            marker.update(wall_seconds=time.perf_counter() - started, traceback=traceback.format_exc(),
                          error=f"{type(err).__name__}: {err}".strip()[:2000])
            write_marker(run_dir / "failed.json", marker)
            log(f"{head} FAILED after {marker['wall_seconds']:.1f} s: {marker['error'][:300]}")
            results.append({"variant": name, "seed": seed, "status": "failed", "error": marker["error"]})
            continue
        finally:
            gc.collect()  # the next run starts with this one's model and optimiser freed
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        marker["wall_seconds"] = time.perf_counter() - started
        write_marker(run_dir / "done.json", marker)
        log(f"{head} done in {marker['wall_seconds']:.1f} s")
        results.append({"variant": name, "seed": seed, "status": "done"})
    return results
