"""RAPL through a fake powercap tree: zone choice, wraps, permissions, window energy."""

from __future__ import annotations

import pytest
from fakes import FakeClock, PowercapTree

from bigbench.measuring.energy import rapl
from bigbench.measuring.energy.monitor import EnergyMonitor


def test_sums_packages_and_dram_never_psys_subzones_or_mmio(tmp_path) -> None:
    PowercapTree(tmp_path, sockets=2)
    meters = rapl.discover(tmp_path, host="h")
    assert sorted(d.name for d in meters.devices) == ["dram-0", "dram-1", "package-0",
                                                      "package-1"]
    assert {d.kind for d in meters.devices} == {"cpu", "dram"}
    assert all(d.key.startswith("rapl:h:") for d in meters.devices)
    assert not meters.unavailable


def test_psys_only_stands_in_without_packages(tmp_path) -> None:
    tree = PowercapTree(tmp_path, sockets=0, psys=False)
    tree.zone("intel-rapl:0", "psys")
    meters = rapl.discover(tmp_path)
    assert [d.name for d in meters.devices] == ["psys"]


@pytest.mark.parametrize(
    ("raw_uj", "wraps", "joules"),
    [
        ([100_000, 400_000, 800_000], 0, 0.7),
        ([800_000, 100_000, 600_000], 1, 0.8),
        ([800_000, 300_000, 900_000, 200_000, 700_000, 100_000], 3, 2.3),
    ],
)
def test_wrapped_counters_are_unwrapped_exactly(tmp_path, raw_uj, wraps, joules) -> None:
    tree = PowercapTree(tmp_path, psys=False)
    tree.zone("intel-rapl:0", "package-0", max_range_uj=1_000_000)  # wraps every joule
    tree.set_uj("intel-rapl:0", raw_uj[0])
    counter = next(d for d in rapl.discover(tmp_path).devices if d.name == "package-0")
    start = counter.counter_j()
    for raw in raw_uj[1:]:
        tree.set_uj("intel-rapl:0", raw)
        end = counter.counter_j()
    assert end - start == pytest.approx(joules, abs=1e-12)
    assert counter._wraps == wraps


def test_permission_denied_is_unavailable_with_the_fix(tmp_path, monkeypatch) -> None:
    PowercapTree(tmp_path)

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(rapl.RaplCounter, "read_raw_uj", denied)
    meters = rapl.discover(tmp_path)
    assert not meters.devices
    reasons = " ".join(u.reason for u in meters.unavailable)
    assert "permission denied" in reasons and "run as root" in reasons and "chmod" in reasons


def test_missing_powercap_says_why_and_how(tmp_path, monkeypatch) -> None:
    meters = rapl.discover(tmp_path / "nothing")
    assert "no powercap interface" in meters.unavailable[0].reason
    assert "BIGBENCH_POWERCAP_ROOT" in meters.unavailable[0].reason
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no RAPL package or DRAM zones" in rapl.discover(empty).unavailable[0].reason


def test_root_from_config_then_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(rapl.ROOT_ENV, str(tmp_path / "env"))
    assert rapl.powercap_root(None) == tmp_path / "env"
    assert rapl.powercap_root(str(tmp_path / "cfg")) == tmp_path / "cfg"
    monkeypatch.delenv(rapl.ROOT_ENV)
    assert rapl.powercap_root(None) == rapl.DEFAULT_ROOT


def _run_window(tree: PowercapTree, clock: FakeClock, monitor: EnergyMonitor, seconds: float,
                watts: dict[str, float], interval: float = 0.05):
    """Advance the fake clock, raising each zone's counter at its power, sampling each tick."""
    energy_uj = {zone: 0.0 for zone in watts}
    token = monitor.begin()
    for _ in range(round(seconds / interval)):
        clock.advance(interval)
        for zone, w in watts.items():
            energy_uj[zone] += w * interval * 1e6
            tree.set_uj(zone, round(energy_uj[zone]))
        monitor.sampler.sample_once()
    return monitor.aggregate([monitor.end(token)])


def test_constant_100_w_for_10_s_is_1000_j(tmp_path) -> None:
    tree = PowercapTree(tmp_path)
    clock = FakeClock()
    monitor = EnergyMonitor(rapl.discover(tmp_path), 0.05, min_window_s=1.0, clock=clock)
    monitor.sampler.sample_once()
    entries = _run_window(tree, clock, monitor, 10.0, {"intel-rapl:0": 100.0,
                                                       "intel-rapl:0:2": 5.0})
    package = next(e for e in entries if e["name"] == "package-0")
    dram = next(e for e in entries if e["name"] == "dram-0")
    assert package["energy_j"] == pytest.approx(1000.0, rel=0.01)
    assert dram["energy_j"] == pytest.approx(50.0, rel=0.01)
    assert package["avg_power_w"] == pytest.approx(100.0, rel=0.01)
    assert package["method"] == "rapl" and package["measured"] and package["quality"] == "ok"
    assert package["samples"] == 200
    # RAPL's counter updates about every millisecond (assumed: the sampler cannot see it):
    # up to 1 ms × 100 W at each edge.
    assert package["counter_period_basis"] == "assumed"
    assert package["uncertainty_j"] == pytest.approx(0.2, rel=0.01)
    assert abs(package["energy_j"] - 1000.0) <= package["uncertainty_j"]
    assert package["integral_uncertainty_j"] is not None
