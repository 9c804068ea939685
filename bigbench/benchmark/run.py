"""Run a benchmark as a library call: points measured in turn, results written as they come.

``measure_points`` yields each point's result (in this process, or each in a fresh subprocess
when isolated), with the energy monitor started and stopped around them; ``run_bench`` writes
bench.json and bench.csv after every point, so an interrupted run keeps what it measured, and
adds the max-batch search. The CLI only parses, shows progress and prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bigbench.benchmark.matrix import Plan, Point
from bigbench.benchmark.output import write_outputs
from bigbench.records import BENCH_SCHEMA

if TYPE_CHECKING:
    import torch

    from bigbench.config.schema import MeasureConfig


@dataclass
class BenchSession:
    """One benchmark, resolved: what to measure, where, how, and where results go.

    Attributes:
        isolated: Each point in a fresh process (allocator state, compiled graphs and crashes
            of one point cannot touch the next).
        find_max: Also search the largest batch that fits, per model/mode/precision.
        measure: Energy settings (``measure:`` of a CONFIG, else the defaults).
        env: The environment record (versions, device, energy meters).
        model_source: A variant folder or run directory whose saved model every point
            measures (instead of a fresh registry model).
    """

    points: list[Point]
    plan: Plan
    device: torch.device
    isolated: bool
    find_max: bool
    out_dir: Path
    label: str
    measure: MeasureConfig
    env: dict[str, Any]
    model_source: Path | None = None


@dataclass
class BenchRun:
    """A benchmark being run: its document is rewritten after every point."""

    out_dir: Path
    document: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def record(self, result: dict[str, Any]) -> None:
        """Add a point's result and rewrite bench.json/bench.csv (nothing measured is lost)."""
        self.results.append(result)
        self.document["points"] = self.results
        write_outputs(self.out_dir, self.document)

    def finish(self, status: str) -> None:
        """Mark the run's final status and write it."""
        from bigbench.records import BenchDocument, RecordError, validate

        self.document["status"] = status
        self.document["finished_at"] = datetime.now(timezone.utc).isoformat()
        write_outputs(self.out_dir, self.document)
        try:  # the typed model is the contract; a mismatch is a bug, reported, not fatal
            validate(self.document, BenchDocument, "bench.json")
        except RecordError as exc:
            self.warnings.append(f"{exc.problems[0]} (a bug in bigbench: please report it)")


def bench_environment(device: torch.device, measure: MeasureConfig) -> dict[str, Any]:
    """The environment record of a benchmark: as run.json's, energy meters included."""
    from bigbench.measurement import energy_monitor, environment

    # Not started: only its meters are described (the points build their own).
    return environment(device, energy_monitor(measure, device))


def start_run(session: BenchSession) -> BenchRun:
    """Write the initial bench.json (status "running") and return the run."""
    document = {
        "schema": BENCH_SCHEMA, "status": "running", "label": session.label,
        "started_at": datetime.now(timezone.utc).isoformat(), "finished_at": None,
        "env": session.env, "plan": dict(session.plan.__dict__), "isolated": session.isolated,
        "matrix": [p.id for p in session.points], "points": [],
        **({"model_from": str(session.model_source)} if session.model_source else {}),
    }
    run = BenchRun(session.out_dir, document)
    write_outputs(session.out_dir, document)
    return run


def measure_points(session: BenchSession, should_stop: Callable[[], bool] = lambda: False
                   ) -> Iterator[dict[str, Any]]:
    """Measure each point in turn and yield its result; stops early when ``should_stop()``."""
    from bigbench.benchmark.runner import run_isolated, run_point, saved_model_measure
    from bigbench.measurement import energy_monitor

    energy = None if session.isolated else energy_monitor(session.measure, session.device)
    source = str(session.model_source) if session.model_source else None
    measure = saved_model_measure(source) if energy is not None else None
    if energy is not None:
        energy.start()
    try:
        for point in session.points:
            if should_stop():
                return
            started = time.perf_counter()
            if energy is None:
                result = run_isolated(point, session.plan, str(session.device),
                                      session.measure.model_dump(), model_from=source)
            else:
                result = run_point(point, session.plan, session.device, energy,
                                   measure=measure)
            result.setdefault("wall_s", time.perf_counter() - started)
            yield result
    finally:
        if energy is not None:
            energy.stop()


def run_bench(session: BenchSession, should_stop: Callable[[], bool] = lambda: False,
              on_result: Callable[[BenchRun], None] = lambda run: None) -> BenchRun:
    """Measure every point, writing results after each; returns the finished run.

    Its document's status is "completed", or "interrupted" when ``should_stop()`` turned true
    or a second Ctrl-C arrived.
    """
    run = start_run(session)
    status = "completed"
    try:
        for result in measure_points(session, should_stop):
            run.record(result)
            on_result(run)
        if should_stop():
            status = "interrupted"
    except KeyboardInterrupt:
        status = "interrupted"
    if session.find_max and status == "completed":
        run.document["max_batch"] = max_batches(session)
    run.finish(status)
    return run


def max_batches(session: BenchSession) -> list[dict[str, Any]]:
    """The largest batch that fits, per model/mode/precision, each trial isolated."""
    from bigbench.benchmark.runner import find_max_batch, run_isolated

    trial_plan = Plan(steps=2, warmup=1, repeats=1, optimizer=session.plan.optimizer,
                      energy_min_window=False)
    found, seen = [], set()
    for point in session.points:
        key = (point.model, point.mode, point.precision, point.compile, point.channels_last)
        if key in seen:
            continue
        seen.add(key)

        def trial(size: int, point: Point = point) -> str:
            return run_isolated(replace(point, batch_size=size), trial_plan,
                                str(session.device), session.measure.model_dump())["status"]

        result = find_max_batch(trial, start=point.batch_size)
        found.append({"model": point.model, "mode": point.mode, "precision": point.precision,
                      "compile": point.compile, "channels_last": point.channels_last,
                      **{**result, "tried": {str(k): v for k, v in result["tried"].items()}}})
    return found
