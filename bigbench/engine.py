"""The one step engine: N steps of a step function inside measurement windows.

``train`` and ``bench`` configure it; nobody else writes a hot loop. Per step it calls the
step function, adds the detached loss to a device-side sum and marks the step timer; it reads the
loss back (one host sync) only every ``log_every`` steps. The first ``warmup_steps`` run in a
"warmup" window, the rest in "measured", so warm-up never reaches the reported figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bigbench.measuring.meter import Meter
from bigbench.measuring.timing import StepTimer

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
    skipped_steps: int = 0
    stop_reason: str | None = None
    stop_detail: str | None = None


@dataclass(frozen=True)
class Phase:
    """One stretch of the run, measured as one named window.

    Attributes:
        window: Name of the measurement window (``warmup``, ``measured``, ``repeat-2`` …).
        end_step: The phase ends once this many steps ran in total (None: by time alone).
        min_s: …and not before its window has lasted this long (0: no minimum).
        timed: Record every step's duration (the warm-up is not timed).
        min_s_for_segments: A minimum that grows with the number of segments the window was
            split into (energy quality: every segment edge can lose a power sample).
        until: Once the minimum duration is reached, the phase also runs until this is true
            (checked after every step from then on; e.g. enough power samples).
    """

    window: str
    end_step: int | None
    min_s: float = 0.0
    timed: bool = True
    min_s_for_segments: Callable[[int], float] | None = None
    until: Callable[[], bool] | None = None

    def minimum_s(self, segments: int) -> float:
        """The minimum duration of a window that has ``segments`` segments so far."""
        if self.min_s_for_segments is not None:
            return max(self.min_s, self.min_s_for_segments(segments))
        return self.min_s


def train_phases(total_steps: int, warmup_end: int, min_measured_s: float = 0.0,
                 compile_step: bool = False, start_step: int = 0,
                 min_measured_s_for_segments: Callable[[int], float] | None = None,
                 measured_until: Callable[[], bool] | None = None) -> list[Phase]:
    """(Compilation: the first step, alone,) warm-up, then one measured window.

    Args:
        total_steps: Planned steps in all.
        warmup_end: Step at which the warm-up ends.
        min_measured_s: Extend the measured window to at least this long (0: no minimum).
        compile_step: Give the first step, which compiles the model, its own window.
        start_step: Step the run starts from (a resumed run compiles again).
        min_measured_s_for_segments: A minimum for the measured window that grows with its
            number of segments (see :class:`Phase`).
        measured_until: Past that minimum, keep measuring until this is true.
    """
    phases = [Phase("compile", start_step + 1, timed=False)] if compile_step else []
    return phases + [Phase("warmup", min(warmup_end, total_steps), timed=False),
                     Phase("measured", total_steps, min_s=min_measured_s,
                         min_s_for_segments=min_measured_s_for_segments,
                         until=measured_until)]


class StepEngine:
    """Runs steps through a plan of phases, each inside its own measurement window.

    Args:
        step_fn: Does one step on a batch and returns the loss tensor (not synchronised).
        meter: Measures the windows.
        timer: Times the steps of timed phases.
        phases: The plan, in order (see :func:`train_phases`).
        log_every: Steps between loss read-backs.
        on_log: Called with each :class:`LogEvent`.
        on_step: Called after every step with the step count (progress bars).
        should_stop: Polled after every step; True ends the run as "interrupted".
        checkpoint_every: Steps between calls of ``on_checkpoint`` (None: never). The current
            window is closed first and the checkpoint gets a "checkpoint" window of its own, so
            saving never counts as training time.
        on_checkpoint: Saves a checkpoint of the state after the current step.
        eval_every: Steps between calls of ``on_eval`` (None: never). Like a checkpoint, the
            current window is closed first, so the evaluation (which opens its own "eval"
            window) never counts as training time; at a step that has both, the evaluation
            runs first, so the checkpoint holds its result.
        on_eval: Evaluates the model after the current step (may set the stop reason).
        skip_non_finite: Count steps whose loss is NaN/inf as skipped instead of stopping (the
            step function must then not apply their update).
        sum_over_ranks: In a distributed job, sums a tensor over the ranks (an all-reduce
            every rank issues at the same log interval): the interval loss is then the job's,
            so a NaN on any rank stops every rank after the same step.
        start: State to continue from (a resumed run).
    """

    def __init__(self, step_fn: Callable[[Batch], torch.Tensor], meter: Meter, timer: StepTimer,
                 *, phases: list[Phase], log_every: int,
                 on_log: Callable[[LogEvent], None] = lambda event: None,
                 on_step: Callable[[int], None] = lambda step: None,
                 should_stop: Callable[[], bool] = lambda: False,
                 checkpoint_every: int | None = None,
                 on_checkpoint: Callable[[], None] = lambda: None,
                 eval_every: int | None = None,
                 on_eval: Callable[[], None] = lambda: None,
                 skip_non_finite: bool = False,
                 sum_over_ranks: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 start: EngineState | None = None) -> None:
        self.step_fn = step_fn
        self.meter = meter
        self.timer = timer
        self.phases = phases
        self.log_every = log_every
        self.on_log = on_log
        self.on_step = on_step
        self.should_stop = should_stop
        self.checkpoint_every = checkpoint_every
        self.on_checkpoint = on_checkpoint
        self.eval_every = eval_every
        self.on_eval = on_eval
        self.skip_non_finite = skip_non_finite
        self.sum_over_ranks = sum_over_ranks
        self.state = start or EngineState()
        self._checkpoint_due = False
        self._eval_due = False
        self._finite: torch.Tensor | None = None
        self._phase = 0
        self._loss_sum: torch.Tensor | None = None
        self._interval_steps = 0
        self._interval_samples = 0
        self._interval_start = meter.clock()
        self._epoch = 0

    @property
    def total_steps(self) -> int:
        """Planned steps (the last phase's end step; time-bound phases may add more)."""
        ends = [p.end_step for p in self.phases if p.end_step is not None]
        return max(ends) if ends else 0

    @property
    def finished(self) -> bool:
        """True when every phase is done, or on a stop."""
        return self.state.stop_reason is not None or self._phase >= len(self.phases)

    @property
    def extra_steps(self) -> int:
        """Steps run past the plan to satisfy a phase's minimum duration."""
        return max(0, self.state.step - self.total_steps)

    def _done(self, phase: Phase, running_s: float) -> bool:
        if phase.end_step is not None and self.state.step < phase.end_step:
            return False
        totals = self.meter.totals(phase.window)
        # Inside a segment, the one running is not counted in totals.segments yet.
        minimum = phase.minimum_s(totals.segments + (1 if running_s else 0))
        if minimum <= 0:
            return phase.end_step is not None
        if totals.time_s + running_s < minimum:
            return False
        return phase.until is None or phase.until()

    def run(self, batches: Iterable[Batch], epoch: int) -> None:
        """Run the plan on ``batches`` until they run out, the plan ends or a stop."""
        self._epoch = epoch
        iterator = iter(batches)
        while not self.finished:
            phase = self.phases[self._phase]
            if self._done(phase, 0.0):
                self._phase += 1
                continue
            exhausted = self._segment(phase, iterator)
            self._between_windows()
            if self._done(phase, 0.0):
                self._phase += 1
            if exhausted:
                break
        self.flush_log()

    def _between_windows(self) -> None:
        """The evaluation and the checkpoint due after the step that closed the window."""
        if self._eval_due:
            self._eval_due = False
            self.on_eval()
        if self._checkpoint_due:
            self._checkpoint_due = False
            self.checkpoint()

    def checkpoint(self) -> None:
        """Save a checkpoint now, outside any training window."""
        with self.meter.window("checkpoint"):
            self.on_checkpoint()

    def _segment(self, phase: Phase, batches: Any) -> bool:
        """Run one phase in its window until it is done; True when the batches ran out."""
        state = self.state
        timed = phase.timed
        # Time is checked only once the phase's steps are done (or for time-bound phases).
        needs_clock = phase.min_s > 0 or phase.min_s_for_segments is not None
        with self.meter.window(phase.window) as totals:
            if timed:
                self.timer.start()
            opened = self.meter.clock()
            # The hot loop: no host synchronisation except inside _log every log_every steps.
            while not self._done(phase, self.meter.clock() - opened if needs_clock else 0.0):
                batch = next(batches, None)
                if batch is None:
                    return True
                loss = self.step_fn(batch)
                samples = batch[0].shape[0]
                if self.skip_non_finite:
                    self._add_finite(loss.detach())
                elif self._loss_sum is None:
                    self._loss_sum = loss.detach().clone()
                else:
                    self._loss_sum += loss.detach()
                state.step += 1
                state.samples += samples
                totals.steps += 1
                totals.samples += samples
                self._interval_steps += 1
                self._interval_samples += samples
                if timed:
                    self.timer.step_done()
                if state.step % self.log_every == 0:
                    self._log()
                    if timed:
                        self.timer.flush()  # events are complete after the loss read-back
                self.on_step(state.step)
                if state.stop_reason is not None:
                    break
                if self.should_stop():
                    state.stop_reason = "interrupted"
                    state.stop_detail = f"stopped by a signal after step {state.step}"
                    break
                self._eval_due = self.eval_every is not None and \
                    state.step % self.eval_every == 0
                self._checkpoint_due = self.checkpoint_every is not None and \
                    state.step % self.checkpoint_every == 0
                if self._eval_due or self._checkpoint_due:
                    break  # both run between windows, outside training time
        return False

    def _add_finite(self, loss: torch.Tensor) -> None:
        """Sum only finite losses, and count them, without a host sync."""
        import torch

        finite = torch.isfinite(loss)
        value = torch.where(finite, loss, torch.zeros_like(loss))
        if self._loss_sum is None:
            self._loss_sum, self._finite = value.clone(), finite.to(loss.dtype)
        else:
            self._loss_sum += value
            self._finite += finite.to(loss.dtype)

    def flush_log(self) -> None:
        """Report the steps since the last log interval, if any."""
        if self._interval_steps:
            self._log()

    def _log(self) -> None:
        assert self._loss_sum is not None
        if self._finite is not None:
            finite = float(self._finite.item())
            self.state.skipped_steps += self._interval_steps - int(finite)
            loss = float(self._loss_sum.item()) / finite if finite else math.nan
            self._finite = None
        elif self.sum_over_ranks is not None:
            import torch

            # Every rank ran the same steps in the interval: sum(losses) / sum(steps) is the
            # mean loss of the job's global batches. Still the interval's one sync.
            packed = torch.stack([self._loss_sum.reshape(()).float(),
                                  self._loss_sum.new_tensor(float(self._interval_steps),
                                                            dtype=torch.float32)])
            packed = self.sum_over_ranks(packed)
            loss = float((packed[0] / packed[1]).item())
        else:
            loss = float((self._loss_sum / self._interval_steps).item())  # the one sync
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
        elif self.state.stop_reason is None and not self.skip_non_finite:
            self.state.stop_reason = "non_finite_loss"
            self.state.stop_detail = (
                f"training loss became {loss} in the {event.interval_steps} steps up to step "
                f"{event.step}; last finite loss {self.state.last_finite_loss}; lower the "
                "learning rate or set train.grad_clip"
            )
        self.on_log(event)
