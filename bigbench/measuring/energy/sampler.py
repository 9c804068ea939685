"""A background thread that polls every device meter at a fixed interval.

NVML calls and sysfs reads release the GIL, so sampling costs the training thread almost nothing
(``benchmarks/sampler_overhead.py`` measures it). The thread sleeps on an Event between ticks —
never a busy wait — and stops polling a device whose reads fail, ending when none is left.

Ticks keep a fixed schedule (start + k × interval) instead of sleeping a full interval after each
tick, so the time a tick takes does not stretch the period: a window of N intervals then holds
N samples, which the sample-count quality rule relies on.

Devices that ask for it (``sample_counter``, the NVML GPUs) also have their energy counter read
every tick; the times at which it changes give its update period, which bounds the error of a
counter difference (see :meth:`PowerTrace.counter_period`).
"""

from __future__ import annotations

import bisect
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bigbench.measuring.energy.base import DeviceMeter

#: Fewer spacings between counter changes than this and the update period counts as unobserved.
MIN_COUNTER_CHANGES = 4


@dataclass
class PowerTrace:
    """Samples of one device: power (times in s, watts) and energy counter changes.

    ``counter_t_s``/``counter_j`` hold the first reading and then each reading that differs from
    the one before: the time a new counter value was first seen, and that value in joules.
    """

    t_s: list[float] = field(default_factory=list)
    power_w: list[float] = field(default_factory=list)
    counter_t_s: list[float] = field(default_factory=list)
    counter_j: list[float] = field(default_factory=list)

    def between(self, start: float, end: float) -> tuple[list[float], list[float]]:
        """The power samples with ``start <= t <= end``."""
        # The sampler appends t_s before power_w: a reader can see one more time than watts.
        count = min(len(self.t_s), len(self.power_w))
        # Times are appended in order by the one sampler thread: bisect, never a full scan
        # (every window edge asks, and a long run holds tens of thousands of samples).
        lo = bisect.bisect_left(self.t_s, start, 0, count)
        hi = bisect.bisect_right(self.t_s, end, lo, count)
        return self.t_s[lo:hi], self.power_w[lo:hi]

    def count_since(self, start: float) -> int:
        """How many power samples were taken at or after ``start`` (times are in order)."""
        count = min(len(self.t_s), len(self.power_w))
        return count - bisect.bisect_left(self.t_s, start, 0, count)

    def last_before(self, t_s: float) -> tuple[float, float] | None:
        """The latest power sample strictly before ``t_s`` as ``(time, watts)``, or None."""
        count = min(len(self.t_s), len(self.power_w))
        for i in range(count - 1, -1, -1):
            if self.t_s[i] < t_s:
                return self.t_s[i], self.power_w[i]
        return None

    def edge_power(self, edge_s: float, reach_s: float) -> float | None:
        """Highest power seen within ``reach_s`` of ``edge_s`` (W), or None without a reading.

        Falls back to the nearest power sample on either side, then to the counter's own slope
        near the edge (for GPUs whose power cannot be read).
        """
        count = min(len(self.t_s), len(self.power_w))
        times, watts = self.t_s[:count], self.power_w[:count]
        near = [w for t, w in zip(times, watts, strict=True) if abs(t - edge_s) <= reach_s]
        if near:
            return max(near)
        before = self.last_before(edge_s)
        after = next((w for t, w in zip(times, watts, strict=True) if t > edge_s), None)
        nearest = [w for w in (before[1] if before else None, after) if w is not None]
        if nearest:
            return max(nearest)
        return self._counter_power(edge_s, 2 * reach_s)

    def _counter_power(self, edge_s: float, reach_s: float) -> float | None:
        count = min(len(self.counter_t_s), len(self.counter_j))
        points = [(t, e) for t, e in zip(self.counter_t_s[1:count], self.counter_j[1:count],
                                         strict=True) if abs(t - edge_s) <= reach_s]
        if len(points) < 2 or points[-1][0] <= points[0][0]:
            return None
        return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])

    def counter_period(self, until_s: float) -> float | None:
        """The counter's update period (s) seen in changes up to ``until_s``, or None.

        Each update is first seen at the next tick, so a spacing between changes is the update
        period give or take one tick. The mean spacing is accurate to a tick over the whole
        span; the median guards against a few long gaps pulling it. The larger of the two is
        returned. When the counter updates faster than the sampler ticks, every tick sees a
        change and the result is the tick interval: an upper bound, which keeps error bounds safe.
        """
        count = min(len(self.counter_t_s), len(self.counter_j))
        changes = [t for t in self.counter_t_s[1:count] if t <= until_s]  # [0] is no change
        if len(changes) < MIN_COUNTER_CHANGES + 1:
            return None
        spacings = [b - a for a, b in zip(changes, changes[1:], strict=False)]
        mean = (changes[-1] - changes[0]) / len(spacings)
        return max(mean, statistics.median(spacings))


class PowerSampler:
    """Polls ``devices`` every ``interval_s`` on a daemon thread.

    Args:
        devices: The device meters to poll.
        interval_s: Seconds between ticks.
        clock: Timestamp source in seconds (the same clock as the measurement windows).
        wait: Sleeps up to the given seconds and returns True to stop; defaults to the stop
            Event's ``wait``. Tests inject one that advances a fake clock.
    """

    def __init__(self, devices: Sequence[DeviceMeter], interval_s: float,
                 clock: Callable[[], float] = time.perf_counter,
                 wait: Callable[[float], bool] | None = None) -> None:
        self.devices = list(devices)
        self.interval_s = interval_s
        self.clock = clock
        self.traces: dict[str, PowerTrace] = {d.key: PowerTrace() for d in self.devices}
        self.errors: dict[str, str] = {}
        self.counter_errors: dict[str, str] = {}
        self.ticks = 0
        self._active = list(self.devices)
        self._counting = [d for d in self.devices if d.sample_counter]
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._thread: threading.Thread | None = None

    def sample_once(self) -> None:
        """One tick: poll every active device and record its power (and counter changes)."""
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
        for device in list(self._counting):
            self._record_counter(device, now)
        self.ticks += 1

    def _record_counter(self, device: DeviceMeter, now: float) -> None:
        try:
            energy = device.counter_j()
        except Exception as exc:  # the window edges read the counter too and report failures
            self.counter_errors[device.key] = f"{type(exc).__name__}: {exc}"
            self._counting.remove(device)
            return
        trace = self.traces[device.key]
        if energy is not None and (not trace.counter_j or energy != trace.counter_j[-1]):
            trace.counter_t_s.append(now)
            trace.counter_j.append(energy)

    def _run(self) -> None:
        next_tick = self.clock()
        while True:
            self.sample_once()
            if not (self._active or self._counting) or self._stop.is_set():
                return
            next_tick += self.interval_s
            now = self.clock()
            if now - next_tick > self.interval_s:
                next_tick = now  # stalled for over a tick: restart the grid, never a burst
            if self._wait(max(0.0, next_tick - now)) or self._stop.is_set():
                return

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
