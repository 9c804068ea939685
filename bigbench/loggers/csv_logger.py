"""``output.loggers: [csv]``: ``<run>/metrics.csv``, one row per metrics.jsonl entry.

Columns: ``event`` (train or eval), ``step``, ``epoch``, ``time_s``; the training figures
``loss``, ``lr``, ``samples_per_s``; each evaluation metric as ``eval_<metric>``; and, when
power is sampled, ``power_w/<device>`` — the device's latest power sample at that event. A
figure an event does not have is an empty cell. A resumed run appends to the same file under
its first header.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bigbench.config.schema import ExperimentConfig

FILE = "metrics.csv"
TRAIN_COLUMNS = ("loss", "lr", "samples_per_s")


class CsvLogger:
    """Writes ``metrics.csv`` as events arrive (flushed per row, so it can be followed)."""

    name = "csv"

    def __init__(self, eval_metrics: Sequence[str] = (), power_devices: Sequence[str] = ()
                 ) -> None:
        self.eval_metrics, self.power_devices = list(eval_metrics), list(power_devices)
        self.warnings: list[str] = []
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter | None = None

    def columns(self) -> list[str]:
        """The header this run writes."""
        return ["event", "step", "epoch", "time_s", *TRAIN_COLUMNS,
                *(f"eval_{m}" for m in self.eval_metrics),
                *(f"power_w/{d}" for d in self.power_devices)]

    def start(self, config: ExperimentConfig, run_dir: Path) -> None:
        path = run_dir / FILE
        header = self.columns()
        existing = _header(path)
        self._file = open(path, "a", encoding="utf-8", newline="")
        self._writer = csv.DictWriter(self._file, existing or header, extrasaction="ignore")
        if not existing:
            self._writer.writeheader()
            self._file.flush()

    def log_train(self, event: Mapping[str, Any]) -> None:
        self._row(event, {k: event.get(k) for k in TRAIN_COLUMNS})

    def log_eval(self, event: Mapping[str, Any]) -> None:
        self._row(event, {f"eval_{m}": event.get(m) for m in self.eval_metrics})

    def finish(self, record: Mapping[str, Any], run_dir: Path) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None

    def _row(self, event: Mapping[str, Any], figures: dict[str, Any]) -> None:
        if self._writer is None or self._file is None:
            return
        row = {"event": event.get("event"), "step": event.get("step"),
               "epoch": event.get("epoch"), "time_s": event.get("time_s"), **figures}
        for device, watts in (event.get("power_w") or {}).items():
            row[f"power_w/{device}"] = watts
        self._writer.writerow({k: "" if v is None else v for k, v in row.items()})
        self._file.flush()


def _header(path: Path) -> list[str] | None:
    """The header of an existing, non-empty metrics.csv (a resumed run), else None."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle), None) or None
    except FileNotFoundError:
        return None
