"""Every energy figure's error bound holds the truth: simulated GPUs of known power and counter.

The fake GPU's counter advances every ``step_s`` (at a phase of our choosing) and its exact
energy is known, so each trial checks ``|truth - energy_j| <= uncertainty_j`` over many window
lengths and offsets, windows shorter than one counter step included.
"""

from __future__ import annotations

import json

import pytest
from fakes import FakeClock, FakeGpu, FakeNVML

from bigbench.measuring.energy import nvml
from bigbench.measuring.energy.monitor import EnergyMonitor

UUID = "GPU-dddddddd-3333"
#: 50 window lengths from 10 ms (a tenth of a counter step) to 10 s, evenly spaced in log.
LENGTHS_S = [0.01 * 1000 ** (i / 49) for i in range(50)]
OFFSETS_S = [0.0, 0.011, 0.037, 0.062, 0.093]


def run_window(gpu: FakeGpu, start: float, length: float, *, step_s: float = 0.1,
               interval_s: float = 0.05, phase_s: float = 0.0, warmup_s: float = 1.0,
               counter_observed: bool = True) -> dict:
    """One measured window on a fake clock, the sampler ticking on its own grid throughout.

    ``counter_observed=False`` starts the sampler just before the window, so the counter's
    period is not yet observed and the assumed 100 ms applies.
    """
    clock = FakeClock(start=start - warmup_s)
    fake = FakeNVML([gpu], clock, counter_step_s=step_s, counter_phase_s=phase_s)
    monitor = EnergyMonitor(nvml.open_gpu(UUID, backend=fake), interval_s, 5.0, clock=clock)
    tick = start - (warmup_s if counter_observed else interval_s / 2)
    while tick < start:
        clock.now = tick
        monitor.sampler.sample_once()
        tick += interval_s
    clock.now = start
    token = monitor.begin()
    end = start + length
    while tick <= end:
        clock.now = tick
        monitor.sampler.sample_once()
        tick += interval_s
    clock.now = end
    entry = monitor.aggregate([monitor.end(token)])[0]
    entry["truth_j"] = gpu.energy(end) - gpu.energy(start)
    return entry


def _check(entry: dict) -> float:
    """Asserts the bound holds and returns |error| / bound."""
    assert entry["energy_j"] is not None, entry["reason"]
    error = abs(entry["truth_j"] - entry["energy_j"])
    bound = entry["uncertainty_j"]
    assert bound is not None and error <= bound + 1e-9, (entry["truth_j"], entry["energy_j"],
                                                         bound, entry["duration_s"])
    json.dumps({k: v for k, v in entry.items() if k != "telemetry_start"}, allow_nan=False)
    return error / bound if bound > 0 else 0.0


@pytest.mark.parametrize(("step_s", "interval_s"), [
    (0.1, 0.05),   # NVML's common 100 ms counter, 50 ms sampling
    (0.07, 0.05),  # a period that is no multiple of the sampling interval
    (0.02, 0.05),  # a counter faster than the sampler: the period is seen as <= one tick
    (0.1, 0.03),
])
def test_counter_bound_holds_the_truth_over_lengths_and_offsets(step_s, interval_s) -> None:
    worst = 0.0
    for length in LENGTHS_S:
        for offset in OFFSETS_S:
            gpu = FakeGpu(UUID, "NVIDIA H100 80GB HBM3", [(0, 300.0)])
            entry = run_window(gpu, 30.0 + offset, length, step_s=step_s,
                               interval_s=interval_s)
            worst = max(worst, _check(entry))
            assert entry["uncertainty_method"]
    assert worst > 0.1  # the bound is not vacuous: some trials use a good part of it


def test_the_counter_period_is_observed_or_assumed_and_said() -> None:
    gpu = FakeGpu(UUID, "NVIDIA H100 80GB HBM3", [(0, 300.0)])
    observed = run_window(gpu, 30.0, 2.0, step_s=0.07)
    assert observed["counter_period_basis"] == "observed"
    # the mean spacing between changes is right to one 50 ms tick over the whole 3 s span
    assert observed["counter_period_s"] == pytest.approx(0.07, abs=0.05 / 30)
    assumed = run_window(gpu, 30.0, 0.2, step_s=0.07, counter_observed=False)
    assert assumed["counter_period_basis"] == "assumed"
    assert assumed["counter_period_s"] == nvml.COUNTER_UPDATE_S
    _check(assumed)
    assert "assumed" in assumed["uncertainty_method"]


def test_the_relative_interval_shrinks_as_the_window_grows() -> None:
    rel = {}
    for length in (0.1, 1.0, 10.0):
        gpu = FakeGpu(UUID, "NVIDIA H100 80GB HBM3", [(0, 300.0)])
        entry = run_window(gpu, 30.0, length)
        _check(entry)
        rel[length] = entry["uncertainty_j"] / entry["truth_j"]
        assert entry["uncertainty_rel"] == pytest.approx(
            entry["uncertainty_j"] / entry["energy_j"])
    assert rel[10.0] < rel[1.0] < rel[0.1]
    assert rel[10.0] < 0.025  # 2 × 100 ms × 300 W = 60 J over 3000 J


@pytest.mark.parametrize(("before_w", "after_w"), [(200.0, 300.0), (300.0, 100.0)])
def test_a_power_step_inside_the_window_stays_inside_the_bound(before_w, after_w) -> None:
    for counter in (True, False):
        for length in (0.3, 1.0, 4.0):
            for fraction in (0.0, 0.01, 0.2, 0.5, 0.77, 0.99, 1.0):
                for offset in (0.0, 0.023, 0.071):
                    start = 30.0 + offset
                    gpu = FakeGpu(UUID, "NVIDIA H100 80GB HBM3",
                                  [(0, before_w), (start + fraction * length, after_w)],
                                  counter=counter)
                    entry = run_window(gpu, start, length)
                    _check(entry)
                    expected = "nvml_energy_counter" if counter else "nvml_power_instant_integral"
                    assert entry["method"] == expected or entry["counter_fallback"]


def test_integral_headline_bound_over_lengths_and_offsets() -> None:
    """GPUs without a counter: the integral's own bound, windows with no sample included."""
    for length in LENGTHS_S[::3]:
        for offset in OFFSETS_S:
            gpu = FakeGpu(UUID, "Tesla T4", [(0, 70.0)], counter=False)
            entry = run_window(gpu, 30.0 + offset, length)
            assert entry["method"] == "nvml_power_instant_integral"
            _check(entry)


def test_averaged_power_bound_includes_the_one_second_smear() -> None:
    for before_w, after_w in ((150.0, 150.0), (150.0, 250.0), (250.0, 100.0)):
        for length in (0.5, 2.0, 6.0):
            start = 30.0
            gpu = FakeGpu(UUID, "NVIDIA L4", [(0, before_w), (start + length / 2, after_w)],
                          counter=False, instant=False, arch=8, cc=(8, 9))
            entry = run_window(gpu, start, length, warmup_s=2.0)
            assert entry["method"] == "nvml_power_average_1s_integral"
            _check(entry)
            assert "smear" in entry["uncertainty_method"]


def test_segments_add_their_bounds() -> None:
    clock = FakeClock(start=29.0)
    gpu = FakeGpu(UUID, "NVIDIA H100 80GB HBM3", [(0, 300.0)])
    monitor = EnergyMonitor(nvml.open_gpu(UUID, backend=FakeNVML([gpu], clock)), 0.05, 5.0,
                            clock=clock)
    segments, truth = [], 0.0
    for seconds in (0.37, 1.21, 0.05):
        token = monitor.begin()
        begun = clock.now
        for _ in range(round(seconds / 0.01)):
            clock.advance(0.01)
            if round(clock.now * 100) % 5 == 0:
                monitor.sampler.sample_once()
        segments.append(monitor.end(token))
        truth += gpu.energy(clock.now) - gpu.energy(begun)
        clock.advance(0.5)  # a pause between segments (eval, checkpoint) is not measured
    entry = monitor.aggregate(segments)[0]
    parts = [s[f"gpu:{UUID}"]["counter_uncertainty_j"] for s in segments]
    assert entry["uncertainty_j"] == pytest.approx(sum(parts))
    assert abs(truth - entry["energy_j"]) <= entry["uncertainty_j"]
