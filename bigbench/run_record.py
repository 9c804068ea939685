"""run.json of a training run: the record written at the start, and the finished record.

The finished record is assembled in one order that cannot mix windows: this process's segment
is measured, the run's totals are summed over every segment, and only then are the derived
figures (throughput, J/sample, FLOP/s, MFU, FLOPs per joule) computed from those totals.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import psutil

from bigbench.measuring.energy.monitor import EnergyMonitor
from bigbench.measuring.energy.report import (
    carbon_section,
    energy_section,
    idle_section,
    measured_total,
    window_energy_j,
)
from bigbench.measuring.memory import host_peak_rss_bytes
from bigbench.measuring.meter import Meter
from bigbench.record import (
    Segment,
    Totals,
    apply_energy_totals,
    apply_per_item_energy,
    compile_section,
    eval_section,
    flops_section,
    memory_section,
    target_section,
    throughput_section,
)
from bigbench.records import RUN_SCHEMA

if TYPE_CHECKING:
    from bigbench.config.schema import ExperimentConfig
    from bigbench.resume import ResumeInfo
    from bigbench.training_loop import TrainingLoop
    from bigbench.workload.build import Workload

#: The status of a run by its stop reason (any other reason: failed).
_STATUS = {None: "completed", "target_reached": "completed", "interrupted": "interrupted"}
_WINDOW_ENERGY_KEYS = ("key", "energy_j", "uncertainty_j", "method", "avg_power_w",
                       "peak_power_w", "samples", "quality", "reason", "reasons")


@dataclass
class RunFacts:
    """What is known about a run before its first step.

    Attributes:
        flop_counts: FLOPs per sample (None: not counted; ``flop_error`` says why).
        eager_step_s: Median eager step time when the model is compiled (the payback figure).
        wall_start: ``time.perf_counter()`` when the command started.
    """

    config: ExperimentConfig
    workload: Workload
    env: dict[str, Any]
    run_dir: str | None
    started_at: str
    wall_start: float
    flop_counts: dict[str, Any] | None = None
    flop_error: str | None = None
    eager_step_s: float | None = None
    resume: ResumeInfo | None = None
    resumed_from_step: int = 0


def start_record(facts: RunFacts) -> dict[str, Any]:
    """run.json as written when training starts (status "running")."""
    config, workload, resume = facts.config, facts.workload, facts.resume
    built, info = workload.built, workload.info
    record: dict[str, Any] = {
        "schema": RUN_SCHEMA, "status": "running", "name": config.name,
        "run_dir": facts.run_dir,
        "started_at": resume.record.get("started_at") if resume else facts.started_at,
        "finished_at": None,
        "config": config.model_dump(mode="json"), "env": facts.env,
        "performance": workload.performance,
        "task": workload.task.name,
        "model": {"name": built.name, "family": built.family.name, "params": built.params,
                  "trainable_params": built.trainable_params, "args": built.args},
        "data": {"name": config.data.name, "sample_shape": list(info.sample_shape),
                 "num_classes": info.num_classes, "vocab_size": info.vocab_size,
                 "train_size": info.train_size, "test_size": info.test_size},
    }
    if info.entropy_floor is not None:
        record["data"]["entropy_floor"] = info.entropy_floor
    if resume is not None:
        record["resumed"] = [*resume.record.get("resumed", []), {
            "at": facts.started_at, "from_step": facts.resumed_from_step,
            "config_changes": resume.config_changes}]
    return record


def segment_summary(index: int, started_at: str, finished_at: str | None, steps_from: int,
                    steps_to: int, meter: Meter, energy: EnergyMonitor) -> dict[str, Any]:
    """What one process (segment) of a run measured in its "measured" window."""
    window = meter.totals("measured")
    entries = energy.aggregate(window.energy)
    joules, bound = measured_total(entries)
    windows = [window_energy_j(energy, meter, name) for name in meter.windows]
    status = "unavailable" if joules is None else \
        ("measured" if all(e["measured"] for e in entries) else "partial")
    return {"index": index, "started_at": started_at, "finished_at": finished_at,
            "steps": [steps_from, steps_to], "measured_steps": window.steps,
            "measured_samples": window.samples, "measured_time_s": window.time_s,
            "energy_j": joules, "energy_uncertainty_j": bound, "energy_status": status,
            "run_energy_j": math.fsum(windows) if windows and None not in windows  # type: ignore[arg-type]
            else None}


def _segment(summary: dict[str, Any]) -> Segment:
    return Segment(summary["measured_steps"], summary["measured_samples"],
                   summary["measured_time_s"], summary["energy_j"],
                   summary.get("energy_uncertainty_j"), summary.get("run_energy_j"))


def finish_record(record: dict[str, Any], facts: RunFacts, loop: TrainingLoop,
                  energy: EnergyMonitor) -> dict[str, Any]:
    """Complete ``record`` (in place) from the finished loop; returns it."""
    meter, state = loop.meter, loop.state
    finished_at = datetime.now(timezone.utc).isoformat()
    segments = loop.segments(finished_at)
    totals = Totals.of([_segment(s) for s in segments])
    energy_figures = energy_section(energy, meter)
    apply_energy_totals(energy_figures, totals)
    apply_per_item_energy(energy_figures, facts.workload.items_per_sample())
    idle = idle_section(energy, meter, energy_figures["total_j"], totals.energy_time_s)
    if idle is not None:
        energy_figures["idle"] = idle
    throughput = throughput_section(totals, loop.durations_s(), meter.totals("warmup").steps,
                                    facts.config.train.warmup_steps,
                                    facts.workload.items_per_sample())
    throughput["extra_steps"] = loop.engine.extra_steps
    record.update({
        "status": _STATUS.get(state.stop_reason, "failed"),
        "stop_reason": state.stop_reason, "stop_detail": state.stop_detail,
        "finished_at": finished_at,
        "progress": _progress(loop),
        "throughput": throughput,
        "memory": memory_section(meter, host_peak_rss_bytes()),
        "energy": energy_figures,
        "flops": _flops(facts, throughput, totals),
        "eval": eval_section(loop.last_eval, _has_test_split(facts.workload),
                             facts.workload.task.metrics, facts.workload.info.entropy_floor),
        "time": _time(facts, loop),
        "windows": _windows(meter, energy),
        "error": loop.error,
        "files": {"config": "config.yaml", "metrics": "metrics.jsonl", "weights": None,
                  "power": None, "checkpoint": None},
    })
    if "compile" in meter.windows:
        record["compile"] = compile_section(meter, throughput["step_time_s"]["p50"],
                                            facts.eager_step_s,
                                            window_energy_j(energy, meter, "compile"),
                                            energy_figures.get("reason"))
    if len(segments) > 1:
        record["segments"] = segments
    if loop.target is not None:
        record["target"] = target_section(loop.target, state.stop_reason, state.step)
    carbon = carbon_section(facts.config.measure.carbon_intensity_g_per_kwh,
                            energy_figures["total_j"], totals.run_energy_j)
    if carbon is not None:
        record["carbon"] = carbon
    return record


def _has_test_split(workload: Workload) -> bool:
    return workload.data is not None and workload.data.test is not None


def _progress(loop: TrainingLoop) -> dict[str, Any]:
    state = loop.state
    return {"steps": state.step, "total_steps": loop.engine.total_steps,
            "extra_steps": loop.engine.extra_steps, "epochs_completed": loop.epochs_done,
            "samples": state.samples,
            "last_loss": state.last_loss if state.last_loss == state.last_loss else None,
            "last_finite_loss": state.last_finite_loss, "skipped_steps": state.skipped_steps}


def _flops(facts: RunFacts, throughput: dict[str, Any], totals: Totals) -> dict[str, Any]:
    from bigbench.measuring.mfu import throughput_figures

    counts, device = facts.flop_counts or {}, facts.env["device"]
    figures = throughput_figures(counts.get("train_step_per_sample"),
                                 throughput.get("samples_per_s"), device["type"],
                                 device["name"], facts.config.train.precision,
                                 facts.workload.performance, counts.get("cudnn_share"))
    return flops_section(facts.flop_counts, facts.flop_error, figures, totals.energy_j,
                         totals.energy_samples)


def _time(facts: RunFacts, loop: TrainingLoop) -> dict[str, Any]:
    startup_s = loop.first_step_at - psutil.Process().create_time() \
        if loop.first_step_at is not None else None
    return {"wall_s": time.perf_counter() - facts.wall_start, "startup_s": startup_s,
            **{f"{name}_s": totals.time_s for name, totals in loop.meter.windows.items()}}


def _windows(meter: Meter, energy: EnergyMonitor) -> dict[str, Any]:
    windows = {}
    for name, totals in meter.windows.items():
        windows[name] = {**totals.as_dict(),
                         "spans_s": [list(span) for span in totals.spans_s], "energy": [
            {k: e[k] for k in _WINDOW_ENERGY_KEYS if k in e}
            for e in energy.aggregate(totals.energy)]}
    return windows
