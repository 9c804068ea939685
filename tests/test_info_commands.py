"""``bigbench models``, ``data`` and ``devices``, and the NVML probe against a fake."""

from __future__ import annotations

import json
import types

from bigbench.measuring.energy.nvml import probe


def test_models_lists_defaults_and_counts(cli) -> None:
    rows = {row["name"]: row for row in json.loads(cli("models", "--json").stdout)}
    assert set(rows) >= {"cnn", "rnn", "lstm", "gru"}
    assert rows["cnn"]["params"] == 333_526 and rows["rnn"]["params"] == 5_702
    assert rows["cnn"]["defaults"]["channels"] == [32, 64]
    table = cli("models")
    assert table.exit_code == 0 and "333,526" in table.stdout


def test_data_lists_datasets(cli) -> None:
    rows = {row["name"]: row for row in json.loads(cli("data", "--json").stdout)}
    assert set(rows) >= {"synthetic", "digits", "tokens", "npz", "mnist"}
    assert rows["npz"]["arguments"]["path"]["required"] is True
    assert cli("data").exit_code == 0


def test_devices_reports_cpu_and_nvml(cli, monkeypatch) -> None:
    import os
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml())
    info = json.loads(cli("devices", "--json").stdout)
    assert info["cpu"]["logical_cpus"] == os.cpu_count()
    assert info["nvml"] == {"available": True, "driver_version": "550.54.15",
                            "device_count": 2, "reason": None}
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(init_fails=True))
    broken = json.loads(cli("devices", "--json").stdout)["nvml"]
    assert broken["available"] is False and "Driver Not Loaded" in broken["reason"]
    table = cli("devices")
    assert table.exit_code == 0 and "Driver Not Loaded" in table.stdout


class _NVMLError(Exception):
    pass


def _fake_pynvml(init_fails: bool = False) -> types.ModuleType:
    fake = types.ModuleType("pynvml")
    state = {"shutdown": 0}

    def init():
        if init_fails:
            raise _NVMLError("Driver Not Loaded")

    fake.nvmlInit = init
    fake.nvmlShutdown = lambda: state.__setitem__("shutdown", state["shutdown"] + 1)
    fake.nvmlSystemGetDriverVersion = lambda: b"550.54.15"
    fake.nvmlDeviceGetCount = lambda: 2
    fake.state = state
    return fake


def test_nvml_probe_with_a_working_fake() -> None:
    fake = _fake_pynvml()
    assert probe(fake) == {"available": True, "driver_version": "550.54.15", "device_count": 2,
                           "reason": None}
    assert fake.state["shutdown"] == 1


def test_nvml_probe_without_driver_says_why() -> None:
    result = probe(_fake_pynvml(init_fails=True))
    assert result["available"] is False and "Driver Not Loaded" in result["reason"]
