"""An ablation study's results: its markers, one row per run, the summary over seeds, CSV files.

Plain records only (figures are :mod:`lassm.viz.ablations`'s). The study folder holds
``study.json`` (the variants in order) and a folder per run with ``metrics.jsonl`` and a marker,
``done.json`` or ``failed.json``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import statistics
from pathlib import Path

from ..data.io import atomic_path
from ..runlog import read_metrics

METRICS = ("AP", "AP50", "AP25", "train_seconds", "wall_seconds", "infer_seconds", "peak_mb")


def read_marker(path: Path) -> dict | None:
    """A marker or study.json as a dict; None when the file does not exist."""
    return json.loads(path.read_text()) if path.is_file() else None


def write_marker(path: Path, obj: dict) -> None:
    """Write a marker atomically, so a marker on disk is always whole."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))


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
        done, failed = read_marker(run_dir / "done.json"), read_marker(run_dir / "failed.json")
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
    order = list((read_marker(study_dir / "study.json") or {}).get("variants", {}))
    rank = {name: i for i, name in enumerate(order)}
    return sorted(rows, key=lambda r: (rank.get(r["variant"], len(order)), r["variant"], r["seed"] or 0))


def validation_curves(study_dir: str | os.PathLike) -> list[dict]:
    """Per run (in :func:`collect`'s order) with validations: variant, seed, and the lists step, AP,
    AP50, AP25 of its validations in order."""
    curves = []
    for row in collect(study_dir):
        val = [r for r in read_metrics(Path(study_dir) / row["run_dir"]) if r.get("kind") == "val"]
        if val:
            curves.append({"variant": row["variant"], "seed": row["seed"],
                           **{key: [r[key] for r in val] for key in ("step", "AP", "AP50", "AP25")}})
    return curves


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
