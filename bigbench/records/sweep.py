"""sweep.json (schema ``bigbench.sweep/1``): training runs over batch size × precision × power
limit, each combination's medians, the Pareto set over (time, energy) and the eta optimum.

Rewritten after every trial, so a document may be ``running`` or ``interrupted`` with fewer
trials than ``planned``; the results and the frontier always cover the trials finished so far.
Each trial's own run directory (``trials/<id>/``, its path in ``run_dir``) holds its run.json.
A figure that was not measured is null and its section's ``reasons`` says why.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from bigbench.records.bench import GpuSnapshot
from bigbench.records.common import Part, Section, Spread, absent, field
from bigbench.records.run import RunConfig

#: Identifier in the ``schema`` key of sweep.json.
SWEEP_SCHEMA = "bigbench.sweep/1"
#: Sections every completed document carries.
COMPLETED_SECTIONS = ("frontier",)

RunStatus = Literal["running", "completed", "interrupted", "failed"]
PowerLimit = float | str | None


class SweepRunConfig(RunConfig):
    """The resolved experiment config, its sweep: section included (its full schema:
    ``bigbench schema config``)."""

    sweep: dict[str, Any] = field(
        "The config's sweep: section: batch_sizes, precisions, power_limits, repeats, eta and "
        "the cooldown settings.")


class SweepDevice(Part):
    """The device every trial trained on."""

    type: str = field("cpu or cuda.")
    name: str = field("Marketing name.")
    index: int | None = field("CUDA device index (null on a CPU).")
    uuid: str | None = field("NVML UUID (null on a CPU).")


class SweepSettings(Part):
    """How the trials were ordered and how the optimum is chosen."""

    eta: float = field("Weight of energy in the cost eta·energy + (1 − eta)·max_power·time "
                       "(1: least energy; 0: least time).")
    repeats: int = field("Trials per combination.")
    order: str = field("How trials are ordered (interleaved rounds, rotated each round).")
    device: SweepDevice = field("The device of every trial: type, name, CUDA index, UUID.")


class SweepCombination(Part):
    """One planned setting."""

    id: str = field("Unique name, e.g. bs32-fp32 or bs32-fp32-250W.")
    batch_size: int = field("train.batch_size, samples per optimizer step.")
    precision: str = field("train.precision: fp32, bf16 or fp16.")
    power_limit: PowerLimit = field("The power limit as configured: W, 'max' or 'default' "
                                    "(null: left alone).")


class SweepGpu(Part):
    """The GPU's power limits: its range, the original settings and their restoration."""

    index: int = field("CUDA device index.")
    state_file: str = field("File in the sweep folder holding the original settings "
                            "(bigbench gpu restore reads it after a hard kill).")
    allowed_range_w: list[float] = field("[lowest, highest] power limit the GPU allows, W.")
    original: GpuSnapshot = field("The GPU's state before the sweep changed anything.")
    limits_w: dict[str, float] = field("Each configured limit ('250W', 'max', 'default') → "
                                       "the watts it resolved to.")
    restored: bool | None = field("Whether the original settings were put back (null: the "
                                  "sweep is running).")
    restore_error: str | None = absent("Why restoring failed.")


class Cooldown(Part):
    """The wait before a trial."""

    waited_s: float = field("Seconds waited.")
    temperature_start_c: float | None = field("GPU temperature when the wait began, °C (null: "
                                              "not read).")
    temperature_end_c: float | None = field("GPU temperature when the trial began, °C (null: "
                                            "not read).")
    timed_out: bool | None = field("Whether the temperature wait ran out "
                                   "(sweep.cooldown_timeout_s; null: no temperature wait).")


class SweepTarget(Part):
    """The quality target the trials' runs trained to (from their run.json)."""

    metric: str | None = field("accuracy, loss or perplexity.")
    goal: float | None = field("The value to reach.")
    direction: str | None = field("max: reached at or above the goal (accuracy); min: at or "
                                  "below (loss, perplexity).")


class SweepTrial(Section):
    """One training run of the sweep; figures from its run.json (absent: the trial raised
    before its run finished)."""

    id: str = field("Unique name and folder under trials/: <n>-<combination>-r<round>.")
    combination: str = field("The combination's id.")
    round: int = field("0-based repeat round.")
    position: int = field("0-based position in the sweep's running order.")
    batch_size: int = field("train.batch_size.")
    precision: str = field("train.precision.")
    power_limit: PowerLimit = field("The power limit as configured (null: left alone).")
    power_limit_w: float | None = field("The limit set for this trial, W (null: left alone).")
    status: RunStatus = field("running, completed, interrupted or failed (the run's status, or "
                              "failed when training raised).")
    reason: str | None = absent("Why the trial did not complete.")
    run_dir: str | None = field("The trial's run directory (null: none was written).")
    started_at: str = field("UTC start, ISO 8601.")
    duration_s: float | None = absent("Wall time of the training run, s.")
    cooldown: Cooldown | None = absent("The wait before the trial (absent: none).")
    telemetry_start: GpuSnapshot | None = absent("GPU state after its limit was set (sweeps "
                                                 "with power limits).")
    telemetry_end: GpuSnapshot | None = absent("GPU state after the trial (sweeps with power "
                                               "limits).")
    samples_per_s: float | None = field("Throughput of the run's measured window, samples/s.",
                                        None)
    s_per_sample: float | None = field("1 / samples_per_s, s/sample.", None)
    j_per_sample: float | None = field("Energy per sample of the measured window (run.json "
                                       "energy.j_per_sample), J/sample.", None)
    avg_power_w: float | None = field("Average power of the measured window, W (every metered "
                                      "device summed).", None)
    limit_in_effect_w: float | None = field("The GPU power limit in effect at the end of the "
                                            "measured window, W.", None)
    max_power_limit_w: float | None = field("The GPU's maximum power limit, W.", None)
    energy_status: str | None = field("measured, partial or unavailable.", None)
    energy_quality: str | None = field("ok, low or invalid (null: not measured).", None)
    eval: dict[str, float | None] | None = absent(
        "The run's final evaluation: accuracy (fraction), loss (nats), perplexity.")
    target_reached: bool | None = absent("Whether the run reached its quality target.")
    time_to_target_s: float | None = field("Training time to the first evaluation that "
                                           "reached the target, s (run.json target; absent "
                                           "without a target, null when not reached).", None)
    energy_to_target_j: float | None = field("Energy to that evaluation, J (run.json target; "
                                             "absent without a target, null when not "
                                             "reached or not measured).", None)
    target: SweepTarget | None = absent("The run's quality target.")


class ResultPareto(Part):
    """Where a combination stands on the (time, energy) frontier."""

    dominated: bool = field("Whether another combination is at least as good in time and "
                            "energy and better in one.")
    dominated_by: list[str] = field("The combinations dominating it (empty: on the front).")


class SweepResult(Section):
    """One combination over its completed repeats."""

    id: str = field("The combination's id.")
    batch_size: int = field("train.batch_size.")
    precision: str = field("train.precision.")
    power_limit: PowerLimit = field("The power limit as configured (null: left alone).")
    power_limit_w: float | None = field("The watts it resolved to (null: left alone).")
    trials: list[str] = field("Its trials so far.")
    completed: int = field("Completed trials (the figures are their medians).")
    samples_per_s: Spread | None = field("Throughput over the repeats, samples/s.")
    j_per_sample: Spread | None = field("Energy per sample over the repeats, J/sample.")
    avg_power_w: Spread | None = field("Average power over the repeats, W.")
    time_to_target_s: Spread | None = field("Time to target over the repeats, s (absent "
                                            "without a target; null: not every completed "
                                            "repeat reached it, see reasons).", None)
    energy_to_target_j: Spread | None = field("Energy to target over the repeats, J (absent "
                                              "without a target; null: see reasons).", None)
    s_per_sample: float | None = field("1 / median samples_per_s, s/sample.")
    time_s: float | None = field("The frontier's time: s_per_sample, or the median time to "
                                 "target (s).")
    energy_j: float | None = field("The frontier's energy: median J/sample, or the median "
                                   "energy to target (J).")
    pareto: ResultPareto | None = field("Pareto marks (null: time or energy missing).")
    cost: float | None = field("eta·energy_j + (1 − eta)·max_power_w·time_s, J/sample or J "
                               "(null: not costed).")
    optimal: bool = field("Whether it is the eta-optimal combination.")


class SweepOptimum(Part):
    """The combination minimising eta·energy + (1 − eta)·max_power·time (Zeus, NSDI'23)."""

    eta: float = field("Weight of energy, 0..1.")
    combination: str | None = field("The optimal combination (null: none could be costed, "
                                    "see reason).")
    cost: float | None = field("Its cost, in cost_unit.")
    cost_unit: str = field("J/sample (per-sample basis) or J (to target).")
    max_power_w: float | None = field("The power that turns time into joules, W.")
    max_power_source: Literal["gpu_max_power_limit", "largest_measured_avg_power"] | None = \
        field("gpu_max_power_limit (the GPU's maximum power limit) or "
              "largest_measured_avg_power (no limit known: the largest trial average).")
    max_power_reason: str | None = field("Why max_power_w is null.")
    reason: str | None = field("Why there is no optimum.")


class SweepFrontier(Part):
    """The Pareto set over (time, energy) of the combinations, and the eta optimum."""

    basis: Literal["per_sample", "to_target"] = field(
        "per_sample (s/sample = 1/throughput and J/sample) or to_target (time and energy to "
        "the quality target, s and J).")
    time_key: str = field("The results' figure used as time.")
    energy_key: str = field("The results' figure used as energy.")
    time_unit: str = field("s/sample or s.")
    energy_unit: str = field("J/sample or J.")
    front: list[str] = field("Combinations no other beats on both time and energy.")
    excluded: dict[str, str] = field("Combinations left out (time or energy missing) → why.")
    reason: str | None = field("Why the front is empty.")
    optimum: SweepOptimum = field("The eta-optimal combination.")


class SweepDocument(Part):
    """sweep.json: training runs over settings and their frontier (schema bigbench.sweep/1)."""

    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"status": {"const": "completed"}}},
        "then": {"required": list(COMPLETED_SECTIONS)}})

    schema_: Literal["bigbench.sweep/1"] = Field(alias="schema",
                                                 description=f"'{SWEEP_SCHEMA}'.")
    status: RunStatus = field("running (or killed), completed, interrupted or failed.")
    name: str = field("Experiment name.")
    started_at: str = field("UTC start, ISO 8601.")
    finished_at: str | None = field("UTC end, ISO 8601 (null while running).")
    config: SweepRunConfig = field("The resolved experiment config.")
    settings: SweepSettings = field("Order, eta and device.")
    combinations: list[SweepCombination] = field("Every planned combination.")
    planned: list[str] = field("Every planned trial id, in running order.")
    gpu: SweepGpu | None = field("The GPU's power limits (null: the sweep leaves them "
                                 "alone).")
    trials: list[SweepTrial] = field("Trials started so far, in running order.")
    results: list[SweepResult] = field("Each combination over its completed trials.")
    frontier: SweepFrontier | None = field("The Pareto set and the eta optimum (null before "
                                           "the first trial finished).")
    target: SweepTarget | None = absent("The quality target of the trials' runs (absent: "
                                        "none; the frontier is per sample).")
    error: str | None = absent("The error that stopped a failed sweep.")
    traceback: str | None = absent("Its traceback (the last frames).")
    reason: str | None = absent("Why the sweep stopped early.")

    @model_validator(mode="after")
    def _completed_sections(self) -> SweepDocument:
        if self.status == "completed":
            missing = [name for name in COMPLETED_SECTIONS if getattr(self, name) is None]
            if missing:
                raise ValueError(f"a completed document needs {', '.join(missing)}")
        return self
