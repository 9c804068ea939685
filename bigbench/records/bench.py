"""bench.json (schema ``bigbench.bench/1``): a benchmark matrix and every point's figures.

Rewritten after every point, so a document may be ``running`` or ``interrupted`` with fewer
points than its matrix. A point that did not run (``oom``, ``skipped``, ``failed``) carries its
``reason`` or ``error`` and none of the measured sections.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from bigbench.records.common import (
    BENCH_SCHEMA,
    EnergyDevice,
    EnergyStatus,
    Environment,
    Part,
    Quality,
    ReasonedSection,
    Section,
    Spread,
    StepTimes,
    absent,
    field,
)

#: Sections every point with status "ok" carries.
MEASURED_SECTIONS = ("samples_per_s", "latency_s", "memory", "energy", "flops")


class PointSettings(Part):
    """What identifies a point when two results are compared."""

    model: str = field("Registry model name.")
    mode: Literal["train", "infer", "prefill", "decode"] = field(
        "train (forward, loss, backward, step) or infer; for language models prefill (the "
        "prompt into an empty KV cache) or decode (one token per sequence per step).")
    precision: str = field("fp32, bf16 or fp16 (bf16/fp16 under autocast).")
    batch_size: int = field("Samples per step.", ge=1)
    compile: bool = field("Whether the model ran under torch.compile.")
    channels_last: bool = field("Whether the channels_last memory format was used.")
    model_args: dict[str, Any] = field("Model arguments beyond the defaults.",
                                       default_factory=dict)
    sample_shape: list[int] = field("Shape of one input sample.", default_factory=list)
    seq_len: int | None = field("Sequence length (a language model's window or prompt, or a "
                                "--seq-lens value); null when not an axis.", None)
    gen_tokens: int | None = field("Decode points: tokens generated per sequence (steps cycle "
                                   "over these cache positions).", None)
    power_limit_w: float | None = absent("bench --power-limits: the GPU power limit requested "
                                         "for the point, W.")
    sm_clock_mhz: int | None = absent("bench --sm-clocks: the SM clock the GPU was locked at, "
                                      "MHz.")


class JPerSample(Spread):
    """J/sample over the repeats (J/sample), with the median's error bound."""

    uncertainty: float | None = field(
        "Half-width of the median's error bound, J/sample (null: unknown).", None)


class RepeatEnergy(Section):
    """Energy of one measured repeat."""

    window: str = field("The repeat's window, e.g. repeat-0.")
    energy_j: float | None = field("Energy of the repeat, J.")
    uncertainty_j: float | None = field("Half-width of energy_j's bound, J.")
    samples: int | None = field("Samples in the repeat.", None)
    time_s: float | None = field("Duration of the repeat, s.", None)
    j_per_sample: float | None = field("energy_j / samples, J/sample.")
    quality: Quality | None = field("ok, low or invalid.")
    quality_reasons: list[str] = field("Why the quality is not ok.", default_factory=list)


class PointEnergy(ReasonedSection):
    """J/sample of the point over its repeats, with quality and provenance."""

    status: EnergyStatus = field("measured, partial or unavailable.")
    quality: Quality | None = field("Worst quality over the repeats.", None)
    quality_reasons: list[str] = field("Why the quality is not ok (every repeat).",
                                       default_factory=list)
    j_per_sample: JPerSample = field("J/sample over the repeats.")
    repeats: list[RepeatEnergy] = field("Every repeat's energy.", default_factory=list)
    devices: list[EnergyDevice] = field("Per device, for the last repeat.")
    j_per_token: JPerSample | None = absent("Language models: J/token over the repeats "
                                            "(J/sample ÷ tokens per sample).")


class PointMemory(ReasonedSection):
    """Peak memory of the point (an out-of-memory point: what the allocator held)."""

    host_peak_rss_bytes: int | None = field(
        "Peak RSS, bytes: the process's so far unless isolated.", None)
    host_peak_rss_scope: str | None = field("What host_peak_rss_bytes covers.", None)
    device_peak_allocated_bytes: int | None = field("CUDA allocator peak, bytes.", None)
    device_peak_reserved_bytes: int | None = field("CUDA reserved peak, bytes.", None)
    device_free_bytes: int | None = field("Free device memory at the OOM, bytes.", None)
    device_total_bytes: int | None = field("Device memory, bytes (OOM points).", None)


class PointFlops(ReasonedSection):
    """FLOPs per sample, achieved FLOP/s and MFU."""

    per_sample: int | None = field("FLOPs per sample (train step or forward).")
    method: str | None = field("How FLOPs were counted.", None)
    achieved_flops_per_s: float | None = field("per_sample × samples/s, FLOP/s.", None)
    mfu: float | None = field("achieved / peak FLOP/s (fraction).", None)
    mfu_invalid: float | None = field("An impossible MFU (> 1), recorded instead.", None)
    peak_flops_per_s: float | None = field("Dense peak of the math used, FLOP/s.", None)
    peak_dtype: str | None = field("Math mode of the peak.", None)
    peak_basis: str | None = field("Why that peak.", None)
    peak_source: str | None = field("Where the peak figure comes from.", None)


class PointSteps(Part):
    """What the point's figures were computed from."""

    warmup: int = field("Warm-up steps.")
    measured: int = field("Measured steps over all repeats.")
    repeats: int = field("Measured repeats.")
    measured_time_s: float = field("Measured time over all repeats, s.")
    min_repeat_s: float | None = field("Shortest repeat length enforced for energy, s.", None)


class PointModel(Part):
    """The model the point measured, as built (a size preset and the data resolved)."""

    params: int = field("Parameters.")
    args: dict[str, Any] = field("Resolved model arguments (see `bigbench models`).")
    recipe: dict[str, Any] | None = absent(
        "bench --from: how the saved model was made (its variant.json recipe; kind 'base' for "
        "a training run's weights).")


class CompileWindow(Section):
    """The compiling first step."""

    time_s: float = field("Its time, s.")
    energy_j: float | None = field("Its energy, J.")


class GpuSnapshot(Section):
    """The GPU's settings and state at one instant (null figures: NVML did not answer)."""

    power_limit_w: float | None = field("Enforced power limit, W.", None)
    sm_clock_mhz: int | None = field("SM clock, MHz.", None)
    temperature_c: float | None = field("GPU temperature, °C.", None)
    throttle_reasons: list[str] | None = field(
        "Why clocks are held back (NVML clock-event reasons, e.g. sw_power_cap, "
        "hw_thermal_slowdown); empty: none.", None)


class GpuSettings(Section):
    """bench --power-limits / --sm-clocks: what the point ran at, and the GPU around it."""

    requested_w: float | None = field("Power limit requested, W (null: not set).")
    in_effect_w: float | None = field("Enforced power limit read right after setting it, W "
                                      "(below requested_w when another limit binds).")
    sm_clock_mhz: int | None = field("SM clock locked, MHz (null: not locked).")
    edges: Literal["measured_window", "point"] = field(
        "Where start and end were read: the measured window's edges (the first repeat's start, "
        "the last repeat's end), or the point's (when the point did not measure).")
    start: GpuSnapshot | None = field("The GPU at the start.")
    end: GpuSnapshot | None = field("The GPU at the end.")


class GpuControl(Part):
    """bench --power-limits / --sm-clocks: the GPU whose settings were changed."""

    state_file: str = field("The state file in the output folder (for bigbench gpu restore).")
    uuid: str = field("NVML UUID of the GPU.")
    name: str = field("GPU name.")
    original_power_limit_w: float = field("Power limit before the run, W (restored at its end).")
    default_power_limit_w: float | None = field("The GPU's default power limit, W.")
    allowed_range_w: list[float] = field("Lowest and highest power limit the GPU allows, W.")
    restored: bool = field("Whether the original settings are back (false while running, or "
                           "when killed: run bigbench gpu restore on the folder).")


class BenchPoint(Part):
    """One configuration and its figures."""

    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"status": {"const": "ok"}}},
        "then": {"required": list(MEASURED_SECTIONS)}})

    id: str = field("Readable unique name, e.g. cnn/train/fp32/bs64.")
    settings: PointSettings = field("What identifies the point.")
    status: Literal["ok", "oom", "skipped", "failed"] = field("ok, oom, skipped or failed.")
    reason: str | None = field("Why the point was skipped or ran out of memory.", None)
    error: str | None = field("The error of a failed or out-of-memory point.", None)
    model: PointModel | None = absent("The model measured: parameters and resolved arguments.")
    samples_per_s: Spread | None = absent("Samples/s over the repeats.")
    tokens_per_s: Spread | None = absent("Language models: tokens/s over the repeats (a sample "
                                         "is a window, a prompt, or one decoded token).")
    latency_s: StepTimes | None = absent("Step times over all measured steps, s (prefill: time "
                                         "to first token; decode: time per output token).")
    steps: PointSteps | None = absent("Steps and time measured.")
    memory: PointMemory | None = absent("Peak memory.")
    energy: PointEnergy | None = absent("Energy.")
    compile: CompileWindow | None = field("Compile cost (with --compile).", None)
    flops: PointFlops | None = absent("FLOPs and MFU.")
    wall_s: float | None = absent("Wall time of the point, s.")
    gpu_settings: GpuSettings | None = absent(
        "bench --power-limits / --sm-clocks: requested and in-effect settings, and snapshots at "
        "the measured window's edges.")

    @model_validator(mode="after")
    def _measured_sections(self) -> BenchPoint:
        if self.status == "ok":
            missing = [name for name in MEASURED_SECTIONS if getattr(self, name) is None]
            if missing:
                raise ValueError(f"an ok point needs {', '.join(missing)}")
        return self


class Plan(Part):
    """How each point was measured."""

    steps: int | None = field("Measured steps per repeat (unless duration_s).")
    duration_s: float | None = field("Measured seconds per repeat, at least.")
    warmup: int = field("Warm-up steps per point.")
    repeats: int = field("Measured repeats per point.")
    optimizer: dict[str, Any] | None = field("Optimizer of training points.", None)
    energy_min_window: bool | None = field(
        "Repeats lengthened to the shortest window that can reach energy quality ok.", None)
    threads: int | None = field("CPU threads for torch (a CONFIG's train.threads); null: "
                                "torch's default.", None)


class MaxBatch(Part):
    """The largest batch that fits, for one model/mode/precision."""

    model: str = field("Registry model name.")
    mode: str = field("train or infer.")
    precision: str = field("fp32, bf16 or fp16.")
    compile: bool = field("Under torch.compile.")
    channels_last: bool = field("channels_last memory format.")
    max_batch_size: int | None = field("Largest batch that fitted (null: none).")
    limited_by: str = field("What stopped the search.")
    tried: dict[str, str] = field("Every batch size tried → its status.")


class ScalingSize(Section):
    """One world size of a scaling run: a short training job of that many ranks."""

    world_size: int = field("Ranks in the job (all on this node).", ge=1)
    global_batch_size: int = field("Samples per optimizer step over all ranks: the per-rank "
                                   "batch × world_size.", ge=1)
    status: Literal["ok", "failed", "interrupted"] = field(
        "ok (the job completed), failed (it did not: see error) or interrupted (stopped by "
        "Ctrl-C or SIGTERM; its figures are left out).")
    run_dir: str = field("The job's run directory (its run.json holds every figure, per rank "
                         "too).")
    log: str | None = field("File holding the job's stderr (null: not written).", None)
    error: str | None = field("Why the job failed (null otherwise).", None)
    samples: int | None = field("Measured samples of all ranks.")
    time_s: float | None = field("The slowest rank's measured window, s.")
    samples_per_s: float | None = field("Job throughput: samples / time_s, samples/s.")
    speedup: float | None = field("samples_per_s / the 1-rank job's samples_per_s (null: no "
                                  "1-rank job measured, or this job not measured).")
    efficiency: float | None = field("Scaling efficiency: samples_per_s / (world_size × the "
                                     "1-rank job's samples_per_s), i.e. speedup / world_size "
                                     "(1 = perfect scaling).")
    step_time_s: StepTimes | None = field("Percentiles of all ranks' measured step durations "
                                          "pooled, s (null: not measured).")
    communication_share: float | None = field(
        "The ranks' mean share of the step time with a gradient all-reduce in flight, 0-1 "
        "(ddp; null with the reason: one rank, fsdp, or not measured).", None)
    energy_status: EnergyStatus | None = field("The job's energy status: measured, partial or "
                                               "unavailable (null: not measured).")
    j_per_sample: float | None = field("The job's energy over all samples (every device "
                                       "counted once), J/sample (null: energy not measured, "
                                       "reason in reasons).")
    j_per_sample_uncertainty: float | None = field("Half-width of j_per_sample's error bound, "
                                                   "J/sample.", None)
    energy_quality: Quality | None = field("Worst energy quality of the counted devices: ok, "
                                           "low or invalid.", None)
    energy_reason: str | None = field("What the job's energy leaves out (status partial: the "
                                      "meters that did not work) or why it is missing (null: "
                                      "every meter measured).", None)
    torch_threads: int | None = field("torch intra-op threads of rank 0 (every rank runs "
                                      "as many).", None)
    shares_cores: bool = field("Whether the job's ranks share CPU cores: CPU ranks on one "
                               "host, or more ranks than the host's physical cores.")
    wall_s: float = field("Wall time of the job, launch to exit, s.")


class Scaling(Part):
    """bench --nproc-per-node: the same per-rank batch at each world size, one training job
    per size on this node."""

    config: str = field("The resolved config every job trained (its train.max_steps, "
                        "warmup_steps, batch_size and precision set from the bench plan).")
    device: str = field("Device type the ranks trained on: cpu or cuda (rank i on cuda:i).")
    batch_size: int = field("Samples per step per rank (train.batch_size or the one "
                            "--batch-sizes value).", ge=1)
    precision: str = field("fp32, bf16 or fp16 (train.precision or the one --precision "
                           "value).")
    warmup_steps: int = field("Warm-up steps of each job (outside its measured window).")
    measured_steps: int = field("Measured steps of each job (train.max_steps − warmup_steps).")
    world_sizes: list[int] = field("The world sizes asked for, ascending (the order run).")
    physical_cores: int | None = field("Physical CPU cores of this host (null: unknown).")
    notes: list[str] = field("What to keep in mind when reading the figures (ranks sharing "
                             "cores, a missing 1-rank job).", default_factory=list)
    sizes: list[ScalingSize] = field("One entry per world size measured so far.")


class BenchDocument(Part):
    """bench.json: a benchmark (schema bigbench.bench/1)."""

    schema_: Literal["bigbench.bench/1"] = Field(alias="schema",
                                                 description=f"'{BENCH_SCHEMA}'.")
    status: Literal["running", "completed", "interrupted"] = field(
        "running (or killed), completed or interrupted.")
    label: str = field("Suite or experiment name.")
    started_at: str = field("UTC start, ISO 8601.")
    finished_at: str | None = field("UTC end, ISO 8601 (null while running).")
    env: Environment = field("Environment (as in run.json).")
    plan: Plan = field("How points were measured.")
    isolated: bool = field("Each point in a fresh process.")
    matrix: list[str] = field("Point ids of the whole matrix.")
    model_from: str | None = absent("bench --from: the folder whose saved model every point "
                                    "measured.")
    points: list[BenchPoint] = field("Points measured so far.")
    max_batch: list[MaxBatch] | None = absent("With --find-max-batch.")
    scaling: Scaling | None = absent("bench --nproc-per-node (bench.nproc_per_node): job "
                                     "throughput, speed-up, scaling efficiency and J/sample "
                                     "at each world size (points and matrix are then empty).")
    gpu_control: GpuControl | None = absent("With --power-limits or --sm-clocks: the GPU whose "
                                            "settings the run changed, and whether they are "
                                            "back.")
