"""Sections of run.json, assembled after the totals they derive from are known.

Each section is built from typed inputs by one function; every figure is measured or null with
a reason in the section's ``reasons`` mapping — nothing is filled with 0 or estimated here. A
resumed run is made of segments (one per process): its totals are summed over the segments
*first*, and every derived figure (samples/s, tokens/s, J/sample, FLOP/s, FLOPs per joule) is
computed from those same totals, so no two figures mix windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bigbench.measuring.energy.report import derived_energy_figures
from bigbench.measuring.meter import Meter
from bigbench.measuring.stats import summarize_durations
from bigbench.target import TargetEvaluation, TargetTracker


@dataclass(frozen=True)
class Segment:
    """What one process of a run measured in its "measured" window.

    Attributes:
        steps, samples: Measured steps and samples.
        time_s: Measured time in seconds.
        energy_j: Measured energy in joules (None: not measured in this segment).
        energy_uncertainty_j: Half-width of the energy's error bound (None: unknown).
    """

    steps: int
    samples: int
    time_s: float
    energy_j: float | None
    energy_uncertainty_j: float | None = None
    run_energy_j: float | None = None


@dataclass(frozen=True)
class Totals:
    """Measured figures summed over every segment of a run (one segment unless resumed).

    The energy figures cover only the segments whose energy was measured, with their own
    samples and time, so J/sample never divides one segment's joules by another's samples.
    """

    steps: int
    samples: int
    time_s: float
    energy_j: float | None
    energy_samples: int
    energy_time_s: float
    energy_uncertainty_j: float | None
    energy_incomplete: bool
    run_energy_j: float | None
    segments: int

    @classmethod
    def of(cls, segments: list[Segment]) -> Totals:
        """Sum ``segments``."""
        measured = [s for s in segments if s.energy_j is not None]
        uncertainties = [s.energy_uncertainty_j for s in measured]
        return cls(
            steps=sum(s.steps for s in segments), samples=sum(s.samples for s in segments),
            time_s=sum(s.time_s for s in segments),
            energy_j=math.fsum(s.energy_j for s in measured) if measured else None,  # type: ignore[misc]
            energy_samples=sum(s.samples for s in measured),
            energy_time_s=sum(s.time_s for s in measured),
            energy_uncertainty_j=sum(uncertainties) if measured and None not in uncertainties
            else None,  # type: ignore[arg-type]
            energy_incomplete=bool(measured) and len(measured) < len(segments),
            run_energy_j=math.fsum(s.run_energy_j for s in segments)  # type: ignore[misc]
            if segments and all(s.run_energy_j is not None for s in segments) else None,
            segments=len(segments))


def throughput_section(totals: Totals, durations_s: list[float], warmup_steps: int,
                       warmup_configured: int, items: tuple[int | None, str]) -> dict[str, Any]:
    """Samples/s over the measured window only: its samples divided by its time.

    Args:
        items: Items per sample and their name (``(20, "tokens")``) or ``(None, why not)``.
    """
    per_sample, item_name = items
    section: dict[str, Any] = {
        "samples_per_s": None, "tokens_per_s": None,
        "step_time_s": summarize_durations(durations_s),
        "measured_steps": totals.steps, "measured_samples": totals.samples,
        "measured_time_s": totals.time_s, "warmup_steps": warmup_steps,
        "warmup_steps_configured": warmup_configured, "reasons": {},
    }
    if totals.steps and totals.time_s > 0:
        section["samples_per_s"] = totals.samples / totals.time_s
        if per_sample:
            section["tokens_per_s"] = section["samples_per_s"] * per_sample
        else:
            section["reasons"]["tokens_per_s"] = item_name
    else:
        why = "no measured steps (the run ended during warm-up)"
        section["reasons"].update(samples_per_s=why, tokens_per_s=why)
    return _drop_empty_reasons(section)


def apply_energy_totals(energy: dict[str, Any], totals: Totals) -> None:
    """Put the run's totals (over every segment) into its energy section.

    The totals and the figures derived from them replace this process's; every other part of
    the section (per-device entries, peak power, quality) describes this process's segment,
    and a resumed run's section says so in ``scope``.
    """
    if totals.segments > 1:
        energy["scope"] = (f"total_j and the figures derived from it cover all "
                           f"{totals.segments} segments of this resumed run; devices, "
                           "peak_power_w, quality and windows cover the last segment")
    if totals.energy_incomplete:
        energy["status"] = "partial"
        energy["reason"] = "; ".join(filter(None, [
            energy.get("reason"), "energy was not measured in every segment of this resumed "
            "run; totals cover the measured segments only"]))
    if totals.energy_j is None:
        return
    derived = derived_energy_figures(totals.energy_j, totals.energy_uncertainty_j,
                                     totals.energy_samples, totals.energy_time_s)
    derived_reasons = derived.pop("reasons")
    energy.update(total_j=totals.energy_j, uncertainty_j=totals.energy_uncertainty_j, **derived)
    reasons = {k: v for k, v in (energy.get("reasons") or {}).items()
               if energy.get(k) is None}  # drop the reasons of figures that now have values
    reasons.update(derived_reasons)
    if totals.energy_uncertainty_j is None:
        reasons["uncertainty_j"] = "no error bound for some segment's energy"
    energy.pop("reasons", None)
    if reasons:
        energy["reasons"] = reasons


def apply_per_item_energy(energy: dict[str, Any], items: tuple[int | None, str]) -> None:
    """Add ``j_per_token`` (J/sample ÷ tokens per sample) to an energy section, or its reason.

    Args:
        items: Items per sample and their name (``(64, "tokens")``) or ``(None, why not)``.
    """
    per_sample, item_name = items
    reasons = energy.setdefault("reasons", {})
    if energy.get("j_per_sample") is None:
        energy["j_per_token"] = None
        reasons["j_per_token"] = reasons.get("j_per_sample") or "energy was not measured"
    elif not per_sample:
        energy["j_per_token"] = None
        reasons["j_per_token"] = item_name
    else:
        energy["j_per_token"] = energy["j_per_sample"] / per_sample
    if not reasons:
        energy.pop("reasons")


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


def eval_section(result: dict[str, Any] | None, has_test_split: bool,
                 metrics: tuple[str, ...] = ("accuracy", "loss"),
                 entropy_floor: float | None = None) -> dict[str, Any]:
    """The metrics of the last evaluation, or nulls with the reason.

    Args:
        metrics: The task's metric names (every one is present, null with a reason if unmeasured).
        entropy_floor: The data's exact lowest reachable loss, nats/token (a generated corpus);
            recorded beside the loss with the gap to it.
    """
    if result is not None:
        section = dict(result)
    else:
        why = "the dataset has no test split" if not has_test_split else \
            "the run stopped before its first evaluation"
        section = {**{m: None for m in metrics}, "samples": 0, "step": None,
                   "reasons": {m: why for m in metrics}}
    if entropy_floor is not None:
        section["entropy_floor"] = entropy_floor
        loss = section.get("loss")
        section["loss_above_floor"] = None if loss is None else loss - entropy_floor
        if loss is None:
            section.setdefault("reasons", {})["loss_above_floor"] = "no evaluation loss"
    return section


def flops_section(counts: dict[str, Any] | None, count_error: str | None,
                  figures: dict[str, Any], energy_j: float | None, energy_samples: int
                  ) -> dict[str, Any]:
    """FLOPs per sample, achieved FLOP/s, MFU and FLOPs per joule, from the run's totals.

    Args:
        counts: FLOPs per sample (None when not counted; ``count_error`` says why).
        figures: :func:`bigbench.measuring.mfu.throughput_figures` of the run's totals.
        energy_j, energy_samples: Total energy and the samples it covers.
    """
    section: dict[str, Any] = {"forward_per_sample": None, "train_step_per_sample": None,
                               "method": None, "achieved_flops_per_s": None, "mfu": None,
                               "peak_flops_per_s": None, "peak_dtype": None,
                               "peak_basis": None, "peak_source": None, "flops_per_j": None}
    if counts is None:
        reason = count_error or "FLOP counting is disabled (measure.flops: false)"
        section["reasons"] = {k: reason for k in section if section[k] is None}
        return section
    section.update({k: v for k, v in counts.items() if k != "cudnn_share"})
    values = dict(figures)
    reasons: dict[str, str] = values.pop("reasons", {})
    section.update(values)
    if energy_j and energy_samples:
        section["flops_per_j"] = counts["train_step_per_sample"] * energy_samples / energy_j
    else:
        reasons["flops_per_j"] = "energy was not measured" if energy_j is None else \
            "the measured energy is 0 J or covers no samples"
    if reasons:
        section["reasons"] = reasons
    return section


def compile_section(meter: Meter, compiled_step_s: float | None, eager_step_s: float | None,
                    energy_j: float | None, energy_reason: str | None) -> dict[str, Any]:
    """What torch.compile cost and whether (and when) it pays back against eager steps.

    Args:
        energy_j: Energy of the compiling step (None: ``energy_reason`` says why).
    """
    window = meter.totals("compile")
    section: dict[str, Any] = {
        "first_step_s": window.time_s, "first_step_energy_j": energy_j,
        "eager_step_s": eager_step_s, "compiled_step_s": compiled_step_s,
        "overhead_s": None, "payback_steps": None, "reasons": {},
    }
    if energy_j is None:
        section["reasons"]["first_step_energy_j"] = energy_reason or "not measured"
    if compiled_step_s is None or eager_step_s is None:
        why = "no measured compiled steps to compare with"
        section["reasons"].update(overhead_s=why, payback_steps=why)
        if eager_step_s is None:
            section["reasons"]["eager_step_s"] = why
        if compiled_step_s is None:
            section["reasons"]["compiled_step_s"] = why
        return _drop_empty_reasons(section)
    overhead = window.time_s - compiled_step_s
    section["overhead_s"] = overhead
    saving = eager_step_s - compiled_step_s
    if saving <= 0:
        section["reasons"]["payback_steps"] = (
            f"compiled steps are not faster than eager ones ({compiled_step_s * 1e3:.2f} ms vs "
            f"{eager_step_s * 1e3:.2f} ms): compiling never pays back")
    else:
        section["payback_steps"] = max(0, math.ceil(overhead / saving))
    return _drop_empty_reasons(section)


_TARGET_FIGURES = ("steps_to_target", "samples_to_target", "time_to_target_s",
                   "energy_to_target_j", "energy_to_target_uncertainty_j")


def target_section(tracker: TargetTracker, stop_reason: str | None, step: int
                   ) -> dict[str, Any]:
    """Steps, samples, training time (s) and energy (J) to the first evaluation that reached
    the target, with every evaluation; nulls with the reason when it was not reached.

    Args:
        tracker: The run's evaluations compared with its target (earlier processes' included).
        stop_reason: Why the run stopped early (None: it ran its plan).
        step: The step the run ended at.
    """
    target, first = tracker.target, tracker.first_reached
    section: dict[str, Any] = {
        "metric": target.metric, "goal": target.goal, "direction": target.direction,
        "reached": first is not None, **dict.fromkeys(_TARGET_FIGURES),
        "evaluations": [e.as_record() for e in tracker.evaluations], "reasons": {},
    }
    if first is None:
        section["reasons"] = dict.fromkeys(_TARGET_FIGURES,
                                           _not_reached(tracker, stop_reason, step))
        return section
    section.update(steps_to_target=first.step, samples_to_target=first.samples,
                   time_to_target_s=first.time_s, energy_to_target_j=first.energy_j,
                   energy_to_target_uncertainty_j=first.energy_uncertainty_j)
    why = first.energy_reason or "not measured"
    if first.time_s is None:
        section["reasons"]["time_to_target_s"] = why
    if first.energy_j is None:
        section["reasons"].update(energy_to_target_j=why, energy_to_target_uncertainty_j=why)
    elif first.energy_uncertainty_j is None:
        section["reasons"]["energy_to_target_uncertainty_j"] = \
            "no error bound for some training window's energy"
    return section


def _not_reached(tracker: TargetTracker, stop_reason: str | None, step: int) -> str:
    """``not reached in 5 evaluations (best 93.75% accuracy at step 40; target 97% accuracy)``
    and, for a run that stopped early, where and why."""
    target, evaluations = tracker.target, tracker.evaluations
    scored = [e for e in evaluations if e.value is not None]
    count = len(evaluations)
    if not evaluations:
        text = "not reached: no evaluation ran"
    elif not scored:
        text = (f"not reached in {count} evaluation{'s' if count > 1 else ''} (the "
                f"{target.metric} of every one was not finite)")
    else:
        best = _best(scored, target.direction)
        text = (f"not reached in {count} evaluation{'s' if count > 1 else ''} (best "
                f"{target.describe(best.value)} at step {best.step}; target "
                f"{target.describe()})")
    if stop_reason is not None:
        text += f"; the run stopped early at step {step} ({stop_reason})"
    return text


def _best(evaluations: list[TargetEvaluation], direction: str) -> TargetEvaluation:
    """The evaluation closest to the goal (the earliest of equals)."""
    pick = max if direction == "max" else min
    return pick(evaluations, key=lambda e: e.value)  # type: ignore[arg-type,return-value]


def _drop_empty_reasons(section: dict[str, Any]) -> dict[str, Any]:
    if not section.get("reasons"):
        section.pop("reasons", None)
    return section
