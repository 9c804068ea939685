"""Energy of measurement windows, from every working device meter.

At each window edge (right after the device was synchronised) the monitor reads every energy
counter; the sampler thread meanwhile records each device's power. A window's energy per device
is the counter difference where a counter exists (the headline), else the trapezoid integral of
the power samples (the method says so). For GPUs both are computed and their relative difference
reported, since they are independent readings of the same quantity.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from bigbench.measure.energy.base import DeviceMeter, MeterSet
from bigbench.measure.energy.sampler import PowerSampler

#: Fewer power samples than this in a window mark its energy as low quality.
MIN_SAMPLES = 60
#: Counter and integral disagreeing by more than this fraction raises a warning.
DIFF_WARNING = 0.05


def integrate(times: Sequence[float], watts: Sequence[float], start: float, end: float
              ) -> float | None:
    """Energy in joules of a power trace over ``[start, end]`` by the trapezoid rule.

    The first and last samples are held flat out to the window edges, so a constant power is
    integrated exactly. Returns None when there is no sample.
    """
    if not times:
        return None
    energy = watts[0] * (times[0] - start) + watts[-1] * (end - times[-1])
    for i in range(1, len(times)):
        energy += 0.5 * (watts[i] + watts[i - 1]) * (times[i] - times[i - 1])
    return energy


class EnergyMonitor:
    """Window energy from a set of device meters.

    Args:
        meters: Working meters and the reasons for the missing ones.
        interval_s: Sampler period in seconds.
        min_window_s: Windows shorter than this get quality "low".
        clock: Time source in seconds, shared with the measurement windows.
    """

    def __init__(self, meters: MeterSet, interval_s: float, min_window_s: float,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.meters = meters
        self.min_window_s = min_window_s
        self.clock = clock
        self.sampler = PowerSampler(meters.devices, interval_s, clock)

    @property
    def devices(self) -> list[DeviceMeter]:
        """The working device meters."""
        return self.meters.devices

    def start(self) -> None:
        """Start sampling power."""
        self.sampler.start()

    def stop(self) -> None:
        """Stop sampling power."""
        self.sampler.stop()

    def unavailable_reason(self) -> str | None:
        """Why nothing at all is measured, or None when something is."""
        if self.devices:
            return None
        reasons = [f"{u.name}: {u.reason}" for u in self.meters.unavailable]
        return "; ".join(reasons) or "no energy meter found"

    def begin(self) -> dict[str, Any]:
        """Read every counter and telemetry at a window's start."""
        return {"t_s": self.clock(), "counters": self._read_counters(),
                "telemetry": {d.key: _safe_telemetry(d) for d in self.devices}}

    def end(self, token: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """One segment record per device key for the window that began with ``token``."""
        counters = self._read_counters()
        end_t = self.clock()
        start_t = token["t_s"]
        segments = {}
        for device in self.devices:
            times, watts = self.sampler.traces[device.key].between(start_t, end_t)
            integral = integrate(times, watts, start_t, end_t)
            before, after = token["counters"].get(device.key), counters.get(device.key)
            segment: dict[str, Any] = {
                "start_s": start_t, "end_s": end_t, "duration_s": end_t - start_t,
                "samples": len(times),
                "peak_power_w": max(watts) if watts else None, "integral_j": integral,
                "counter_j": None, "error": None,
                "telemetry_start": token["telemetry"].get(device.key, {}),
                "telemetry_end": _safe_telemetry(device),
            }
            if isinstance(before, str) or isinstance(after, str):
                segment["error"] = before if isinstance(before, str) else after
            elif before is not None and after is not None:
                if after < before:
                    segment["error"] = (f"energy counter went backwards ({before:.3f} J → "
                                        f"{after:.3f} J; driver reloaded?): window invalid")
                else:
                    segment["counter_j"] = after - before
            if device.key in self.sampler.errors and segment["error"] is None \
                    and device.counter_method is None:
                segment["error"] = f"power sampling failed: {self.sampler.errors[device.key]}"
            segments[device.key] = segment
        return segments

    def _read_counters(self) -> dict[str, float | str | None]:
        readings: dict[str, float | str | None] = {}
        for device in self.devices:
            if device.counter_method is None:
                readings[device.key] = None
                continue
            try:
                readings[device.key] = device.counter_j()
            except Exception as exc:  # recorded as this device's error, never a crash
                readings[device.key] = f"counter read failed: {type(exc).__name__}: {exc}"
        return readings

    def aggregate(self, segments: Sequence[dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Per-device energy over all segments of one window, with method and quality."""
        entries = []
        for device in self.devices:
            parts = [s[device.key] for s in segments if device.key in s]
            entries.append(self._device_entry(device, parts))
        return entries

    def _device_entry(self, device: DeviceMeter, parts: list[dict[str, Any]]) -> dict[str, Any]:
        duration = sum(p["duration_s"] for p in parts)
        samples = sum(p["samples"] for p in parts)
        peaks = [p["peak_power_w"] for p in parts if p["peak_power_w"] is not None]
        errors = [p["error"] for p in parts if p["error"]]
        integrals = [p["integral_j"] for p in parts]
        integral = sum(integrals) if parts and None not in integrals else None  # type: ignore[arg-type]
        use_counter = device.counter_method is not None
        if use_counter:
            counters = [p["counter_j"] for p in parts]
            energy = sum(counters) if parts and None not in counters else None  # type: ignore[arg-type]
            method = device.counter_method
        else:
            energy, method = integral, f"{device.power_method}_integral"
        entry: dict[str, Any] = {
            "key": device.key, "kind": device.kind, "name": device.name,
            "energy_j": None if errors else energy, "method": method,
            "measured": not errors and energy is not None,
            "power_method": device.power_method, "duration_s": duration, "samples": samples,
            "avg_power_w": energy / duration if energy is not None and duration > 0 and not errors
            else None,
            "peak_power_w": max(peaks) if peaks else None,
            "integral_j": integral,
        }
        if device.kind == "gpu":
            entry["uuid"] = getattr(device, "uuid", None)  # an attribute: no NVML query
            entry["counter_vs_integral_diff"] = (
                (energy - integral) / energy
                if use_counter and energy and integral is not None and not errors else None)
        entry["quality"], entry["quality_reasons"] = self._quality(entry, errors, duration,
                                                                   samples)
        if parts:
            entry["telemetry_start"] = parts[0]["telemetry_start"]
            entry["telemetry_end"] = parts[-1]["telemetry_end"]
        return entry

    def _quality(self, entry: dict[str, Any], errors: list[str], duration: float,
                 samples: int) -> tuple[str, list[str]]:
        if errors:
            return "invalid", errors[:1]
        if entry["energy_j"] is None:
            return "invalid", ["no reading in this window"]
        reasons = []
        if duration < self.min_window_s:
            reasons.append(f"window of {duration:.2f} s is shorter than {self.min_window_s:g} s "
                           "(measure.min_energy_window_s); counters update in steps of up to "
                           "100 ms")
        if samples < MIN_SAMPLES:
            reasons.append(f"{samples} power samples (fewer than {MIN_SAMPLES})")
        return ("low" if reasons else "ok"), reasons


def _safe_telemetry(device: DeviceMeter) -> dict[str, Any]:
    try:
        return device.telemetry()
    except Exception as exc:  # telemetry is a nice-to-have; its failure is recorded, not fatal
        return {"error": f"{type(exc).__name__}: {exc}"}


def diff_warnings(entries: Sequence[dict[str, Any]]) -> list[str]:
    """Warnings for GPUs whose counter and power integral disagree by more than 5%."""
    warnings = []
    for entry in entries:
        diff = entry.get("counter_vs_integral_diff")
        if diff is not None and abs(diff) > DIFF_WARNING:
            warnings.append(
                f"{entry['name']}: energy counter and integrated power differ by {diff:+.1%} "
                f"(counter {entry['energy_j']:.1f} J, integral {entry['integral_j']:.1f} J); "
                "short or bursty windows are measured least well")
    return warnings
