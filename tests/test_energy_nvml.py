"""The NVML meter against a fake pynvml: counter, power fields, fallbacks, UUID mapping."""

from __future__ import annotations

import pytest
from fakes import FakeClock, FakeGpu, FakeNVML

from bigbench.measuring.energy import nvml
from bigbench.measuring.energy.base import MeterSet
from bigbench.measuring.energy.monitor import EnergyMonitor, diff_warnings, integrate
from bigbench.measuring.energy.sampler import PowerSampler

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


AVG, USAGE = "nvml_power_average_1s", "nvml_power_usage"


@pytest.mark.parametrize(("arch", "cc", "name", "method"), [
    # Ampere and newer average over 1 s, except GA100 (compute capability exactly 8.0).
    (7, (8, 0), "NVIDIA A100-SXM4-80GB", USAGE),
    (7, (8, 0), "NVIDIA A30", USAGE),
    (7, (8, 0), "NVIDIA A800 80GB PCIe", USAGE),
    (7, (8, 6), "NVIDIA A10", AVG),
    (7, (8, 6), "NVIDIA A40", AVG),
    (7, (8, 6), "NVIDIA GeForce RTX 3090", AVG),
    (8, (8, 9), "NVIDIA L4", AVG),
    (9, (9, 0), "NVIDIA H100 80GB HBM3", AVG),
    (5, (7, 0), "Tesla V100-SXM2-16GB", USAGE),
    (6, (7, 5), "Tesla T4", USAGE),
    # No compute capability from NVML: the architecture decides, GA100 parts by name.
    (8, None, "NVIDIA L4", AVG),
    (7, None, "NVIDIA A100-PCIE-40GB", USAGE),
    (7, None, "NVIDIA A30", USAGE),
    (7, None, "NVIDIA A800 80GB PCIe", USAGE),
    (7, None, "NVIDIA A10", AVG),
    (7, None, "NVIDIA RTX A3000 Laptop GPU", AVG),  # A3000 is GA104, not an "A30"
    (5, None, "Tesla V100-SXM2-16GB", USAGE),
])
def test_power_usage_fallback_is_labelled(arch, cc, name, method) -> None:
    clock = FakeClock()
    gpu = FakeGpu(UUID_A, name, [(0, 50.0)], instant=False, arch=arch, cc=cc)
    device = nvml.open_gpu(UUID_A, backend=FakeNVML([gpu], clock)).devices[0]
    assert device.power_method == method
    assert device.power_smear_s == (1.0 if method == AVG else 0.0)


def test_instant_power_is_never_labelled_averaged() -> None:
    gpu = FakeGpu(UUID_A, "NVIDIA H100 80GB HBM3", [(0, 50.0)], cc=(9, 0))
    device = nvml.open_gpu(UUID_A, backend=FakeNVML([gpu], FakeClock())).devices[0]
    assert device.power_method == "nvml_power_instant" and device.power_smear_s == 0.0


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
    # (counter - integral) / max(counter, integral) = (1000 - 1200) / 1200
    assert entry["counter_vs_integral_diff"] == pytest.approx(-1 / 6, abs=0.01)
    assert "differ by" in diff_warnings([entry])[0]


def test_integrate_holds_edges_flat() -> None:
    assert integrate([1.0, 2.0], [10.0, 10.0], 0.0, 3.0) == pytest.approx(30.0)
    assert integrate([], [], 0.0, 1.0) is None


class _Flaky:
    key, kind, name, counter_method, power_method = "x", "gpu", "x", None, "p"
    uuid, sample_counter, counter_update_s = None, False, None
    counter_resolution_j = power_resolution_w = power_smear_s = 0.0

    def __init__(self, fail_after: int) -> None:
        self.polls = 0
        self.fail_after = fail_after

    def poll(self, t):
        self.polls += 1
        if self.polls > self.fail_after:
            raise RuntimeError("GPU is lost")
        return 1.0


class _FakeWait:
    """Stands in for the stop Event's wait: records each requested sleep, advances the clock.

    Returns True (stop) after ``limit`` calls, so a thread that never ends by itself cannot
    hang the test.
    """

    def __init__(self, clock: FakeClock, limit: int = 1000) -> None:
        self.clock, self.limit, self.requests = clock, limit, []

    def __call__(self, seconds: float) -> bool:
        self.requests.append(seconds)
        self.clock.advance(seconds)
        return len(self.requests) >= self.limit


def test_sampler_thread_stops_on_error() -> None:
    clock = FakeClock()
    device = _Flaky(fail_after=3)
    wait = _FakeWait(clock)
    sampler = PowerSampler([device], interval_s=0.01, clock=clock, wait=wait)
    sampler.start()
    sampler._thread.join(timeout=60)  # ends by itself once its only device fails
    assert not sampler.running
    assert "GPU is lost" in sampler.errors["x"] and device.polls == 4
    assert len(sampler.traces["x"].t_s) == 3
    assert len(wait.requests) == 3  # it slept between ticks, then ended on the error


class _Slow(_Flaky):
    """A device whose poll takes ``cost_s`` of (fake) time."""

    def __init__(self, clock: FakeClock, cost_s: float) -> None:
        super().__init__(fail_after=10**9)
        self.clock, self.cost_s = clock, cost_s

    def poll(self, t):
        self.clock.advance(self.cost_s)
        return super().poll(t)


def test_sampler_sleeps_the_rest_of_each_interval_on_a_fixed_grid() -> None:
    clock = FakeClock(start=0.0)
    wait = _FakeWait(clock, limit=10)
    sampler = PowerSampler([_Slow(clock, cost_s=0.01)], interval_s=0.05, clock=clock, wait=wait)
    sampler.start()
    sampler._thread.join(timeout=60)
    assert sampler.ticks == 10
    # It waits (never spins) and only for what is left of the interval, so ticks stay on the
    # 50 ms grid instead of drifting by the 10 ms each poll takes.
    assert wait.requests == pytest.approx([0.04] * 10)
    assert sampler.traces["x"].t_s == pytest.approx([0.05 * k for k in range(10)])


def test_a_stalled_sampler_restarts_its_grid_instead_of_bursting() -> None:
    clock = FakeClock(start=0.0)
    wait = _FakeWait(clock, limit=3)
    sampler = PowerSampler([_Slow(clock, cost_s=0.3)], interval_s=0.05, clock=clock, wait=wait)
    sampler.start()
    sampler._thread.join(timeout=60)
    assert wait.requests == [0.0, 0.0, 0.0]  # late: sample again at once, but only once per tick
    assert sampler.traces["x"].t_s == pytest.approx([0.0, 0.3, 0.6])


def test_stop_ends_a_waiting_sampler_thread() -> None:
    sampler = PowerSampler([_Flaky(fail_after=10**9)], interval_s=3600.0)
    sampler.start()
    assert sampler.running
    sampler.stop()  # sets the Event the thread sleeps on: it wakes at once
    assert not sampler.running and sampler.ticks == 1


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


def test_meter_facts_record_the_power_limit_range() -> None:
    """The allowed range goes into env.energy_meters: a sweep's max power (Zeus's cost) is
    the GPU's maximum limit when the run recorded it."""
    from fakes import FakeClock, FakeGpu, FakeNVML

    from bigbench.measuring.energy import nvml

    gpu = FakeGpu("GPU-a", "NVIDIA H100 80GB HBM3", [(0, 300.0)])
    facts = nvml.open_gpu(gpu.uuid, FakeNVML([gpu], FakeClock())).devices[0].info()
    low, high = (v / 1000.0 for v in FakeNVML([gpu], FakeClock())
                 .nvmlDeviceGetPowerManagementLimitConstraints(gpu))
    assert (facts["min_power_limit_w"], facts["max_power_limit_w"]) == (low, high)
    assert high >= facts["power_limit_w"] >= low
