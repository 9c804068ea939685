"""Energy of measurement windows, from every working device meter.

At each window edge (right after the device was synchronised) the monitor reads every energy
counter; the sampler thread meanwhile records each device's power. A window's energy per device
is the counter difference where a counter exists (the headline), else the trapezoid integral of
the power samples (the method says so). For GPUs both are computed and their relative difference
reported, since they are independent readings of the same quantity.

A counter that did not advance over a window in which the device drew power did not measure
that window (it updates in steps of up to ~100 ms): the power integral stands in, and says so.

Every figure carries ``uncertainty_j``, a half-width: the truth lies in
``[energy_j - uncertainty_j, energy_j + uncertainty_j]`` under the stated assumptions.

- Counter: a reading lags the truth by less than one update period, at each edge, so a
  difference can be off by up to one period's energy at either edge:
  ``u = period × (power near the start + power near the end)``, plus the counter's resolution.
  The period is observed from the counter's changes (``counter_period_basis: "observed"``) or,
  before enough changes were seen, the device's documented figure (``"assumed"``).
- Integral: between two samples the power is only known at their ends; a monotone change
  there is off by at most ``|Δpower| × gap / 2``. From a window edge to the first or last
  sample the power is assumed to stay within [0, 2 ×] that sample (or to move no more than
  toward the neighbouring sample outside the window): ``edge gap × edge power``. A power
  reading that is itself an average over ``s`` seconds (NVML's 1 s average on Ampere and
  newer, RAPL's average since the previous tick) shifts energy across each edge by up to
  ``s × edge power``. The reading's resolution adds ``resolution × duration``.

Neither bound can see a spike shorter than a sampling interval that no sample caught.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from bigbench.measuring.energy.base import DeviceMeter, MeterSet
from bigbench.measuring.energy.sampler import PowerSampler, PowerTrace

#: Fewer power samples than this in a window mark its energy as low quality.
MIN_SAMPLES = 60
#: Counter and integral disagreeing by more than this fraction raises a warning.
DIFF_WARNING = 0.05
#: Spare sampler intervals in :attr:`EnergyMonitor.min_window_for_quality_s`: one for a tick
#: that lands just after the end edge, one for RAPL's first poll (nothing to difference yet).
_SPARE_TICKS = 2


def default_min_window_s(meters: MeterSet) -> float:
    """The default shortest window for quality "ok": 5 s with a GPU meter, else 1 s.

    GPU counters step every 10–100 ms and the on-board sensor samples only part of the time,
    so GPU windows need seconds; RAPL counters update every millisecond.
    """
    return 5.0 if any(d.kind == "gpu" for d in meters.devices) else 1.0


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


def relative_difference(counter_j: float, integral_j: float) -> float:
    """``(counter - integral) / max(|counter|, |integral|)``, in [-1, 1] for energies ≥ 0.

    A counter reading 0 against a positive integral is -1 (-100%); both 0 is 0, never NaN.
    """
    scale = max(abs(counter_j), abs(integral_j))
    return (counter_j - integral_j) / scale if scale > 0 else 0.0


def integral_uncertainty(trace: PowerTrace, times: Sequence[float], watts: Sequence[float],
                         start: float, end: float, smear_s: float, resolution_w: float
                         ) -> float | None:
    """Half-width (J) of the trapezoid integral of ``times``/``watts`` over ``[start, end]``."""
    if not times:
        return None
    u = sum(abs(watts[i] - watts[i - 1]) * (times[i] - times[i - 1]) / 2
            for i in range(1, len(times)))
    before = trace.last_before(times[0])
    outside = abs(watts[0] - before[1]) if before is not None else 0.0
    u += (times[0] - start) * max(watts[0], outside)
    u += (end - times[-1]) * watts[-1]
    if smear_s > 0:
        reach = smear_s + 2 * (trace_gap(times) or 0.0)
        edges = [trace.edge_power(start, reach), trace.edge_power(end, reach)]
        u += sum(min(smear_s, end - start) * (p or 0.0) for p in edges)
    return u + resolution_w * (end - start)


def trace_gap(times: Sequence[float]) -> float | None:
    """The longest gap between consecutive sample times, or None with fewer than two."""
    if len(times) < 2:
        return None
    return max(b - a for a, b in zip(times, times[1:], strict=False))


def _sum_or_none(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return float(sum(values))  # type: ignore[arg-type]


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

    @property
    def min_window_for_quality_s(self) -> float:
        """Shortest one-segment window (s) that can reach quality "ok" under every rule."""
        return self.quality_window_s(segments=1)

    def samples_reached(self, segments: Sequence[dict[str, dict[str, Any]]],
                        open_since: float | None = None) -> bool:
        """Whether a window has the power samples quality "ok" needs on every device.

        Args:
            segments: The window's closed segment records (``Meter`` totals' ``energy``).
            open_since: Start time of a segment still running (its samples so far count).
        """
        for device in self.devices:
            closed = sum(s[device.key]["samples"] for s in segments if device.key in s)
            running = self.sampler.traces[device.key].count_since(open_since) \
                if open_since is not None else 0
            if closed + running < MIN_SAMPLES:
                return False
        return True

    def quality_window_s(self, segments: int) -> float:
        """Shortest window (s) of ``segments`` segments that can reach quality "ok".

        ``max(min_window_s, (MIN_SAMPLES + 2 + segments - 1) × interval_s)``: the sampler keeps
        a fixed tick schedule, so a segment of N intervals holds N or N + 1 ticks; two spare
        intervals cover a tick landing just past the end edge and RAPL's first poll, which
        yields no power, and every further segment (a window split by evaluations) can lose
        one more tick at its edges.
        """
        ticks = MIN_SAMPLES + _SPARE_TICKS + max(0, segments - 1)
        return max(self.min_window_s, ticks * self.sampler.interval_s)

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
        return {device.key: self._segment(device, token, counters.get(device.key), end_t)
                for device in self.devices}

    def _segment(self, device: DeviceMeter, token: dict[str, Any], after: float | str | None,
                 end_t: float) -> dict[str, Any]:
        start_t = token["t_s"]
        trace = self.sampler.traces[device.key]
        times, watts = trace.between(start_t, end_t)
        # No sample inside a short window: the last one before it stands for its power.
        held = trace.last_before(start_t) if not times else None
        t_int, w_int = ([start_t], [held[1]]) if held is not None else (times, watts)
        smear = self._smear_s(device, times)
        segment: dict[str, Any] = {
            "start_s": start_t, "end_s": end_t, "duration_s": end_t - start_t,
            "samples": len(times),
            "peak_power_w": max(watts) if watts else None,
            "integral_j": integrate(t_int, w_int, start_t, end_t),
            "integral_uncertainty_j": integral_uncertainty(
                trace, t_int, w_int, start_t, end_t, smear,
                device.power_resolution_w),
            "counter_j": None, "counter_uncertainty_j": None, "error": None,
            "telemetry_start": token["telemetry"].get(device.key, {}),
            "telemetry_end": _safe_telemetry(device),
        }
        before = token["counters"].get(device.key)
        if isinstance(before, str) or isinstance(after, str):
            segment["error"] = before if isinstance(before, str) else after
        elif before is not None and after is not None:
            if after < before:
                segment["error"] = (f"energy counter went backwards ({before:.3f} J → "
                                    f"{after:.3f} J; driver reloaded?): window invalid")
            else:
                segment["counter_j"] = after - before
        if device.counter_method is not None:
            segment.update(self._counter_bound(device, trace, start_t, end_t, smear))
        if device.key in self.sampler.errors and segment["error"] is None \
                and device.counter_method is None:
            segment["error"] = f"power sampling failed: {self.sampler.errors[device.key]}"
        return segment

    def _smear_s(self, device: DeviceMeter, times: Sequence[float]) -> float:
        smear = device.power_smear_s
        if smear is None:  # an average since the previous poll: one sampling interval
            smear = max(self.sampler.interval_s, trace_gap(times) or 0.0)
        return float(smear)

    def _counter_bound(self, device: DeviceMeter, trace: PowerTrace, start: float, end: float,
                       smear_s: float) -> dict[str, Any]:
        observed = trace.counter_period(end)
        assumed = device.counter_update_s
        period = observed if observed is not None else assumed
        out: dict[str, Any] = {"counter_period_s": period,
                               "counter_period_basis": "observed" if observed is not None
                               else "assumed" if assumed is not None else None}
        if period is None:
            return out
        reach = period + 2 * self.sampler.interval_s + smear_s
        edges = [trace.edge_power(start, reach), trace.edge_power(end, reach)]
        if None not in edges:
            resolution = device.counter_resolution_j
            out["counter_uncertainty_j"] = period * sum(edges) + 2 * resolution  # type: ignore[arg-type]
        return out

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
        """Per-device energy over all segments of one window, with method, quality and bound."""
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
        integral = _sum_or_none([p["integral_j"] for p in parts])
        head = _headline(device, parts, integral, duration)
        energy = None if errors else head["energy_j"]
        entry: dict[str, Any] = {
            "key": device.key, "kind": device.kind, "name": device.name,
            "energy_j": energy, "method": head["method"], "measured": energy is not None,
            "reason": errors[0] if errors else head["reason"],
            "power_method": device.power_method, "duration_s": duration, "samples": samples,
            "avg_power_w": energy / duration if energy is not None and duration > 0 else None,
            "peak_power_w": max(peaks) if peaks else None,
            "integral_j": integral,
            "integral_uncertainty_j": _sum_or_none(
                [p.get("integral_uncertainty_j") for p in parts]),
            "counter_j": head["counter_j"], "counter_fallback": head["fallback"],
            "counter_period_s": _max_or_none([p.get("counter_period_s") for p in parts]),
            "counter_period_basis": _basis([p.get("counter_period_basis") for p in parts]),
        }
        entry.update(_uncertainty(entry, head, parts))
        if device.kind == "gpu":
            entry["uuid"] = device.uuid  # an attribute: no NVML query
            counter = head["counter_j"]
            entry["counter_vs_integral_diff"] = (
                relative_difference(counter, integral)
                if counter is not None and integral is not None and not errors else None)
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
            return "invalid", [entry.get("reason") or "no reading in this window"]
        reasons = []
        if entry.get("counter_fallback"):
            reasons.append(entry["counter_fallback"])
        if duration < self.min_window_s:
            reasons.append(f"window of {duration:.2f} s is shorter than {self.min_window_s:g} s "
                           "(measure.min_energy_window_s); counters update in steps of up to "
                           "100 ms")
        if samples < MIN_SAMPLES:
            reasons.append(f"{samples} power samples (fewer than {MIN_SAMPLES})")
        return ("low" if reasons else "ok"), reasons


def _headline(device: DeviceMeter, parts: list[dict[str, Any]], integral: float | None,
              duration: float) -> dict[str, Any]:
    """The window's headline energy: the counter where it measured the window, else the
    integral; ``fallback`` says why the counter was not used, ``reason`` why there is none."""
    via_integral = {"energy_j": integral, "method": f"{device.power_method}_integral",
                    "source": "integral", "counter_j": None, "fallback": None,
                    "reason": None if integral is not None else "no power sample in this window"}
    if device.counter_method is None:
        return via_integral
    counter = _sum_or_none([p["counter_j"] for p in parts])
    head = {"energy_j": counter, "method": device.counter_method, "source": "counter",
            "counter_j": counter, "fallback": None,
            "reason": None if counter is not None else "no counter reading in this window"}
    drew_power = (integral or 0.0) > 0 or any((p["peak_power_w"] or 0.0) > 0 for p in parts)
    if counter != 0 or not parts:
        return head
    period = _max_or_none([p.get("counter_period_s") for p in parts])
    step = f" (it updates about every {period * 1000:.0f} ms)" if period else ""
    if drew_power:
        fallback = (f"the energy counter did not advance over this {duration:.3f} s window"
                    f"{step} although the device drew power: the power integral stands in")
        return {**via_integral, "counter_j": counter, "fallback": fallback}
    if integral is None:
        return {**head, "energy_j": None, "reason": (
            f"the energy counter did not advance over this {duration:.3f} s window{step} and "
            "no power sample shows whether the device drew power: not measured")}
    return head  # a counter at rest and zero power agree: 0 J is a measurement


def _uncertainty(entry: dict[str, Any], head: dict[str, Any], parts: list[dict[str, Any]]
                 ) -> dict[str, Any]:
    """``uncertainty_j`` (half-width, J) of the headline, its method and relative size."""
    energy = entry["energy_j"]
    if energy is None:
        why = entry.get("reason") or "no energy figure to bound"
        return {"uncertainty_j": None, "uncertainty_method": None, "uncertainty_rel": None,
                "reasons": dict.fromkeys(("uncertainty_j", "uncertainty_method",
                                          "uncertainty_rel"), why)}
    if head["source"] == "counter":
        u = _sum_or_none([p.get("counter_uncertainty_j") for p in parts])
        method = (f"counter update period {entry['counter_period_s'] or 0:.3f} s "
                  f"({entry['counter_period_basis']}) x power at each edge")
        why = "no power reading near a window edge to size the counter's step"
    else:
        u = entry["integral_uncertainty_j"]
        method = "power samples: |dP| x gap / 2 inside, edge gap x edge power, averaging smear"
        why = "no power sample to bound the integral"
    out: dict[str, Any] = {
        "uncertainty_j": u, "uncertainty_method": method if u is not None else None,
        "uncertainty_rel": u / energy if u is not None and energy > 0 else None}
    reasons = {k: why for k in ("uncertainty_j", "uncertainty_method") if out[k] is None}
    if u is not None and out["uncertainty_rel"] is None:
        reasons["uncertainty_rel"] = "the energy is 0 J: no relative size"
    elif u is None:
        reasons["uncertainty_rel"] = why
    if reasons:
        out["reasons"] = reasons
    return out


def _max_or_none(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _basis(values: Sequence[str | None]) -> str | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return "observed" if all(v == "observed" for v in present) else "assumed"


def _safe_telemetry(device: DeviceMeter) -> dict[str, Any]:
    try:
        return device.telemetry()
    except Exception as exc:  # telemetry is a nice-to-have; its failure is recorded, not fatal
        return {"error": f"{type(exc).__name__}: {exc}"}


def _joules(value: Any) -> str:
    return f"{value:.1f} J" if isinstance(value, (int, float)) else "n/a"


def diff_warnings(entries: Sequence[dict[str, Any]]) -> list[str]:
    """Warnings for GPUs whose counter and power integral disagree by more than 5%."""
    warnings = []
    for entry in entries:
        diff = entry.get("counter_vs_integral_diff")
        if diff is None or abs(diff) <= DIFF_WARNING:
            continue
        counter = entry.get("counter_j", entry.get("energy_j"))
        why = ("the counter did not advance, so the integral is reported"
               if entry.get("counter_fallback") else
               "short or bursty windows are measured least well")
        warnings.append(
            f"{entry['name']}: energy counter and integrated power differ by {diff:+.1%} "
            f"(counter {_joules(counter)}, integral {_joules(entry.get('integral_j'))}); {why}")
    return warnings
