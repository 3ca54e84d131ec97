"""Ablation studies: what does each part of LaSSM buy? (06_ablations.ipynb)

A *variant* is a named set of dotted config overrides (STYLE rule 12: every axis is a config field
of the model, never a code fork); a *study* is a list of variants. :func:`run_study` executes
``notebooks/03_train.ipynb`` through papermill once per (variant, seed) into
``<out_root>/<study>/<variant>-s<seed>/``, which then holds the executed notebook, ``config.json``,
``metrics.jsonl``, the checkpoints and a marker: ``done.json`` (with the wall time) or
``failed.json`` (with the error); ``<study>/study.json`` lists the study's variants in order.
Finished runs are skipped on a rerun, so a study can be resumed; failed ones are retried.
:func:`collect` turns a study folder into one row per run, :func:`summary_table` averages the
seeds, and the figures and :func:`report_html` show them::

    from lassm import ablations
    ablations.run_study("reference_study", [], "synthetic", "", epochs=40, seeds=[0, 1])
    rows = ablations.collect("outputs/ablations/reference_study")
    ablations.summary_table(rows)

The axes follow the paper's ablations (REFERENCE_SPEC 6.2 query initialisation, 6.4/6.5 the layer
types split at ``t_layer``, 6.6 the serialized SSM block): see :data:`VARIANTS`.
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go

from . import config as lassm_config
from .data.io import atomic_path
from .train import read_metrics

# ------------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Times:
    """A value relative to the preset's own: ``Times(2)`` of ``num_query`` 100 is 200."""

    factor: float

    def resolve(self, base):
        value = base * self.factor
        return max(1, round(value)) if isinstance(base, int) else value


_D = "model.decoder."
# "reference" is LaSSM as published, with the preset's own values ("-3": 3 cross-attention layers).
# The number of queries is relative to the preset (x0.5, x1, x2): ScanNet's 400 gives 200 / 400 / 800,
# the small synthetic and mOSD presets' 100 give 50 / 100 / 200. "mixer-single" (one Hilbert path) is
# also the serialization axis's "one order".
VARIANTS: dict[str, dict] = {
    "reference": {},
    "init-fps": {_D + "query_init": "fps"},  # FPS over all superpoints, no semantic filter
    "init-topk": {_D + "query_init": "semantic_topk"},  # the most confident superpoints, no FPS
    "t_layer-0": {_D + "t_layer": 0},  # local aggregation in every layer
    "t_layer-6": {_D + "t_layer": 6},  # masked cross-attention in every layer
    "mixer-single": {_D + "order": ("hilbert",)},  # single-path SSM
    "mixer-attention": {_D + "mixer": "attention"},  # self-attention among the queries
    "mixer-none": {_D + "mixer": "none"},  # no query mixer
    "order-z": {_D + "order": ("z", "z-trans")},  # z-order + transposed instead of Hilbert
    "grid-0.25": {_D + "serialization_grid": 0.25},  # a finer grid than the reference's 1 m
    "k-4": {_D + "k": 4},
    "k-16": {_D + "k": 16},
    "queries-x0.5": {_D + "num_query": Times(0.5)},
    "queries-x2": {_D + "num_query": Times(2)},
    "no-refine": {_D + "centre_refine": False},  # queries stay at their seed superpoints
}

STUDIES: dict[str, list[str]] = {
    "reference_study": list(VARIANTS),
    "smoke": ["reference", "mixer-none"],  # CI: two tiny runs of 03_train in smoke mode
}

_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")  # variant and study names become folder names


def _field(cfg, key: str):
    """The current value of a dotted config field; ValueError if there is none."""
    target = cfg
    for part in key.split("."):
        if not hasattr(target, "__dataclass_fields__") or part not in target.__dataclass_fields__:
            raise KeyError(part)
        target = getattr(target, part)
    return target


def _type_error(current, value) -> str:
    """What the field's type expects, or "" when ``value`` fits it (ints are fine for floats)."""
    if isinstance(current, bool):
        return "" if isinstance(value, bool) else "True or False"
    if isinstance(current, int):
        return "" if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(current, float):
        return "" if isinstance(value, int | float) and not isinstance(value, bool) else "a number"
    if isinstance(current, str):
        return "" if isinstance(value, str) else "a string"
    if isinstance(current, tuple):
        return "" if isinstance(value, tuple | list) else "a tuple"
    return ""


def check_variant(name: str, overrides: dict, preset: str = "synthetic") -> dict:
    """Apply a variant's overrides to a fresh preset config; returns them resolved (no :class:`Times`).

    ValueError names the variant, the key and what was expected: an unknown field, a value of the
    wrong type, or one the config rejects (e.g. ``mixer`` not in ssm / attention / none).
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"variant name: expected letters, digits and . _ + - only, got {name!r}")
    if not isinstance(overrides, dict):
        raise ValueError(f"variant {name!r}: expected a dict of dotted config overrides, "
                         f"got {type(overrides).__name__}")
    cfg = lassm_config.preset(preset)
    resolved = {}
    for key, value in overrides.items():
        try:
            current = _field(cfg, key)
        except KeyError as err:
            raise ValueError(f"variant {name!r}: unknown config field {key!r} (no {err.args[0]!r}); "
                             f"expected a dotted field such as 'model.decoder.k'") from None
        if isinstance(value, Times):
            if not isinstance(current, int | float) or isinstance(current, bool):
                raise ValueError(f"variant {name!r}: {key} is not numeric, so it cannot be relative")
            value = value.resolve(current)
        if expected := _type_error(current, value):
            raise ValueError(f"variant {name!r}: {key} expects {expected}, got {value!r}")
        try:
            lassm_config.apply_overrides(cfg, {key: value})
        except (ValueError, TypeError) as err:
            raise ValueError(f"variant {name!r}: bad value for {key}: {err}") from None
        resolved[key] = list(value) if isinstance(value, tuple) else value  # JSON-friendly for papermill
    return resolved


def study_variants(study: str, variants: list | dict | None = None) -> dict[str, dict]:
    """name -> overrides: the study's built-in list, or the given names (and/or a dict of custom ones)."""
    if isinstance(variants, dict):
        return dict(variants)
    names = list(variants or [])
    if not names:
        if study not in STUDIES:
            raise ValueError(f"study: {study!r} has no built-in variant list ({sorted(STUDIES)}); "
                             f"pass the variants to run")
        names = STUDIES[study]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"variants: unknown names {unknown}; expected some of {list(VARIANTS)}")
    return {n: VARIANTS[n] for n in names}


# ------------------------------------------------------------------------------- running a study


def _check_data_root(preset: str, data_root: str, root: Path, smoke: bool) -> None:
    """Fail before any run: a given data_root must exist; a non-synthetic preset needs its train split."""
    cfg = lassm_config.preset(preset)
    if data_root:
        path = root / data_root
        if not path.is_dir():
            raise ValueError(f"data_root: {path} does not exist; expected a folder of processed scenes "
                             f"(or empty for the preset's default)")
    elif preset == "synthetic" or smoke:
        return  # 03_train generates synthetic rooms when the default folder is empty
    else:
        path = root / cfg.data.root
    if preset != "synthetic" and not (path / cfg.data.train_split).is_dir():
        raise ValueError(f"data_root: {path} has no '{cfg.data.train_split}' split folder; expected "
                         f"processed {preset} scenes (notebooks/01_preprocess.ipynb writes them)")


def _error_text(err: BaseException) -> str:
    """One line: papermill's PapermillExecutionError carries the notebook's exception name and value."""
    if hasattr(err, "ename") and hasattr(err, "evalue"):
        text = f"{err.ename}: {err.evalue}"
    else:
        text = f"{type(err).__name__}: {err}"
    return text.strip()[:2000]


def _write_marker(path: Path, obj: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))


def run_study(study: str, variants: list | dict | None, preset: str = "synthetic", data_root: str = "",
              epochs: int = 40, seeds: list[int] = (0,), gpus: int = 1, out_root: str | os.PathLike = "",
              smoke: bool = False, extra_parameters: dict | None = None, execute=None,
              notebook: str | os.PathLike = "", log=print) -> list[dict]:
    """Train every (variant, seed) of a study with 03_train.ipynb; returns one dict per run.

    ``out_root`` defaults to outputs/ablations (smoke: outputs/smoke/ablations); ``extra_parameters``
    go to 03_train as they are (batch_size, lr, eval_every, amp, ...). ``execute`` is papermill's
    ``execute_notebook`` unless given (tests pass a fake). A run that raises is recorded in
    ``failed.json`` and the study goes on; Ctrl-C stops it.
    """
    if not isinstance(study, str) or not _NAME.match(study):
        raise ValueError(f"study: expected letters, digits and . _ + - only, got {study!r}")
    seeds = list(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds: expected a non-empty list of integers, got {seeds!r}")
    for pname, value in (("epochs", epochs), ("gpus", gpus)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{pname}: expected a positive integer, got {value!r}")
    if preset not in lassm_config.PRESETS:
        raise ValueError(f"preset: unknown name {preset!r}; expected one of {sorted(lassm_config.PRESETS)}")
    resolved = {name: check_variant(name, ov, preset) for name, ov in study_variants(study, variants).items()}
    root = lassm_config.project_root()
    _check_data_root(preset, data_root, root, smoke)
    fixed = {"preset", "data_root", "experiment", "output_root", "epochs", "gpus", "seed", "smoke",
             "overrides"}
    extra = dict(extra_parameters or {})
    if clash := sorted(fixed & set(extra)):
        raise ValueError(f"extra_parameters: {clash} are set by run_study itself; pass them as arguments")
    if execute is None:
        import papermill

        execute = papermill.execute_notebook
    study_dir = Path(out_root or root / ("outputs/smoke/ablations" if smoke else "outputs/ablations")) / study
    notebook = Path(notebook or root / "notebooks/03_train.ipynb")

    # the study's variants in order, kept across reruns (collect() orders its rows by them)
    plan = (_read_marker(study_dir / "study.json") or {}).get("variants", {})
    _write_marker(study_dir / "study.json", {"variants": {**plan, **resolved}, "preset": preset})
    jobs = [(name, overrides, seed) for name, overrides in resolved.items() for seed in seeds]
    results = []
    for n, (name, overrides, seed) in enumerate(jobs):
        run_dir = study_dir / f"{name}-s{seed}"
        head = f"[{n + 1}/{len(jobs)}] {name} seed {seed}:"
        if (run_dir / "done.json").is_file():
            log(f"{head} finished earlier, skipped")
            results.append({"variant": name, "seed": seed, "status": "skipped"})
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "failed.json").unlink(missing_ok=True)  # retried
        parameters = {"preset": preset, "data_root": data_root, "experiment": run_dir.name,
                      "output_root": str(study_dir), "epochs": epochs, "gpus": gpus, "seed": seed,
                      "smoke": smoke, "overrides": overrides, **extra}
        log(f"{head} running {overrides or '(reference)'}")
        marker = {"variant": name, "seed": seed, "overrides": overrides, "parameters": parameters}
        started = time.perf_counter()
        try:
            execute(str(notebook), str(run_dir / "03_train.ipynb"), parameters=parameters, cwd=str(root),
                    progress_bar=False)
        except Exception as err:  # noqa: BLE001 - any failure of one run is recorded; the study goes on
            marker.update(wall_seconds=time.perf_counter() - started, error=_error_text(err))
            _write_marker(run_dir / "failed.json", marker)
            log(f"{head} FAILED after {marker['wall_seconds']:.1f} s: {marker['error'][:300]}")
            results.append({"variant": name, "seed": seed, "status": "failed", "error": marker["error"]})
            continue
        marker["wall_seconds"] = time.perf_counter() - started
        _write_marker(run_dir / "done.json", marker)
        log(f"{head} done in {marker['wall_seconds']:.1f} s")
        results.append({"variant": name, "seed": seed, "status": "done"})
    return results


# ------------------------------------------------------------------------------- collecting results

METRICS = ("AP", "AP50", "AP25", "train_seconds", "wall_seconds", "infer_seconds", "peak_mb")


def _read_marker(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def collect(study_dir: str | os.PathLike) -> list[dict]:
    """One row per run folder: its status, best validation (by AP50) and last one, cost and error.

    AP / AP50 / AP25 are the best validation's (the one model_best.pth holds); last_* the last
    validation's; train_seconds sums the epochs' seconds; infer_seconds is the last validation's
    seconds per scene; peak_mb the largest epoch peak.
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise ValueError(f"study_dir: {study_dir} does not exist; run the study first")
    rows = []
    for run_dir in sorted(p for p in study_dir.iterdir() if p.is_dir()):
        done, failed = _read_marker(run_dir / "done.json"), _read_marker(run_dir / "failed.json")
        records = read_metrics(run_dir)
        if done is None and failed is None and not records:
            continue  # not a run folder
        marker = done or failed or {}
        match = re.match(r"^(.*)-s(\d+)$", run_dir.name)
        val = [r for r in records if r.get("kind") == "val"]
        epochs = [r for r in records if r.get("kind") == "epoch"]
        runs = [r for r in records if r.get("kind") == "run"]
        best = max(val, key=lambda r: r["AP50"]) if val else {}  # first maximum, as model_best.pth
        last = val[-1] if val else {}
        rows.append({
            "variant": marker.get("variant", match.group(1) if match else run_dir.name),
            "seed": marker.get("seed", int(match.group(2)) if match else None),
            "status": "done" if done else "failed" if failed else "incomplete",
            "AP": best.get("AP"), "AP50": best.get("AP50"), "AP25": best.get("AP25"),
            "best_epoch": best.get("epoch"),
            "last_AP": last.get("AP"), "last_AP50": last.get("AP50"), "last_AP25": last.get("AP25"),
            "train_seconds": sum(r.get("seconds", 0.0) for r in epochs) if epochs else None,
            "wall_seconds": marker.get("wall_seconds"),
            "infer_seconds": last.get("seconds_per_scene"),
            "params": int(runs[0]["params"]) if runs else None,
            "peak_mb": max(r.get("peak_mb", 0.0) for r in epochs) if epochs else None,
            "error": (failed or {}).get("error", "") if not done else "",
            "run_dir": run_dir.name,  # relative to the study folder
        })
    order = list((_read_marker(study_dir / "study.json") or {}).get("variants", {}))
    rank = {name: i for i, name in enumerate(order)}
    return sorted(rows, key=lambda r: (rank.get(r["variant"], len(order)), r["variant"], r["seed"] or 0))


def summary_table(rows: list[dict]) -> list[dict]:
    """One row per variant (first-seen order): run counts, and mean / std over seeds of each metric.

    The std is the sample standard deviation (0 with one seed); failed runs count in ``failed``
    only; a variant none of whose runs has a value shows None.
    """
    order = list(dict.fromkeys(r["variant"] for r in rows))
    table = []
    for name in order:
        mine = [r for r in rows if r["variant"] == name]
        ok = [r for r in mine if r["status"] == "done"]
        row = {"variant": name, "runs": len(mine), "done": len(ok),
               "failed": sum(r["status"] == "failed" for r in mine)}
        for key in METRICS:
            values = [float(r[key]) for r in ok if r.get(key) is not None]
            row[f"{key}_mean"] = statistics.fmean(values) if values else None
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
        row["params"] = next((r["params"] for r in mine if r.get("params") is not None), None)
        row["error"] = next((r["error"] for r in mine if r.get("error")), "")
        table.append(row)
    return table


def write_csv(rows: list[dict], path: str | os.PathLike) -> Path:
    """Rows as CSV (columns in first-seen order, None as an empty cell), written atomically."""
    path = Path(path)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if r.get(k) is None else r[k] for k in columns})
    return path


def read_csv(path: str | os.PathLike) -> list[dict]:
    """Rows written by :func:`write_csv`: numbers back to int / float, empty cells to None."""
    def parse(text: str):
        if text == "":
            return None
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    with open(path, newline="") as f:
        return [{k: parse(v) for k, v in r.items()} for r in csv.DictReader(f)]


# ------------------------------------------------------------------------------- figures and report

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def ap_figure(rows: list[dict]) -> go.Figure:
    """AP / AP50 / AP25 per variant (best validation), mean over seeds with std error bars."""
    table = [r for r in summary_table(rows) if r["done"]]
    fig = go.Figure()
    for i, key in enumerate(("AP", "AP50", "AP25")):
        fig.add_trace(go.Bar(x=[r["variant"] for r in table], y=[r[f"{key}_mean"] for r in table],
                             error_y=dict(type="data", array=[r[f"{key}_std"] for r in table]),
                             name=key, marker_color=_color(i)))
    fig.update_layout(barmode="group", title="validation AP per variant (mean and std over seeds)",
                      yaxis_title="AP", height=420, margin=dict(l=50, r=20, t=50, b=80))
    return fig


def curves_figure(study_dir: str | os.PathLike) -> go.Figure:
    """Validation AP50 against step per run: a colour per variant, its first seed solid, others dashed."""
    fig = go.Figure()
    colors: dict[str, str] = {}
    for row in collect(study_dir):
        val = [r for r in read_metrics(Path(study_dir) / row["run_dir"]) if r.get("kind") == "val"]
        if not val:
            continue
        first = row["variant"] not in colors
        color = colors.setdefault(row["variant"], _color(len(colors)))
        fig.add_trace(go.Scatter(x=[r["step"] for r in val], y=[r["AP50"] for r in val], mode="lines+markers",
                                 name=f"{row['variant']} s{row['seed']}", legendgroup=row["variant"],
                                 line=dict(color=color, dash="solid" if first else "dash")))
    fig.update_layout(title="validation AP50 during training", xaxis_title="step", yaxis_title="AP50",
                      height=420, margin=dict(l=50, r=20, t=50, b=40))
    return fig


def tradeoff_figure(rows: list[dict]) -> go.Figure:
    """AP50 against inference seconds per scene, one labelled point per variant (means, std bars)."""
    table = [r for r in summary_table(rows) if _finite(r["AP50_mean"]) and _finite(r["infer_seconds_mean"])]
    fig = go.Figure(go.Scatter(
        x=[r["infer_seconds_mean"] for r in table], y=[r["AP50_mean"] for r in table],
        error_x=dict(type="data", array=[r["infer_seconds_std"] for r in table]),
        error_y=dict(type="data", array=[r["AP50_std"] for r in table]),
        text=[r["variant"] for r in table], mode="markers+text", textposition="top center",
        marker=dict(size=10, color=[_color(i) for i in range(len(table))])))
    fig.update_layout(title="accuracy against inference time", xaxis_title="seconds per scene (validation)",
                      yaxis_title="AP50", height=420, margin=dict(l=50, r=20, t=50, b=40))
    return fig


_TABLE_COLUMNS = (("variant", "variant"), ("done", "runs done"), ("failed", "failed"), ("AP", "mAP"),
                  ("AP50", "AP50"), ("AP25", "AP25"), ("train_seconds", "train s"),
                  ("infer_seconds", "s / scene"), ("params", "params"), ("peak_mb", "peak MB"),
                  ("error", "error"))


def _cell(row: dict, key: str) -> str:
    """A summary cell as text: mean +- std for metrics, the value otherwise."""
    if f"{key}_mean" in row:
        mean, std = row[f"{key}_mean"], row[f"{key}_std"]
        if mean is None:
            return ""
        digits = 3 if key.startswith("AP") else 2 if "seconds" in key else 0
        return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std else "")
    value = row.get(key)
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def format_table(table: list[dict]) -> str:
    """The summary as aligned plain text, for printing."""
    lines = [[title for _, title in _TABLE_COLUMNS]]
    lines += [[_cell(r, key) for key, _ in _TABLE_COLUMNS] for r in table]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_TABLE_COLUMNS))]
    padded = ("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)
    return "\n".join(padded)


def table_figure(table: list[dict]) -> go.Figure:
    """The summary as a plotly table (mean ± std over seeds)."""
    fig = go.Figure(go.Table(header=dict(values=[title for _, title in _TABLE_COLUMNS], align="left"),
                             cells=dict(values=[[_cell(r, key) for r in table] for key, _ in _TABLE_COLUMNS],
                                        align="left")))
    fig.update_layout(height=80 + 30 * len(table), margin=dict(l=10, r=10, t=10, b=10))
    return fig


def report_html(figures: list[go.Figure], table: list[dict], path: str | os.PathLike, title: str) -> Path:
    """One standalone page: a heading, the summary table and the figures, plotly.js embedded once."""
    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in _TABLE_COLUMNS)
    cells = ("".join(f"<td>{html.escape(_cell(r, k))}</td>" for k, _ in _TABLE_COLUMNS) for r in table)
    body = "".join(f"<tr>{c}</tr>" for c in cells)
    parts = [fig.to_html(full_html=False, include_plotlyjs=i == 0) for i, fig in enumerate(figures)]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><table><tr>{head}</tr>{body}</table>{''.join(parts)}</body></html>")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def export_report(executed_notebook_path: str | os.PathLike, html_path: str | os.PathLike) -> Path:
    """An executed notebook (e.g. papermill's output of 06_ablations) as standalone HTML, via nbconvert.

    A running notebook cannot export itself; call this on the copy papermill wrote.
    """
    source = Path(executed_notebook_path)
    if not source.is_file():
        raise ValueError(f"executed_notebook_path: {source} does not exist; expected an executed .ipynb")
    try:
        import nbformat
        from nbconvert import HTMLExporter
    except ImportError:
        raise RuntimeError("export_report needs nbconvert (pip install nbconvert); report_html writes "
                           "the table and figures without it") from None
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(source, as_version=4))
    path = Path(html_path)
    with atomic_path(path) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return path
