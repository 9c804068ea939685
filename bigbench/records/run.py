"""run.json (schema ``bigbench.run/1``): the record of one training run.

Written as ``running`` when training starts (identification, config, environment, model, data)
and rewritten with the final status and every measured section when it ends.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from bigbench.records.common import (
    RUN_SCHEMA,
    EnergyDevice,
    EnergyStatus,
    Environment,
    Part,
    Quality,
    ReasonedSection,
    Section,
    StepTimes,
    absent,
    field,
)

#: Sections every finished record (status other than "running") carries.
FINISHED_SECTIONS = ("progress", "throughput", "memory", "energy", "flops", "eval", "time",
                     "windows", "files")
_FINISHED = "Absent while the run is running."


class TrainSettings(Part):
    """The ``train`` section of the resolved config: the keys results are compared by."""

    batch_size: int = field("Samples per step.")
    precision: str = field("fp32, bf16 or fp16 (bf16/fp16 under autocast).")
    compile: bool = field("Whether the model ran under torch.compile.")
    channels_last: bool | Literal["auto"] = field(
        "channels_last as configured; performance.channels_last says what was used.", "auto")


class RunConfig(Part):
    """The resolved experiment config (its full schema: ``bigbench schema config``)."""

    name: str = field("Experiment name.")
    model: dict[str, Any] = field("Model name and arguments.")
    data: dict[str, Any] = field("Dataset name and arguments.")
    train: TrainSettings = field("Training settings.")
    device: str = field("Device as configured: auto, cpu, cuda or cuda:N.")
    output: dict[str, Any] = field("Where run directories go.", default_factory=dict)
    measure: dict[str, Any] = field("Measurement settings.", default_factory=dict)
    bench: dict[str, Any] | None = field("The config's bench: section.", None)


class Performance(Part):
    """Runtime settings the run actually used."""

    threads: int | None = field("torch intra-op threads.")
    cudnn_benchmark: bool | None = field("cuDNN autotuning (null off CUDA).")
    input_pipeline: str = field("How batches reach the device.")
    zero_grad_set_to_none: bool = field("Gradients freed rather than zeroed.")
    loss_readback: str = field("How often the loss is read back to the host.")
    channels_last: bool = field("Whether the channels_last memory format was used.")
    precision: str = field("fp32, bf16 or fp16.")
    grad_scaler: bool = field("Whether a GradScaler scaled the loss (fp16 on CUDA).")
    compile: bool = field("Whether torch.compile was used.")
    optimizer_foreach: bool | None = field("The optimizer's foreach setting.")
    matmul_precision: str | None = field("torch float32 matmul precision.", None)
    matmul_tf32: bool | None = field("TF32 allowed for matmuls (null off CUDA).", None)
    conv_tf32: bool | None = field("TF32 allowed for convolutions (null off CUDA).", None)


class ModelInfo(Part):
    """The model that was trained."""

    name: str = field("Registry name.")
    family: str = field("Model family, e.g. cnn or recurrent.")
    params: int = field("Parameters.")
    trainable_params: int = field("Trainable parameters.")
    args: dict[str, Any] = field("Resolved model arguments (see `bigbench models`).")


class DataSummary(Part):
    """The dataset's shape facts."""

    name: str = field("Registry name.")
    sample_shape: list[int] = field("Shape of one input sample.")
    num_classes: int | None = field("Classes (null for token prediction without classes).")
    vocab_size: int | None = field("Token vocabulary (null for non-token inputs).")
    train_size: int = field("Training samples.")
    test_size: int | None = field("Test samples (null or 0: no test split).")
    entropy_floor: float | None = absent("The generated corpus's exact lowest reachable mean "
                                         "cross-entropy on its windows, nats/token.")


class Resume(Part):
    """One resume of an interrupted run."""

    at: str = field("UTC time of the resume, ISO 8601.")
    from_step: int = field("Step the run resumed from.")
    config_changes: list[str] = field("Accepted config changes, 'key: old → new'.")


class Progress(Part):
    """How far training got."""

    steps: int = field("Steps done.")
    total_steps: int = field("Steps planned.")
    extra_steps: int = field("Steps past the plan (measure.extend_to_min_window).")
    epochs_completed: int = field("Epochs completed.")
    samples: int = field("Samples processed.")
    last_loss: float | None = field("Last loss read back (null: not finite or none).")
    last_finite_loss: float | None = field("Last finite loss read back.")
    skipped_steps: int = field("Steps skipped for a non-finite loss (on_nan: skip_step).")


class Throughput(Section):
    """Speed of the measured window: its samples divided by its time."""

    samples_per_s: float | None = field("Measured samples / measured time, samples/s.")
    tokens_per_s: float | None = field("samples_per_s × sequence length, tokens/s.")
    step_time_s: StepTimes = field("Durations of the measured steps, s.")
    measured_steps: int = field("Steps in the measured window.")
    measured_samples: int = field("Samples in the measured window.")
    measured_time_s: float = field("Time of the measured window, s.")
    warmup_steps: int = field("Warm-up steps run (outside the measured window).")
    warmup_steps_configured: int | None = field("train.warmup_steps.", None)
    extra_steps: int | None = field("Steps run past the plan to reach the min window.", None)


class RunMemory(Section):
    """Peak memory."""

    host_peak_rss_bytes: int | None = field("Peak resident set size of the process, bytes.")
    device_peak_allocated_bytes: int | None = field("CUDA allocator peak, bytes.")
    device_peak_reserved_bytes: int | None = field("CUDA reserved peak, bytes.")


class IdleEnergy(ReasonedSection):
    """Idle baseline (measure.idle_s)."""

    duration_s: float = field("Idle window duration, s.")
    energy_j: float | None = field("Energy of the idle window, J.", None)
    power_w: float | None = field("Idle power, W.")
    measured_window_idle_j: float | None = field("Idle power × measured time, J.", None)
    measured_window_active_j: float | None = field("Measured energy minus idle share, J.", None)


class Sampler(Part):
    """The power sampler thread."""

    interval_s: float = field("Sampling period, s.")
    ticks: int = field("Sampler ticks.")
    errors: dict[str, str] = field("Per-device sampling errors (meter key → error).")


class RunEnergy(ReasonedSection):
    """Energy of the measured window, summed over the measured devices."""

    status: EnergyStatus = field("measured (every meter), partial (some) or unavailable.")
    window: str | None = field("The window these figures cover (measured).", None)
    total_j: float | None = field("Energy of the measured window, J.")
    uncertainty_j: float | None = field("Half-width of total_j's error bound, J.", None)
    j_per_sample: float | None = field("total_j / measured samples, J/sample.")
    j_per_sample_uncertainty: float | None = field("Half-width of j_per_sample, J/sample.",
                                                   None)
    j_per_token: float | None = field("j_per_sample / tokens per sample, J/token (sequence "
                                      "inputs only).", None)
    samples_per_j: float | None = field("Measured samples / total_j, samples/J.")
    avg_power_w: float | None = field("total_j / measured time, W.")
    peak_power_w: float | None = field("Highest summed power at one sampler tick, W.")
    quality: Quality | None = field("Worst device quality: ok, low or invalid.", None)
    devices: list[EnergyDevice] = field("Per device, with provenance.")
    windows: dict[str, float | None] = field("Total energy of each window, J.",
                                             default_factory=dict)
    idle: IdleEnergy | None = absent("Idle baseline (with measure.idle_s).")
    sampler: Sampler | None = absent("Power sampler statistics.")
    min_window_s: float | None = field("Shortest window for quality ok, s.", None)
    scope: str | None = field("For a resumed run: which figures cover all segments and which "
                              "the last one.", None)


class RunFlops(Section):
    """FLOPs per sample, achieved FLOP/s, MFU and FLOPs per joule."""

    forward_per_sample: int | None = field("Forward FLOPs per sample.")
    train_step_per_sample: int | None = field("Forward + backward FLOPs per sample.")
    method: str | None = field("How FLOPs were counted.")
    achieved_flops_per_s: float | None = field("Train-step FLOPs × samples/s, FLOP/s.")
    mfu: float | None = field("achieved_flops_per_s / peak_flops_per_s (fraction).")
    mfu_invalid: float | None = field("An impossible MFU (> 1), recorded instead of mfu.", None)
    peak_flops_per_s: float | None = field("Dense peak of the math used, FLOP/s.")
    peak_dtype: str | None = field("Math mode of the peak (fp32, tf32, bf16, fp16).")
    peak_basis: str | None = field("Why that peak.", None)
    peak_source: str | None = field("Where the peak figure comes from.")
    flops_per_j: float | None = field("Measured-window FLOPs / its energy, FLOP/J.")


class Evaluation(Section):
    """The last evaluation."""

    accuracy: float | None = field("Test accuracy (fraction); for language models next-token "
                                   "top-1 accuracy.")
    loss: float | None = field("Mean test cross-entropy (per token for language models), nats.")
    perplexity: float | None = field("exp(loss) (language models).", None)
    bits_per_token: float | None = field("loss / ln 2 (language models), bits/token.", None)
    entropy_floor: float | None = absent("The generated corpus's exact lowest reachable loss, "
                                         "nats/token.")
    loss_above_floor: float | None = field("loss − entropy_floor, nats/token (generated "
                                           "corpus only).", None)
    samples: int = field("Samples evaluated.")
    step: int | None = field("Step of the evaluation.")
    epoch: int | None = field("Epoch of the evaluation.", None)


_TRAINING_TIME = ("training time: the compile (train.compile), warm-up and measured windows, "
                  "evaluation, checkpoints and the idle baseline excluded")


class TargetEvaluation(Part):
    """One evaluation compared with the target."""

    step: int = field("Optimizer steps done when the evaluation ran.")
    samples: int = field("Training samples processed by then.")
    value: float | None = field("The target metric's value (null: not finite, a diverged "
                                "model).")
    time_s: float | None = field(f"Training time up to this step, s ({_TRAINING_TIME}); "
                                 "null: unknown for an earlier process of a resumed run.")
    energy_j: float | None = field("Energy of the same windows over the measured devices, J "
                                   "(null: not measured).")
    energy_uncertainty_j: float | None = field("Half-width of energy_j's error bound, J (the "
                                               "windows' bounds added; null: unknown).", None)


class TrainingTarget(Section):
    """Time and energy to a quality target: the first evaluation that reached it."""

    metric: Literal["accuracy", "loss", "perplexity"] = field(
        "The evaluation metric compared: accuracy (fraction; next-token for language models), "
        "loss (nats per sample, or per token) or perplexity.")
    goal: float = field("The value to reach (train.target_accuracy, target_loss or "
                        "target_perplexity), in the metric's unit.")
    direction: Literal["max", "min"] = field("max: reached at or above the goal (accuracy); "
                                             "min: at or below (loss, perplexity).")
    reached: bool = field("Whether any evaluation reached the goal.")
    steps_to_target: int | None = field("Optimizer steps done at the first evaluation that "
                                        "reached the goal.")
    samples_to_target: int | None = field("Training samples processed by then.")
    time_to_target_s: float | None = field(f"Training time up to that step, s "
                                           f"({_TRAINING_TIME}).")
    energy_to_target_j: float | None = field("Energy of the same windows over the measured "
                                             "devices, J (null with the reason when energy "
                                             "was not measured; never 0).")
    energy_to_target_uncertainty_j: float | None = field(
        "Half-width of energy_to_target_j's error bound, J: the training windows' bounds "
        "added (an energy counter that moves in steps can be a step off at every edge of the "
        "segments evaluations split them into).", None)
    evaluations: list[TargetEvaluation] = field("Every evaluation so far, in order (a resumed "
                                                "run's earlier processes' included).")


class RunTime(Part):
    """Wall time and each window's time, s (one '<window>_s' key per window)."""

    __pydantic_extra__: dict[str, float | None] = Field(init=False)

    wall_s: float = field("Config loaded → results written, s.")
    startup_s: float | None = field("Process start → first training step, s.")


class WindowEnergy(Section):
    """One device's energy in one window."""

    key: str | None = field("Meter key.")
    energy_j: float | None = field("Energy, J.")
    uncertainty_j: float | None = field("Half-width of energy_j's bound, J.", None)
    method: str | None = field("Measurement method.")
    avg_power_w: float | None = field("Average power, W.")
    peak_power_w: float | None = field("Highest power sample, W.")
    samples: int | None = field("Power samples.")
    quality: Quality | None = field("ok, low or invalid.")
    reason: str | None = field("Why this device measured nothing in the window.", None)


class Window(Part):
    """Totals of one measurement window (idle, warmup, measured, eval, …)."""

    time_s: float = field("Time inside the window, s.")
    segments: int = field("Times the window was entered.")
    steps: int = field("Steps in the window.")
    samples: int = field("Samples in the window.")
    device_peak_allocated_bytes: int | None = field("CUDA allocator peak, bytes.")
    device_peak_reserved_bytes: int | None = field("CUDA reserved peak, bytes.")
    spans_s: list[list[float]] = field("[start, end] of each segment, seconds since the "
                                       "command started (power.csv's time axis; this "
                                       "process's segments only).", default_factory=list)
    energy: list[WindowEnergy] = field("Energy per device.", default_factory=list)


class RunError(Part):
    """Why a run failed."""

    type: str = field("Error type, e.g. out_of_memory.")
    message: str = field("The error message.")
    hint: str | None = field("How to fix it.", None)


class Files(Part):
    """Names of the files in the run directory (null: not written)."""

    config: str = field("The resolved config.")
    metrics: str = field("The metrics log.")
    weights: str | None = field("Final weights (safetensors).")
    power: str | None = field("Power samples CSV.")
    checkpoint: str | None = field("Latest checkpoint folder.")


class CompileCost(ReasonedSection):
    """What torch.compile cost and when it pays back."""

    first_step_s: float = field("The compiling first step, s.")
    first_step_energy_j: float | None = field("Its energy, J.")
    eager_step_s: float | None = field("Eager step time (throwaway copy), s.")
    compiled_step_s: float | None = field("Median compiled step time, s.")
    overhead_s: float | None = field("first_step_s - compiled_step_s, s.")
    payback_steps: int | None = field("Steps until compiling pays back.")


class RunSegment(Part):
    """What one process of a resumed run measured."""

    index: int = field("Segment number, from 0.")
    started_at: str = field("UTC start, ISO 8601.")
    finished_at: str | None = field("UTC end, ISO 8601.")
    steps: list[int] = field("[first step, last step].")
    measured_steps: int = field("Measured steps.")
    measured_samples: int = field("Measured samples.")
    measured_time_s: float = field("Measured time, s.")
    energy_j: float | None = field("Measured energy, J.")
    energy_uncertainty_j: float | None = field("Half-width of energy_j's bound, J.", None)
    energy_status: EnergyStatus | None = field("Energy status of the segment.")
    run_energy_j: float | None = field("Energy of every window of the segment, J (null: some "
                                       "window was not measured).", None)


class Carbon(ReasonedSection):
    """Emissions at a given grid intensity (measure.carbon_intensity_g_per_kwh)."""

    intensity_g_per_kwh: float = field("Grid carbon intensity, gCO2e/kWh.")
    measured_window_g: float | None = field("Measured window's emissions, gCO2e.")
    run_g: float | None = field("Whole run's emissions, gCO2e.")


class DistributedHost(Part):
    """One host of a distributed run."""

    host: str = field("Host name.")
    ranks: int = field("Ranks that ran on this host.")
    rank_ids: list[int] = field("Their global ranks, ascending.")


class DistributedDevice(EnergyDevice):
    """One device's energy over the measured window of the rank whose reading was kept."""

    host: str = field("Host the device is on; with key, what makes the device unique.")
    rank: int = field("Global rank whose reading was kept (the lowest rank that measured it).")


class DroppedDuplicate(Part):
    """A second reading of a device already counted (two ranks sharing a GPU, CPU packages
    reported by more than one rank): left out of every total."""

    host: str = field("Host of the device.")
    key: str = field("Meter key (kind:name for a meter that did not work).")
    rank: int = field("Global rank whose reading was left out.")
    kept_rank: int = field("Global rank whose reading was counted.")
    energy_j: float | None = field("The reading left out, J (null: it measured nothing).")
    kept_energy_j: float | None = field("The reading counted, J (null: not measured).")
    difference_j: float | None = field("energy_j - kept_energy_j, J (null: either is null).")
    agrees: bool = field("Whether the two readings are identical.")


class DistributedEnergy(ReasonedSection):
    """Energy of all ranks' measured windows: every (host, device) counted once, summed in
    float64, never averaged."""

    status: EnergyStatus = field("measured (every device of every host), partial (some) or "
                                 "unavailable (none).")
    total_j: float | None = field("Sum of the counted devices' energy, J.")
    uncertainty_j: float | None = field("Sum of their error bounds' half-widths, J (null when "
                                        "any counted device has no bound).")
    j_per_sample: float | None = field("total_j / all ranks' measured samples, J/sample.")
    j_per_sample_uncertainty: float | None = field("uncertainty_j / samples, J/sample.")
    samples_per_j: float | None = field("All ranks' measured samples / total_j, samples/J.")
    avg_power_w: float | None = field("total_j / the slowest rank's measured time, W.")
    quality: Quality | None = field("Worst quality of the counted devices: ok, low or "
                                    "invalid.")
    devices: list[DistributedDevice] = field("Each (host, device) once, with provenance.")
    dropped_duplicates: list[DroppedDuplicate] = field(
        "Readings of already-counted devices, left out of the totals.")


class DistributedRank(Section):
    """What one rank measured."""

    rank: int = field("Global rank.")
    local_rank: int = field("Rank on its host.")
    host: str = field("Host name.")
    device: str = field("torch device it trained on, e.g. cuda:1 or cpu.")
    samples: int = field("Samples in its measured window.")
    steps: int = field("Steps in its measured window.")
    time_s: float = field("Duration of its measured window, s.")
    samples_per_s: float | None = field("samples / time_s, samples/s.")
    step_time_s: StepTimes = field("Durations of its measured steps, s.")
    peak_memory_bytes: int | None = field("Peak memory of its device (or process), bytes.")
    energy_j: float | None = field("Energy of the devices counted under this rank, J (a "
                                   "shared device counts under one rank only).")
    energy_uncertainty_j: float | None = field("Half-width of energy_j's bound, J.")
    energy_devices: list[str] = field("Keys of the devices counted under this rank.")
    communication_per_step_s: float | None = field(
        "Mean time per measured step with a gradient all-reduce in flight, s.", None)
    communication_share: float | None = field(
        "communication time over the measured steps' time (0-1).", None)
    communication_steps: int | None = field(
        "Measured steps the communication figures cover: this process's (after --resume, "
        "the earlier processes' steps are not timed again).", None)


class Distributed(Section):
    """A distributed run's figures combined over all ranks on rank 0 (world size > 1)."""

    world_size: int = field("Ranks in the job.")
    hosts: list[DistributedHost] = field("Hosts, in order of their lowest rank.")
    samples: int = field("Measured samples of all ranks.")
    time_s: float = field("The slowest rank's measured window, s.")
    slowest_rank: int = field("The rank with the longest measured window.")
    samples_per_s: float | None = field("samples / time_s, samples/s.")
    step_time_s: StepTimes = field("Percentiles of all ranks' measured steps pooled, s.")
    energy: DistributedEnergy = field("Energy of every host and device, each counted once.")
    ranks: list[DistributedRank] = field("One row per rank, ascending.")
    strategy: str | None = field("ddp or fsdp.", None)
    backend: str | None = field("The collective backend in use (gloo, nccl).", None)
    nnodes: int | None = field("Nodes in the job.", None)
    nproc_per_node: int | None = field("Ranks per node.", None)
    batch_size_per_rank: int | None = field("train.batch_size: samples per step per rank.", None)
    global_batch_size: int | None = field("Samples per optimizer step over all ranks.", None)
    missing_ranks: list[int] = field("Ranks whose figures could not be built (their own "
                                     "record failed).", default_factory=list)
    communication_per_step_s: float | None = field(
        "Mean over the ranks of the time per measured step with a gradient all-reduce in "
        "flight, s (ddp; it overlaps the backward pass and includes waiting for the slowest "
        "rank); null with the reason under fsdp.", None)
    communication_share: float | None = field(
        "Mean over the ranks of that time over their step time (0-1).", None)


class DistributedError(Part):
    """Why a distributed run has no job figures (a rank failed or left the job)."""

    world_size: int = field("Ranks in the job.")
    error: str = field("The error the gather of the ranks' figures met, or why this rank did "
                       "not gather them (its loop ended on its own).")


class RunRecord(Part):
    """run.json: one training run (schema bigbench.run/1)."""

    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"status": {"const": "running"}}},
        "else": {"required": list(FINISHED_SECTIONS)}})

    schema_: Literal["bigbench.run/1"] = Field(alias="schema", description=f"'{RUN_SCHEMA}'.")
    status: Literal["running", "completed", "interrupted", "failed"] = field(
        "running (or killed), completed, interrupted or failed.")
    name: str = field("Experiment name.")
    run_dir: str = field("The run directory.")
    started_at: str | None = field("UTC start, ISO 8601.")
    finished_at: str | None = field("UTC end, ISO 8601 (null while running).")
    config: RunConfig = field("The resolved config.")
    env: Environment = field("Environment.")
    performance: Performance = field("Runtime settings used.")
    task: str | None = field("classification or language_modeling.", None)
    model: ModelInfo = field("The model.")
    data: DataSummary = field("The data.")
    resumed: list[Resume] | None = absent("Each resume (resumed runs).")
    stop_reason: str | None = field(
        "interrupted, non_finite_loss, out_of_memory, error, or target_reached "
        "(train.stop_at_target; status completed) (null: not stopped early).", None)
    stop_detail: str | None = field("Where and why the run stopped early.", None)
    progress: Progress | None = absent(f"Progress. {_FINISHED}")
    throughput: Throughput | None = absent(f"Throughput. {_FINISHED}")
    memory: RunMemory | None = absent(f"Peak memory. {_FINISHED}")
    energy: RunEnergy | None = absent(f"Energy. {_FINISHED}")
    flops: RunFlops | None = absent(f"FLOPs and MFU. {_FINISHED}")
    eval: Evaluation | None = absent(f"Last evaluation. {_FINISHED}")
    time: RunTime | None = absent(f"Times. {_FINISHED}")
    windows: dict[str, Window] | None = absent(f"Measurement windows. {_FINISHED}")
    error: RunError | None = field("Why a failed run failed (null otherwise).", None)
    files: Files | None = absent(f"Files in the run directory. {_FINISHED}")
    compile: CompileCost | None = absent("torch.compile cost (train.compile).")
    segments: list[RunSegment] | None = absent("Per-process segments (resumed runs).")
    carbon: Carbon | None = absent("Emissions (measure.carbon_intensity_g_per_kwh).")
    target: TrainingTarget | None = absent("Time and energy to the quality target (only with "
                                           "train.target_accuracy, target_loss or "
                                           "target_perplexity).")
    distributed: Distributed | None = absent("Figures combined over all ranks: throughput over "
                                             "the slowest rank's window, per-rank breakdown, "
                                             "energy with every (host, device) counted once "
                                             "(distributed runs only).")
    distributed_error: DistributedError | None = absent(
        "A distributed run whose ranks' figures could not be gathered: why.")

    @model_validator(mode="after")
    def _finished_sections(self) -> RunRecord:
        if self.status != "running":
            missing = [name for name in FINISHED_SECTIONS if getattr(self, name) is None]
            if missing:
                raise ValueError(f"a {self.status} record needs {', '.join(missing)}")
        return self
