"""Measure one benchmark point: a fresh model on synthetic device data, through the step engine.

Plan per point: (compile: the first step, in its own window) → warm-up → ``repeats`` measured
windows of ``steps`` steps or ``duration_s`` seconds. Each repeat gives one samples/s and one
J/sample; the point reports their median and interquartile range.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from bigbench.bench.matrix import Plan, Point
from bigbench.engine import Phase, StepEngine
from bigbench.measure.energy.report import window_energy_j
from bigbench.measure.memory import host_peak_rss_bytes
from bigbench.measure.meter import Meter
from bigbench.measure.stats import percentile, summarize_durations
from bigbench.measure.timing import StepTimer
from bigbench.models.registry import MODELS
from bigbench.record import memory_section

#: A median whose interquartile range exceeds this fraction of it is flagged noisy.
NOISY_IQR = 0.10
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_POOL = 4  # distinct random batches cycled through, so no step reuses the previous inputs


def skip_reason(point: Point, device: torch.device) -> str | None:
    """Why ``point`` cannot run on ``device``, or None."""
    if point.channels_last and len(point.sample_shape) != 3:
        return "channels_last applies to 2-D convolution inputs (C, H, W) only"
    if device.type == "cuda" and point.precision == "bf16" and not torch.cuda.is_bf16_supported():
        return "this GPU does not support bf16 (needs compute capability 8.0 or newer)"
    return None


def spread(values: list[float]) -> dict[str, Any]:
    """Median, interquartile range and the noisy flag of repeated measurements."""
    if not values:
        return {"median": None, "iqr": None, "values": [], "noisy": None}
    median = percentile(values, 50)
    iqr = percentile(values, 75) - percentile(values, 25)
    return {"median": median, "iqr": iqr, "values": values,
            "noisy": bool(median and iqr > NOISY_IQR * abs(median))}


def _batches(point: Point, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator(device=device).manual_seed(0)
    shape = (point.batch_size, *point.sample_shape)
    pool = []
    for _ in range(_POOL):
        if point.vocab_size:
            x = torch.randint(0, point.vocab_size, shape, generator=generator, device=device)
        else:
            x = torch.randn(shape, generator=generator, device=device)
            if point.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, point.num_classes, (point.batch_size,), generator=generator,
                          device=device)
        pool.append((x, y))
    return pool


def build_step(point: Point, model: nn.Module, device: torch.device
               ) -> Callable[[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """The step to time: a training step (with autocast/GradScaler) or a forward pass."""
    autocast = point.precision != "fp32"
    dtype = _DTYPES[point.precision]
    if point.mode == "infer":
        model.eval()

        def infer(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype,
                                                        enabled=autocast):
                return model(batch[0])[0, 0]  # a view: the engine's per-interval readback

        return infer
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
    scaler = torch.amp.GradScaler(device.type, enabled=point.precision == "fp16"
                                  and device.type == "cuda")

    def train(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            loss = loss_fn(model(batch[0]), batch[1])
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss

    return train


def phases(point: Point, plan: Plan) -> list[Phase]:
    """Compile (if any) → warm-up → one window per repeat."""
    out = []
    step = 0
    if point.compile:
        step = 1
        out.append(Phase("compile", step, timed=False))
    step += plan.warmup
    out.append(Phase("warmup", step, timed=False))
    for i in range(plan.repeats):
        if plan.duration_s:
            out.append(Phase(f"repeat-{i}", None, min_s=plan.duration_s))
        else:
            step += plan.steps or 1
            out.append(Phase(f"repeat-{i}", step))
    return out


def measure_point(point: Point, plan: Plan, device: torch.device, energy: Any,
                  clock: Callable[[], float] = time.perf_counter,
                  step_builder: Callable[..., Any] = build_step) -> dict[str, Any]:
    """Run one point and return its figures (raises on OOM or failure; the caller records)."""
    from bigbench.models.build import build_model

    torch.manual_seed(0)
    spec = MODELS.get(point.model)
    config = spec.config_class(name=point.model, **point.model_kwargs())
    model = build_model(config, point.data_info()).module.to(device)
    if point.channels_last:
        model = model.to(memory_format=torch.channels_last)
    runnable = torch.compile(model) if point.compile else model
    step_fn = step_builder(point, runnable, device)
    meter = Meter(device, energy, clock=clock)
    timer = StepTimer(device, clock=clock)
    plan_phases = phases(point, plan)
    engine = StepEngine(step_fn, meter, timer, phases=plan_phases, log_every=10**9)
    engine.run(itertools.cycle(_batches(point, device)), epoch=0)
    repeats = [p.window for p in plan_phases if p.window.startswith("repeat-")]
    windows = [meter.totals(name) for name in repeats]
    rates = [w.samples / w.time_s for w in windows if w.time_s > 0]
    result: dict[str, Any] = {
        "samples_per_s": spread(rates),
        "latency_s": summarize_durations(timer.durations_s),
        "steps": {"warmup": plan.warmup, "measured": sum(w.steps for w in windows),
                  "repeats": len(windows), "measured_time_s": sum(w.time_s for w in windows)},
        "memory": _memory(meter, device),
        "energy": _energy(energy, meter, repeats),
        "compile": _window_cost(energy, meter, "compile") if point.compile else None,
    }
    del engine, step_fn, runnable, model
    return result


def _memory(meter: Meter, device: torch.device) -> dict[str, Any]:
    memory = memory_section(meter, host_peak_rss_bytes())
    # ru_maxrss never goes down: in one process it includes every earlier point; a fresh
    # process per point (--isolate) isolates it.
    memory["host_peak_rss_scope"] = "process lifetime (per point with --isolate)"
    reasons = memory.pop("reasons", {})
    if reasons:
        memory["reason"] = reasons["device_peak_allocated_bytes"]
    return memory


def _energy(energy: Any, meter: Meter, repeats: list[str]) -> dict[str, Any]:
    reason = energy.unavailable_reason() if hasattr(energy, "unavailable_reason") else None
    if reason is not None or not hasattr(energy, "aggregate"):
        return {"status": "unavailable", "reason": reason or "energy not measured",
                "j_per_sample": spread([]), "devices": []}
    per_repeat = []
    for name in repeats:
        joules, samples = window_energy_j(energy, meter, name), meter.totals(name).samples
        if joules is not None and samples:
            per_repeat.append(joules / samples)
    last = energy.aggregate(meter.totals(repeats[-1]).energy) if repeats else []
    missing = [u.reason for u in energy.meters.unavailable]
    status = "unavailable" if not per_repeat else ("partial" if missing else "measured")
    return {"status": status, "reason": "; ".join(missing) or None,
            "j_per_sample": spread(per_repeat),
            "devices": [{k: e.get(k) for k in ("kind", "name", "method", "measured", "quality",
                                               "quality_reasons", "energy_j", "avg_power_w")}
                        for e in last]}


def _window_cost(energy: Any, meter: Meter, window: str) -> dict[str, Any]:
    joules = window_energy_j(energy, meter, window) if hasattr(energy, "aggregate") else None
    return {"time_s": meter.totals(window).time_s, "energy_j": joules}
