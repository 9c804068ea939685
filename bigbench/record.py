"""Assemble run.json from what a run measured.

Every figure is either measured or null with a reason in the section's ``reasons`` mapping;
nothing is filled with 0 or estimated here.
"""

from __future__ import annotations

from typing import Any

from bigbench.measure.meter import Meter
from bigbench.measure.stats import summarize_durations


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
