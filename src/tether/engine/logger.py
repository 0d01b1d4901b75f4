"""Metrics sinks of rank 0: ``metrics.jsonl``, TensorBoard (when installed) and a
rich progress bar with ETA and the live loss."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


def _clean(v: float) -> float | None:
    # JSON has no NaN/inf: a non-finite value is written as null.
    return v if math.isfinite(v) else None


class MetricsLogger:
    """Appends one JSON object per logged step and mirrors it to TensorBoard and the bar."""

    def __init__(self, out: Path, total_steps: int, start_step: int = 0,
                 tensorboard: bool = True, progress: bool = True,
                 description: str = "train") -> None:
        self.path = Path(out) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional (STYLE.md 8)
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(log_dir=str(Path(out) / "tb"))
        self._progress: Any = None
        if progress:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                TextColumn("{task.fields[live]}"),
                console=Console(file=sys.stderr), transient=False)
            self._task = self._progress.add_task(description, total=total_steps,
                                                 completed=start_step, live="")
            self._progress.start()

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Write ``{"step": step, **metrics}``; update TensorBoard and the bar."""
        rec = {"step": step, **{k: _clean(float(v)) for k, v in metrics.items()}}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                if math.isfinite(float(v)):
                    self._tb.add_scalar(k, float(v), step)
        if self._progress is not None:
            loss = metrics.get("loss/total")
            live = f"loss {loss:.4f}" if loss is not None else ""
            self._progress.update(self._task, completed=step, live=live)

    def advance(self, step: int) -> None:
        """Move the bar to ``step`` without logging."""
        if self._progress is not None:
            self._progress.update(self._task, completed=step)

    def close(self) -> None:
        """Flush TensorBoard and stop the bar."""
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
