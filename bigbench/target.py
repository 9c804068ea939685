"""Time and energy to a quality target, MLPerf-style: the first evaluation that reaches it.

A run with ``train.target_accuracy``, ``target_loss`` or ``target_perplexity`` compares every
evaluation with the target. The first evaluation that reaches it fixes the run's figures: the
steps and samples trained by then, and the training time and energy up to that step.

Training time and energy are the sum of the *training* windows — the compiling first step
(``compile``, with ``train.compile``), the warm-up and the measured steps — and nothing else:
evaluations, checkpoints and the idle baseline run in windows of their own and are excluded.
The compiling step is included because it is a real training step (it counts toward
``steps_to_target``) and because compiling is part of what it costs to reach the target.

A resumed run carries the figures of its earlier processes in the checkpoint
(:func:`checkpoint_state`): the training time and energy up to the checkpoint's step and
every evaluation so far. Steps a hard kill lost after the last checkpoint are trained again, and
only the second time counts (the model that reached the target went through them once).

Torch-free: the tracker only reads window totals from the meter and the energy monitor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bigbench.measuring.energy.report import measured_total

if TYPE_CHECKING:
    from bigbench.config.schema import TrainConfig
    from bigbench.measuring.energy.monitor import EnergyMonitor
    from bigbench.measuring.meter import Meter

#: The windows whose time and energy count as training (evaluation and checkpoints excluded).
TRAIN_WINDOWS = ("compile", "warmup", "measured")

Direction = Literal["max", "min"]
_METRICS: dict[str, tuple[str, Direction]] = {
    "target_accuracy": ("accuracy", "max"),
    "target_loss": ("loss", "min"),
    "target_perplexity": ("perplexity", "min"),
}


@dataclass(frozen=True)
class Target:
    """A quality target.

    Attributes:
        metric: The evaluation metric compared: ``accuracy`` (fraction), ``loss`` (nats per
            sample, or per token for language models) or ``perplexity``.
        goal: The value to reach, in the metric's unit.
        direction: ``max``: reached at or above the goal (accuracy); ``min``: at or below.
    """

    metric: str
    goal: float
    direction: Direction

    def reached_by(self, value: float | None) -> bool:
        """Whether an evaluation's value reaches the goal (a null value never does)."""
        if value is None:
            return False
        return value >= self.goal if self.direction == "max" else value <= self.goal

    def describe(self, value: float | None = None) -> str:
        """``97% accuracy``, ``loss 0.5`` (the goal), or the same for ``value``."""
        shown = self.goal if value is None else value
        if self.metric == "accuracy":
            return f"{shown * 100:.4g}% accuracy"
        return f"{self.metric} {shown:.4g}"


def target_of(train: TrainConfig) -> Target | None:
    """The target the config sets (None: no target)."""
    key = train.target_key
    if key is None:
        return None
    metric, direction = _METRICS[key]
    return Target(metric, float(getattr(train, key)), direction)


@dataclass(frozen=True)
class TrainingCost:
    """Training time and energy so far: the training windows only.

    Attributes:
        time_s: Seconds inside the training windows (None: unknown — an earlier process of a
            resumed run did not record it).
        energy_j: Joules of the same windows over the measured devices (None: not measured).
        reason: Why ``energy_j`` (or ``time_s``) is None.
        uncertainty_j: Half-width of ``energy_j``'s error bound, J: the windows' bounds
            added (None: unknown). Every evaluation splits the training windows into more
            segments, and an energy counter that moves in steps (about every 100 ms on NVIDIA
            GPUs) can be a step off at each segment edge.
    """

    time_s: float | None
    energy_j: float | None
    reason: str | None = None
    uncertainty_j: float | None = None

    def plus(self, later: TrainingCost) -> TrainingCost:
        """This cost followed by ``later`` (an earlier process's, then this one's)."""
        time_s = None if self.time_s is None or later.time_s is None else \
            self.time_s + later.time_s
        if self.energy_j is not None and later.energy_j is not None:
            bounds = [self.uncertainty_j, later.uncertainty_j]
            return TrainingCost(time_s, math.fsum([self.energy_j, later.energy_j]), None,
                                None if None in bounds else math.fsum(bounds))  # type: ignore[arg-type]
        # This process's reason when it measured nothing either (usually the same machine and
        # cause); otherwise the earlier one's, which a reader could not see any more.
        reason = later.reason if later.energy_j is None else \
            f"energy was not measured in an earlier process of this resumed run ({self.reason})"
        return TrainingCost(time_s, None, reason)


#: Nothing trained yet.
NO_COST = TrainingCost(0.0, 0.0, None, 0.0)


def job_cost(ranks: Sequence[TrainingCost]) -> TrainingCost:
    """A distributed job's training cost from every rank's (in rank order).

    Time is the slowest rank's (the job has reached a step once its slowest rank has).
    Energy is the ranks' sum: each rank meters its own GPU and only local rank 0 a host's CPU
    packages, so no device is in two ranks' figures. Unknown (with the first rank's reason)
    when any rank's is.
    """
    times = [r.time_s for r in ranks]
    time_s = None if None in times else max(times)  # type: ignore[type-var]
    missing = next(((i, r) for i, r in enumerate(ranks) if r.energy_j is None), None)
    if missing is not None:
        return TrainingCost(time_s, None, f"rank {missing[0]}: {missing[1].reason}")
    bounds = [r.uncertainty_j for r in ranks]
    return TrainingCost(time_s, math.fsum(r.energy_j for r in ranks), None,  # type: ignore[misc]
                        None if None in bounds else math.fsum(bounds))  # type: ignore[arg-type]


def training_cost(meter: Meter, monitor: EnergyMonitor) -> TrainingCost:
    """Time and energy of this process's training windows so far (all of them closed).

    Called between windows (at an evaluation or a checkpoint), so every training window is
    closed and its totals are final up to the current step.
    """
    windows = [name for name in TRAIN_WINDOWS if name in meter.windows]
    time_s = math.fsum(meter.windows[name].time_s for name in windows)
    nothing = monitor.unavailable_reason()
    if nothing is not None:
        return TrainingCost(time_s, None, nothing)
    joules: list[float] = []
    bounds: list[float | None] = []
    for name in windows:
        entries = monitor.aggregate(meter.windows[name].energy)
        total, bound = measured_total(entries)
        if total is None:
            why = "; ".join(f"{e['name']}: {e['reason']}" for e in entries if e.get("reason"))
            return TrainingCost(time_s, None, f"the {name} window's energy was not measured"
                                + (f" ({why})" if why else ""))
        joules.append(total)
        bounds.append(bound)
    return TrainingCost(time_s, math.fsum(joules), None,
                        None if None in bounds else math.fsum(bounds))  # type: ignore[arg-type]


@dataclass
class TargetEvaluation:
    """One evaluation as the target sees it.

    Attributes:
        step: Optimizer steps done when it ran.
        samples: Training samples processed by then.
        value: The target metric's value (None: not finite, a diverged model).
        time_s: Training time up to this step, s (see :class:`TrainingCost`).
        energy_j: Energy of the same windows, J (None: ``energy_reason`` says why).
        energy_uncertainty_j: Half-width of ``energy_j``'s error bound, J (None: unknown).
    """

    step: int
    samples: int
    value: float | None
    time_s: float | None
    energy_j: float | None
    energy_reason: str | None = None
    energy_uncertainty_j: float | None = None

    def as_record(self) -> dict[str, Any]:
        """The entry of run.json's ``target.evaluations``."""
        return {"step": self.step, "samples": self.samples, "value": self.value,
                "time_s": self.time_s, "energy_j": self.energy_j,
                "energy_uncertainty_j": self.energy_uncertainty_j}


@dataclass
class TargetTracker:
    """Every evaluation compared with the target, and the first one that reached it.

    Attributes:
        target: What is to be reached.
        prior: Training time and energy of the earlier processes of a resumed run.
        evaluations: Every evaluation so far, earlier processes' included.
    """

    target: Target
    prior: TrainingCost = NO_COST
    evaluations: list[TargetEvaluation] = field(default_factory=list)

    @property
    def first_reached(self) -> TargetEvaluation | None:
        """The first evaluation that reached the target (None: not reached yet)."""
        return next((e for e in self.evaluations if self.target.reached_by(e.value)), None)

    def record(self, step: int, samples: int, metrics: Mapping[str, Any],
               now: TrainingCost) -> TargetEvaluation:
        """Add the evaluation of ``step`` (``now``: this process's training cost so far)."""
        value = metrics.get(self.target.metric)
        cost = self.prior.plus(now)
        entry = TargetEvaluation(step, samples, value if _finite(value) else None,
                                 cost.time_s, cost.energy_j,
                                 cost.reason if cost.energy_j is None else None,
                                 cost.uncertainty_j)
        self.evaluations.append(entry)
        return entry


def prior_cost(state: Mapping[str, Any] | None, resumed: bool) -> TrainingCost:
    """The training cost before this process: a checkpoint's (see :func:`checkpoint_state`),
    none for a fresh run, unknown for a checkpoint written without it."""
    if state is not None:
        return TrainingCost(**state["cost"])
    if not resumed:
        return NO_COST
    why = "the checkpoint holds no training time or energy (written by an older bigbench)"
    return TrainingCost(None, None, why)


def restored_evaluations(state: Mapping[str, Any] | None,
                         target: Target) -> list[TargetEvaluation]:
    """The evaluations a checkpoint kept, for the same metric only: another metric's values
    (a target changed on resume with --force) cannot be compared with this goal; a changed
    goal is simply applied to the kept values."""
    if state is None or state.get("metric") != target.metric:
        return []
    return [TargetEvaluation(**entry) for entry in state["evaluations"]]


def checkpoint_state(prior: TrainingCost, now: TrainingCost,
                     tracker: TargetTracker | None) -> dict[str, Any]:
    """What a checkpoint keeps: the training cost up to its step (always, so a target set
    only on resume still counts the earlier training) and the target's evaluations."""
    return {"cost": asdict(prior.plus(now)),
            "metric": tracker.target.metric if tracker else None,
            "goal": tracker.target.goal if tracker else None,
            "evaluations": [asdict(e) for e in tracker.evaluations] if tracker else []}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
