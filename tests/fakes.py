"""Fake hardware at the boundary: a powercap sysfs tree and a ``pynvml`` module.

Both are driven by an injected clock, so tests control time instead of sleeping.
"""

from __future__ import annotations

import math
import os
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

INVALID_ARGUMENT = 2
NOT_SUPPORTED = 3
NO_PERMISSION = 4


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class PowercapTree:
    """A powercap tree like an Intel server's: package, core, dram, psys and an MMIO twin."""

    MAX_RANGE_UJ = 262_143_328_850

    def __init__(self, root: Path, sockets: int = 1, psys: bool = True) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "intel-rapl").mkdir(exist_ok=True)  # the control type folder, no counter
        for s in range(sockets):
            self.zone(f"intel-rapl:{s}", f"package-{s}")
            self.zone(f"intel-rapl:{s}:0", "core")
            self.zone(f"intel-rapl:{s}:1", "uncore")
            self.zone(f"intel-rapl:{s}:2", "dram")
            self.zone(f"intel-rapl-mmio:{s}", f"package-{s}")
        if psys:
            self.zone(f"intel-rapl:{sockets}", "psys")

    def zone(self, dirname: str, name: str, max_range_uj: int = MAX_RANGE_UJ) -> Path:
        path = self.root / dirname
        path.mkdir(exist_ok=True)
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        (path / "energy_uj").write_text("0\n")
        return path

    def set_uj(self, dirname: str, value: int) -> None:
        # Replace, not rewrite: sysfs reads are atomic, a truncate-then-write file is not.
        target = self.root / dirname / "energy_uj"
        tmp = target.with_name(f"energy_uj.{threading.get_ident()}.tmp")
        tmp.write_text(f"{int(value)}\n")
        os.replace(tmp, target)


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {INVALID_ARGUMENT: "Invalid Argument", NOT_SUPPORTED: "Not Supported",
                NO_PERMISSION: "Insufficient Permissions",
                9: "Driver Not Loaded"}.get(self.value, f"error {self.value}")


class FakeGpu:
    """One GPU whose power follows ``steps``: [(from_time_s, watts), ...].

    ``cc`` is the CUDA compute capability NVML reports; None answers NOT_SUPPORTED (older
    drivers), leaving ``arch`` and the name to decide.

    Power limit and clocks (a toy model, for tests only — never a measurement): the power limit
    starts at ``default_limit_w`` and may be set within ``[min_limit_w, max_limit_w]``; SM clocks
    may be locked within the supported clocks. The drawn power scales with
    ``limit / default × locked clock / max clock`` and the speed (:meth:`speed`, the factor a
    fake step divides its duration by) with ``(limit / default) ** 0.3 × locked / max clock``,
    so a lower limit is slower but uses less energy per step. ``set_error`` / ``clock_error``
    (NVML error codes, e.g. NO_PERMISSION) make the setters refuse.
    """

    def __init__(self, uuid: str, name: str, steps: list[tuple[float, float]], *,
                 counter: bool = True, instant: bool = True, usage: bool = True,
                 arch: int = 9, mig: bool = False, power_scale: float = 1.0,
                 cc: tuple[int, int] | None = None, default_limit_w: float = 700.0,
                 min_limit_w: float = 200.0, max_limit_w: float = 700.0,
                 set_error: int | None = None, clock_error: int | None = None,
                 temperature_c: float = 45, max_clock_mhz: int = 1980,
                 speed_exponent: float = 0.3) -> None:
        self.uuid, self.name, self.steps = uuid, name, sorted(steps)
        self.counter, self.instant, self.usage = counter, instant, usage
        self.arch, self.mig, self.power_scale, self.cc = arch, mig, power_scale, cc
        self.counter_offset_mj = 0.0
        self.application_clock_mhz = 1755
        self.default_limit_mw = int(default_limit_w * 1000)
        self.min_limit_mw, self.max_limit_mw = int(min_limit_w * 1000), int(max_limit_w * 1000)
        self.limit_mw = self.default_limit_mw
        self.set_error, self.clock_error = set_error, clock_error
        self.temperature_c = temperature_c
        self.max_clock_mhz = max_clock_mhz
        self.supported_clocks_mhz = list(range(max_clock_mhz, 209, -15))
        self.locked_mhz: int | None = None
        self.speed_exponent = speed_exponent
        self.throttle_mask = 0
        #: Every successful power-limit set call (mW) and clock lock/reset, in order.
        self.limit_calls: list[int] = []
        self.clock_calls: list[int | None] = []
        #: (time_s, draw factor) from each change on: the power before the first is unscaled.
        self.changes: list[tuple[float, float]] = []

    def draw_factor(self) -> float:
        """How the current settings scale the drawn power (1 at the default, unlocked)."""
        clock = self.locked_mhz / self.max_clock_mhz if self.locked_mhz else 1.0
        return self.limit_mw / self.default_limit_mw * clock

    def speed(self) -> float:
        """How the current settings scale the speed of work (1 at the default, unlocked)."""
        clock = self.locked_mhz / self.max_clock_mhz if self.locked_mhz else 1.0
        return (self.limit_mw / self.default_limit_mw) ** self.speed_exponent * clock

    def settings_changed(self, t: float) -> None:
        """Record that the power draw changes from time ``t`` on."""
        self.changes.append((t, self.draw_factor()))

    def _factor(self, t: float) -> float:
        factor = 1.0
        for start, f in self.changes:
            if t >= start:
                factor = f
        return factor

    def power(self, t: float) -> float:
        watts = 0.0
        for start, w in self.steps:
            if t >= start:
                watts = w
        return watts * self._factor(t)

    def energy(self, t: float) -> float:
        """Exact integral of the power from time 0 to ``t``, in joules."""
        # The power is constant between consecutive edges (a step or a settings change).
        edges = sorted({start for start, _ in self.steps} | {start for start, _ in self.changes})
        ends = [*edges[1:], float("inf")]
        return sum(self.power(start) * max(0.0, min(t, end) - start)
                   for start, end in zip(edges, ends, strict=True))


class FakeNVML(types.ModuleType):
    """Enough of pynvml for bigbench: counter in ``counter_step_s`` steps, power fields."""

    def __init__(self, gpus: list[FakeGpu], clock: Callable[[], float],
                 counter_step_s: float = 0.1, init_error: int | None = None,
                 counter_phase_s: float = 0.0) -> None:
        super().__init__("pynvml")
        self.gpus, self.clock, self.counter_step_s = gpus, clock, counter_step_s
        self.counter_phase_s = counter_phase_s
        self.init_error = init_error
        self.NVMLError = FakeNVMLError

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        if self.init_error is not None:
            raise FakeNVMLError(self.init_error)

    def nvmlShutdown(self) -> None:  # noqa: N802
        pass

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:  # noqa: N802
        return self.gpus[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: bytes) -> FakeGpu:  # noqa: N802
        text = uuid.decode() if isinstance(uuid, bytes) else uuid
        for gpu in self.gpus:
            if gpu.uuid == text:
                return gpu
        raise FakeNVMLError(6)

    def nvmlDeviceGetUUID(self, gpu: FakeGpu) -> str:  # noqa: N802
        return gpu.uuid

    def nvmlDeviceGetName(self, gpu: FakeGpu) -> str:  # noqa: N802
        return gpu.name

    def nvmlDeviceGetMigMode(self, gpu: FakeGpu) -> list[int]:  # noqa: N802
        return [1 if gpu.mig else 0, 0]

    def nvmlDeviceGetArchitecture(self, gpu: FakeGpu) -> int:  # noqa: N802
        return gpu.arch

    def nvmlDeviceGetCudaComputeCapability(self, gpu: FakeGpu) -> tuple[int, int]:  # noqa: N802
        if gpu.cc is None:
            raise FakeNVMLError(NOT_SUPPORTED)
        return gpu.cc

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: FakeGpu) -> int:  # noqa: N802
        if not gpu.counter:
            raise FakeNVMLError(NOT_SUPPORTED)
        step, phase = self.counter_step_s, self.counter_phase_s
        updated = math.floor((self.clock() - phase) / step) * step + phase  # it advances in steps
        return int(gpu.energy(updated) * 1000 + gpu.counter_offset_mj)

    def nvmlDeviceGetFieldValues(self, gpu: FakeGpu, ids: list[int]) -> list[SimpleNamespace]:  # noqa: N802
        status = 0 if gpu.instant else NOT_SUPPORTED
        watts = gpu.power(self.clock()) * gpu.power_scale
        return [SimpleNamespace(nvmlReturn=status, value=SimpleNamespace(uiVal=int(watts * 1000)),
                                timestamp=int(self.clock() * 1e6))]

    def nvmlDeviceGetPowerUsage(self, gpu: FakeGpu) -> int:  # noqa: N802
        if not gpu.usage:
            raise FakeNVMLError(NOT_SUPPORTED)
        t = self.clock()
        averaged = gpu.energy(t) - gpu.energy(max(0.0, t - 1.0))  # a 1-second average
        return int(averaged * gpu.power_scale * 1000)

    def nvmlDeviceGetTemperature(self, gpu: FakeGpu, sensor: int) -> float:  # noqa: N802
        return gpu.temperature_c

    def nvmlDeviceGetClockInfo(self, gpu: FakeGpu, clock_type: int) -> int:  # noqa: N802
        return gpu.locked_mhz or gpu.max_clock_mhz

    def nvmlDeviceGetApplicationsClock(self, gpu: FakeGpu, clock_type: int) -> int:  # noqa: N802
        return gpu.application_clock_mhz

    def nvmlDeviceGetMaxClockInfo(self, gpu: FakeGpu, clock_type: int) -> int:  # noqa: N802
        return gpu.max_clock_mhz

    def nvmlDeviceGetEnforcedPowerLimit(self, gpu: FakeGpu) -> int:  # noqa: N802
        return gpu.limit_mw

    def nvmlDeviceGetCurrentClocksEventReasons(self, gpu: FakeGpu) -> int:  # noqa: N802
        # SW power cap (0x4) whenever the limit is below the default: the card is held back.
        return gpu.throttle_mask | (0x4 if gpu.limit_mw < gpu.default_limit_mw else 0)

    # --- power limit and clocks (the setters check the error and range like the driver) ---

    def nvmlDeviceGetIndex(self, gpu: FakeGpu) -> int:  # noqa: N802
        return self.gpus.index(gpu)

    def nvmlDeviceGetPowerManagementLimit(self, gpu: FakeGpu) -> int:  # noqa: N802
        return gpu.limit_mw

    def nvmlDeviceGetPowerManagementDefaultLimit(self, gpu: FakeGpu) -> int:  # noqa: N802
        return gpu.default_limit_mw

    def nvmlDeviceGetPowerManagementLimitConstraints(self, gpu: FakeGpu) -> list[int]:  # noqa: N802
        return [gpu.min_limit_mw, gpu.max_limit_mw]

    def nvmlDeviceSetPowerManagementLimit(self, gpu: FakeGpu, milliwatts: int) -> None:  # noqa: N802
        if gpu.set_error is not None:
            raise FakeNVMLError(gpu.set_error)
        if not gpu.min_limit_mw <= milliwatts <= gpu.max_limit_mw:
            raise FakeNVMLError(INVALID_ARGUMENT)
        gpu.limit_mw = int(milliwatts)
        gpu.limit_calls.append(int(milliwatts))
        gpu.settings_changed(self.clock())

    def nvmlDeviceGetSupportedMemoryClocks(self, gpu: FakeGpu) -> list[int]:  # noqa: N802
        return [2619]

    def nvmlDeviceGetSupportedGraphicsClocks(self, gpu: FakeGpu, memory_mhz: int) -> list[int]:  # noqa: N802
        return list(gpu.supported_clocks_mhz)

    def nvmlDeviceSetGpuLockedClocks(self, gpu: FakeGpu, low: int, high: int) -> None:  # noqa: N802
        if gpu.clock_error is not None:
            raise FakeNVMLError(gpu.clock_error)
        clocks = gpu.supported_clocks_mhz
        if not min(clocks) <= low <= high <= max(clocks):
            raise FakeNVMLError(INVALID_ARGUMENT)
        gpu.locked_mhz = int(low)
        gpu.clock_calls.append(int(low))
        gpu.settings_changed(self.clock())

    def nvmlDeviceResetGpuLockedClocks(self, gpu: FakeGpu) -> None:  # noqa: N802
        if gpu.clock_error is not None:
            raise FakeNVMLError(gpu.clock_error)
        gpu.locked_mhz = None
        gpu.clock_calls.append(None)
        gpu.settings_changed(self.clock())


class LivePowercap:
    """A powercap tree whose counters advance in real time at fixed power, from a thread.

    Args:
        root: Where to create the tree.
        watts: Zone folder → power in watts, e.g. ``{"intel-rapl:0": 40.0}``.
        period_s: Seconds between counter updates.
    """

    def __init__(self, root: Path, watts: dict[str, float], period_s: float = 0.005) -> None:
        self.tree = PowercapTree(root)
        self.watts = watts
        self.period_s = period_s
        self._stop = threading.Event()
        self._start = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            elapsed = time.perf_counter() - self._start
            for zone, watts in self.watts.items():
                self.tree.set_uj(zone, elapsed * watts * 1e6)

    def start(self) -> LivePowercap:
        """Start advancing the counters."""
        self._start = time.perf_counter()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._thread.join()
