"""Ablation studies: what does each part of LaSSM buy? (06_ablations.ipynb)

A *variant* is a named set of dotted config overrides (STYLE rule 12: every axis is a config field,
never a code fork); a *study* is a list of variants. :func:`run_study` builds each (variant, seed)'s
config itself, as ``03_train.ipynb`` would from the same parameters, and trains it with
:func:`lassm.train.launch` (in process on one GPU or the CPU, under torchrun on several) into
``<out_root>/<study>/<variant>-s<seed>/``: ``config.json``, ``metrics.jsonl``, the checkpoints,
``train.log`` and a marker, ``done.json`` (with the wall time) or ``failed.json`` (with the error).
No notebook is executed per run. ``<study>/study.json`` lists the study's variants in order.
Finished runs are skipped on a rerun, so a study can be resumed; failed ones are retried.
:func:`collect` turns a study folder into one row per run and :func:`summary_table` averages the
seeds; :mod:`lassm.viz.ablations` draws them::

    from lassm import ablations
    ablations.run_study("reference_study", [], "synthetic", "", epochs=40, seeds=[0, 1])
    rows = ablations.collect("outputs/ablations/reference_study")
    ablations.summary_table(rows)

A package of three modules, one concept each, because together they outgrow one readable file:
:mod:`.variants` (what a variant is), :mod:`.runner` (how a study runs) and :mod:`.results` (what a
finished study holds: rows, summary, CSV). Every public name is importable from ``lassm.ablations``.
"""

from .results import (
    METRICS,
    collect,
    read_csv,
    read_marker,
    summary_table,
    validation_curves,
    write_csv,
    write_marker,
)
from .runner import RUNNER_FIELDS, run_study
from .variants import (
    NAME_PATTERN,
    STUDIES,
    VARIANTS,
    ZERO_T_LAYER_AUGMENT,
    Times,
    check_variant,
    study_variants,
)

__all__ = ["METRICS", "NAME_PATTERN", "RUNNER_FIELDS", "STUDIES", "VARIANTS",
           "ZERO_T_LAYER_AUGMENT", "Times", "check_variant", "collect", "read_csv", "read_marker",
           "run_study", "study_variants", "summary_table", "validation_curves", "write_csv",
           "write_marker"]
