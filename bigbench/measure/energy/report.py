"""The ``energy`` and ``carbon`` sections of run.json, from the measured window only."""

from __future__ import annotations

from typing import Any

from bigbench.measure.energy.base import NullEnergyMeter
from bigbench.measure.energy.monitor import EnergyMonitor
from bigbench.measure.meter import Meter

_J_PER_KWH = 3.6e6


def _total(entries: list[dict[str, Any]]) -> float | None:
    values = [e["energy_j"] for e in entries if e["measured"]]
    return sum(values) if values else None


def window_energy_j(monitor: EnergyMonitor, meter: Meter, window: str) -> float | None:
    """Total measured energy of one window over all its segments (None if not measured)."""
    if window not in meter.windows:
        return None
    return _total(monitor.aggregate(meter.windows[window].energy))


def peak_total_power_w(monitor: EnergyMonitor, segments: list[dict[str, Any]]) -> float | None:
    """Highest sum of all devices' power at one sampler tick inside the window's segments."""
    spans = [(s["start_s"], s["end_s"]) for seg in segments for s in seg.values()]
    totals: dict[float, float] = {}
    for trace in monitor.sampler.traces.values():
        for t, w in zip(trace.t_s[:len(trace.power_w)], trace.power_w, strict=False):
            if any(a <= t <= b for a, b in spans):
                totals[t] = totals.get(t, 0.0) + w
    return max(totals.values()) if totals else None


def energy_section(energy: EnergyMonitor | NullEnergyMeter, meter: Meter) -> dict[str, Any]:
    """Energy of the measured window: totals, per-device entries with provenance, derived figures.

    ``status`` is "measured" when every meter worked, "partial" when some did, "unavailable"
    when none did; ``reason`` says what is missing.
    """
    empty: dict[str, Any] = {"total_j": None, "j_per_sample": None, "samples_per_j": None,
                             "avg_power_w": None, "peak_power_w": None}
    if isinstance(energy, NullEnergyMeter):
        return {"status": "unavailable", "reason": energy.reason, **empty, "devices": []}
    unavailable = [u.as_dict() for u in energy.meters.unavailable]
    reason = energy.unavailable_reason()
    if reason is not None:
        return {"status": "unavailable", "reason": reason, **empty, "devices": unavailable}
    measured = meter.totals("measured")
    entries = energy.aggregate(measured.energy)
    total = _total(entries)
    missing = [f"{e['name']}: {e['reason']}" for e in unavailable] + \
        [f"{e['name']}: {'; '.join(e['quality_reasons'])}" for e in entries if not e["measured"]]
    if total is None:
        status = "unavailable"
    else:
        status = "partial" if missing else "measured"
    section: dict[str, Any] = {
        "status": status,
        "reason": "; ".join(missing) if missing else None,
        "window": "measured",
        "total_j": total,
        "j_per_sample": total / measured.samples if total is not None and measured.samples
        else None,
        "samples_per_j": measured.samples / total if total else None,
        "avg_power_w": total / measured.time_s if total is not None and measured.time_s > 0
        else None,
        "peak_power_w": peak_total_power_w(energy, measured.energy),
        "quality": _worst([e["quality"] for e in entries if e["measured"]]),
        "devices": entries + unavailable,
        "windows": {name: window_energy_j(energy, meter, name) for name in meter.windows},
        "sampler": {"interval_s": energy.sampler.interval_s, "ticks": energy.sampler.ticks,
                    "errors": energy.sampler.errors},
        "min_window_s": energy.min_window_s,
    }
    return section


def _worst(qualities: list[str]) -> str | None:
    for level in ("invalid", "low", "ok"):
        if level in qualities:
            return level
    return None


def idle_section(energy: EnergyMonitor | NullEnergyMeter, meter: Meter,
                 section: dict[str, Any]) -> dict[str, Any] | None:
    """Idle baseline: idle power, its share of the measured window, and the active remainder."""
    if "idle" not in meter.windows or isinstance(energy, NullEnergyMeter):
        return None
    idle = meter.windows["idle"]
    idle_j = window_energy_j(energy, meter, "idle")
    if idle_j is None or idle.time_s <= 0:
        return {"duration_s": idle.time_s, "power_w": None,
                "reason": "no meter measured the idle window"}
    power = idle_j / idle.time_s
    measured_s = meter.totals("measured").time_s
    total = section.get("total_j")
    baseline = power * measured_s
    return {"duration_s": idle.time_s, "energy_j": idle_j, "power_w": power,
            "measured_window_idle_j": baseline,
            "measured_window_active_j": total - baseline if total is not None else None}


def carbon_section(intensity_g_per_kwh: float | None, energy: dict[str, Any]
                   ) -> dict[str, Any] | None:
    """Emissions of the measured window and of the whole run at a given grid intensity."""
    if intensity_g_per_kwh is None:
        return None
    total = energy.get("total_j")
    run_j = sum(v for v in (energy.get("windows") or {}).values() if v is not None) or None
    out: dict[str, Any] = {
        "intensity_g_per_kwh": intensity_g_per_kwh,
        "measured_window_g": total / _J_PER_KWH * intensity_g_per_kwh if total is not None
        else None,
        "run_g": run_j / _J_PER_KWH * intensity_g_per_kwh if run_j is not None else None,
    }
    if total is None:
        out["reason"] = "energy was not measured, so neither was carbon"
    return out
