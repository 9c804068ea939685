"""run.json sections: totals before derived figures, sections that agree, the MFU peak basis."""

from __future__ import annotations

import pytest
import torch
from fakes import FakeClock, FakeGpu, FakeNVML

from bigbench.measuring.energy import nvml
from bigbench.measuring.energy.monitor import EnergyMonitor
from bigbench.measuring.energy.report import energy_section
from bigbench.measuring.meter import Meter
from bigbench.measuring.mfu import fp32_peak_dtype, mfu_figures, throughput_figures
from bigbench.record import Segment, Totals, apply_energy_totals, flops_section, throughput_section

COUNTS = {"forward_per_sample": 1e6, "train_step_per_sample": 3e6, "method": "x"}


def test_every_derived_figure_comes_from_the_totals_over_segments() -> None:
    # A resumed run: two processes with different speeds and energy per sample.
    totals = Totals.of([Segment(10, 100, 1.0, 50.0, 1.0), Segment(20, 200, 3.0, 100.0, 2.0)])
    throughput = throughput_section(totals, [0.1] * 30, 2, 2, (None, "not sequences"))
    assert throughput["samples_per_s"] == pytest.approx(300 / 4.0)
    energy = {"status": "measured", "reason": None, "total_j": 100.0}  # the last segment only
    apply_energy_totals(energy, totals)
    assert energy["total_j"] == pytest.approx(150.0)
    assert energy["j_per_sample"] == pytest.approx(0.5)
    assert energy["j_per_sample_uncertainty"] == pytest.approx(3.0 / 300)
    assert energy["avg_power_w"] == pytest.approx(150.0 / 4.0)
    figures = throughput_figures(3e6, throughput["samples_per_s"], "cpu", "x", "fp32", {})
    flops = flops_section(COUNTS, None, figures, totals.energy_j, totals.energy_samples)
    assert flops["achieved_flops_per_s"] == pytest.approx(3e6 * 75.0)
    assert flops["flops_per_j"] == pytest.approx(3e6 * 300 / 150.0)


def test_a_segment_without_energy_makes_the_total_partial_not_mixed() -> None:
    totals = Totals.of([Segment(10, 100, 1.0, None), Segment(20, 200, 3.0, 90.0, 1.0)])
    energy = {"status": "measured", "reason": None}
    apply_energy_totals(energy, totals)
    assert energy["status"] == "partial" and "not measured in every segment" in energy["reason"]
    assert energy["j_per_sample"] == pytest.approx(90.0 / 200)  # its own samples, not 300
    flops = flops_section(COUNTS, None, throughput_figures(3e6, 75.0, "cpu", "x", "fp32", {}),
                          totals.energy_j, totals.energy_samples)
    assert flops["flops_per_j"] == pytest.approx(3e6 * 200 / 90.0)


def test_a_short_gpu_window_gives_sections_that_agree() -> None:
    """80 ms at 300 W with a counter stepping every 100 ms: the integral, never 0 J."""
    clock = FakeClock(start=10.01)
    gpu = FakeGpu("GPU-1", "NVIDIA H100 80GB HBM3", [(0, 300.0)])
    monitor = EnergyMonitor(nvml.open_gpu(gpu.uuid, FakeNVML([gpu], clock, 0.1)), 0.04, 5.0,
                            clock)
    meter = Meter(torch.device("cpu"), monitor, clock=clock)
    monitor.sampler.sample_once()
    with meter.window("measured") as window:
        for _ in range(2):
            clock.advance(0.04)
            monitor.sampler.sample_once()
        window.steps, window.samples = 4, 64
    section = energy_section(monitor, meter)
    assert section["status"] == "measured" and section["total_j"] == pytest.approx(24.0)
    assert section["quality"] == "low"
    assert section["j_per_sample"] == pytest.approx(24.0 / 64)
    assert section["samples_per_j"] == pytest.approx(64 / 24.0)
    assert section["avg_power_w"] == pytest.approx(300.0)
    assert section["uncertainty_j"] is not None and section["uncertainty_j"] > 0
    flops = flops_section(COUNTS, None, throughput_figures(3e6, 800.0, "cpu", "x", "fp32", {}),
                          section["total_j"], 64)
    assert flops["flops_per_j"] == pytest.approx(3e6 * 64 / 24.0)
    assert "reasons" not in flops or "flops_per_j" not in flops["reasons"]


OFF = {"matmul_tf32": False, "conv_tf32": False}
DEFAULTS = {"matmul_tf32": False, "conv_tf32": True}  # torch's: highest matmuls, cuDNN TF32
HIGH = {"matmul_tf32": True, "conv_tf32": True}


@pytest.mark.parametrize(("math", "cudnn_share", "dtype", "says"), [
    (OFF, 0.5, "fp32", "true fp32"),
    (HIGH, 0.5, "tf32", "every counted FLOP may use TF32"),
    (DEFAULTS, 0.5, "tf32", "matmuls run in fp32"),  # a CNN: convs in TF32, the head not
    (DEFAULTS, 0.0, "fp32", "true fp32"),  # a matmul-only model: cuDNN's flag is irrelevant
    (DEFAULTS, 1.0, "tf32", "every counted FLOP"),  # all in cuDNN (a recurrent model)
    ({"matmul_tf32": True, "conv_tf32": False}, 0.5, "tf32", "cuDNN kernels run in fp32"),
    ({"matmul_tf32": True, "conv_tf32": False}, 1.0, "fp32", "true fp32"),
])
def test_the_fp32_peak_follows_the_math_in_effect(math, cudnn_share, dtype, says) -> None:
    chosen, basis = fp32_peak_dtype(math, cudnn_share)
    assert chosen == dtype and says in basis
    figures = mfu_figures(1e12, "cuda", "NVIDIA A100-SXM4-80GB", "fp32", math, cudnn_share)
    assert figures["peak_dtype"] == dtype and says in figures["peak_basis"]
    assert figures["mfu"] == pytest.approx(1e12 / (156e12 if dtype == "tf32" else 19.5e12))


def test_a_gpu_without_tf32_is_held_against_fp32_and_says_so() -> None:
    figures = mfu_figures(1e12, "cuda", "Tesla T4", "fp32", HIGH)
    assert figures["peak_dtype"] == "fp32" and "no TF32" in figures["peak_basis"]


def test_run_totals_keep_the_reasons_of_figures_still_null() -> None:
    """A window with no power sample inside: peak power is null, and stays explained."""
    clock = FakeClock(start=10.0)
    gpu = FakeGpu("GPU-2", "NVIDIA H100 80GB HBM3", [(0, 300.0)])
    monitor = EnergyMonitor(nvml.open_gpu(gpu.uuid, FakeNVML([gpu], clock, 0.1)), 0.05, 5.0,
                            clock)
    meter = Meter(torch.device("cpu"), monitor, clock=clock)
    with meter.window("measured") as window:
        clock.advance(2.0)  # the counter moves; the sampler never ticks inside
        window.steps, window.samples = 10, 100
    section = energy_section(monitor, meter)
    assert section["peak_power_w"] is None and section["reasons"]["peak_power_w"]
    totals = Totals.of([Segment(10, 100, 2.0, section["total_j"], section["uncertainty_j"])])
    apply_energy_totals(section, totals)
    assert section["reasons"]["peak_power_w"] == "no power sample inside the window"
    assert section["j_per_sample"] == pytest.approx(6.0)  # 600 J over 100 samples
    for key, value in section.items():  # every null figure of the section says why
        if value is None and key not in ("reason", "scope"):
            assert key in section["reasons"], key


def test_extension_runs_until_the_samples_are_really_there() -> None:
    """A sampler that misses ticks (a stall): the measured window goes on until 60 samples."""
    from bigbench.engine import StepEngine, train_phases
    from bigbench.measuring.timing import StepTimer

    clock = FakeClock(start=10.0)
    gpu = FakeGpu("GPU-3", "NVIDIA H100 80GB HBM3", [(0, 300.0)])
    monitor = EnergyMonitor(nvml.open_gpu(gpu.uuid, FakeNVML([gpu], clock, 0.1)), 0.05, 1.0,
                            clock)
    meter = Meter(torch.device("cpu"), monitor, clock=clock)
    steps = {"n": 0}

    def step(batch):
        clock.advance(0.05)
        steps["n"] += 1
        if steps["n"] % 2:  # every other tick is lost: half the samples time alone predicts
            monitor.sampler.sample_once()
        return torch.tensor(1.0)

    phases = train_phases(5, 0, min_measured_s_for_segments=monitor.quality_window_s,
                          measured_until=lambda: monitor.samples_reached(
                              meter.totals("measured").energy, meter.open_since("measured")))
    engine = StepEngine(step, meter, StepTimer(torch.device("cpu"), clock=clock),
                        phases=phases, log_every=1000)
    engine.run([(torch.zeros(2, 1), torch.zeros(2))] * 1000, epoch=0)
    entry = monitor.aggregate(meter.totals("measured").energy)[0]
    assert entry["samples"] >= 60 and entry["quality"] == "ok"
    assert meter.totals("measured").time_s > monitor.quality_window_s(1)  # time alone: too short
