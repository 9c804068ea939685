"""The ``energy`` and ``carbon`` sections of run.json, and the energy of any named window.

Reads an :class:`EnergyMonitor` (one without devices when nothing can be measured) and the
windows of a :class:`Meter`; never asks which kind of meter it has.
"""

from __future__ import annotations

import math
from typing import Any

from bigbench.measuring.energy.monitor import EnergyMonitor
from bigbench.measuring.meter import Meter

_J_PER_KWH = 3.6e6
_EMPTY = ("total_j", "uncertainty_j", "j_per_sample", "j_per_sample_uncertainty",
          "samples_per_j", "avg_power_w", "peak_power_w")


def measured_total(entries: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """Summed energy of the measured entries (float64) and the sum of their error bounds."""
    measured = [e for e in entries if e["measured"]]
    if not measured:
        return None, None
    bounds = [e.get("uncertainty_j") for e in measured]
    return (math.fsum(e["energy_j"] for e in measured),
            math.fsum(bounds) if None not in bounds else None)  # type: ignore[arg-type]


def window_energy(monitor: EnergyMonitor, meter: Meter, window: str
                  ) -> tuple[float | None, float | None]:
    """Total measured energy of one window over all its segments, and its error bound."""
    if window not in meter.windows:
        return None, None
    return measured_total(monitor.aggregate(meter.windows[window].energy))


def window_energy_j(monitor: EnergyMonitor, meter: Meter, window: str) -> float | None:
    """Total measured energy of one window over all its segments (None if not measured)."""
    return window_energy(monitor, meter, window)[0]


def peak_total_power_w(monitor: EnergyMonitor, segments: list[dict[str, Any]]) -> float | None:
    """Highest sum of all devices' power at one sampler tick inside the window's segments."""
    spans = {(s["start_s"], s["end_s"]) for seg in segments for s in seg.values()}
    totals: dict[float, float] = {}
    for trace in monitor.sampler.traces.values():
        inside: dict[float, float] = {}  # a sample on a shared edge counts once
        for start, end in spans:
            inside.update(zip(*trace.between(start, end), strict=True))
        for t, w in inside.items():
            totals[t] = totals.get(t, 0.0) + w
    return max(totals.values()) if totals else None


#: What a per-device energy summary shows (``energy measure``, ``bigbench.measure``), reasons
#: of null figures included.
DEVICE_SUMMARY_KEYS = ("kind", "name", "energy_j", "uncertainty_j", "uncertainty_method",
                       "avg_power_w", "method", "measured", "reason", "quality",
                       "quality_reasons", "peak_power_w", "samples", "integral_j",
                       "counter_fallback", "reasons")


def power_rows(monitor: EnergyMonitor) -> list[tuple[float, str, float]]:
    """Every power sample as ``(t_s, device key, watts)`` (for power.csv)."""
    rows = []
    for key, trace in monitor.sampler.traces.items():
        times, watts = trace.between(-math.inf, math.inf)
        rows += [(t, key, w) for t, w in zip(times, watts, strict=True)]
    return rows


def energy_section(monitor: EnergyMonitor, meter: Meter, window: str = "measured"
                   ) -> dict[str, Any]:
    """Energy of one window: totals with error bounds, per-device provenance, derived figures.

    ``status`` is "measured" when every meter measured, "partial" when some did,
    "unavailable" when none did; ``reason`` says what is missing. Every null figure has its
    reason in ``reasons``.
    """
    unavailable = [u.as_dict() for u in monitor.meters.unavailable]
    nothing = monitor.unavailable_reason()
    if nothing is not None:
        return {"status": "unavailable", "reason": nothing, **dict.fromkeys(_EMPTY),
                "quality": None, "devices": unavailable,
                "reasons": dict.fromkeys(_EMPTY, nothing)}
    totals = meter.totals(window)
    entries = monitor.aggregate(totals.energy)
    total, bound = measured_total(entries)
    missing = [f"{e['name']}: {e['reason']}" for e in unavailable] + \
        [f"{e['name']}: {'; '.join(e['quality_reasons'])}" for e in entries if not e["measured"]]
    derived = derived_energy_figures(total, bound, totals.samples, totals.time_s)
    reasons = derived.pop("reasons")
    if total is None:
        reasons.update(total_j="; ".join(missing) or "no meter measured this window",
                       uncertainty_j="energy was not measured")
    elif bound is None:
        reasons["uncertainty_j"] = "no error bound for this energy figure"
    peak = peak_total_power_w(monitor, totals.energy)
    if peak is None:
        reasons["peak_power_w"] = "no power sample inside the window"
    section: dict[str, Any] = {
        "status": "unavailable" if total is None else ("partial" if missing else "measured"),
        "reason": "; ".join(missing) if missing else None,
        "window": window, "total_j": total, "uncertainty_j": bound, **derived,
        "peak_power_w": peak,
        "quality": measured_quality(entries)[0],
        "devices": entries + unavailable,
        "windows": {name: window_energy_j(monitor, meter, name) for name in meter.windows},
        "sampler": {"interval_s": monitor.sampler.interval_s, "ticks": monitor.sampler.ticks,
                    "errors": monitor.sampler.errors},
        "min_window_s": monitor.min_window_s,
    }
    if reasons:
        section["reasons"] = reasons
    return section


def energy_warnings(entries: list[dict[str, Any]]) -> list[str]:
    """What a user must hear about per-device energy: low or invalid quality (with the
    reasons) and counters that disagree with their power integral by more than 5%."""
    from bigbench.measuring.energy.monitor import diff_warnings

    warnings = [f"{e['kind']} {e['name']}: energy quality is {e['quality']}: "
                + "; ".join(e.get("quality_reasons") or [])
                for e in entries if e.get("quality") in ("low", "invalid")]
    return warnings + diff_warnings([e for e in entries if e.get("measured")])


def measured_quality(entries: list[dict[str, Any]]) -> tuple[str | None, list[str]]:
    """Quality of a window's measured energy: the worst of its measured devices, and their
    reasons (a device that measured nothing makes the energy partial, not invalid)."""
    measured = [e for e in entries if e["measured"]]
    reasons = sorted({r for e in measured for r in e.get("quality_reasons") or []})
    return worst_quality([e["quality"] for e in measured]), reasons


def worst_quality(qualities: list[str | None]) -> str | None:
    """The worst of some quality flags (invalid < low < ok), None when there is none."""
    for level in ("invalid", "low", "ok"):
        if level in qualities:
            return level
    return None


def derived_energy_figures(total_j: float | None, uncertainty_j: float | None, samples: int,
                           time_s: float) -> dict[str, Any]:
    """J/sample (with its error bound), samples/J and average power, or nulls with reasons."""
    out: dict[str, Any] = {"j_per_sample": None, "j_per_sample_uncertainty": None,
                           "samples_per_j": None, "avg_power_w": None, "reasons": {}}
    if total_j is None:
        why = "energy was not measured"
        out["reasons"] = {k: why for k in ("j_per_sample", "j_per_sample_uncertainty",
                                           "samples_per_j", "avg_power_w")}
        return out
    if samples:
        out["j_per_sample"] = total_j / samples
        if uncertainty_j is not None:
            out["j_per_sample_uncertainty"] = uncertainty_j / samples
        else:
            out["reasons"]["j_per_sample_uncertainty"] = "no error bound for this energy figure"
    else:
        out["reasons"]["j_per_sample"] = "no measured samples"
    if total_j > 0 and samples:
        out["samples_per_j"] = samples / total_j
    else:
        out["reasons"]["samples_per_j"] = "no measured samples" if not samples else \
            "the measured energy is 0 J"
    if time_s > 0:
        out["avg_power_w"] = total_j / time_s
    else:
        out["reasons"]["avg_power_w"] = "the measured window has no duration"
    return out


def idle_section(monitor: EnergyMonitor, meter: Meter, measured_j: float | None,
                 measured_s: float) -> dict[str, Any] | None:
    """Idle baseline: idle power, its share of the measured energy, and the active remainder.

    Args:
        measured_j: Energy of the measured window(s) the baseline is held against.
        measured_s: Their duration in seconds (the same windows as ``measured_j``).
    """
    if "idle" not in meter.windows:
        return None
    idle = meter.windows["idle"]
    idle_j = window_energy_j(monitor, meter, "idle")
    if idle_j is None or idle.time_s <= 0:
        why = "no meter measured the idle window"
        return {"duration_s": idle.time_s, "energy_j": None, "power_w": None,
                "measured_window_idle_j": None, "measured_window_active_j": None,
                "reasons": {"energy_j": why, "power_w": why, "measured_window_idle_j": why,
                            "measured_window_active_j": why}}
    power = idle_j / idle.time_s
    baseline = power * measured_s
    out = {"duration_s": idle.time_s, "energy_j": idle_j, "power_w": power,
           "measured_window_idle_j": baseline,
           "measured_window_active_j": measured_j - baseline if measured_j is not None else None}
    if measured_j is None:
        out["reasons"] = {"measured_window_active_j": "the measured window's energy was not "
                                                      "measured"}
    return out


def carbon_section(intensity_g_per_kwh: float | None, measured_j: float | None,
                   run_j: float | None) -> dict[str, Any] | None:
    """Emissions of the measured window and of the whole run at a given grid intensity.

    Args:
        measured_j: Energy of the measured window (all segments of a resumed run).
        run_j: Energy of every window of the run (None where some part was not measured).
    """
    if intensity_g_per_kwh is None:
        return None

    def grams(joules: float | None) -> float | None:
        return joules / _J_PER_KWH * intensity_g_per_kwh if joules is not None else None

    out: dict[str, Any] = {"intensity_g_per_kwh": intensity_g_per_kwh,
                           "measured_window_g": grams(measured_j), "run_g": grams(run_j)}
    reasons = {}
    if measured_j is None:
        reasons["measured_window_g"] = "energy was not measured, so neither was carbon"
    if run_j is None:
        reasons["run_g"] = "the energy of some part of the run was not measured"
    if reasons:
        out["reasons"] = reasons
    return out
