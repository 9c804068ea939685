"""A background thread that polls every device meter at a fixed interval.

NVML calls and sysfs reads release the GIL, so sampling costs the training thread almost nothing
(``benchmarks/sampler_overhead.py`` measures it). The thread sleeps on an Event between ticks —
never a busy wait — and stops polling a device whose reads fail, ending when none is left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bigbench.measure.energy.base import DeviceMeter


@dataclass
class PowerTrace:
    """Power samples of one device: parallel lists of times (s) and watts."""

    t_s: list[float] = field(default_factory=list)
    power_w: list[float] = field(default_factory=list)

    def between(self, start: float, end: float) -> tuple[list[float], list[float]]:
        """The samples with ``start <= t <= end``."""
        count = len(self.t_s)  # the sampler may append meanwhile; read a consistent prefix
        times, watts = self.t_s[:count], self.power_w[:count]
        pairs = [(t, w) for t, w in zip(times, watts, strict=True) if start <= t <= end]
        return [t for t, _ in pairs], [w for _, w in pairs]


class PowerSampler:
    """Polls ``devices`` every ``interval_s`` on a daemon thread.

    Args:
        devices: The device meters to poll.
        interval_s: Seconds between ticks.
        clock: Timestamp source in seconds (the same clock as the measurement windows).
    """

    def __init__(self, devices: Sequence[DeviceMeter], interval_s: float,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.devices = list(devices)
        self.interval_s = interval_s
        self.clock = clock
        self.traces: dict[str, PowerTrace] = {d.key: PowerTrace() for d in self.devices}
        self.errors: dict[str, str] = {}
        self.ticks = 0
        self._active = list(self.devices)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample_once(self) -> None:
        """One tick: poll every active device and record its power."""
        now = self.clock()
        for device in list(self._active):
            try:
                watts = device.poll(now)
            except Exception as exc:  # a device failing must not stop the run or the others
                self.errors[device.key] = f"{type(exc).__name__}: {exc}"
                self._active.remove(device)
                continue
            if watts is not None:
                trace = self.traces[device.key]
                trace.t_s.append(now)
                trace.power_w.append(watts)
        self.ticks += 1

    def _run(self) -> None:
        self.sample_once()
        while self._active and not self._stop.wait(self.interval_s):
            self.sample_once()

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (no-op without devices)."""
        if self.devices and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bigbench-power-sampler",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
