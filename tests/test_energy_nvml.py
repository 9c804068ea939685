"""The NVML meter against a fake pynvml: counter, power fields, fallbacks, UUID mapping."""

from __future__ import annotations

import threading
import time

import pytest
from fakes import FakeClock, FakeGpu, FakeNVML

from bigbench.measure.energy import nvml
from bigbench.measure.energy.base import MeterSet
from bigbench.measure.energy.monitor import EnergyMonitor, diff_warnings, integrate
from bigbench.measure.energy.sampler import PowerSampler

UUID_A, UUID_B = "GPU-aaaaaaaa-0000", "GPU-bbbbbbbb-1111"


def _monitor(gpu: FakeGpu, clock: FakeClock, min_window_s: float = 5.0) -> EnergyMonitor:
    meters = nvml.open_gpu(gpu.uuid, backend=FakeNVML([gpu], clock))
    assert meters.devices, meters.unavailable
    return EnergyMonitor(meters, 0.05, min_window_s=min_window_s, clock=clock)


def _window(monitor: EnergyMonitor, clock: FakeClock, seconds: float, interval: float = 0.05):
    token = monitor.begin()
    for _ in range(round(seconds / interval)):
        clock.advance(interval)
        monitor.sampler.sample_once()
    return monitor.aggregate([monitor.end(token)])[0]


def test_constant_100_w_for_10_s(monkeypatch) -> None:
    clock = FakeClock(start=0.05)
    entry = _window(_monitor(FakeGpu(UUID_A, "NVIDIA H100 80GB HBM3", [(0, 100.0)]), clock),
                    clock, 10.0)
    assert entry["energy_j"] == pytest.approx(1000.0, rel=0.01)
    assert entry["integral_j"] == pytest.approx(1000.0, rel=0.01)
    assert entry["method"] == "nvml_energy_counter" and entry["measured"]
    assert entry["power_method"] == "nvml_power_instant"
    assert entry["uuid"] == UUID_A and abs(entry["counter_vs_integral_diff"]) < 0.01
    assert entry["quality"] == "ok" and entry["peak_power_w"] == pytest.approx(100.0)
    assert entry["telemetry_start"]["power_limit_w"] == 700.0


def test_a_step_in_power_is_integrated() -> None:
    clock = FakeClock(start=0.0)
    gpu = FakeGpu(UUID_A, "NVIDIA A100-SXM4-80GB", [(0, 100.0), (5.0, 300.0)])
    entry = _window(_monitor(gpu, clock), clock, 10.0)
    assert entry["energy_j"] == pytest.approx(2000.0, rel=0.01)
    assert entry["integral_j"] == pytest.approx(2000.0, rel=0.01)
    assert entry["peak_power_w"] == pytest.approx(300.0)


def test_no_counter_makes_the_integral_the_headline() -> None:
    clock = FakeClock(start=0.0)
    gpu = FakeGpu(UUID_A, "Tesla T4", [(0, 70.0)], counter=False)
    entry = _window(_monitor(gpu, clock), clock, 10.0)
    assert entry["method"] == "nvml_power_instant_integral"
    assert entry["energy_j"] == pytest.approx(700.0, rel=0.01)
    assert entry["counter_vs_integral_diff"] is None


@pytest.mark.parametrize(("arch", "name", "method"), [
    (8, "NVIDIA L4", "nvml_power_average_1s"),        # Ampere+: the reading is a 1 s average
    (7, "NVIDIA A100-PCIE-40GB", "nvml_power_usage"),  # GA100 reports instantaneous power
    (5, "Tesla V100-SXM2-16GB", "nvml_power_usage"),
])
def test_power_usage_fallback_is_labelled(arch, name, method) -> None:
    clock = FakeClock()
    gpu = FakeGpu(UUID_A, name, [(0, 50.0)], instant=False, arch=arch)
    meters = nvml.open_gpu(UUID_A, backend=FakeNVML([gpu], clock))
    assert meters.devices[0].power_method == method


def test_nothing_supported_is_unavailable_with_reason() -> None:
    gpu = FakeGpu(UUID_A, "old", [(0, 50.0)], counter=False, instant=False, usage=False)
    meters = nvml.open_gpu(UUID_A, backend=FakeNVML([gpu], FakeClock()))
    assert not meters.devices
    assert "not supported" in meters.unavailable[0].reason


def test_handles_are_found_by_uuid_not_index() -> None:
    # NVML order: B then A; the torch device we train on is A.
    fake = FakeNVML([FakeGpu(UUID_B, "GPU B", [(0, 1.0)]),
                     FakeGpu(UUID_A, "GPU A", [(0, 2.0)])], FakeClock())
    meter = nvml.open_gpu(UUID_A, backend=fake).devices[0]
    assert meter.name == "GPU A" and meter.key == f"gpu:{UUID_A}"
    assert meter.poll(0.0) == pytest.approx(2.0)


def test_mig_driver_and_missing_gpu_are_reasons_not_crashes() -> None:
    clock = FakeClock()
    mig = nvml.open_gpu(UUID_A, backend=FakeNVML([FakeGpu(UUID_A, "H100", [(0, 1)], mig=True)],
                                                   clock))
    assert "MIG" in mig.unavailable[0].reason
    assert "MIG slice" in nvml.open_gpu("MIG-1234", backend=FakeNVML([], clock)
                                        ).unavailable[0].reason
    no_driver = nvml.open_gpu(UUID_A, backend=FakeNVML([], clock, init_error=9))
    assert "no NVIDIA driver" in no_driver.unavailable[0].reason
    missing = nvml.open_gpu(UUID_A, backend=FakeNVML([], clock))
    assert UUID_A in missing.unavailable[0].reason


def test_counter_going_backwards_invalidates_the_window() -> None:
    clock = FakeClock(start=0.0)
    gpu = FakeGpu(UUID_A, "H100", [(0, 100.0)])
    monitor = _monitor(gpu, clock)
    token = monitor.begin()
    clock.advance(6.0)
    gpu.counter_offset_mj = -1e9  # the driver reloaded: the counter restarted
    entry = monitor.aggregate([monitor.end(token)])[0]
    assert entry["energy_j"] is None and not entry["measured"]
    assert entry["quality"] == "invalid" and "backwards" in entry["quality_reasons"][0]


def test_short_windows_are_low_quality() -> None:
    clock = FakeClock(start=0.0)
    entry = _window(_monitor(FakeGpu(UUID_A, "H100", [(0, 100.0)]), clock), clock, 2.0)
    assert entry["quality"] == "low"
    text = " ".join(entry["quality_reasons"])
    assert "shorter than 5 s" in text and "40 power samples" in text
    assert entry["energy_j"] == pytest.approx(200.0, rel=0.06)  # still reported, flagged


def test_disagreement_above_5_percent_warns() -> None:
    clock = FakeClock(start=0.0)
    gpu = FakeGpu(UUID_A, "H100", [(0, 100.0)], power_scale=1.2)  # power reads 20% high
    entry = _window(_monitor(gpu, clock), clock, 10.0)
    assert entry["counter_vs_integral_diff"] == pytest.approx(-0.2, abs=0.01)
    assert "differ by" in diff_warnings([entry])[0]


def test_integrate_holds_edges_flat() -> None:
    assert integrate([1.0, 2.0], [10.0, 10.0], 0.0, 3.0) == pytest.approx(30.0)
    assert integrate([], [], 0.0, 1.0) is None


class _Flaky:
    key, kind, name, counter_method, power_method = "x", "gpu", "x", None, "p"

    def __init__(self, fail_after: int) -> None:
        self.polls = 0
        self.fail_after = fail_after

    def poll(self, t):
        self.polls += 1
        if self.polls > self.fail_after:
            raise RuntimeError("GPU is lost")
        return 1.0


def test_sampler_thread_stops_on_error_and_sleeps_between_ticks() -> None:
    device = _Flaky(fail_after=3)
    sampler = PowerSampler([device], interval_s=0.01)
    sampler.start()
    deadline = time.monotonic() + 5
    while sampler.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not sampler.running
    assert "GPU is lost" in sampler.errors["x"] and device.polls == 4
    assert len(sampler.traces["x"].t_s) == 3

    idle = _Flaky(fail_after=10**9)
    sampler = PowerSampler([idle], interval_s=0.05)
    sampler.start()
    threading.Event().wait(0.3)
    sampler.stop()
    assert not sampler.running
    assert idle.polls <= 12  # about 7 ticks in 0.3 s at 50 ms: it waits, it does not spin


def test_every_measured_figure_carries_its_method() -> None:
    clock = FakeClock(start=0.0)
    gpus = [FakeGpu(UUID_A, "H100", [(0, 100.0)]),
            FakeGpu(UUID_B, "T4", [(0, 50.0)], counter=False)]
    fake = FakeNVML(gpus, clock)
    meters = MeterSet()
    for uuid in (UUID_A, UUID_B):
        meters.extend(nvml.open_gpu(uuid, backend=fake))
    monitor = EnergyMonitor(meters, 0.05, 1.0, clock=clock)
    token = monitor.begin()
    for _ in range(40):
        clock.advance(0.05)
        monitor.sampler.sample_once()
    for entry in monitor.aggregate([monitor.end(token)]):
        assert entry["measured"] and entry["method"] and entry["power_method"]
        assert entry["energy_j"] > 0
