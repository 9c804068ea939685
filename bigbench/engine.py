"""The one step engine: N steps of a step function inside measurement windows.

``train`` (and later ``bench``) configure it; nobody else writes a hot loop. Per step it calls the
step function, adds the detached loss to a device-side sum and marks the step timer; it reads the
loss back (one host sync) only every ``log_every`` steps. The first ``warmup_steps`` run in a
"warmup" window, the rest in "measured", so warm-up never reaches the reported figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bigbench.measure.meter import Meter
from bigbench.measure.timing import StepTimer

if TYPE_CHECKING:
    import torch

Batch = tuple[Any, Any]


@dataclass
class LogEvent:
    """What the engine reports at each log interval.

    Attributes:
        step: Optimizer steps completed.
        epoch: Epoch the steps belong to.
        loss: Mean training loss over the interval.
        samples_per_s: Samples per second over the interval (host clock; progress only).
        interval_steps: Steps in the interval.
    """

    step: int
    epoch: int
    loss: float
    samples_per_s: float | None
    interval_steps: int


@dataclass
class EngineState:
    """Progress of the engine; ``stop_reason`` is set when it stopped early."""

    step: int = 0
    samples: int = 0
    last_loss: float | None = None
    last_finite_loss: float | None = None
    stop_reason: str | None = None
    stop_detail: str | None = None


class StepEngine:
    """Runs steps, switching from the warm-up window to the measured window.

    Args:
        step_fn: Does one step on a batch and returns the loss tensor (not synchronised).
        meter: Measures the windows.
        timer: Times the measured steps.
        total_steps: Stop after this many steps in all.
        warmup_steps: Steps before the measured window opens.
        log_every: Steps between loss read-backs.
        on_log: Called with each :class:`LogEvent`.
        on_step: Called after every step with the step count (progress bars).
        should_stop: Polled after every step; True ends the run as "interrupted".
        min_measured_s: Keep stepping past ``total_steps`` until the measured window lasts this
            long (0: never extend). The extra steps run on the same code path.
    """

    def __init__(self, step_fn: Callable[[Batch], torch.Tensor], meter: Meter, timer: StepTimer,
                 *, total_steps: int, warmup_steps: int, log_every: int,
                 on_log: Callable[[LogEvent], None] = lambda event: None,
                 on_step: Callable[[int], None] = lambda step: None,
                 should_stop: Callable[[], bool] = lambda: False,
                 min_measured_s: float = 0.0) -> None:
        self.step_fn = step_fn
        self.meter = meter
        self.timer = timer
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.log_every = log_every
        self.on_log = on_log
        self.on_step = on_step
        self.should_stop = should_stop
        self.min_measured_s = min_measured_s
        self.state = EngineState()
        self._loss_sum: torch.Tensor | None = None
        self._interval_steps = 0
        self._interval_samples = 0
        self._interval_start = meter.clock()
        self._epoch = 0

    @property
    def finished(self) -> bool:
        """True when all steps ran (and the measured window is long enough) or on a stop."""
        if self.state.stop_reason is not None:
            return True
        return self.state.step >= self.total_steps and not self._too_short(0.0)

    @property
    def extra_steps(self) -> int:
        """Steps run past ``total_steps`` to reach ``min_measured_s``."""
        return max(0, self.state.step - self.total_steps)

    def _too_short(self, running_s: float) -> bool:
        measured = self.meter.totals("measured").time_s + running_s
        return self.min_measured_s > 0 and measured < self.min_measured_s

    def run(self, batches: Iterable[Batch], epoch: int) -> None:
        """Run steps on ``batches`` until they run out, the total is reached or a stop."""
        self._epoch = epoch
        iterator = iter(batches)
        if self.state.step < self.warmup_steps:
            self._segment("warmup", iterator, min(self.warmup_steps, self.total_steps))
        if not self.finished and self.state.step >= self.warmup_steps:
            self._segment("measured", iterator, self.total_steps)
        self.flush_log()

    def _segment(self, window: str, batches: Any, limit: int) -> None:
        measured = window == "measured"
        state = self.state
        with self.meter.window(window) as totals:
            if measured:
                self.timer.start()
            opened = self.meter.clock()
            # The hot loop: no host synchronisation except inside _log every log_every steps.
            # Past the limit it only continues while the measured window is too short.
            while state.step < limit or (
                    measured and self._too_short(self.meter.clock() - opened)):
                batch = next(batches, None)
                if batch is None:
                    break
                loss = self.step_fn(batch)
                samples = batch[0].shape[0]
                if self._loss_sum is None:
                    self._loss_sum = loss.detach().clone()
                else:
                    self._loss_sum += loss.detach()
                state.step += 1
                state.samples += samples
                totals.steps += 1
                totals.samples += samples
                self._interval_steps += 1
                self._interval_samples += samples
                if measured:
                    self.timer.step_done()
                if state.step % self.log_every == 0:
                    self._log()
                    if measured:
                        self.timer.flush()  # events are complete after the loss read-back
                self.on_step(state.step)
                if state.stop_reason is not None:
                    break
                if self.should_stop():
                    state.stop_reason = "interrupted"
                    state.stop_detail = f"stopped by a signal after step {state.step}"
                    break

    def flush_log(self) -> None:
        """Report the steps since the last log interval, if any."""
        if self._interval_steps:
            self._log()

    def _log(self) -> None:
        assert self._loss_sum is not None
        loss = float((self._loss_sum / self._interval_steps).item())  # the interval's one sync
        now = self.meter.clock()
        elapsed = now - self._interval_start
        rate = self._interval_samples / elapsed if elapsed > 0 else None
        event = LogEvent(self.state.step, self._epoch, loss, rate, self._interval_steps)
        self._loss_sum = None
        self._interval_steps = self._interval_samples = 0
        self._interval_start = now
        self.state.last_loss = loss
        if math.isfinite(loss):
            self.state.last_finite_loss = loss
        elif self.state.stop_reason is None:
            self.state.stop_reason = "non_finite_loss"
            self.state.stop_detail = (
                f"training loss became {loss} in the {event.interval_steps} steps up to step "
                f"{event.step}; last finite loss {self.state.last_finite_loss}; lower the "
                "learning rate or set train.grad_clip"
            )
        self.on_log(event)
