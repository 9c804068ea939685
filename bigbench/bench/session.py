"""Build a benchmark's matrix from a suite or a CONFIG plus flags, and run it to disk."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bigbench.bench.matrix import SUITES, Matrix, Plan, Point, expand
from bigbench.bench.output import BENCH_SCHEMA, write_outputs
from bigbench.errors import ConfigError


@dataclass
class Overrides:
    """Command-line choices; None leaves the suite's or config's value."""

    models: list[str] | None = None
    batch_sizes: list[int] | None = None
    precisions: list[str] | None = None
    modes: list[str] | None = None
    compile: bool | None = None
    channels_last: bool | None = None
    steps: int | None = None
    duration_s: float | None = None
    warmup: int | None = None
    repeats: int | None = None


def matrix_from_config(config: Any) -> tuple[Matrix, Plan]:
    """The matrix around one experiment: its model (and arguments) on its data's shape."""
    import torch

    from bigbench.data import build_data

    bench = config.bench
    model_args = {k: v for k, v in config.model.model_dump().items() if k != "name"}
    info = build_data(config.data, torch.device("cpu")).info
    models = bench.models if bench and bench.models else [config.model.name]
    matrix = Matrix(
        models=models,
        batch_sizes=bench.batch_sizes if bench and bench.batch_sizes else
        [config.train.batch_size],
        precisions=list(bench.precisions) if bench else ["fp32"],
        modes=list(bench.modes) if bench else ["train", "infer"],
        compile=bench.compile if bench else False,
        channels_last=bench.channels_last if bench else False,
        model_args={config.model.name: model_args},
        data={config.model.name: info},
    )
    plan = Plan(steps=bench.steps, duration_s=bench.duration_s, warmup=bench.warmup,
                repeats=bench.repeats) if bench else Plan()
    return matrix, plan


def apply_overrides(matrix: Matrix, plan: Plan, flags: Overrides) -> tuple[Matrix, Plan]:
    """Flags win over the suite or config."""
    if flags.steps is not None and flags.duration_s is not None:
        raise ConfigError("--steps and --duration both given; choose one")
    for name in ("models", "batch_sizes", "precisions", "modes", "compile", "channels_last"):
        value = getattr(flags, name)
        if value is not None:
            setattr(matrix, name, value)
    if flags.steps is not None:
        plan.steps, plan.duration_s = flags.steps, None
    if flags.duration_s is not None:
        plan.duration_s = flags.duration_s
    if flags.warmup is not None:
        plan.warmup = flags.warmup
    if flags.repeats is not None:
        plan.repeats = flags.repeats
    return matrix, plan


def suite_matrix(name: str) -> tuple[Matrix, Plan]:
    """A fresh copy of a named suite."""
    matrix, plan = SUITES[name]
    return (Matrix(**{**matrix.__dict__, "models": list(matrix.models),
                      "batch_sizes": list(matrix.batch_sizes)}), Plan(**plan.__dict__))


@dataclass
class BenchRun:
    """A benchmark being run: its document is rewritten after every point."""

    out_dir: Path
    document: dict[str, Any]
    points: list[Point]
    results: list[dict[str, Any]] = field(default_factory=list)

    def record(self, result: dict[str, Any]) -> None:
        """Add a point's result and rewrite bench.json/bench.csv (nothing measured is lost)."""
        self.results.append(result)
        self.document["points"] = self.results
        write_outputs(self.out_dir, self.document)

    def finish(self, status: str) -> None:
        """Mark the run's final status and write it."""
        self.document["status"] = status
        self.document["finished_at"] = datetime.now(timezone.utc).isoformat()
        write_outputs(self.out_dir, self.document)


def start_run(out_dir: Path, points: list[Point], plan: Plan, env: dict[str, Any],
              label: str, isolated: bool) -> BenchRun:
    """Write the initial bench.json (status "running") and return the run."""
    document = {
        "schema": BENCH_SCHEMA, "status": "running", "label": label,
        "started_at": datetime.now(timezone.utc).isoformat(), "finished_at": None,
        "env": env, "plan": dict(plan.__dict__), "isolated": isolated,
        "matrix": [p.id for p in points], "points": [],
    }
    run = BenchRun(out_dir, document, points)
    write_outputs(out_dir, document)
    return run


def run_points(run: BenchRun, measure_one: Callable[[Point], dict[str, Any]],
               should_stop: Callable[[], bool],
               on_result: Callable[[dict[str, Any]], None] = lambda r: None) -> str:
    """Measure each point in turn; returns "completed" or "interrupted"."""
    for point in run.points:
        if should_stop():
            return "interrupted"
        started = time.perf_counter()
        result = measure_one(point)
        result.setdefault("wall_s", time.perf_counter() - started)
        run.record(result)
        on_result(result)
    return "interrupted" if should_stop() else "completed"


__all__ = ["Overrides", "apply_overrides", "expand", "matrix_from_config", "run_points",
           "start_run", "suite_matrix"]
