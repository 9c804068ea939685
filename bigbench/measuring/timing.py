"""Per-step timing without a host synchronisation per step.

On the CPU, operators run synchronously, so a host timestamp after each step is the step's end.
On CUDA the host only queues work, so each step end is a CUDA event recorded on the stream; the
events are read back only after a synchronisation the loop makes anyway (the loss read-back at a
log interval, or the window's closing sync), so timing never adds a sync of its own.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

Clock = Callable[[], float]


class StepMarks(Protocol):
    """Something timed per step alongside the steps themselves (see ``follower``)."""

    def start(self) -> None: ...
    def step_done(self) -> None: ...
    def flush(self) -> None: ...


class StepTimer:
    """Collects the duration of every step in seconds.

    Args:
        device: The device the steps run on.
        clock: Host clock in seconds (injectable for tests).
        follower: Told of every start, step end and flush too, so it times the same steps
            (e.g. the gradient communication inside them).
    """

    def __init__(self, device: torch.device, clock: Clock = time.perf_counter,
                 follower: StepMarks | None = None) -> None:
        self._follower = follower
        self._cuda = device.type == "cuda"
        self._clock = clock
        self._durations = array("d")
        self._last: Any = None
        self._pending: list[Any] = []  # CUDA events not yet converted to durations

    def start(self) -> None:
        """Mark the start of a contiguous run of steps (call right after a device sync)."""
        self.flush()
        if self._follower is not None:
            self._follower.start()
        self._last = self._event() if self._cuda else self._clock()

    def step_done(self) -> None:
        """Mark the end of one step."""
        if self._follower is not None:
            self._follower.step_done()
        if self._cuda:
            self._pending.append(self._event())
        else:
            now = self._clock()
            self._durations.append(now - self._last)
            self._last = now

    def flush(self) -> None:
        """Convert recorded CUDA events to durations. Call only after the device was synced."""
        if self._follower is not None:
            self._follower.flush()
        if not self._pending:
            return
        previous = self._last
        for event in self._pending:
            self._durations.append(previous.elapsed_time(event) / 1000.0)  # ms → s
            previous = event
        self._last = previous
        self._pending = []

    @property
    def durations_s(self) -> list[float]:
        """Every step duration so far, in seconds."""
        self.flush()
        return list(self._durations)

    def _event(self) -> Any:
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event
