"""Energy figures that must never be wrong silently: short windows, units, traces, exclusions."""

from __future__ import annotations

import json
import math
import time

import pytest
from fakes import FakeClock, FakeGpu, FakeNVML, PowercapTree

from bigbench.measuring.energy import nvml, rapl
from bigbench.measuring.energy.base import MeterSet
from bigbench.measuring.energy.monitor import (
    MIN_SAMPLES,
    EnergyMonitor,
    default_min_window_s,
    diff_warnings,
    relative_difference,
)
from bigbench.measuring.energy.sampler import PowerTrace

UUID = "GPU-cccccccc-2222"


def _gpu_monitor(gpu: FakeGpu, clock: FakeClock, interval_s: float = 0.05,
                 min_window_s: float = 5.0, step_s: float = 0.1) -> EnergyMonitor:
    meters = nvml.open_gpu(gpu.uuid, backend=FakeNVML([gpu], clock, counter_step_s=step_s))
    assert meters.devices, meters.unavailable
    return EnergyMonitor(meters, interval_s, min_window_s=min_window_s, clock=clock)


def _sampled_window(monitor: EnergyMonitor, clock: FakeClock, seconds: float,
                    interval_s: float = 0.05) -> dict:
    """A window of ``seconds`` with the sampler ticking every ``interval_s`` inside it."""
    token = monitor.begin()
    end = clock.now + seconds
    while clock.now + interval_s <= end + 1e-12:
        clock.advance(interval_s)
        monitor.sampler.sample_once()
    clock.now = end
    return monitor.aggregate([monitor.end(token)])[0]


# 1. A counter that did not advance is not a measurement of the window.

def test_a_window_shorter_than_one_counter_step_is_never_0_j_measured() -> None:
    clock = FakeClock(start=10.01)  # counter updates at 10.0, 10.1, ...: none in [10.01, 10.09]
    monitor = _gpu_monitor(FakeGpu(UUID, "NVIDIA H100 80GB HBM3", [(0, 300.0)]), clock)
    monitor.sampler.sample_once()
    entry = _sampled_window(monitor, clock, 0.08, interval_s=0.04)
    assert entry["counter_j"] == 0.0
    assert entry["energy_j"] == pytest.approx(24.0) and entry["energy_j"] > 0
    assert entry["method"] == "nvml_power_instant_integral" and entry["measured"]
    assert "did not advance" in entry["counter_fallback"]
    assert entry["avg_power_w"] == pytest.approx(300.0)
    assert entry["counter_vs_integral_diff"] == -1.0  # computed although the counter reads 0
    assert entry["quality"] == "low" and "did not advance" in entry["quality_reasons"][0]
    warning = diff_warnings([entry])[0]
    assert "-100.0%" in warning and "counter 0.0 J" in warning and "integral 24.0 J" in warning
    json.dumps(entry, allow_nan=False)


def test_a_still_counter_without_any_power_sample_is_null_with_a_reason() -> None:
    clock = FakeClock(start=10.01)
    gpu = FakeGpu(UUID, "NVIDIA H100 80GB HBM3", [(0, 300.0)], instant=False, usage=False)
    monitor = _gpu_monitor(gpu, clock)  # a counter but no power reading at all
    token = monitor.begin()
    clock.advance(0.05)
    entry = monitor.aggregate([monitor.end(token)])[0]
    assert entry["energy_j"] is None and not entry["measured"]
    assert entry["quality"] == "invalid" and "did not advance" in entry["reason"]
    assert entry["uncertainty_j"] is None and entry["reasons"]["uncertainty_j"]


def test_a_still_counter_and_zero_power_agree_on_0_j() -> None:
    clock = FakeClock(start=10.01)
    monitor = _gpu_monitor(FakeGpu(UUID, "NVIDIA H100 80GB HBM3", [(0, 0.0)]), clock)
    monitor.sampler.sample_once()
    entry = _sampled_window(monitor, clock, 0.08, interval_s=0.04)
    assert entry["energy_j"] == 0.0 and entry["method"] == "nvml_energy_counter"
    assert entry["counter_fallback"] is None and entry["counter_vs_integral_diff"] == 0.0


@pytest.mark.parametrize(("counter", "integral", "diff"), [
    (0.0, 24.0, -1.0), (24.0, 0.0, 1.0), (0.0, 0.0, 0.0), (100.0, 120.0, -20 / 120),
    (120.0, 100.0, 20 / 120)])
def test_relative_difference_is_bounded_and_never_nan(counter, integral, diff) -> None:
    value = relative_difference(counter, integral)
    assert value == pytest.approx(diff) and not math.isnan(value)


# 3. The shortest window that can be "ok".

@pytest.mark.parametrize("phase_s", [0.0, 0.013, 0.049])
def test_min_window_for_quality_meets_the_sample_rule(phase_s) -> None:
    clock = FakeClock(start=20.0 + phase_s)
    monitor = _gpu_monitor(FakeGpu(UUID, "NVIDIA H100 80GB HBM3", [(0, 100.0)]), clock,
                           min_window_s=1.0)
    length = monitor.min_window_for_quality_s
    assert length == pytest.approx((MIN_SAMPLES + 2) * 0.05)
    grid = 20.0  # the sampler ticks on its own grid; the window starts anywhere on it
    clock.now = grid
    monitor.sampler.sample_once()
    clock.now = grid + phase_s
    token = monitor.begin()
    tick = grid + 0.05
    while tick <= token["t_s"] + length:
        clock.now = tick
        monitor.sampler.sample_once()
        tick += 0.05
    clock.now = token["t_s"] + length
    entry = monitor.aggregate([monitor.end(token)])[0]
    assert entry["samples"] >= MIN_SAMPLES
    assert entry["quality"] == "ok", entry["quality_reasons"]


def test_min_window_for_quality_follows_the_configured_minimum() -> None:
    monitor = EnergyMonitor(MeterSet(), 0.05, min_window_s=5.0)
    assert monitor.min_window_for_quality_s == 5.0
    assert EnergyMonitor(MeterSet(), 0.2, 5.0).min_window_for_quality_s == pytest.approx(12.4)


def test_default_min_window_is_5_s_with_a_gpu_else_1_s(tmp_path) -> None:
    PowercapTree(tmp_path)
    cpu_only = rapl.discover(tmp_path)
    assert default_min_window_s(cpu_only) == 1.0
    gpu = nvml.open_gpu(UUID, backend=FakeNVML([FakeGpu(UUID, "H100", [(0, 1.0)])],
                                               FakeClock()))
    gpu.extend(cpu_only)
    assert default_min_window_s(gpu) == 5.0


# 5. Reading a trace while the sampler appends to it.

def test_trace_between_slices_by_the_shorter_list() -> None:
    trace = PowerTrace(t_s=[1.0, 2.0, 3.0], power_w=[10.0, 20.0])  # mid-append: t_s is ahead
    assert trace.between(0.0, 10.0) == ([1.0, 2.0], [10.0, 20.0])
    assert trace.last_before(10.0) == (2.0, 20.0)
    ahead = PowerTrace(t_s=[1.0], power_w=[10.0, 20.0])
    assert ahead.between(0.0, 10.0) == ([1.0], [10.0])


# 13. Mutations the suite must catch.

def test_power_usage_fallback_reads_milliwatts_as_watts() -> None:
    """The headline of GPUs without counter or instant field: nvmlDeviceGetPowerUsage in mW."""
    clock = FakeClock(start=5.0)
    gpu = FakeGpu(UUID, "NVIDIA L4", [(0, 72.0)], counter=False, instant=False, usage=True,
                  arch=8, cc=(8, 9))
    monitor = _gpu_monitor(gpu, clock)
    monitor.sampler.sample_once()
    entry = _sampled_window(monitor, clock, 10.0)
    truth = gpu.energy(15.0) - gpu.energy(5.0)
    assert entry["method"] == "nvml_power_average_1s_integral"
    assert abs(entry["energy_j"] - truth) <= entry["uncertainty_j"] < truth
    assert entry["avg_power_w"] == pytest.approx(72.0, rel=0.01)
    assert entry["peak_power_w"] == pytest.approx(72.0, rel=0.01)


def test_rapl_poll_is_power_over_each_ticks_own_duration(tmp_path) -> None:
    tree = PowercapTree(tmp_path, psys=False)
    counter = next(d for d in rapl.discover(tmp_path).devices if d.name == "package-0")
    energy_uj, t = 0.0, 50.0
    assert counter.poll(t) is None  # nothing to difference yet
    for gap in (0.25, 0.4, 0.05, 2.0):  # never 1 s, so a missing division shows
        t += gap
        energy_uj += 40.0 * gap * 1e6
        tree.set_uj("intel-rapl:0", round(energy_uj))
        assert counter.poll(t) == pytest.approx(40.0, rel=1e-6)


def test_rapl_peak_power_with_uneven_ticks(tmp_path) -> None:
    tree = PowercapTree(tmp_path, psys=False)
    clock = FakeClock()
    monitor = EnergyMonitor(rapl.discover(tmp_path), 0.25, min_window_s=1.0, clock=clock)
    package = next(d for d in monitor.devices if d.name == "package-0")
    monitor.sampler.sample_once()
    token = monitor.begin()
    energy_uj = 0.0
    for gap in (0.25, 0.3, 0.2, 0.25):
        clock.advance(gap)
        energy_uj += 30.0 * gap * 1e6
        tree.set_uj("intel-rapl:0", round(energy_uj))
        monitor.sampler.sample_once()
    entry = next(e for e in monitor.aggregate([monitor.end(token)]) if e["key"] == package.key)
    assert entry["peak_power_w"] == pytest.approx(30.0)
    assert entry["energy_j"] == pytest.approx(30.0)


def test_grace_hopper_gpu_is_not_summed_with_rapl(tmp_path) -> None:
    """On GH200 the GPU reading covers the CPU too: RAPL must not be added on top."""
    from bigbench.measuring.energy.setup import build_monitor

    PowercapTree(tmp_path)
    clock = FakeClock()

    def run_on(name: str) -> EnergyMonitor:
        fake = FakeNVML([FakeGpu(UUID, name, [(0, 400.0)])], clock)
        return build_monitor(interval_s=0.05, gpu_uuid=UUID, powercap_root=tmp_path,
                             nvml_backend=fake, clock=clock)

    hopper = run_on("NVIDIA H100 80GB HBM3")
    assert sorted(d.kind for d in hopper.devices) == ["cpu", "dram", "gpu"]
    grace = run_on("NVIDIA GH200 480GB")
    assert [d.kind for d in grace.devices] == ["gpu"]
    assert any("Grace Hopper" in u.reason for u in grace.meters.unavailable)


# 4. ``bigbench energy measure`` on a GPU: the GPU rule and its warnings.

def test_energy_measure_uses_the_gpu_window_rule_and_warns(cli, tmp_path, monkeypatch) -> None:
    gpu = FakeGpu(UUID, "NVIDIA H100 80GB HBM3", [(0, 250.0)], power_scale=1.5)
    fake = FakeNVML([gpu], time.perf_counter)  # the command runs in real time
    monkeypatch.setattr(nvml, "load_backend", lambda: (fake, None))
    result = cli("energy", "measure", "--json", "--powercap-root", tmp_path / "none", "--",
                 "python3", "-c", "import time; time.sleep(0.3)")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["min_window_s"] == 5.0
    device = next(d for d in report["devices"] if d["kind"] == "gpu")
    assert device["quality"] == "low" and device["energy_j"] > 0
    assert device["uncertainty_j"] > 0 and device["uncertainty_method"]
    lines = result.stderr.splitlines()
    assert any(line.startswith("warning: ") and "shorter than 5 s" in line for line in lines)
    # power reads 50% high: the integral exceeds the counter (or the counter never moved)
    assert any(line.startswith("warning: ") and "differ by" in line for line in lines)
    assert report["warnings"] and all(w in result.stderr for w in report["warnings"])
