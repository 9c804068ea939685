"""NVIDIA Management Library access: the only module that imports ``pynvml``.

Every NVML failure becomes a reason string; nothing here raises on a machine without a GPU.
The backend (the ``pynvml`` module) is injectable so tests can hand in a fake. Changing a GPU's
settings (power limit, locked clocks) is ``power_limits``' job alone, through this backend.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

from bigbench.measuring.energy.base import MeterSet, Unavailable

#: Update period of the total energy counter assumed until the sampler has observed it: NVIDIA
#: GPUs have been seen updating it every 10–100 ms, so 100 ms is the safe side.
COUNTER_UPDATE_S = 0.1
#: GA100 products by name, for drivers that do not report the compute capability.
_GA100_NAMES = re.compile(r"\bA(100|30|800)\b|\bPG506\b")


def load_backend() -> tuple[ModuleType | None, str | None]:
    """Import pynvml; returns ``(module, None)`` or ``(None, reason)``."""
    try:
        import pynvml
    except ImportError:
        return None, "the nvidia-ml-py package (pynvml) is not installed"
    return pynvml, None


def probe(backend: ModuleType | None = None) -> dict[str, Any]:
    """Whether NVML answers here: driver version and GPU count, or why not.

    Returns:
        ``{"available": bool, "driver_version": str | None, "device_count": int | None,
        "reason": str | None}``
    """
    reason = None
    if backend is None:
        backend, reason = load_backend()
    if backend is None:
        return {"available": False, "driver_version": None, "device_count": None, "reason": reason}
    try:
        backend.nvmlInit()
    except Exception as exc:  # NVMLError subclasses vary by version; all mean "not usable"
        return {"available": False, "driver_version": None, "device_count": None,
                "reason": _nvml_reason(exc, "NVML init")}
    try:
        driver = backend.nvmlSystemGetDriverVersion()
        count = backend.nvmlDeviceGetCount()
    except Exception as exc:
        return {"available": False, "driver_version": None, "device_count": None,
                "reason": _nvml_reason(exc, "NVML query")}
    finally:
        try:
            backend.nvmlShutdown()
        except Exception:
            pass
    if isinstance(driver, bytes):
        driver = driver.decode()
    return {"available": True, "driver_version": driver, "device_count": int(count),
            "reason": None}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


# NVML constants (values from nvml.h; a fake backend need not define them).
_SUCCESS = 0
_NOT_SUPPORTED = 3
_NO_PERMISSION = 4
_DRIVER_NOT_LOADED = 9
_LIBRARY_NOT_FOUND = 12
_FI_POWER_INSTANT = 186
_ARCH_AMPERE = 7
_ARCH_UNKNOWN = 0xFFFFFFFF
_TEMPERATURE_GPU = 0
_CLOCK_SM = 1


def _nvml_reason(exc: BaseException, what: str) -> str:
    code = getattr(exc, "value", None)
    if code in (_DRIVER_NOT_LOADED, _LIBRARY_NOT_FOUND):
        return f"no NVIDIA driver here ({_describe(exc)})"
    if code == _NOT_SUPPORTED:
        return f"{what} is not supported on this GPU"
    if code == _NO_PERMISSION:
        return f"{what}: insufficient permissions (run as a user allowed to query the GPU)"
    return f"{what} failed ({_describe(exc)})"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlGpu:
    """One GPU read through NVML: energy counter, power samples, telemetry.

    Args:
        backend: The pynvml module (or a fake).
        handle: The NVML device handle.
        uuid: NVML UUID (``GPU-…``).
        counter: Whether ``nvmlDeviceGetTotalEnergyConsumption`` works.
        power_source: ``"instant"`` (field NVML_FI_DEV_POWER_INSTANT) or ``"usage"``
            (nvmlDeviceGetPowerUsage).
        averaged: True when the usage reading is a 1-second average (Ampere and newer,
            except GA100).
    """

    kind = "gpu"

    def __init__(self, backend: ModuleType, handle: Any, uuid: str, name: str, counter: bool,
                 power_source: str, averaged: bool) -> None:
        self.backend = backend
        self.handle = handle
        self.uuid = uuid
        self.name = name
        self.key = f"gpu:{uuid}"
        self.counter_method = "nvml_energy_counter" if counter else None
        self._instant = power_source == "instant"
        if self._instant:
            self.power_method = "nvml_power_instant"
        else:
            self.power_method = "nvml_power_average_1s" if averaged else "nvml_power_usage"
        # What the monitor needs to bound its figures (see monitor.py):
        self.sample_counter = counter  # the sampler reads it each tick to observe its period
        self.counter_update_s = COUNTER_UPDATE_S if counter else None
        self.counter_resolution_j = 0.001  # NVML counts whole millijoules
        self.power_resolution_w = 0.001  # ... and whole milliwatts
        self.power_smear_s = 1.0 if averaged and not self._instant else 0.0

    def counter_j(self) -> float:
        """Energy since the driver loaded, in joules (NVML reports millijoules)."""
        return self.backend.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0

    def poll(self, t_s: float) -> float:
        """Power now, in watts (NVML reports milliwatts)."""
        if self._instant:
            field = self.backend.nvmlDeviceGetFieldValues(self.handle, [_FI_POWER_INSTANT])[0]
            if field.nvmlReturn != _SUCCESS:
                raise RuntimeError(f"NVML_FI_DEV_POWER_INSTANT returned {field.nvmlReturn}")
            return field.value.uiVal / 1000.0
        return self.backend.nvmlDeviceGetPowerUsage(self.handle) / 1000.0

    def telemetry(self) -> dict[str, Any]:
        """Temperature (°C), SM clock (MHz), enforced power limit (W) and throttle reasons."""
        b, h = self.backend, self.handle
        readings = {
            "temperature_c": lambda: b.nvmlDeviceGetTemperature(h, _TEMPERATURE_GPU),
            "sm_clock_mhz": lambda: b.nvmlDeviceGetClockInfo(h, _CLOCK_SM),
            "power_limit_w": lambda: b.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0,
            "throttle_reasons": lambda: _throttle_reasons(b, h),
        }
        out: dict[str, Any] = {}
        for name, read in readings.items():
            try:
                out[name] = read()
            except Exception:  # not every GPU answers every query; absent means not reported
                out[name] = None
        return out

    def info(self) -> dict[str, Any]:
        """Name, UUID, driver, power limit and its allowed range, clock settings and the
        methods in use.

        The clock settings (application and maximum SM clock) change when an administrator
        locks or raises clocks; ``compare`` warns when they differ between two results.
        """
        b, h = self.backend, self.handle
        facts = {"driver_version": lambda: _text(b.nvmlSystemGetDriverVersion()),
                 "application_sm_clock_mhz": lambda: b.nvmlDeviceGetApplicationsClock(h, _CLOCK_SM),
                 "max_sm_clock_mhz": lambda: b.nvmlDeviceGetMaxClockInfo(h, _CLOCK_SM),
                 # The range a power limit may be set in (W): the sweep's max_power for
                 # Zeus's cost, and what --power-limits accepts.
                 "min_power_limit_w": lambda: b.nvmlDeviceGetPowerManagementLimitConstraints(
                     h)[0] / 1000.0,
                 "max_power_limit_w": lambda: b.nvmlDeviceGetPowerManagementLimitConstraints(
                     h)[1] / 1000.0}
        out: dict[str, Any] = {"name": self.name, "uuid": self.uuid}
        for name, read in facts.items():
            try:
                out[name] = read()
            except Exception:  # not every GPU answers every query; null means not reported
                out[name] = None
        return {**out, "power_limit_w": self.telemetry().get("power_limit_w"),
                "energy_counter": self.counter_method is not None,
                "power_method": self.power_method}


def _throttle_reasons(backend: ModuleType, handle: Any) -> int:
    reader = getattr(backend, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
        backend.nvmlDeviceGetCurrentClocksThrottleReasons
    return int(reader(handle))


def open_gpu(uuid: str, backend: ModuleType | None = None) -> MeterSet:
    """The NVML meter of the GPU with this UUID, or why it cannot be measured.

    CUDA and NVML may number GPUs differently (``CUDA_VISIBLE_DEVICES``, ``CUDA_DEVICE_ORDER``),
    so the handle is found by UUID, never by index.
    """
    reason = None
    if backend is None:
        backend, reason = load_backend()
    if backend is None:
        return MeterSet(unavailable=[Unavailable("gpu", uuid, str(reason))])
    if uuid.startswith("MIG-"):
        return MeterSet(unavailable=[Unavailable("gpu", uuid, (
            "this is a MIG slice; NVML cannot measure the power or energy of a MIG slice"))])
    try:
        backend.nvmlInit()
    except Exception as exc:
        return MeterSet(unavailable=[Unavailable("gpu", uuid, _nvml_reason(exc, "NVML init"))])
    try:
        handle = backend.nvmlDeviceGetHandleByUUID(uuid.encode())
        name = _text(backend.nvmlDeviceGetName(handle))
    except Exception as exc:
        return MeterSet(unavailable=[Unavailable("gpu", uuid, _nvml_reason(
            exc, f"finding GPU {uuid} in NVML"))])
    try:
        if backend.nvmlDeviceGetMigMode(handle)[0] == 1:
            return MeterSet(unavailable=[Unavailable("gpu", name, (
                "MIG mode is enabled; NVML cannot measure the power or energy of MIG slices"))])
    except Exception:
        pass  # GPUs without MIG support answer NOT_SUPPORTED: not MIG, carry on
    counter, counter_reason = _works(lambda: backend.nvmlDeviceGetTotalEnergyConsumption(handle),
                                     "the total energy counter")
    instant, _ = _works(lambda: _instant_field(backend, handle), "instant power")
    usage, usage_reason = (True, None) if instant else _works(
        lambda: backend.nvmlDeviceGetPowerUsage(handle), "power usage")
    if not counter and not (instant or usage):
        return MeterSet(unavailable=[Unavailable("gpu", name, (
            f"{counter_reason}; {usage_reason}"))])
    averaged = not instant and usage_is_averaged(backend, handle, name)
    gpu = NvmlGpu(backend, handle, uuid, name, counter=counter,
                  power_source="instant" if instant else "usage", averaged=averaged)
    return MeterSet(devices=[gpu])


def usage_is_averaged(backend: ModuleType, handle: Any, name: str) -> bool:
    """Whether ``nvmlDeviceGetPowerUsage`` is a 1-second average on this GPU.

    It is on Ampere and newer, except the GA100 data-center parts (A100, A30, A800 …), which
    report instantaneous power. NVML has no GA100 flag, but GA100 is the only chip of compute
    capability exactly 8.0 (GA10x are 8.6/8.7, Ada 8.9, Hopper 9.0, Blackwell 10.x/12.x), so the
    capability decides. Where NVML cannot tell the capability, the architecture decides, and
    the GA100 products are recognised by name.
    """
    try:
        major, minor = backend.nvmlDeviceGetCudaComputeCapability(handle)
        return (int(major), int(minor)) > (8, 0)
    except Exception:
        pass  # older drivers or bindings: fall back to the architecture
    try:
        arch = int(backend.nvmlDeviceGetArchitecture(handle))
    except Exception:
        return False
    if arch == _ARCH_UNKNOWN or arch < _ARCH_AMPERE:
        return False
    return _GA100_NAMES.search(name) is None


def _instant_field(backend: ModuleType, handle: Any) -> float:
    field = backend.nvmlDeviceGetFieldValues(handle, [_FI_POWER_INSTANT])[0]
    if field.nvmlReturn != _SUCCESS:
        raise RuntimeError(f"field status {field.nvmlReturn}")
    return field.value.uiVal


def _works(call: Any, what: str) -> tuple[bool, str | None]:
    try:
        call()
    except Exception as exc:
        return False, _nvml_reason(exc, what)
    return True, None


def list_gpu_uuids(backend: ModuleType | None = None) -> tuple[list[str], str | None]:
    """UUIDs of every GPU NVML sees (all of them, whatever CUDA_VISIBLE_DEVICES says)."""
    reason = None
    if backend is None:
        backend, reason = load_backend()
    if backend is None:
        return [], reason
    try:
        backend.nvmlInit()
        count = backend.nvmlDeviceGetCount()
        return [_text(backend.nvmlDeviceGetUUID(backend.nvmlDeviceGetHandleByIndex(i)))
                for i in range(count)], None
    except Exception as exc:
        return [], _nvml_reason(exc, "NVML")


# --- GPU settings, read only (power_limits.py changes them) ---------------------------------

#: NVML clock-event (throttle) reason bits → names (nvml.h, nvmlClocksEventReason*).
THROTTLE_REASONS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap",
    0x8: "hw_slowdown", 0x10: "sync_boost", 0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting",
}


def throttle_names(mask: int) -> list[str]:
    """The names of the reason bits set in an NVML clock-event mask (unknown bits in hex)."""
    names = [name for bit, name in THROTTLE_REASONS.items() if mask & bit]
    unknown = mask & ~sum(THROTTLE_REASONS)
    return names + ([f"unknown_{unknown:#x}"] if unknown else [])


def read_snapshot(backend: ModuleType, handle: Any) -> dict[str, Any]:
    """The GPU's settings and state now: enforced power limit (W), SM clock (MHz), temperature
    (°C) and throttle reason names; each null with its reason in ``reasons`` where NVML does
    not answer."""
    readings: dict[str, tuple[str, Callable[[], Any]]] = {
        "power_limit_w": ("the enforced power limit",
                          lambda: backend.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0),
        "sm_clock_mhz": ("the SM clock",
                         lambda: int(backend.nvmlDeviceGetClockInfo(handle, _CLOCK_SM))),
        "temperature_c": ("the temperature",
                          lambda: backend.nvmlDeviceGetTemperature(handle, _TEMPERATURE_GPU)),
        "throttle_reasons": ("the throttle reasons",
                             lambda: throttle_names(_throttle_reasons(backend, handle))),
    }
    out: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    for key, (what, read) in readings.items():
        try:
            out[key] = read()
        except Exception as exc:  # not every GPU answers every query: null with the reason
            out[key] = None
            reasons[key] = _nvml_reason(exc, f"reading {what}")
    return {**out, "reasons": reasons}


def supported_sm_clock_range(backend: ModuleType, handle: Any) -> tuple[int, int] | None:
    """Lowest and highest supported SM clock (MHz), or None where NVML does not list them."""
    try:
        clocks = [int(c) for memory in backend.nvmlDeviceGetSupportedMemoryClocks(handle)
                  for c in backend.nvmlDeviceGetSupportedGraphicsClocks(handle, memory)]
    except Exception:  # not listed on every GPU: the driver range-checks the lock itself
        return None
    return (min(clocks), max(clocks)) if clocks else None


def gpu_settings_of_all(backend: ModuleType) -> list[dict[str, Any]]:
    """Every GPU an initialised NVML ``backend`` sees (NVML order): power limit, default and
    allowed range (W), SM clocks (MHz) and a :func:`read_snapshot` as ``now``; each figure null
    with its reason in ``reasons`` where NVML lacks it."""
    gpus = []
    for i in range(int(backend.nvmlDeviceGetCount())):
        h = backend.nvmlDeviceGetHandleByIndex(i)
        facts: dict[str, tuple[str, Callable[[], Any]]] = {
            "uuid": ("the UUID", lambda h=h: _text(backend.nvmlDeviceGetUUID(h))),
            "name": ("the name", lambda h=h: _text(backend.nvmlDeviceGetName(h))),
            "power_limit_set_w": ("the power limit", lambda h=h: (
                backend.nvmlDeviceGetPowerManagementLimit(h) / 1000.0)),
            "default_power_limit_w": ("the default power limit", lambda h=h: (
                backend.nvmlDeviceGetPowerManagementDefaultLimit(h) / 1000.0)),
            "allowed_range_w": ("the power limit range", lambda h=h: [
                v / 1000.0 for v in backend.nvmlDeviceGetPowerManagementLimitConstraints(h)]),
            "max_sm_clock_mhz": ("the maximum SM clock", lambda h=h: int(
                backend.nvmlDeviceGetMaxClockInfo(h, _CLOCK_SM))),
            "supported_sm_clock_range_mhz": ("the supported SM clocks", lambda h=h: (
                list(supported_sm_clock_range(backend, h) or ()) or None)),
        }
        gpu: dict[str, Any] = {"nvml_index": i}
        reasons: dict[str, str] = {}
        for key, (what, read) in facts.items():
            try:
                gpu[key] = read()
            except Exception as exc:
                gpu[key] = None
                reasons[key] = _nvml_reason(exc, f"reading {what}")
        if gpu["supported_sm_clock_range_mhz"] is None and "supported_sm_clock_range_mhz" \
                not in reasons:
            reasons["supported_sm_clock_range_mhz"] = "NVML lists no supported SM clocks"
        gpu["now"] = read_snapshot(backend, h)
        gpus.append({**gpu, "reasons": reasons})
    return gpus
