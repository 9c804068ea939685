"""The results a report is made from: run directories, benchmarks and sweeps, read and
validated.

A run brings its run.json, its metrics.jsonl (loss and evaluation over steps and time) and its
power.csv (every power sample); a benchmark its bench.json; a sweep its sweep.json. Everything
is read through the typed records, so a damaged file is refused with one line, and a missing
optional file is simply absent (the figure that needs it then says why it is missing).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bigbench.errors import BigbenchError
from bigbench.records import (
    SWEEP_SCHEMA,
    BenchDocument,
    RecordError,
    RunRecord,
    SweepDocument,
    load_result,
    load_sweep,
    read_document,
)


class ReportError(BigbenchError):
    """A result a report cannot be made from (missing, unreadable, another schema)."""


@dataclass
class PowerTrace:
    """One device's power samples from power.csv.

    Attributes:
        t_s: Seconds since the run's command started (the time axis of the run's windows).
        power_w: Power at each time, W.
    """

    t_s: list[float] = field(default_factory=list)
    power_w: list[float] = field(default_factory=list)


@dataclass
class RunInput:
    """One training run.

    Attributes:
        label: Short name shown in legends (the run's name, made unique).
        path: The run directory (or the folder of the run.json given).
        record: The validated run.json.
        train_events: metrics.jsonl's ``train`` lines (``time_s``, ``step``, ``loss`` …).
        eval_events: metrics.jsonl's ``eval`` lines.
        power: power.csv by device key (empty when the run has no power.csv).
    """

    label: str
    path: Path
    record: RunRecord
    train_events: list[dict[str, Any]] = field(default_factory=list)
    eval_events: list[dict[str, Any]] = field(default_factory=list)
    power: dict[str, PowerTrace] = field(default_factory=dict)


@dataclass
class BenchInput:
    """One benchmark: its label, its bench.json's path (or, for a document given already
    loaded, what it is) and the validated bench.json."""

    label: str
    path: Path | str
    document: BenchDocument


@dataclass
class SweepInput:
    """One sweep: its label, its folder and the validated sweep.json."""

    label: str
    path: Path
    document: SweepDocument


#: A result as :func:`load_inputs` takes it: a path, or a bench.json already loaded (its
#: figures need nothing beside it; a run's need its directory's metrics.jsonl and power.csv).
ResultSource = Path | BenchDocument
#: How a bench.json given already loaded is named in the report.
LOADED_BENCH = "bench.json given as a loaded BenchDocument"


@dataclass
class ReportInputs:
    """Every result given, in the order given."""

    runs: list[RunInput] = field(default_factory=list)
    benches: list[BenchInput] = field(default_factory=list)
    sweeps: list[SweepInput] = field(default_factory=list)


def load_inputs(paths: Sequence[ResultSource]) -> ReportInputs:
    """Read every RESULT: a run directory, a bench directory, a bench.json, a sweep directory,
    a sweep.json or a loaded BenchDocument (any mix).

    Raises:
        ReportError: one line per unusable result (all of them, not only the first).
    """
    inputs, problems, labels = ReportInputs(), [], set()
    for path in paths:
        found: Path | str
        if isinstance(path, BenchDocument):
            found, document = LOADED_BENCH, path
        else:
            try:
                sweep = _sweep(Path(path))
                if sweep is not None:
                    folder = Path(path) if Path(path).is_dir() else Path(path).parent
                    inputs.sweeps.append(SweepInput(_unique(sweep.name, labels), folder, sweep))
                    continue
                found, document = load_result(path)
            except RecordError as exc:
                problems.extend(exc.problems)
                continue
        label = _unique(document.name if isinstance(document, RunRecord) else document.label,
                        labels)
        if isinstance(document, RunRecord):
            inputs.runs.append(_run_input(label, Path(found).parent, document))
        else:
            inputs.benches.append(BenchInput(label, found, document))
    if problems:
        raise ReportError(*problems)
    if not paths:
        raise ReportError("give at least one RESULT: a run directory, a bench directory or "
                          "a bench.json")
    return inputs


def _sweep(path: Path) -> SweepDocument | None:
    """The validated sweep.json at ``path`` (a sweep folder or the file), or None when
    ``path`` is another kind of result."""
    if path.is_dir():
        if (path / "sweep.json").is_file() and not any(
                (path / name).is_file() for name in ("bench.json", "run.json")):
            return load_sweep(path)
        return None
    if path.suffix != ".json" or not path.is_file():
        return None
    _, document = read_document(path)
    return load_sweep(path) if document.get("schema") == SWEEP_SCHEMA else None


def _unique(label: str, taken: set[str]) -> str:
    candidate, n = label, 2
    while candidate in taken:
        candidate, n = f"{label} ({n})", n + 1
    taken.add(candidate)
    return candidate


def _run_input(label: str, folder: Path, record: RunRecord) -> RunInput:
    run = RunInput(label, folder, record)
    events = _one_timeline(_jsonl(folder / "metrics.jsonl"))
    run.train_events = _last_per_step([e for e in events if e.get("event") == "train"])
    run.eval_events = _last_per_step([e for e in events if e.get("event") == "eval"])
    run.power = _power(folder / "power.csv")
    return run


def _one_timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``time_s`` on one axis: each process of a resumed run counts from its own start, so a
    time that goes backwards starts a new process, which continues after the previous one."""
    offset, last, out = 0.0, None, []
    for event in events:
        t = event.get("time_s")
        if isinstance(t, int | float) and math.isfinite(t):
            if last is not None and t + offset < last:
                offset = last
            event = {**event, "time_s": t + offset}
            last = event["time_s"]
        out.append(event)
    return out


def _last_per_step(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One event per step, the last logged (a run killed after its last checkpoint logs the
    steps since then again when resumed), in step order."""
    by_step: dict[Any, dict[str, Any]] = {}
    for event in events:
        by_step[event.get("step")] = event
    return sorted(by_step.values(), key=lambda e: e["step"] if isinstance(e.get("step"), int)
                  else -1)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's objects; an incomplete last line (a crash mid-write) is skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    events = []
    for line in lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            events.append(value)
    return events


def _power(path: Path) -> dict[str, PowerTrace]:
    """power.csv by device; rows that do not parse or are not finite are skipped."""
    traces: dict[str, PowerTrace] = {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                try:
                    t, watts = float(row["t_s"]), float(row["power_w"])
                except (KeyError, TypeError, ValueError):
                    continue
                if not (math.isfinite(t) and math.isfinite(watts)):
                    continue  # a damaged row: never plotted
                trace = traces.setdefault(row.get("device") or "?", PowerTrace())
                trace.t_s.append(t)
                trace.power_w.append(watts)
    except (OSError, UnicodeDecodeError):
        return {}
    return traces
