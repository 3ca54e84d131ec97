"""A run's logs: ``metrics.jsonl`` (one JSON record per log step, epoch and validation), TensorBoard
scalars under ``tb/`` and short console lines, written by training and read by notebooks and studies."""

from __future__ import annotations

import json
import os
from pathlib import Path


class Logger:
    """metrics.jsonl lines, TensorBoard scalars and short console lines (rank 0 only)."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"))
            except ImportError:  # TensorBoard is optional at run time
                self.tb = None

    def log(self, kind: str, step: int, values: dict, note: str = "") -> None:
        """Append one record (and TensorBoard scalars) and print it; ``note`` (an ETA) is only printed."""
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, **{k: round(float(v), 6) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{kind}/{k}", float(v), step)
        shown = " ".join(f"{k} {float(v):.4g}" for k, v in values.items())
        print(f"[{kind} step {step}] {shown}{'  ' + note if note else ''}", flush=True)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def eta_text(seconds: float) -> str:
    """Remaining time as ``eta 1h02m``, ``eta 4m05s`` or ``eta 12s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"eta {hours}h{minutes:02d}m"
    return f"eta {minutes}m{secs:02d}s" if minutes else f"eta {secs}s"


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The records of a run's metrics.jsonl (empty when the run has not logged yet)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _validations(run_dir: str | os.PathLike) -> list[dict]:
    """The run's validation records in order; ValueError if it has none yet."""
    val = [r for r in read_metrics(run_dir) if r.get("kind") == "val"]
    if not val:
        raise ValueError(f"run_dir: {run_dir} has no validation results in metrics.jsonl yet")
    return val


def last_validation(run_dir: str | os.PathLike) -> dict:
    """The run's last validation record (AP, AP50, AP25, epoch, step); ValueError if it has none."""
    return _validations(run_dir)[-1]


def best_validation(run_dir: str | os.PathLike) -> dict:
    """The validation ``model_best.pth`` holds: the highest AP50, of equal ones the latest (as training
    keeps it); ValueError if the run has none."""
    return max(reversed(_validations(run_dir)), key=lambda r: r["AP50"])
