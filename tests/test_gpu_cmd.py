"""``bigbench gpu restore`` / ``gpu show`` and bench's GPU flags on the command line, against a
fake NVML (the CLI loads it through power_limits.load_backend, patched here)."""

from __future__ import annotations

import json

import pytest
from fakes import FakeClock, FakeGpu, FakeNVML

from bigbench.measuring.energy import power_limits
from bigbench.measuring.energy.power_limits import PowerLimiter

UUID = "GPU-5eed0000-cli"


@pytest.fixture
def gpu(monkeypatch) -> FakeGpu:
    card = FakeGpu(UUID, "NVIDIA H100 80GB HBM3", [(0, 600.0)], default_limit_w=600.0,
                   min_limit_w=200.0, max_limit_w=700.0)
    monkeypatch.setattr(power_limits, "load_backend",
                        lambda: (FakeNVML([card], FakeClock()), None))
    return card


def _killed_bench(folder, card: FakeGpu) -> None:
    """A bench that set 250 W and locked 1410 MHz, then was killed with SIGKILL."""
    folder.mkdir()
    limiter = PowerLimiter.open(0, folder / "gpu_state.json", FakeNVML([card], FakeClock()))
    limiter.apply(250)
    limiter.lock_sm_clocks(1410)


def test_gpu_restore_after_a_hard_kill(cli, tmp_path, gpu) -> None:
    _killed_bench(tmp_path / "bench", gpu)
    result = cli("gpu", "restore", tmp_path / "bench")
    assert result.exit_code == 0, result.stderr
    assert "power limit restored to 600 W, SM clocks unlocked" in result.stdout
    assert gpu.limit_mw == 600_000 and gpu.locked_mhz is None
    again = cli("gpu", "restore", tmp_path / "bench" / "gpu_state.json", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["already_restored"] is True


def test_gpu_restore_json_says_what_it_did(cli, tmp_path, gpu) -> None:
    _killed_bench(tmp_path / "bench", gpu)
    done = json.loads(cli("gpu", "restore", tmp_path / "bench", "--json").stdout)
    assert done == {"state_file": str(tmp_path / "bench" / "gpu_state.json"), "uuid": UUID,
                    "name": "NVIDIA H100 80GB HBM3", "already_restored": False,
                    "power_limit_w": 600.0, "clocks_unlocked": True}


@pytest.mark.parametrize(("setup", "message"), [
    (lambda d: None, "has no gpu_state.json"),
    (lambda d: (d / "gpu_state.json").write_text("[]"), "not a bigbench GPU state file"),
])
def test_gpu_restore_mistakes_are_one_line(cli, tmp_path, gpu, setup, message) -> None:
    setup(tmp_path)
    result = cli("gpu", "restore", tmp_path)
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_gpu_show_prints_limits_ranges_and_clocks(cli, gpu) -> None:
    result = cli("gpu", "show")
    assert result.exit_code == 0, result.stderr
    (shown,) = json.loads(result.stdout)
    assert shown["uuid"] == UUID and shown["power_limit_set_w"] == 600.0
    assert shown["allowed_range_w"] == [200.0, 700.0] and shown["default_power_limit_w"] == 600.0
    assert shown["supported_sm_clock_range_mhz"] == [210, 1980]
    assert shown["now"]["temperature_c"] == 45 and shown["now"]["throttle_reasons"] == []


def test_bench_gpu_flags_on_the_cpu_are_refused_before_anything(cli, tmp_path) -> None:
    result = cli("bench", "--device", "cpu", "--suite", "smoke", "--power-limits", "200,max",
                 "--out", tmp_path / "x")
    assert result.exit_code == 2 and "need a CUDA device" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_config_power_limits_on_the_cpu_are_refused_before_anything(cli, write_config,
                                                                     tmp_path) -> None:
    config = write_config("""\
        name: limited
        model: {name: rnn}
        data: {name: tokens, size: 64, test_size: 0}
        bench: {modes: [infer], power_limits: [200, max], sm_clocks: [1410]}
        """)
    result = cli("bench", config, "--device", "cpu", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "needs a CUDA GPU" in result.stderr
    assert not (tmp_path / "x").exists()


def test_a_config_power_limit_that_is_not_one_names_the_choices(cli, write_config) -> None:
    config = write_config("""\
        name: limited
        model: {name: rnn}
        data: {name: tokens, size: 64, test_size: 0}
        bench: {power_limits: [200, maxx]}
        """)
    result = cli("config", "validate", config)
    assert result.exit_code == 2
    assert "'maxx' is not a power limit (did you mean 'max'?)" in result.stderr
