"""Named measurement windows: time, memory and energy of a stretch of work.

``with meter.window("measured"):`` synchronises the device at both edges, so the window holds
exactly the work queued inside it, and records even when the body raises. Windows with the same
name accumulate (training is split into segments by evaluations).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bigbench.devices import synchronize
from bigbench.measuring.energy.base import EnergyMeter
from bigbench.measuring.memory import device_peaks, reset_device_peak
from bigbench.measuring.timing import Clock

if TYPE_CHECKING:
    import torch


@dataclass
class WindowTotals:
    """Everything measured in the windows of one name.

    Attributes:
        time_s: Wall time inside the windows, device work included, in seconds.
        segments: How many times the window was entered.
        steps: Steps counted in it by the caller.
        samples: Samples counted in it by the caller.
        device_peak_allocated_bytes: Largest CUDA allocator peak seen (null off CUDA).
        device_peak_reserved_bytes: Largest CUDA reserved peak seen (null off CUDA).
        energy: Energy records of each segment.
        spans_s: (start, end) of each segment, seconds since the meter's origin.
    """

    time_s: float = 0.0
    segments: int = 0
    steps: int = 0
    samples: int = 0
    device_peak_allocated_bytes: int | None = None
    device_peak_reserved_bytes: int | None = None
    energy: list[dict[str, Any]] = field(default_factory=list)
    spans_s: list[tuple[float, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "time_s": self.time_s, "segments": self.segments, "steps": self.steps,
            "samples": self.samples,
            "device_peak_allocated_bytes": self.device_peak_allocated_bytes,
            "device_peak_reserved_bytes": self.device_peak_reserved_bytes,
        }


def _max_or_none(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


class Meter:
    """Measures named windows on one device.

    Args:
        device: The device whose work is measured.
        energy: The energy meter (a monitor without devices when none works).
        clock: Host clock in seconds (injectable for tests).
        origin: The clock reading that window spans and :meth:`elapsed_s` count from (a run's
            command start, so power.csv and the windows share one time axis); None: now.
        on_edge: Called as ``on_edge(name, "start" | "end")`` at each window edge, right
            after the device was synchronised and outside the timed span (a bench reads the
            GPU's clocks and temperature there).
    """

    def __init__(self, device: torch.device, energy: EnergyMeter,
                 clock: Clock = time.perf_counter, origin: float | None = None,
                 on_edge: Callable[[str, str], None] | None = None) -> None:
        self.device = device
        self.energy = energy
        self.clock = clock
        self.origin = clock() if origin is None else origin
        self.on_edge = on_edge
        self.windows: dict[str, WindowTotals] = {}
        self._open: dict[str, float] = {}

    @contextmanager
    def window(self, name: str) -> Iterator[WindowTotals]:
        """Measure the body as one segment of window ``name``; yields that window's totals."""
        totals = self.windows.setdefault(name, WindowTotals())
        synchronize(self.device)
        if self.on_edge is not None:
            self.on_edge(name, "start")
        reset_device_peak(self.device)
        token = self.energy.begin()
        start = self._open[name] = self.clock()
        try:
            yield totals
        finally:
            del self._open[name]
            synchronize(self.device)
            end = self.clock()
            totals.time_s += end - start
            totals.spans_s.append((start - self.origin, end - self.origin))
            totals.segments += 1
            totals.energy.append(self.energy.end(token))
            allocated, reserved = device_peaks(self.device)
            totals.device_peak_allocated_bytes = _max_or_none(
                totals.device_peak_allocated_bytes, allocated)
            totals.device_peak_reserved_bytes = _max_or_none(
                totals.device_peak_reserved_bytes, reserved)
            if self.on_edge is not None:
                self.on_edge(name, "end")

    def elapsed_s(self) -> float:
        """Seconds since the origin."""
        return self.clock() - self.origin

    def open_since(self, name: str) -> float | None:
        """Start time of window ``name``'s segment running now, or None when it is closed."""
        return self._open.get(name)

    def totals(self, name: str) -> WindowTotals:
        """Totals of window ``name`` (empty when it never ran)."""
        return self.windows.get(name, WindowTotals())
