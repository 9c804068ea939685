"""Measure every variant on one device: quality on the test split, then speed and energy.

Speed is measured in rounds: each round measures every variant once at each batch size; the
rounds start at different variants and alternate direction (see :func:`rotation`), so clock
and thermal drift over the run favours none. A round is one bench point (``measure_point``:
warm-up, then one measured window) around the variant's own module; a variant's figures are
the median over rounds, and its latency percentiles pool every measured step of every round.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from bigbench.benchmark.matrix import Plan, Point
from bigbench.benchmark.point import spread
from bigbench.benchmark.runner import run_point
from bigbench.data.info import DataInfo
from bigbench.data.tensors import Split, sequential_batches
from bigbench.measuring.energy.monitor import EnergyMonitor
from bigbench.measuring.stats import summarize_durations
from bigbench.models import BuiltModel
from bigbench.optimize.variants import Variant
from bigbench.workload.task import task_for

# torch's own pytree deprecation, raised from inside torch.compile when it copies a traced
# graph (a quantized variant); it says nothing about the measurement.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)",
                        category=FutureWarning)


@dataclass(frozen=True)
class SpeedPlan:
    """Batch sizes and the measurement of each round.

    Attributes:
        batch_sizes: Measured batch sizes (1 and the bench batch size).
        steps, warmup: Measured and warm-up steps of each round.
        rounds: Rounds (measured repeats per variant and batch size).
    """

    batch_sizes: tuple[int, ...]
    steps: int
    warmup: int
    rounds: int


def runnable(variant: Variant) -> BuiltModel:
    """The variant's model as it runs (compiled when its int8 kernels need inductor), once."""
    assert variant.built is not None
    if variant.needs_compile and not variant.facts.get("compiled"):
        variant.built = replace(variant.built, module=torch.compile(variant.built.module))
        variant.facts["compiled"] = True
    return variant.built


def evaluate(variant: Variant, test: Split, batch_size: int, info: DataInfo
             ) -> tuple[dict[str, float | None], dict[str, str]]:
    """The task's metrics of the variant's model on the whole test split, and why any is null.

    A diverged or broken variant evaluates to NaN/inf: that is a finding, stored as null with
    the reason (JSON has no NaN).
    """
    module = runnable(variant).module
    module.eval()
    metrics = task_for(info).evaluate(module, sequential_batches(test, batch_size), None)
    reasons = {k: f"the metric is {v} (the model's outputs are not finite or overflow)"
               for k, v in metrics.items() if not math.isfinite(v)}
    return {k: (None if k in reasons else v) for k, v in metrics.items()}, reasons


def _point(variant: Variant, info: DataInfo, batch_size: int) -> Point:
    built = runnable(variant)
    args = tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                        for k, v in built.args.items() if k != "name"))
    return Point(model=built.name, mode="infer", precision="fp32", batch_size=batch_size,
                 model_args=args, sample_shape=tuple(info.sample_shape),
                 num_classes=info.num_classes, vocab_size=info.vocab_size, task=info.task)


def rotation(names: Sequence[str], round_index: int, rounds: int) -> list[str]:
    """The order of round ``round_index`` of ``rounds``: rounds come in pairs, forwards then
    backwards (ABBA: a pair puts every variant at the same mean position), and each pair
    starts at a different variant, spread over the list — so over the rounds no variant is
    always measured early or late, with few rounds and many variants too."""
    if not names:
        return []
    pairs = max(1, (rounds + 1) // 2)
    shift = (round_index // 2) * len(names) // pairs % len(names)
    order = [*names[shift:], *names[:shift]]
    return order[::-1] if round_index % 2 else order


def measure_speed(variants: Sequence[Variant], info: DataInfo, plan: SpeedPlan,
                  device: torch.device, energy: EnergyMonitor,
                  should_stop: Callable[[], bool] = lambda: False,
                  on_round: Callable[[int, str, int], None] = lambda r, n, b: None
                  ) -> dict[str, dict[str, Any]]:
    """Speed and energy of every ok variant at every batch size, interleaved in rounds.

    Returns:
        ``{variant: {"batch_<B>": figures}}`` (see :func:`combine`).
    """
    ready = [v for v in variants if v.status == "ok"]
    by_name = {v.name: v for v in ready}
    bench_plan = Plan(steps=plan.steps, warmup=plan.warmup, repeats=1)
    rounds: dict[tuple[str, int], list[dict[str, Any]]] = {}
    durations: dict[tuple[str, int], list[float]] = {}
    for index in range(plan.rounds):
        for name in rotation([v.name for v in ready], index, plan.rounds):
            for batch_size in plan.batch_sizes:
                if should_stop():
                    return _combined(ready, plan, rounds, durations)
                on_round(index, name, batch_size)
                key = (name, batch_size)
                sink = durations.setdefault(key, [])
                variant = by_name[name]
                measure = functools.partial(_measure_one, variant=variant, sink=sink)
                result = run_point(_point(variant, info, batch_size), bench_plan, device,
                                   energy, measure=measure)
                rounds.setdefault(key, []).append(result)
    return _combined(ready, plan, rounds, durations)


def _measure_one(point: Point, plan: Plan, device: torch.device, energy: EnergyMonitor, *,
                 variant: Variant, sink: list[float]) -> dict[str, Any]:
    from bigbench.benchmark.point import measure_point

    return measure_point(point, plan, device, energy, model=runnable(variant),
                         durations_out=sink, flops_model=variant.flops_twin)


def _combined(variants: Sequence[Variant], plan: SpeedPlan,
              rounds: dict[tuple[str, int], list[dict[str, Any]]],
              durations: dict[tuple[str, int], list[float]]) -> dict[str, dict[str, Any]]:
    return {v.name: {f"batch_{b}": combine(rounds.get((v.name, b), []),
                                           durations.get((v.name, b), []))
                     for b in plan.batch_sizes} for v in variants}


def combine(results: Sequence[dict[str, Any]], durations_s: Sequence[float]) -> dict[str, Any]:
    """One variant's figures at one batch size from its rounds.

    samples/s and J/sample: median and IQR over the rounds; latency: percentiles of every
    measured step; energy method and quality: the worst round's; FLOPs: the first round's.
    """
    ok = [r for r in results if r.get("status") == "ok"]
    if not ok:
        failed = next((r for r in results), None)
        why = (failed or {}).get("reason") or (failed or {}).get("error") or "not measured"
        return {"status": (failed or {}).get("status", "not_measured"), "reason": why}
    rates = [v for r in ok for v in r["samples_per_s"]["values"]]
    joules = [v for r in ok for v in r["energy"]["j_per_sample"]["values"]]
    energy = ok[-1]["energy"]
    out: dict[str, Any] = {
        "status": "ok", "rounds": len(ok),
        "samples_per_s": spread(rates),
        "latency_s": summarize_durations(list(durations_s)),
        "j_per_sample": spread(joules),
        "energy_status": energy["status"],
        "energy_quality": _worst([r["energy"]["quality"] for r in ok]),
        "energy_methods": sorted({d.get("method") for r in ok for d in r["energy"]["devices"]
                                  if d.get("method")}),
        "flops_per_sample": ok[0]["flops"].get("per_sample"),
        "flops_method": ok[0]["flops"].get("method"),
    }
    reasons = {}
    if not joules:
        reasons["j_per_sample"] = (energy.get("reasons") or {}).get("j_per_sample") or \
            energy.get("reason") or "energy was not measured"
    if out["flops_per_sample"] is None:
        reasons["flops_per_sample"] = (ok[0]["flops"].get("reasons") or {}).get(
            "per_sample", "FLOPs were not counted")
    if reasons:
        out["reasons"] = reasons
    return out


def _worst(qualities: Sequence[str | None]) -> str | None:
    from bigbench.measuring.energy.report import worst_quality

    return worst_quality([q for q in qualities if q is not None]) if any(qualities) else None
