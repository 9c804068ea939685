"""Measure one benchmark point through the one step builder and the step engine.

Plan per point: (compile: the first step, in its own window) → warm-up → ``repeats`` measured
windows of ``steps`` steps or ``duration_s`` seconds — each at least as long as energy quality
needs when energy is measured. Each repeat gives one samples/s and one J/sample (with its
quality and error bound); the point reports their median and interquartile range.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from typing import Any

import torch

from bigbench.benchmark.matrix import Plan, Point
from bigbench.config.schema import OptimizerConfig
from bigbench.data.info import DataInfo
from bigbench.engine import Phase, StepEngine
from bigbench.errors import ConfigError
from bigbench.measuring.energy.monitor import EnergyMonitor
from bigbench.measuring.energy.report import (
    measured_quality,
    measured_total,
    window_energy,
    worst_quality,
)
from bigbench.measuring.memory import host_peak_rss_bytes
from bigbench.measuring.meter import Meter, WindowTotals
from bigbench.measuring.stats import percentile, summarize_durations
from bigbench.measuring.timing import StepTimer
from bigbench.models import BuiltModel, build_model
from bigbench.models.build import check_model_fits
from bigbench.models.registry import MODELS
from bigbench.record import memory_section
from bigbench.workload.build import Workload, synthetic_batches, workload_from_module
from bigbench.workload.steps import Step, build_step, cached_step_flops, step_flops

#: A median whose interquartile range exceeds this fraction of it is flagged noisy.
NOISY_IQR = 0.10


def skip_reason(point: Point, device: torch.device) -> str | None:
    """Why ``point`` cannot run on ``device``, or None (what the model cannot do — e.g.
    channels_last without 2-D convolutions — is found when its workload is built)."""
    if device.type == "cuda" and point.precision == "bf16" and not torch.cuda.is_bf16_supported():
        return "this GPU does not support bf16 (needs compute capability 8.0 or newer)"
    if point.compile and point.mode in ("prefill", "decode"):
        return (f"{point.mode} is not measured under torch.compile: the KV cache's position "
                "changes every step and would force recompilation; measure it without --compile")
    return None


def spread(values: list[float]) -> dict[str, Any]:
    """Median, interquartile range and the noisy flag of repeated measurements."""
    if not values:
        return {"median": None, "iqr": None, "values": [], "noisy": None}
    median = percentile(values, 50)
    iqr = percentile(values, 75) - percentile(values, 25)
    return {"median": median, "iqr": iqr, "values": values,
            "noisy": bool(median and iqr > NOISY_IQR * abs(median))}


def phases(point: Point, plan: Plan, min_repeat_s: float = 0.0) -> list[Phase]:
    """Compile (if any) → warm-up → one window per repeat (each at least ``min_repeat_s``)."""
    out = []
    step = 0
    if point.compile:
        step = 1
        out.append(Phase("compile", step, timed=False))
    step += plan.warmup
    out.append(Phase("warmup", step, timed=False))
    for i in range(plan.repeats):
        if plan.duration_s:
            out.append(Phase(f"repeat-{i}", None, min_s=max(plan.duration_s, min_repeat_s)))
        else:
            step += plan.steps or 1
            out.append(Phase(f"repeat-{i}", step, min_s=min_repeat_s))
    return out


def point_model(point: Point) -> BuiltModel:
    """A fresh model of the point's registry name and arguments (seeded)."""
    torch.manual_seed(0)
    spec = MODELS.get(point.model)
    return build_model(spec.config_class(name=point.model, **point.model_kwargs()),
                       _model_data(point))


def _model_data(point: Point) -> DataInfo:
    """The data a point's model is built for: a decode point's model must hold the prompt and
    every generated token (a size preset's context grows to it; a set one must cover it)."""
    info, args = point.data_info(), point.model_kwargs()
    if not point.gen_tokens:
        return info
    prompt, needed = info.sample_shape[0], info.sample_shape[0] + point.gen_tokens
    if args.get("context") is not None and needed > args["context"]:
        raise ConfigError(f"decode needs {prompt} prompt + {point.gen_tokens} generated = "
                          f"{needed} positions but model.context is {args['context']}; "
                          "shorten --seq-lens or --gen-tokens, or raise model.context")
    return dataclasses.replace(info, sample_shape=(needed, *info.sample_shape[1:]))


def point_workload(point: Point, plan: Plan, device: torch.device,
                   model: BuiltModel | None = None) -> Workload:
    """The point's workload around ``model`` (a fresh registry model when None).

    Raises:
        ConfigError: a registry model that cannot fit the device's free memory at the point's
            batch size (the point is skipped with the estimate, before allocating).
    """
    if model is None:
        _check_fits(point, device)
    optimizer = OptimizerConfig(**plan.optimizer) if point.mode == "train" else None
    return workload_from_module(model or point_model(point), point.data_info(), device,
                                precision=point.precision, channels_last=point.channels_last,
                                optimizer=optimizer, compile=point.compile)


def point_step(workload: Workload, point: Point) -> Step:
    """THE step of the point's mode (decode points hold a KV cache of their batch)."""
    return build_step(workload, point.mode, batch_size=point.batch_size,  # type: ignore[arg-type]
                      gen_tokens=point.gen_tokens or 1)


def _check_fits(point: Point, device: torch.device) -> None:
    """The memory pre-check of ``train``, for the point's model, batch and mode."""
    training = point.mode == "train"
    check_model_fits(MODELS.get(point.model).config_class(name=point.model,
                                                          **point.model_kwargs()),
                     _model_data(point), device, state_copies=4 if training else 1,
                     batch_size=point.batch_size,
                     value_bytes=4 if point.precision == "fp32" else 2, training=training)


def measure_point(point: Point, plan: Plan, device: torch.device, energy: EnergyMonitor,
                  clock: Callable[[], float] = time.perf_counter,
                  model: BuiltModel | None = None,
                  step_builder: Callable[[Workload, Point], Step] = point_step,
                  durations_out: list[float] | None = None,
                  flops_model: BuiltModel | None = None,
                  gpu_snapshot: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run one point and return its figures (raises on OOM or failure; the caller records).

    A language-model point also reports tokens/s and J/token: a sample is a window (train), a
    prompt (prefill: its step time is the time to first token) or one generated token
    (decode: its step time is the time per output token).

    Args:
        model: The module to measure (e.g. pruned or quantized); None builds the registry's.
        step_builder: Makes the step from the workload (tests hand in a timed fake).
        durations_out: Receives every measured step's duration in seconds (to pool the
            latency percentiles of several calls).
        flops_model: Count FLOPs on this float twin of ``model`` (same multiply-adds) where
            the measured module cannot be counted (quantized tensors, a traced graph).
        gpu_snapshot: Reads the GPU's power limit, clocks, temperature and throttle reasons;
            when given, the result's ``gpu_window`` holds its readings at the start of the
            first measured repeat and the end of the last.
    """
    if plan.threads is not None and device.type == "cpu":
        torch.set_num_threads(plan.threads)
    workload = point_workload(point, plan, device, model)
    min_repeat_s = energy.min_window_for_quality_s \
        if plan.energy_min_window and energy.devices else 0.0
    plan_phases = phases(point, plan, min_repeat_s)
    repeats = [p.window for p in plan_phases if p.window.startswith("repeat-")]
    edges: dict[str, Any] = {}
    meter = Meter(device, energy, clock=clock,
                  on_edge=_edge_snapshots(gpu_snapshot, repeats, edges) if gpu_snapshot else None)
    timer = StepTimer(device, clock=clock)
    engine = StepEngine(step_builder(workload, point), meter, timer, phases=plan_phases,
                        log_every=10**9)
    engine.run(itertools.cycle(synthetic_batches(workload, point.batch_size)), epoch=0)
    if durations_out is not None:
        durations_out.extend(timer.durations_s)
    windows = [meter.totals(name) for name in repeats]
    rates = [w.samples / w.time_s for w in windows if w.time_s > 0]
    built = workload.built
    result: dict[str, Any] = {
        "model": {"params": built.params, "args": built.args},
        "samples_per_s": spread(rates),
        "latency_s": summarize_durations(timer.durations_s),
        "steps": {"warmup": plan.warmup, "measured": sum(w.steps for w in windows),
                  "repeats": len(windows), "measured_time_s": sum(w.time_s for w in windows),
                  "min_repeat_s": min_repeat_s},
        "memory": _memory(meter),
        "energy": point_energy(energy, meter, repeats),
        "compile": _window_cost(energy, meter, "compile") if point.compile else None,
        "flops": _flops(point, plan, workload, rates, flops_model),
    }
    tokens = point.tokens_per_sample()
    if tokens is not None:
        result["tokens_per_s"] = spread([r * tokens for r in rates])
        result["energy"]["j_per_token"] = _per_token(result["energy"], tokens)
    if gpu_snapshot is not None:
        result["gpu_window"] = edges
    del engine, workload
    return result


def _edge_snapshots(read: Callable[[], dict[str, Any]], repeats: list[str],
                    edges: dict[str, Any]) -> Callable[[str, str], None]:
    """A window-edge hook storing ``read()`` at the first repeat's start and the last
    repeat's end into ``edges`` (``"start"``, ``"end"``)."""
    def on_edge(window: str, edge: str) -> None:
        if (window, edge) in ((repeats[0], "start"), (repeats[-1], "end")):
            edges[edge] = read()
    return on_edge


def _per_token(energy: dict[str, Any], tokens: int) -> dict[str, Any]:
    """J/token over the repeats: each repeat's J/sample ÷ tokens per sample."""
    values = [r["j_per_sample"] / tokens for r in energy["repeats"]
              if r["j_per_sample"] is not None]
    figures = spread(values)
    bound = energy["j_per_sample"].get("uncertainty")
    figures["uncertainty"] = bound / tokens if bound is not None else None
    reasons = energy.get("reasons") or {}
    if figures["median"] is None:
        reasons["j_per_token"] = reasons.get("j_per_sample") or "energy was not measured"
        energy["reasons"] = reasons
    return figures


def _memory(meter: Meter) -> dict[str, Any]:
    memory = memory_section(meter, host_peak_rss_bytes())
    # ru_maxrss never goes down: in one process it includes every earlier point; a fresh
    # process per point (--isolate) isolates it.
    memory["host_peak_rss_scope"] = "process lifetime (per point with --isolate)"
    return memory


def point_energy(energy: EnergyMonitor, meter: Meter, repeats: list[str]) -> dict[str, Any]:
    """J/sample of every repeat with its quality and error bound, and their median and IQR."""
    nothing = energy.unavailable_reason()
    if nothing is not None:
        return {"status": "unavailable", "reason": nothing, "quality": None,
                "quality_reasons": [], "j_per_sample": {**spread([]), "uncertainty": None},
                "repeats": [], "devices": [],
                "reasons": {"j_per_sample": nothing}}
    entries = {name: energy.aggregate(meter.totals(name).energy) for name in repeats}
    per_repeat = [_repeat_energy(name, meter.totals(name), entries[name]) for name in repeats]
    values = [r["j_per_sample"] for r in per_repeat if r["j_per_sample"] is not None]
    figures = spread(values)
    rel = [r["uncertainty_j"] / r["energy_j"] for r in per_repeat
           if r["j_per_sample"] is not None and r["uncertainty_j"] is not None and r["energy_j"]]
    # The median's bound: the widest relative bound of the repeats (conservative).
    figures["uncertainty"] = figures["median"] * max(rel) \
        if figures["median"] is not None and len(rel) == len(values) and rel else None
    missing = [f"{u.name}: {u.reason}" for u in energy.meters.unavailable]
    status = "unavailable" if not values else ("partial" if missing or
                                                len(values) < len(repeats) else "measured")
    reasons: dict[str, str] = {}
    if not values:
        reasons["j_per_sample"] = "; ".join(sorted(
            {r["reasons"]["energy_j"] for r in per_repeat if "energy_j" in r.get("reasons", {})}
        )) or "no repeat was measured"
    elif figures["uncertainty"] is None:
        reasons["uncertainty"] = "no error bound for some repeat's energy"
    last = entries[repeats[-1]] if repeats else []
    return {"status": status, "reason": "; ".join(missing) or None,
            "quality": worst_quality([r["quality"] for r in per_repeat]),
            "quality_reasons": sorted({q for r in per_repeat for q in r["quality_reasons"]}),
            "j_per_sample": figures, "repeats": per_repeat,
            "devices": [{k: e.get(k) for k in ("kind", "name", "method", "measured", "reason",
                                               "quality", "quality_reasons", "energy_j",
                                               "uncertainty_j", "avg_power_w", "reasons")
                         if k in e} for e in last],
            **({"reasons": reasons} if reasons else {})}


def _repeat_energy(window: str, totals: WindowTotals, entries: list[dict[str, Any]]
                   ) -> dict[str, Any]:
    """One repeat's energy, J/sample, error bound and quality, from its aggregated entries."""
    joules, bound = measured_total(entries)
    quality, quality_reasons = measured_quality(entries)
    out = {"window": window, "energy_j": joules, "uncertainty_j": bound,
           "samples": totals.samples, "time_s": totals.time_s,
           "j_per_sample": joules / totals.samples if joules is not None and totals.samples
           else None, "quality": quality, "quality_reasons": quality_reasons}
    reasons = {}
    if joules is None:
        why = "; ".join(sorted({e.get("reason") or "no reading" for e in entries})) or \
            "no meter measured this repeat"
        reasons = {"energy_j": why, "uncertainty_j": why, "j_per_sample": why}
    elif bound is None:
        reasons["uncertainty_j"] = "no error bound for some device's energy"
    if reasons:
        out["reasons"] = reasons
    return out


def _window_cost(energy: EnergyMonitor, meter: Meter, window: str) -> dict[str, Any]:
    joules = window_energy(energy, meter, window)[0]
    out: dict[str, Any] = {"time_s": meter.totals(window).time_s, "energy_j": joules}
    if joules is None:
        out["reasons"] = {"energy_j": energy.unavailable_reason() or
                          "no meter measured the compiling step"}
    return out


def _flops(point: Point, plan: Plan, workload: Workload, rates: list[float],
           twin: BuiltModel | None) -> dict[str, Any]:
    """FLOP figures of the measured module, or of its float twin (method says which)."""
    if twin is None:
        return point_flops(point, workload, rates)
    counted = point_flops(point, point_workload(point, plan, workload.device, twin), rates)
    if counted.get("method"):
        counted["method"] += " (float twin)"
    return counted


def point_flops(point: Point, workload: Workload, rates: list[float]) -> dict[str, Any]:
    """FLOPs per sample (train step or forward) of the measured module, FLOP/s and MFU."""
    from bigbench.devices import describe
    from bigbench.measuring.mfu import throughput_figures
    from bigbench.speed import fp32_math

    try:
        if point.mode in ("prefill", "decode"):
            per_sample = cached_step_flops(workload, point.mode,  # type: ignore[arg-type]
                                           point.gen_tokens or 1)
            counts = {"train_step_per_sample": None, "forward_per_sample": per_sample,
                      "cudnn_share": 0.0, "method": "flop_counter_meta"}
        else:
            counts = step_flops(workload)
    except Exception as exc:  # report, don't guess
        why = f"FLOP counting failed: {type(exc).__name__}: {exc}"
        keys = ("per_sample", "method", "achieved_flops_per_s", "mfu", "peak_flops_per_s",
                "peak_dtype", "peak_basis", "peak_source")
        return {**dict.fromkeys(keys), "reasons": dict.fromkeys(keys, why)}
    per_sample = counts["train_step_per_sample" if point.mode == "train"
                        else "forward_per_sample"]
    device = workload.device
    figures = throughput_figures(per_sample, spread(rates)["median"], device.type,
                                 describe(device).name, point.precision, fp32_math(device),
                                 counts["cudnn_share"])
    out = {"per_sample": per_sample, "method": counts["method"], **figures}
    if not out["reasons"]:
        del out["reasons"]
    return out
