"""The training loop of one process: epochs of engine steps, evaluation and checkpoints.

The loop owns no file format (the :class:`RunWriter` writes) and no hot loop (the
:class:`StepEngine` runs the steps); it decides what happens between epochs and turns every way
a run can end — completed, interrupted, out of memory, NaN loss, a full disk, a bug — into the
engine's stop reason plus an error record, so run.json can always be written.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from bigbench.checkpoint import TrainingPosition
from bigbench.distributed.group import Collectives
from bigbench.distributed.strategy import saved_state
from bigbench.engine import EngineState, LogEvent, StepEngine, train_phases
from bigbench.errors import OutputError
from bigbench.interrupt import StopRequest
from bigbench.loggers import RunLoggers
from bigbench.measuring.energy.monitor import EnergyMonitor
from bigbench.measuring.memory import oom_memory_figures
from bigbench.measuring.meter import Meter
from bigbench.measuring.timing import StepTimer
from bigbench.run_record import segment_summary
from bigbench.run_writer import RunWriter
from bigbench.target import (
    Target,
    TargetTracker,
    TrainingCost,
    checkpoint_state,
    job_cost,
    prior_cost,
    restored_evaluations,
    training_cost,
)
from bigbench.workload.build import Workload
from bigbench.workload.steps import build_step, evaluate


@dataclass
class TrainCallbacks:
    """How the caller follows the run (progress bars); all optional."""

    on_start: Callable[[int], None] = lambda total_steps: None
    on_step: Callable[[int], None] = lambda step: None
    on_log: Callable[[LogEvent], None] = lambda event: None
    on_eval: Callable[[dict[str, Any]], None] = lambda result: None
    on_phase: Callable[[str], None] = lambda message: None


@dataclass
class Restored:
    """Where a run continues from (a fresh run starts at step 0 with nothing before it).

    Attributes:
        position: The checkpoint's position (None: a fresh run).
        prior_segments: Segment summaries of the processes before this one.
        prior_durations_s: Their step durations.
        last_eval: The last evaluation before the interruption.
        target_state: The training cost and target evaluations up to the checkpoint (see
            :func:`bigbench.target.checkpoint_state`; None: a fresh run or an older checkpoint).
    """

    position: TrainingPosition | None = None
    prior_segments: list[dict[str, Any]] = field(default_factory=list)
    prior_durations_s: list[float] = field(default_factory=list)
    last_eval: dict[str, Any] | None = None
    target_state: dict[str, Any] | None = None

    def engine_state(self) -> EngineState:
        """The engine's counters at the restored position."""
        p = self.position
        if p is None:
            return EngineState()
        return EngineState(step=p.step, samples=p.samples, last_finite_loss=p.last_finite_loss,
                           skipped_steps=p.skipped_steps)


@dataclass
class LoopSettings:
    """The loop's plan, from the config.

    Attributes:
        warmup_steps: Steps before the measured window (again after a resume).
        min_measured_s: Extend the measured window to at least this long, given how many
            segments it has, and then until every energy quality rule is met (None: never
            extend).
        log_every, checkpoint_every: Intervals in steps (checkpoint None: only on a stop).
        eval_batch_size: Samples per evaluation batch.
        compile_step: The first step compiles the model and gets its own window.
        endless: Epochs are not counted: the plan's steps (``train.max_steps``) or the
            extended measured window decide when the run ends.
        eval_every: Steps between evaluations, plus one after the last step (None: at the
            end of each epoch).
        target: The quality target every evaluation is compared with (None: none).
        stop_at_target: End the run at the first evaluation that reaches the target.
    """

    warmup_steps: int
    min_measured_s: Callable[[int], float] | None
    log_every: int
    checkpoint_every: int | None
    eval_batch_size: int
    compile_step: bool
    endless: bool
    eval_every: int | None = None
    target: Target | None = None
    stop_at_target: bool = False


#: The most step durations a checkpoint gathers from all ranks (8 bytes each: 32 MiB); past
#: it, ranks other than 0 resume without their earlier step times.
MAX_GATHERED_DURATIONS = 4 * 1024 * 1024


class TrainingLoop:
    """Runs a workload's planned steps inside measurement windows."""

    def __init__(self, workload: Workload, settings: LoopSettings, writer: RunWriter,
                 meter: Meter, energy: EnergyMonitor, stop: StopRequest,
                 callbacks: TrainCallbacks, restored: Restored, started_at: str,
                 loggers: RunLoggers | None = None,
                 collectives: Collectives | None = None) -> None:
        self.workload, self.settings, self.writer = workload, settings, writer
        self.collectives = collectives
        self.loggers = loggers or RunLoggers()
        self.meter, self.energy, self.callbacks = meter, energy, callbacks
        self.restored, self.started_at = restored, started_at
        self.timer = StepTimer(workload.device, clock=meter.clock,
                               follower=workload.communication)
        position = restored.position
        self.epoch = position.epoch if position else 0
        self.first_step_in_epoch = position.step_in_epoch if position else 0
        self.epochs_done = position.epochs_done if position else 0
        self.last_eval = restored.last_eval
        resumed = position is not None
        self.prior_cost = prior_cost(restored.target_state, resumed)
        target = settings.target
        self.target = TargetTracker(target, self.prior_cost,
                                    restored_evaluations(restored.target_state, target)) \
            if target is not None else None
        self.error: dict[str, Any] | None = None
        #: True when the loop ended by an exception (out of memory, a write error, a bug, a
        #: second Ctrl-C): a decision of this process alone, which other ranks did not share.
        self.ended_alone = False
        self.first_step_at: float | None = None
        start = restored.engine_state()
        self.checkpoint_step = self.segment_from = start.step
        self._epoch_start_step = start.step - self.first_step_in_epoch
        total = workload.total_steps
        self.engine = StepEngine(
            build_step(workload, "train"), meter, self.timer,
            phases=train_phases(total, min(start.step + settings.warmup_steps, total),
                                compile_step=settings.compile_step, start_step=start.step,
                                min_measured_s_for_segments=settings.min_measured_s,
                                measured_until=self._enough_power_samples
                                if settings.min_measured_s is not None else None),
            log_every=settings.log_every, on_log=self._log, on_step=self._step,
            should_stop=lambda: stop.requested, checkpoint_every=settings.checkpoint_every,
            on_checkpoint=self.save_checkpoint, eval_every=settings.eval_every,
            on_eval=lambda: self._evaluate(self.epoch),
            skip_non_finite=workload.skip_non_finite,
            sum_over_ranks=collectives.sum if collectives is not None else None, start=start)

    def _enough_power_samples(self) -> bool:
        """The measured window, closed segments and the running one, has enough samples."""
        return self.energy.samples_reached(self.meter.totals("measured").energy,
                                           self.meter.open_since("measured"))

    @property
    def state(self) -> EngineState:
        """The engine's progress and stop reason."""
        return self.engine.state

    def run(self) -> BaseException | None:
        """Train to the end of the plan or a stop; returns an exception to re-raise, if any.

        The caller writes run.json in every case, then re-raises what this returns (a full
        disk, or a bug), so a crash never leaves the run without its record.
        """
        try:
            self.workload.model.train()
            self._epochs()
        except BaseException as exc:  # every way out is recorded; run.json comes next
            self.ended_alone = True
            return self._ended_by(exc)
        return None

    def _ended_by(self, exc: BaseException) -> BaseException | None:
        """Turn the exception that ended the loop into the stop reason and error record;
        returns it when the caller must re-raise it once run.json is written."""
        state = self.engine.state
        if isinstance(exc, KeyboardInterrupt):
            state.stop_reason = "interrupted"
            state.stop_detail = f"stopped by a second signal during step {state.step + 1}"
            return None
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            self._out_of_memory(exc)
            return None
        if isinstance(exc, OutputError):  # disk full or unwritable: keep what is on disk
            state.stop_reason, state.stop_detail = "write_error", exc.problems[0]
            self.error = {"type": "write_error", "message": exc.problems[0]}
            return exc
        # A bug, a runtime failure or an exit (SystemExit from a library, say): recorded,
        # then re-raised by the caller once run.json is written and the loggers are finished.
        state.stop_reason = "error"
        self.error = {"type": type(exc).__name__, "message": str(exc),
                      "traceback": "".join(traceback.format_exception(exc))}
        return exc

    def _epochs(self) -> None:
        workload, engine = self.workload, self.engine
        assert workload.batcher is not None
        self.callbacks.on_start(workload.total_steps)
        first = self.epoch
        epochs = itertools.count(first) if self.settings.endless else \
            range(first, workload.planned_epochs)
        for epoch in epochs:
            skip = self.first_step_in_epoch if epoch == first else 0
            self.epoch, self._epoch_start_step = epoch, engine.state.step - skip
            engine.run(workload.batcher.epoch(epoch, skip), epoch)
            if engine.state.stop_reason is not None:
                break
            self.epochs_done = epoch + 1
            if self.settings.eval_every is None:
                self._evaluate(epoch)
            if engine.finished:
                break
        if self._final_evaluation_due():
            self._evaluate(self.epoch)
        if engine.state.stop_reason == "interrupted" and self.checkpoint_step != engine.state.step:
            engine.checkpoint()  # so that --resume continues from exactly here

    def _final_evaluation_due(self) -> bool:
        """With ``eval_every``, the model after the last step is evaluated too (unless that
        step was just evaluated, or the run stopped early)."""
        step = self.engine.state.step
        return (self.settings.eval_every is not None and self.engine.state.stop_reason is None
                and step > 0 and (self.last_eval is None or self.last_eval["step"] != step))

    def _evaluate(self, epoch: int) -> None:
        data = self.workload.data
        if data is None or data.test is None:
            return
        with self.meter.window("eval"):
            metrics = evaluate(self.workload, data.test, self.settings.eval_batch_size,
                               self.collectives)
        # A diverged model evaluates to NaN/inf: that is a finding, stored as null with why.
        diverged = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        self.last_eval = {**{k: None if k in diverged else v for k, v in metrics.items()},
                          "samples": len(data.test), "step": self.engine.state.step,
                          "epoch": epoch}
        if diverged:
            self.last_eval["reasons"] = {
                k: f"the evaluation {k} is {v} (not finite): the model's outputs overflowed"
                for k, v in diverged.items()}
        entry = {"event": "eval", "time_s": self.meter.elapsed_s(), **self.last_eval}
        self.writer.log(entry)
        self.loggers.log_eval(entry)
        self.callbacks.on_eval(self.last_eval)
        self._compare_with_target()

    def _compare_with_target(self) -> None:
        """Record the evaluation against the target; with stop_at_target, end the run once
        it is reached (the training windows are all closed here, so their totals are final)."""
        tracker, state = self.target, self.engine.state
        if tracker is None or self.last_eval is None:
            return
        entry = tracker.record(state.step, state.samples * self._ranks, self.last_eval,
                               self._training_cost())
        first = tracker.first_reached
        if not self.settings.stop_at_target or first is None or state.stop_reason is not None:
            return
        state.stop_reason = "target_reached"
        state.stop_detail = (
            f"stopped at step {state.step}: {tracker.target.describe(entry.value)} reached the "
            f"target ({tracker.target.describe()})" if first is entry else
            f"stopped at step {state.step}: the target ({tracker.target.describe()}) was "
            f"reached at step {first.step}")

    def _out_of_memory(self, exc: BaseException) -> None:
        state, batch = self.engine.state, self.workload.batcher.batch_size  # type: ignore[union-attr]
        state.stop_reason = "out_of_memory"
        state.stop_detail = f"out of memory at step {state.step + 1} with batch size {batch}"
        self.error = {"type": "out_of_memory", "message": str(exc).strip().splitlines()[0],
                      "batch_size": batch, "memory": oom_memory_figures(self.workload.device),
                      "hint": f"lower train.batch_size (now {batch}), or find the largest that "
                              "fits with bigbench bench --find-max-batch"}

    def _step(self, step: int) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.time()
        self.callbacks.on_step(step)

    def _log(self, event: LogEvent) -> None:
        if self._ranks > 1 and event.samples_per_s is not None:
            # The loss is the job's (summed over the ranks); so is the rate: the gradient
            # all-reduce keeps the ranks in step, so the job does N times this rank's samples.
            event = dataclasses.replace(event, samples_per_s=event.samples_per_s * self._ranks)
        optimizer = self.workload.optimizer
        entry = {"event": "train", "time_s": self.meter.elapsed_s(),
                 "step": event.step, "epoch": event.epoch,
                 "loss": event.loss if event.loss == event.loss else None,
                 "lr": optimizer.param_groups[0]["lr"] if optimizer else None,
                 "samples_per_s": event.samples_per_s}
        self.writer.log(entry)
        self.loggers.log_train(entry)
        self.callbacks.on_log(event)

    def segments(self, finished_at: str | None = None) -> list[dict[str, Any]]:
        """Summaries of the earlier processes of a resumed run, plus this one's so far."""
        return [*self.restored.prior_segments, segment_summary(
            len(self.restored.prior_segments), self.started_at, finished_at, self.segment_from,
            self.engine.state.step, self.meter, self.energy)]

    def durations_s(self) -> list[float]:
        """Every measured step's duration, this run's earlier processes included."""
        return self.restored.prior_durations_s + self.timer.durations_s

    @property
    def _ranks(self) -> int:
        return self.collectives.rank.world_size if self.collectives is not None else 1

    def _training_cost(self) -> TrainingCost:
        """The training time and energy so far: this process's, or in a distributed job the
        job's (a collective: called at evaluations and checkpoints, which every rank reaches
        after the same step)."""
        own = training_cost(self.meter, self.energy)
        return own if self.collectives is None else job_cost(self.collectives.all_gather(own))

    def _durations_by_rank(self) -> list[torch.Tensor] | None:
        """Every rank's measured step durations so far, s (None: a single process, or more
        than :data:`MAX_GATHERED_DURATIONS` of them: every rank ran as many steps, so all
        ranks take the same decision without asking each other)."""
        durations = self.durations_s()
        if self.collectives is None or \
                len(durations) * self._ranks > MAX_GATHERED_DURATIONS:
            return None
        gathered = self.collectives.gather(durations)
        return None if gathered is None else \
            [torch.tensor(d, dtype=torch.float64) for d in gathered]

    def save_checkpoint(self) -> None:
        """Save everything --resume needs to continue bit-identically from this step."""
        state, w = self.engine.state, self.workload
        assert w.optimizer is not None
        # FSDP: every rank gathers the whole state here (a collective); rank 0 writes it.
        model, optimizer = saved_state(w.model, w.optimizer)
        self.writer.save_checkpoint(model, optimizer, w.schedule, TrainingPosition(
            step=state.step, epoch=self.epoch, step_in_epoch=state.step - self._epoch_start_step,
            epochs_done=self.epochs_done, samples=state.samples,
            last_finite_loss=state.last_finite_loss, skipped_steps=state.skipped_steps), extra={
            "durations": torch.tensor(self.durations_s(), dtype=torch.float64),
            # Each rank resumes with its own earlier step times (gathered: a collective every
            # rank joins, as every rank checkpoints after the same step).
            "durations_by_rank": self._durations_by_rank(),
            "segments": self.segments(), "last_eval": self.last_eval,
            "target": checkpoint_state(self.prior_cost, self._training_cost(),
                                       self.target),
            "scaler": w.scaler.state_dict() if w.scaler is not None else None,
            "threads": torch.get_num_threads(),
            # Each rank's data shard and position depend on the world size: resume needs it.
            "world_size": w.batcher.world_size if w.batcher is not None else 1})
        self.checkpoint_step = state.step
