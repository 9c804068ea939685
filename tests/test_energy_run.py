"""Energy, FLOPs and carbon in run.json: a training run against a live fake powercap tree."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import TINY_CNN, load_run
from fakes import FakeClock, LivePowercap, PowercapTree

from bigbench.measuring.energy import rapl
from bigbench.measuring.energy.base import MeterSet, Unavailable
from bigbench.measuring.energy.monitor import EnergyMonitor
from bigbench.measuring.energy.report import carbon_section, energy_section, idle_section
from bigbench.measuring.meter import Meter

PACKAGE_W, DRAM_W = 40.0, 4.0


@pytest.fixture
def live_powercap(tmp_path, monkeypatch):
    """A powercap tree whose counters advance in real time at fixed power."""
    root = tmp_path / "powercap"
    live = LivePowercap(root, {"intel-rapl:0": PACKAGE_W, "intel-rapl:0:2": DRAM_W},
                        period_s=0.002).start()
    monkeypatch.setenv(rapl.ROOT_ENV, str(root))
    yield root
    live.stop()


def test_train_reports_measured_energy(cli, write_config, tmp_path, live_powercap) -> None:
    config = write_config(TINY_CNN.replace("max_steps: 12", "max_steps: 40") +
                          "measure: {carbon_intensity_g_per_kwh: 400, idle_s: 0.3}\n")
    out = tmp_path / "run"
    result = cli("train", config, "--out", out)
    assert result.exit_code == 0, result.stderr
    record = load_run(out)
    energy = record["energy"]
    assert energy["status"] == "measured" and energy["reason"] is None
    measured_s = record["throughput"]["measured_time_s"]
    assert energy["total_j"] == pytest.approx((PACKAGE_W + DRAM_W) * measured_s, rel=0.15,
                                              abs=0.2)
    samples = record["throughput"]["measured_samples"]
    assert energy["j_per_sample"] == pytest.approx(energy["total_j"] / samples)
    assert energy["samples_per_j"] == pytest.approx(samples / energy["total_j"])
    assert energy["avg_power_w"] == pytest.approx(energy["total_j"] / measured_s)
    kinds = sorted(d["kind"] for d in energy["devices"])
    assert kinds == ["cpu", "dram"]
    assert all(d["method"] == "rapl" and d["measured"] for d in energy["devices"])
    assert energy["quality"] == "low"  # a sub-second window: flagged, not hidden
    idle = energy["idle"]
    assert idle["power_w"] == pytest.approx(PACKAGE_W + DRAM_W, rel=0.2)
    assert idle["measured_window_active_j"] == pytest.approx(
        energy["total_j"] - idle["measured_window_idle_j"])
    flops = record["flops"]
    assert flops["flops_per_j"] == pytest.approx(
        flops["train_step_per_sample"] * samples / energy["total_j"])
    assert record["carbon"]["measured_window_g"] == pytest.approx(
        energy["total_j"] / 3.6e6 * 400)
    with open(out / "power.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and set(rows[0]) == {"t_s", "device", "power_w"}
    assert {r["device"].rsplit(":", 1)[1] for r in rows} == {"package-0", "dram-0"}
    assert "energy quality is low" in result.stderr
    assert energy["uncertainty_j"] > 0
    assert energy["j_per_sample_uncertainty"] == pytest.approx(energy["uncertainty_j"] / samples)
    shown = f"{energy['total_j']:,.1f} J ± {energy['uncertainty_j'] / energy['total_j']:.0%}"
    assert shown in result.stdout


def test_extend_to_min_window_reaches_ok_quality(cli, write_config, tmp_path,
                                                 live_powercap) -> None:
    # 1 s is the minimum window, but 60 samples at 25 ms need about 1.5 s: extending to the
    # minimum window alone would stop with 40 samples and "low" quality.
    config = write_config(TINY_CNN + "measure: {extend_to_min_window: true, "
                                     "min_energy_window_s: 1.0, power_interval_ms: 25}\n")
    assert cli("train", config, "--out", tmp_path / "run").exit_code == 0
    record = load_run(tmp_path / "run")
    assert record["throughput"]["measured_time_s"] >= 60 * 0.025
    assert record["progress"]["extra_steps"] > 0
    assert record["progress"]["steps"] == 12 + record["progress"]["extra_steps"]
    energy = record["energy"]
    assert energy["quality"] == "ok", [d["quality_reasons"] for d in energy["devices"]]
    assert all(d["samples"] >= 60 for d in energy["devices"])


def test_energy_probe_and_measure_with_fake_powercap(cli, live_powercap) -> None:
    probe = json.loads(cli("energy", "probe", "--json").stdout)
    assert sorted(m["name"] for m in probe["working"]) == ["dram-0", "package-0"]
    result = cli("energy", "measure", "--json", "--", "python3", "-c",
                 "import time, sys; time.sleep(0.5); sys.exit(3)")
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["exit_code"] == 3 and report["duration_s"] >= 0.5
    assert report["total_j"] == pytest.approx((PACKAGE_W + DRAM_W) * report["duration_s"],
                                              rel=0.15)
    for device in report["devices"]:
        if device["measured"]:
            assert device["method"] == "rapl" and device["avg_power_w"] > 0
    assert report["peak_rss_bytes"] > 1_000_000


def test_partial_when_a_meter_is_missing(tmp_path) -> None:
    tree = PowercapTree(tmp_path)
    clock = FakeClock()
    meters = rapl.discover(tmp_path)
    meters.unavailable.append(Unavailable("gpu", "GPU-x", "NVML: no NVIDIA driver here"))
    monitor = EnergyMonitor(meters, 0.05, 1.0, clock=clock)
    meter = Meter(__import__("torch").device("cpu"), monitor, clock=clock)
    with meter.window("measured") as totals:
        for i in range(1, 41):
            clock.advance(0.05)
            tree.set_uj("intel-rapl:0", i * 0.05 * 10 * 1e6)
            monitor.sampler.sample_once()
        totals.samples = 100
    section = energy_section(monitor, meter)
    assert section["status"] == "partial" and "no NVIDIA driver" in section["reason"]
    assert section["total_j"] == pytest.approx(20.0)
    assert section["j_per_sample"] == pytest.approx(0.2)
    assert idle_section(monitor, meter, section["total_j"], 1.0) is None  # no idle window


def test_unavailable_everything_is_null_never_zero() -> None:
    monitor = EnergyMonitor(MeterSet(unavailable=[Unavailable("cpu", "RAPL", "none here")]),
                            0.05, 1.0)
    meter = Meter(__import__("torch").device("cpu"), monitor)
    section = energy_section(monitor, meter)
    assert section["status"] == "unavailable" and "none here" in section["reason"]
    for key in ("total_j", "j_per_sample", "samples_per_j", "avg_power_w", "peak_power_w"):
        assert section[key] is None
    for key in ("total_j", "j_per_sample", "samples_per_j", "avg_power_w", "peak_power_w"):
        assert "none here" in section["reasons"][key]
    carbon = carbon_section(300.0, section["total_j"], None)
    assert carbon["measured_window_g"] is None and carbon["reasons"]["measured_window_g"]
    assert carbon["run_g"] is None and carbon["reasons"]["run_g"]


def test_energy_measure_of_a_missing_command_is_a_usage_error(cli) -> None:
    result = cli("energy", "measure", "--", "no-such-command-here")
    assert result.exit_code == 2
    assert "cannot run 'no-such-command-here'" in result.stderr
