"""Assemble run.json from what a run measured.

Every figure is either measured or null with a reason in the section's ``reasons`` mapping;
nothing is filled with 0 or estimated here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from bigbench.measure.memory import host_peak_rss_bytes
from bigbench.measure.meter import Meter
from bigbench.measure.stats import summarize_durations
from bigbench.results import atomic_write_text, write_json


@dataclass
class RunContext:
    """Everything a run has measured so far; :func:`finish_record` turns it into run.json."""

    record: dict[str, Any]
    run_dir: Path
    meter: Meter
    timer: Any
    engine: Any
    energy: Any
    dataset_info: Any
    has_test: bool
    config: Any
    wall_start: float
    first_step_at: list[float]
    flop_counts: dict[str, Any] | None = None
    flop_error: str | None = None
    last_eval: dict[str, Any] | None = None
    epochs_done: int = 0
    error: dict[str, Any] | None = None
    prior_segments: list[dict[str, Any]] = field(default_factory=list)
    prior_durations: list[float] = field(default_factory=list)
    segment_started_at: str = ""
    segment_from: int = 0
    checkpoint_step: int = 0
    eager_step_s: float | None = None

    def segments(self, finished_at: str | None = None) -> list[dict[str, Any]]:
        """Earlier segments of a resumed run, plus this process's so far."""
        from bigbench.measure.energy.report import energy_section
        from bigbench.resume import segment_summary

        current = segment_summary(
            len(self.prior_segments), self.segment_started_at, finished_at, self.segment_from,
            self.engine.state.step, throughput_section(self.meter, [], 0, None),
            energy_section(self.energy, self.meter))
        return [*self.prior_segments, current]


def start_record(config: Any, built: Any, info: Any, env: dict[str, Any],
                 performance: dict[str, Any], run_dir: Path, started_at: str,
                 resume: Any, resumed_from_step: int) -> dict[str, Any]:
    """run.json as written when training starts (status "running")."""
    from bigbench.results import RUN_SCHEMA

    record: dict[str, Any] = {
        "schema": RUN_SCHEMA, "status": "running", "name": config.name, "run_dir": str(run_dir),
        "started_at": resume.record.get("started_at") if resume else started_at,
        "finished_at": None,
        "config": config.model_dump(mode="json"), "env": env, "performance": performance,
        "model": {"name": built.name, "family": built.family, "params": built.params,
                  "trainable_params": built.trainable_params, "args": built.args},
        "data": {"name": config.data.name, "sample_shape": list(info.sample_shape),
                 "num_classes": info.num_classes, "vocab_size": info.vocab_size,
                 "train_size": info.train_size, "test_size": info.test_size},
    }
    if resume is not None:
        record["resumed"] = [*resume.record.get("resumed", []), {
            "at": started_at, "from_step": resumed_from_step,
            "config_changes": resume.config_changes}]
    return record


def finish_record(ctx: RunContext, model: Any) -> list[str]:
    """Complete run.json, write power.csv and (when ``model`` is given) the weights.

    Returns:
        Warnings worth showing the user (e.g. counter and integral disagreeing).
    """
    from bigbench.measure.energy.monitor import diff_warnings
    from bigbench.measure.energy.report import carbon_section, energy_section, idle_section

    state = ctx.engine.state
    status = {None: "completed", "interrupted": "interrupted"}.get(state.stop_reason, "failed")
    record = ctx.record
    tokens = ctx.dataset_info.sample_shape[0] if record["model"]["family"] == "recurrent" \
        else None
    startup_s = ctx.first_step_at[0] - psutil.Process().create_time() if ctx.first_step_at \
        else None
    throughput = throughput_section(ctx.meter, ctx.prior_durations + ctx.timer.durations_s,
                                    ctx.config.train.warmup_steps, tokens)
    throughput["extra_steps"] = ctx.engine.extra_steps
    energy = energy_section(ctx.energy, ctx.meter)
    idle = idle_section(ctx.energy, ctx.meter, energy)
    if idle is not None:
        energy["idle"] = idle
    device = record["env"]["device"]
    record.update({
        "status": status,
        "stop_reason": state.stop_reason,
        "stop_detail": state.stop_detail,
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "progress": {"steps": state.step, "total_steps": ctx.engine.total_steps,
                     "extra_steps": ctx.engine.extra_steps,
                     "epochs_completed": ctx.epochs_done, "samples": state.samples,
                     "last_loss": state.last_loss if state.last_loss == state.last_loss
                     else None,
                     "last_finite_loss": state.last_finite_loss,
                     "skipped_steps": state.skipped_steps},
        "throughput": throughput,
        "memory": memory_section(ctx.meter, host_peak_rss_bytes()),
        "energy": energy,
        "flops": flops_section(ctx.flop_counts, throughput, energy.get("total_j"),
                               device["type"], device["name"], ctx.flop_error,
                               ctx.config.train.precision),
        "eval": eval_section(ctx.last_eval, ctx.has_test),
        "time": {"wall_s": time.perf_counter() - ctx.wall_start, "startup_s": startup_s,
                 **{f"{name}_s": totals.time_s for name, totals in ctx.meter.windows.items()}},
        "windows": {name: totals.as_dict() for name, totals in ctx.meter.windows.items()},
        "error": ctx.error,
        "files": {"config": "config.yaml", "metrics": "metrics.jsonl", "weights": None,
                  "power": None,
                  "checkpoint": "checkpoint" if (ctx.run_dir / "checkpoint").is_dir() else None},
    })
    if hasattr(ctx.energy, "aggregate"):
        for name, totals in ctx.meter.windows.items():
            record["windows"][name]["energy"] = [
                {k: e.get(k) for k in ("key", "energy_j", "method", "avg_power_w",
                                        "peak_power_w", "samples", "quality")}
                for e in ctx.energy.aggregate(totals.energy)]
    if "compile" in ctx.meter.windows:
        record["compile"] = compile_section(ctx, throughput, energy)
    if ctx.prior_segments:
        from bigbench.resume import total_over_segments

        record["segments"] = ctx.segments(record["finished_at"])
        total_over_segments(record, record["segments"])
    carbon = carbon_section(ctx.config.measure.carbon_intensity_g_per_kwh, energy)
    if carbon is not None:
        record["carbon"] = carbon
    if write_power_csv(ctx.energy, ctx.run_dir / "power.csv"):
        record["files"]["power"] = "power.csv"
    if model is not None and status != "failed":
        from bigbench.checkpoint import save_weights

        save_weights(model, ctx.run_dir / "model.safetensors")
        record["files"]["weights"] = "model.safetensors"
    write_json(ctx.run_dir / "run.json", record)
    warnings = diff_warnings([d for d in energy.get("devices", []) if d.get("measured")])
    if energy.get("quality") == "low":
        reasons = {r for d in energy["devices"] for r in d.get("quality_reasons") or []}
        warnings.append("energy quality is low: " + "; ".join(sorted(reasons)))
    return warnings


def write_power_csv(energy: Any, path: Path) -> bool:
    """``t_s,device,power_w`` rows from the sampler (t_s from the first sample); False if none."""
    sampler = getattr(energy, "sampler", None)
    if sampler is None:
        return False
    rows = [(t, key, w) for key, trace in sampler.traces.items()
            for t, w in zip(trace.t_s[:len(trace.power_w)], trace.power_w, strict=False)]
    if not rows:
        return False
    rows.sort()
    origin = rows[0][0]
    lines = ["t_s,device,power_w"] + [f"{t - origin:.6f},{key},{w:.3f}" for t, key, w in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return True


def throughput_section(meter: Meter, durations_s: list[float], warmup_steps: int,
                       tokens_per_sample: int | None) -> dict[str, Any]:
    """Samples/s over the measured window only: its samples divided by its time."""
    measured = meter.totals("measured")
    section: dict[str, Any] = {
        "samples_per_s": None,
        "tokens_per_s": None,
        "step_time_s": summarize_durations(durations_s),
        "measured_steps": measured.steps,
        "measured_samples": measured.samples,
        "measured_time_s": measured.time_s,
        "warmup_steps": meter.totals("warmup").steps,
        "warmup_steps_configured": warmup_steps,
        "reasons": {},
    }
    if measured.steps and measured.time_s > 0:
        section["samples_per_s"] = measured.samples / measured.time_s
        if tokens_per_sample:
            section["tokens_per_s"] = section["samples_per_s"] * tokens_per_sample
        else:
            section["reasons"]["tokens_per_s"] = "inputs are not sequences"
    else:
        reason = "no measured steps (the run ended during warm-up)"
        section["reasons"].update(samples_per_s=reason, tokens_per_s=reason)
    if not section["reasons"]:
        del section["reasons"]
    return section


def memory_section(meter: Meter, host_peak_rss_bytes: int) -> dict[str, Any]:
    """Peak host RSS, and the CUDA allocator's peaks over all windows (null off CUDA)."""
    allocated = [w.device_peak_allocated_bytes for w in meter.windows.values()
                 if w.device_peak_allocated_bytes is not None]
    reserved = [w.device_peak_reserved_bytes for w in meter.windows.values()
                if w.device_peak_reserved_bytes is not None]
    section: dict[str, Any] = {
        "host_peak_rss_bytes": host_peak_rss_bytes,
        "device_peak_allocated_bytes": max(allocated) if allocated else None,
        "device_peak_reserved_bytes": max(reserved) if reserved else None,
    }
    if not allocated:
        why = ("CPU run: no device allocator to measure" if meter.device.type == "cpu"
               else "no measurement window completed")
        section["reasons"] = {"device_peak_allocated_bytes": why, "device_peak_reserved_bytes": why}
    return section


def eval_section(result: dict[str, Any] | None, has_test_split: bool) -> dict[str, Any]:
    """Accuracy and loss of the last evaluation, or nulls with the reason."""
    if result is not None:
        return result
    why = "the dataset has no test split" if not has_test_split else \
        "the run stopped before its first evaluation"
    return {"accuracy": None, "loss": None, "samples": 0, "step": None,
            "reasons": {"accuracy": why, "loss": why}}


def flops_section(counts: dict[str, Any] | None, throughput: dict[str, Any],
                  energy_total_j: float | None, device_type: str, device_name: str,
                  count_error: str | None = None, precision: str = "fp32") -> dict[str, Any]:
    """FLOPs per sample, achieved FLOP/s, MFU against the peak table, and FLOPs per joule."""
    from bigbench.measure.peaks import mfu_figures

    reasons: dict[str, str] = {}
    section: dict[str, Any] = {"forward_per_sample": None, "train_step_per_sample": None,
                               "method": None, "achieved_flops_per_s": None, "mfu": None,
                               "peak_flops_per_s": None, "peak_dtype": None,
                               "peak_source": None, "flops_per_j": None}
    if counts is None:
        reason = count_error or "FLOP counting is disabled (measure.flops: false)"
        section["reasons"] = {k: reason for k in section if section[k] is None}
        return section
    section.update(counts)
    per_sample = counts["train_step_per_sample"]
    rate = throughput.get("samples_per_s")
    if rate:
        section["achieved_flops_per_s"] = per_sample * rate
    else:
        reasons["achieved_flops_per_s"] = "no measured throughput"
    peak = mfu_figures(section["achieved_flops_per_s"], device_type, device_name, precision)
    why = peak.pop("reason", None)
    section.update(peak)
    if why is not None:
        reasons.update({k: str(why) for k in ("mfu", "peak_flops_per_s", "peak_dtype",
                                              "peak_source") if section[k] is None})
    samples = throughput.get("measured_samples") or 0
    if energy_total_j:
        section["flops_per_j"] = per_sample * samples / energy_total_j
    else:
        reasons["flops_per_j"] = "energy was not measured"
    if reasons:
        section["reasons"] = reasons
    return section


def compile_section(ctx: RunContext, throughput: dict[str, Any], energy: dict[str, Any]
                    ) -> dict[str, Any]:
    """What torch.compile cost and whether (and when) it pays back against eager steps."""
    window = ctx.meter.totals("compile")
    compiled_s = throughput["step_time_s"]["p50"]
    section: dict[str, Any] = {
        "first_step_s": window.time_s,
        "first_step_energy_j": (energy.get("windows") or {}).get("compile"),
        "eager_step_s": ctx.eager_step_s, "compiled_step_s": compiled_s,
        "overhead_s": None, "payback_steps": None, "reason": None,
    }
    if compiled_s is None or ctx.eager_step_s is None:
        section["reason"] = "no measured compiled steps to compare with"
        return section
    overhead = window.time_s - compiled_s
    section["overhead_s"] = overhead
    saving = ctx.eager_step_s - compiled_s
    if saving <= 0:
        section["reason"] = (f"compiled steps are not faster than eager ones "
                             f"({compiled_s * 1e3:.2f} ms vs {ctx.eager_step_s * 1e3:.2f} ms): "
                             "compiling never pays back")
    else:
        section["payback_steps"] = max(0, math.ceil(overhead / saving))
    return section
