"""Run a benchmark as a library call: points measured in turn, results written as they come.

``measure_points`` yields each point's result (in this process, or each in a fresh subprocess
when isolated), with the energy monitor started and stopped around them; ``run_bench`` writes
bench.json and bench.csv after every point, so an interrupted run keeps what it measured, and
adds the max-batch search. The CLI only parses, shows progress and prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
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
    from bigbench.measuring.energy.power_limits import PowerLimiter

#: How one point is measured in this process: ``measure(point, plan, device, energy)``
#: returns its figures (see bigbench.benchmark.point.measure_point); with GPU settings it is
#: also given ``gpu_snapshot=`` and may return ``gpu_window`` (the readings at its measured
#: window's edges).
MeasureFn = Callable[..., dict[str, Any]]


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
        power: Sets the GPU's power limit and clocks each point asks for (``power_limit_w``,
            ``sm_clock_mhz``) and restores the originals when the points end; None when no
            point asks.
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
    power: PowerLimiter | None = None


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
    if session.power is not None:
        from bigbench.benchmark.gpu_settings import control_record

        document["gpu_control"] = control_record(session.power)
    run = BenchRun(session.out_dir, document)
    if session.power is not None:
        run.warnings += session.power.warnings
    write_outputs(session.out_dir, document)
    return run


def measure_points(session: BenchSession, should_stop: Callable[[], bool] = lambda: False,
                   measure: MeasureFn | None = None) -> Iterator[dict[str, Any]]:
    """Measure each point in turn and yield its result; stops early when ``should_stop()``.

    With ``session.power``, each point runs at its GPU settings, set here in this process
    (isolated points too) and restored when the points end, however they end.

    Args:
        measure: How a point is measured in this process (default: the saved model's, else
            a fresh registry model's; tests inject one). Not used by isolated points.
    """
    from bigbench.benchmark import gpu_settings
    from bigbench.benchmark.runner import (
        run_isolated,
        run_point,
        saved_model_measure,
        with_gpu_snapshots,
    )
    from bigbench.measurement import energy_monitor

    power = session.power
    source = str(session.model_source) if session.model_source else None
    with ExitStack() as stack:
        if power is not None:
            stack.enter_context(power)  # restores on every exit, the generator closed too
        energy = None if session.isolated else energy_monitor(session.measure, session.device)
        if energy is not None:
            measure = with_gpu_snapshots(measure or saved_model_measure(source),
                                         power.snapshot if power else None)
            energy.start()
            stack.callback(energy.stop)
        for point in session.points:
            if should_stop():
                return
            started = time.perf_counter()
            applied = gpu_settings.apply(power, point) if power is not None else None
            if energy is None:
                result = run_isolated(point, session.plan, str(session.device),
                                      session.measure.model_dump(), model_from=source,
                                      gpu_uuid=power.uuid if power else None)
            else:
                result = run_point(point, session.plan, session.device, energy,
                                   measure=measure)
            window = result.pop("gpu_window", None)
            if power is not None and applied is not None:
                after = None if window else power.snapshot()
                result["gpu_settings"] = gpu_settings.record(point, applied, window, after)
            result.setdefault("wall_s", time.perf_counter() - started)
            yield result


def run_bench(session: BenchSession, should_stop: Callable[[], bool] = lambda: False,
              on_result: Callable[[BenchRun], None] = lambda run: None,
              measure: MeasureFn | None = None) -> BenchRun:
    """Measure every point, writing results after each; returns the finished run.

    Its document's status is "completed", or "interrupted" when ``should_stop()`` turned true
    or a second Ctrl-C arrived. GPU settings (``session.power``) are restored before it
    returns or raises, whatever happened.

    Raises:
        PowerControlError: a GPU setting could not be made or put back (the document is
            finished as "interrupted" first, and the message says how to restore).
    """
    from bigbench.measuring.energy.power_limits import PowerControlError

    try:
        run = start_run(session)
    except BaseException:
        if session.power is not None:  # nothing changed yet; mark the state file restored
            session.power.restore()
        raise
    status = "completed"
    try:
        try:
            for result in measure_points(session, should_stop, measure):
                run.record(result)
                on_result(run)
            if should_stop():
                status = "interrupted"
        finally:
            if session.power is not None:  # the generator restored already, unless the loop
                try:  # body raised while it was paused: then, here
                    session.power.restore()
                finally:  # a signal held during the restore is raised after it
                    run.document["gpu_control"]["restored"] = session.power.restored
    except KeyboardInterrupt:
        status = "interrupted"
    except PowerControlError:
        run.finish("interrupted")
        raise
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
