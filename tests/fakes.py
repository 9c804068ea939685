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
        return {NOT_SUPPORTED: "Not Supported", NO_PERMISSION: "Insufficient Permissions",
                9: "Driver Not Loaded"}.get(self.value, f"error {self.value}")


class FakeGpu:
    """One GPU whose power follows ``steps``: [(from_time_s, watts), ...].

    ``cc`` is the CUDA compute capability NVML reports; None answers NOT_SUPPORTED (older
    drivers), leaving ``arch`` and the name to decide.
    """

    def __init__(self, uuid: str, name: str, steps: list[tuple[float, float]], *,
                 counter: bool = True, instant: bool = True, usage: bool = True,
                 arch: int = 9, mig: bool = False, power_scale: float = 1.0,
                 cc: tuple[int, int] | None = None) -> None:
        self.uuid, self.name, self.steps = uuid, name, sorted(steps)
        self.counter, self.instant, self.usage = counter, instant, usage
        self.arch, self.mig, self.power_scale, self.cc = arch, mig, power_scale, cc
        self.counter_offset_mj = 0.0
        self.application_clock_mhz = 1755

    def power(self, t: float) -> float:
        watts = 0.0
        for start, w in self.steps:
            if t >= start:
                watts = w
        return watts

    def energy(self, t: float) -> float:
        """Exact integral of the power from time 0 to ``t``, in joules."""
        ends = [start for start, _ in self.steps[1:]] + [float("inf")]
        return sum(watts * max(0.0, min(t, end) - start)
                   for (start, watts), end in zip(self.steps, ends, strict=True))


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

    def nvmlDeviceGetTemperature(self, gpu: FakeGpu, sensor: int) -> int:  # noqa: N802
        return 45

    def nvmlDeviceGetClockInfo(self, gpu: FakeGpu, clock_type: int) -> int:  # noqa: N802
        return 1980

    def nvmlDeviceGetApplicationsClock(self, gpu: FakeGpu, clock_type: int) -> int:  # noqa: N802
        return gpu.application_clock_mhz

    def nvmlDeviceGetMaxClockInfo(self, gpu: FakeGpu, clock_type: int) -> int:  # noqa: N802
        return 1980

    def nvmlDeviceGetEnforcedPowerLimit(self, gpu: FakeGpu) -> int:  # noqa: N802
        return 700_000

    def nvmlDeviceGetCurrentClocksEventReasons(self, gpu: FakeGpu) -> int:  # noqa: N802
        return 0


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
