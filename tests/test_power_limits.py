"""GPU power limits and SM clocks against a fake NVML: set only after the privilege was proven
and the original saved, and always restored — on success, on an exception, on SIGINT/SIGTERM
and on a second Ctrl-C; after a hard kill, from the state file."""

from __future__ import annotations

import json
import os
import signal

import pytest
from fakes import NO_PERMISSION, NOT_SUPPORTED, FakeClock, FakeGpu, FakeNVML, FakeNVMLError

from bigbench.measuring.energy import power_limits
from bigbench.measuring.energy.power_limits import (
    PowerControlError,
    PowerLimiter,
    restore_from_file,
    throttle_names,
)

UUID = "GPU-5eed0000-power"


def make_gpu(**kwargs) -> FakeGpu:
    """An H100-like card drawing 600 W at its 600 W default; limits 200–700 W."""
    return FakeGpu(UUID, "NVIDIA H100 80GB HBM3", [(0, 600.0)], default_limit_w=600.0,
                   min_limit_w=200.0, max_limit_w=700.0, **kwargs)


def open_limiter(tmp_path, gpu: FakeGpu, clock: FakeClock | None = None) -> PowerLimiter:
    return PowerLimiter.open(0, tmp_path / "gpu_state.json", FakeNVML([gpu], clock or FakeClock()))


def state(tmp_path) -> dict:
    return json.loads((tmp_path / "gpu_state.json").read_text())


# --- opening: privilege and the state file first ------------------------------------------------

def test_open_saves_the_original_before_anything_changes(tmp_path) -> None:
    gpu = make_gpu()
    limiter = open_limiter(tmp_path, gpu)
    saved = state(tmp_path)
    assert saved["schema"] == "bigbench.gpu_state/1" and saved["uuid"] == UUID
    assert saved["original_power_limit_w"] == 600.0 and saved["default_power_limit_w"] == 600.0
    assert saved["allowed_range_w"] == [200.0, 700.0] and saved["index"] == 0
    assert saved["clocks_locked"] is False and saved["restored"] is False
    # The privilege check set the limit it already had: nothing changed.
    assert gpu.limit_calls == [600_000] and gpu.limit_mw == 600_000
    assert limiter.allowed_range_w() == (200.0, 700.0) and limiter.warnings == []


@pytest.mark.parametrize(("error", "words"), [
    (NO_PERMISSION, ["no permission", "root", "sudo nvidia-smi -pm 1"]),
    (NOT_SUPPORTED, ["Not Supported"]),
])
def test_a_refusal_comes_before_any_change_and_names_the_fix(tmp_path, error, words) -> None:
    gpu = make_gpu(set_error=error)
    with pytest.raises(PowerControlError) as caught:
        open_limiter(tmp_path, gpu)
    message = str(caught.value)
    assert all(w in message for w in words) and "\n" not in message
    assert "GPU 0 (NVIDIA H100 80GB HBM3)" in message
    assert not (tmp_path / "gpu_state.json").exists()
    assert gpu.limit_calls == [] and gpu.limit_mw == 600_000


def test_limits_resolve_by_name_and_out_of_range_ones_name_the_range(tmp_path) -> None:
    limiter = open_limiter(tmp_path, make_gpu())
    assert [limiter.resolve(s) for s in ("max", "min", "default", "250", 312.5)] == [
        700.0, 200.0, 600.0, 250.0, 312.5]
    with pytest.raises(PowerControlError, match="outside the range .* allows: 200–700 W"):
        limiter.resolve(800)
    with pytest.raises(PowerControlError, match="200–700 W"):
        limiter.apply(150)
    with pytest.raises(PowerControlError, match="give watts"):
        limiter.resolve("maxx")


def test_a_limit_that_is_not_the_default_is_restored_as_found_with_a_warning(tmp_path) -> None:
    gpu = make_gpu()
    gpu.limit_mw = 350_000  # e.g. an earlier run killed hard
    limiter = open_limiter(tmp_path, gpu)
    assert limiter.original_w == 350.0
    assert "not its default 600 W" in limiter.warnings[0]
    with limiter:
        limiter.apply("max")
    assert gpu.limit_mw == 350_000


# --- every exit restores ------------------------------------------------------------------------

def test_settings_are_applied_and_restored_on_a_normal_exit(tmp_path) -> None:
    gpu = make_gpu()
    with open_limiter(tmp_path, gpu) as limiter:
        limiter.apply(300)
        limiter.lock_sm_clocks(1410)
        assert gpu.limit_mw == 300_000 and gpu.locked_mhz == 1410
        assert state(tmp_path)["clocks_locked"] is True  # written before the lock
        snap = limiter.snapshot()
        assert snap["power_limit_w"] == 300.0 and snap["sm_clock_mhz"] == 1410
        assert snap["throttle_reasons"] == ["sw_power_cap"] and snap["temperature_c"] == 45
    assert gpu.limit_mw == 600_000 and gpu.locked_mhz is None
    saved = state(tmp_path)
    assert saved["restored"] is True and saved["clocks_locked"] is False and saved["restored_at"]
    calls = (list(gpu.limit_calls), list(gpu.clock_calls))
    limiter.restore()  # idempotent: nothing more is sent to the GPU
    assert (gpu.limit_calls, gpu.clock_calls) == calls


@pytest.mark.parametrize("error", [RuntimeError("a point broke"), KeyboardInterrupt()])
def test_an_exception_or_ctrl_c_inside_the_block_restores(tmp_path, error) -> None:
    gpu = make_gpu()
    with pytest.raises(type(error)), open_limiter(tmp_path, gpu) as limiter:
        limiter.apply(250)
        limiter.lock_sm_clocks(1095)
        raise error
    assert gpu.limit_mw == 600_000 and gpu.locked_mhz is None
    assert state(tmp_path)["restored"] is True


def test_a_signal_during_restore_waits_until_the_gpu_is_back(tmp_path) -> None:
    gpu = make_gpu()
    fake = FakeNVML([gpu], FakeClock())
    limiter = PowerLimiter.open(0, tmp_path / "gpu_state.json", fake)
    limiter.apply(250)
    setter = fake.nvmlDeviceSetPowerManagementLimit

    def set_and_get_interrupted(handle, milliwatts):
        os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C right in the middle of restoring
        setter(handle, milliwatts)

    fake.nvmlDeviceSetPowerManagementLimit = set_and_get_interrupted
    with pytest.raises(KeyboardInterrupt):
        limiter.restore()
    assert gpu.limit_mw == 600_000 and state(tmp_path)["restored"] is True


def test_sm_clocks_out_of_range_or_refused_lock_nothing(tmp_path) -> None:
    gpu = make_gpu()
    limiter = open_limiter(tmp_path, gpu)
    assert limiter.sm_clock_range_mhz() == (210, 1980)
    with pytest.raises(PowerControlError, match="210–1980 MHz"):
        limiter.lock_sm_clocks(2500)
    gpu.clock_error = NO_PERMISSION
    with pytest.raises(PowerControlError, match="no permission to lock the SM clock"):
        limiter.lock_sm_clocks(1410)
    assert gpu.locked_mhz is None and state(tmp_path)["clocks_locked"] is False
    limiter.restore()  # nothing locked: no reset is sent (it would be refused too)
    assert gpu.clock_calls == [] and state(tmp_path)["restored"] is True


def test_snapshot_figures_nvml_lacks_are_null_with_the_reason(tmp_path) -> None:
    gpu = make_gpu()
    fake = FakeNVML([gpu], FakeClock())

    def no_sensor(handle, sensor):
        raise FakeNVMLError(NOT_SUPPORTED)

    fake.nvmlDeviceGetTemperature = no_sensor
    snap = PowerLimiter.open(0, tmp_path / "gpu_state.json", fake).snapshot()
    assert snap["temperature_c"] is None and "not supported" in snap["reasons"]["temperature_c"]
    assert snap["power_limit_w"] == 600.0 and "power_limit_w" not in snap["reasons"]
    assert throttle_names(0x44 | 0x1000) == ["sw_power_cap", "hw_thermal_slowdown",
                                             "unknown_0x1000"]


# --- after a hard kill ----------------------------------------------------------------------------

def _killed_run(tmp_path, gpu: FakeGpu) -> None:
    """A run that changed the limit and locked the clocks, then died without restoring."""
    limiter = open_limiter(tmp_path, gpu)
    limiter.apply(250)
    limiter.lock_sm_clocks(1410)
    del limiter  # SIGKILL: no finally ran


def test_gpu_restore_puts_back_what_a_hard_killed_run_left(tmp_path) -> None:
    gpu = make_gpu()
    _killed_run(tmp_path, gpu)
    assert gpu.limit_mw == 250_000 and state(tmp_path)["restored"] is False
    # A new run in the same folder must not record 250 W as the original.
    with pytest.raises(PowerControlError, match="bigbench gpu restore"):
        open_limiter(tmp_path, gpu)
    done = restore_from_file(tmp_path, FakeNVML([gpu], FakeClock()))  # a fresh process
    assert done["power_limit_w"] == 600.0 and done["clocks_unlocked"] is True
    assert not done["already_restored"]
    assert gpu.limit_mw == 600_000 and gpu.locked_mhz is None
    assert state(tmp_path)["restored"] is True
    again = restore_from_file(tmp_path / "gpu_state.json", FakeNVML([gpu], FakeClock()))
    assert again["already_restored"] and again["power_limit_w"] is None


def test_a_failed_restore_says_how_to_finish_it(tmp_path) -> None:
    gpu = make_gpu()
    limiter = open_limiter(tmp_path, gpu)
    limiter.apply(300)
    gpu.set_error = NO_PERMISSION  # e.g. privileges dropped meanwhile
    with pytest.raises(PowerControlError, match="bigbench gpu restore .*gpu_state.json"):
        limiter.restore()
    assert state(tmp_path)["restored"] is False
    gpu.set_error = None
    restore_from_file(tmp_path, FakeNVML([gpu], FakeClock()))
    assert gpu.limit_mw == 600_000


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    ("{not json", "not a bigbench GPU state file"),
    ('{"schema": "other/1"}', "expected schema"),
    ('{"schema": "bigbench.gpu_state/1", "uuid": "GPU-x", "original_power_limit_w": true, '
     '"clocks_locked": false, "restored": false}', "expected schema"),
])
def test_restore_from_a_missing_or_invalid_file_is_one_clear_line(tmp_path, content,
                                                                  message) -> None:
    path = tmp_path / "gpu_state.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PowerControlError, match=message):
        restore_from_file(path, FakeNVML([make_gpu()], FakeClock()))


def test_restore_finds_the_gpu_by_uuid_or_says_it_is_not_here(tmp_path) -> None:
    gpu = make_gpu()
    _killed_run(tmp_path, gpu)
    other = FakeGpu("GPU-other", "NVIDIA A100", [(0, 1.0)])
    with pytest.raises(PowerControlError, match="not on this machine"):
        restore_from_file(tmp_path, FakeNVML([other], FakeClock()))
    # After a reboot the GPU may have another index: the UUID finds it.
    restore_from_file(tmp_path, FakeNVML([other, gpu], FakeClock()))
    assert gpu.limit_mw == 600_000


def test_no_nvml_is_a_clear_refusal(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(power_limits, "load_backend",
                        lambda: (None, "the nvidia-ml-py package (pynvml) is not installed"))
    with pytest.raises(PowerControlError, match="pip install nvidia-ml-py"):
        PowerLimiter.open(0, tmp_path / "gpu_state.json")
    assert not (tmp_path / "gpu_state.json").exists()
