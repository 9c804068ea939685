"""The experiment config: every key, its default and its meaning.

``bigbench config schema`` prints this as JSON Schema and the README's config reference is
generated from the same descriptions, so a field without a description is a bug.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bigbench.config.optimize import OptimizeConfig
from bigbench.config.registries import DataConfig, ModelConfig
from bigbench.config.sweep import SweepConfig
from bigbench.errors import did_you_mean, one_of
from bigbench.models.registry import MODELS
from bigbench.strict import StrictModel

#: Device strings accepted in configs and on the command line.
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d{1,3})$")
#: The train keys of the quality targets (at most one is set), in the order they are named.
TARGET_KEYS = ("target_accuracy", "target_loss", "target_perplexity")


class OptimizerConfig(StrictModel):
    """Which optimizer updates the weights."""

    name: Literal["sgd", "adam", "adamw"] = Field("sgd", description="Optimizer.")
    lr: float = Field(0.01, gt=0.0, le=1e3, description="Learning rate.")
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="SGD momentum (sgd only).")
    weight_decay: float = Field(0.0, ge=0.0, le=1e3, description="Weight decay (L2 for sgd/adam, "
                                "decoupled for adamw).")

    @model_validator(mode="after")
    def _momentum_only_for_sgd(self) -> OptimizerConfig:
        if self.momentum and self.name != "sgd":
            raise ValueError(f"momentum applies to sgd only, not {self.name}; remove it")
        return self


class ScheduleConfig(StrictModel):
    """How the learning rate changes over the optimizer steps."""

    name: Literal["constant", "cosine", "step"] = Field(
        "constant",
        description="'constant'; 'cosine' from lr down to min_lr over the whole run; 'step' "
        "multiplies lr by gamma every step_size optimizer steps.",
    )
    min_lr: float = Field(0.0, ge=0.0, description="Final learning rate of the cosine schedule.")
    step_size: int = Field(1000, ge=1, le=10**9, description="Steps between decays ('step').")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="Decay factor ('step').")


class TrainConfig(StrictModel):
    """The training loop."""

    epochs: int = Field(2, ge=1, le=100_000, description="Passes over the training data.")
    max_steps: int | None = Field(
        None, ge=1, le=10**9,
        description="Stop after this many optimizer steps; wins over epochs when set.",
    )
    batch_size: int = Field(64, ge=1, le=1_000_000, description="Samples per optimizer step.")
    eval_batch_size: int | None = Field(
        None, ge=1, le=1_000_000, description="Samples per evaluation batch; null uses batch_size."
    )
    drop_last: bool = Field(
        True,
        description="Skip the last incomplete batch of each epoch so every measured step has "
        "the same size.",
    )
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig, description="Optimizer.")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig,
                                     description="Learning-rate schedule.")
    grad_clip: float | None = Field(
        None, gt=0.0, description="Clip the global gradient norm to this value; null disables."
    )
    warmup_steps: int = Field(
        10, ge=0, le=10**9, description="First steps excluded from timing (allocator growth, "
        "autotuning).",
    )
    log_every: int = Field(
        50, ge=1, le=10**9,
        description="Steps between loss read-backs, progress updates and metrics.jsonl lines.",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of weights, data order and dropout.")
    channels_last: Literal["auto", True, False] = Field(
        "auto",
        description="channels_last memory format for 2-D convolutions; 'auto' turns it on for "
        "2-D CNNs (measured 1.2x faster for the reference CNN on a CPU).",
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="Autocast precision of forward and loss; fp16 training uses a "
        "GradScaler on CUDA.",
    )
    compile: bool = Field(
        False, description="torch.compile the model; compile time and energy are reported "
        "separately, with the steps after which it pays back.",
    )
    threads: int | None = Field(
        None, ge=1, le=1024, description="CPU threads for torch (torch.set_num_threads); null "
        "keeps torch's default (one per physical core).",
    )
    matmul_precision: Literal["highest", "high", "medium"] = Field(
        "highest", description="fp32 matmul precision (torch.set_float32_matmul_precision): "
        "'highest' computes in fp32; 'high' lets CUDA matmuls use TF32 tensor cores (what most "
        "GPU users want: much faster, about 10 mantissa bits); 'medium' allows bf16. The MFU "
        "peak follows what is in effect.",
    )
    cudnn_benchmark: bool = Field(
        True, description="Let cuDNN autotune convolution algorithms (CUDA only; the tuning "
        "happens during warm-up).",
    )
    checkpoint_every: int | None = Field(
        None, ge=1, le=10**9,
        description="Save a checkpoint (weights, optimizer, data position, RNG states) every "
        "this many steps, for --resume; null: only when the run is interrupted.",
    )
    on_nan: Literal["stop", "skip_step"] = Field(
        "stop",
        description="A NaN/inf loss: 'stop' the run as failed (checked at each log interval), "
        "or 'skip_step' (skip that update; costs one host sync per step).",
    )
    eval_every: int | None = Field(
        None, ge=1, le=10**9,
        description="Optimizer steps between evaluations on the test split, plus one after the "
        "last step; each runs in the 'eval' window, outside training time and energy. Null: "
        "evaluate at the end of each epoch.",
    )
    target_accuracy: float | None = Field(
        None, gt=0.0, le=1.0,
        description="Quality target: test accuracy as a fraction (0 < x <= 1; next-token top-1 "
        "accuracy for language models), reached at or above. run.json's target section gives "
        "the steps, samples, training time (s) and energy (J) to the first evaluation that "
        "reaches it. At most one target.",
    )
    target_loss: float | None = Field(
        None, gt=0.0, le=1e6,
        description="Quality target: test loss (mean cross-entropy in nats per sample; per "
        "token for language models), reached at or below. At most one target.",
    )
    target_perplexity: float | None = Field(
        None, ge=1.0, le=1e12,
        description="Quality target for language models: test perplexity (exp of the loss per "
        "token; >= 1, dimensionless), reached at or below. At most one target.",
    )
    stop_at_target: bool = Field(
        False,
        description="End the run at the first evaluation that reaches the target (status "
        "completed, stop_reason 'target_reached'); needs a target.",
    )

    @model_validator(mode="after")
    def _warmup_leaves_measured_steps(self) -> TrainConfig:
        if self.max_steps is not None and self.warmup_steps >= self.max_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be less than max_steps "
                f"({self.max_steps}), otherwise no step is measured"
            )
        return self

    @model_validator(mode="after")
    def _one_target(self) -> TrainConfig:
        targets = [name for name in TARGET_KEYS if getattr(self, name) is not None]
        if len(targets) > 1:
            both = "both" if len(targets) == 2 else "all"
            raise ValueError(f"{' and '.join(targets)} are {both} set; a run has one quality "
                             "target: keep one of them")
        return self

    @model_validator(mode="after")
    def _stop_needs_a_target(self) -> TrainConfig:
        if self.stop_at_target and self.target_key is None:
            raise ValueError("stop_at_target is true but no target is set; set "
                             f"{one_of(list(TARGET_KEYS))}, or remove stop_at_target")
        return self

    @property
    def target_key(self) -> str | None:
        """The target's key (``target_accuracy`` …), or None when no target is set."""
        return next((name for name in TARGET_KEYS if getattr(self, name) is not None), None)


class OutputConfig(StrictModel):
    """Where results go."""

    dir: str = Field("runs", min_length=1,
                     description="Parent folder of run directories (<UTC time>-<name>).")
    save_weights: bool = Field(True, description="Write the final weights as model.safetensors.")
    loggers: list[Literal["tensorboard", "mlflow", "csv"]] = Field(
        default_factory=list,
        description="Experiment trackers fed by the run (rank 0): 'tensorboard' (loss, accuracy, "
                    "throughput and power over steps in <run>/tensorboard; extra "
                    "bigbench[tensorboard]), 'mlflow' (config as parameters, final metrics, "
                    "run.json and the report as an MLflow run; extra bigbench[mlflow]), 'csv' "
                    "(<run>/metrics.csv). A logger that fails only warns.")
    mlflow_tracking_uri: str | None = Field(
        None, min_length=1,
        description="MLflow tracking URI for the 'mlflow' logger; null: $MLFLOW_TRACKING_URI, "
                    "else a local file store in <run>/mlruns.")

    @field_validator("loggers")
    @classmethod
    def _loggers_once(cls, loggers: list[str]) -> list[str]:
        repeated = sorted({name for name in loggers if loggers.count(name) > 1})
        if repeated:
            raise ValueError(f"{one_of(repeated)} listed more than once; list each logger once")
        return loggers


class MeasureConfig(StrictModel):
    """What is measured besides time, and how."""

    energy: bool = Field(True, description="Measure energy with every meter that works here "
                         "(NVML for the GPU in use, RAPL for CPU packages and DRAM).")
    power_interval_ms: int = Field(
        50, ge=5, le=1000,
        description="Milliseconds between power samples (power.csv and the integral check). "
        "At most 1000 so RAPL counters cannot wrap twice unseen.",
    )
    min_energy_window_s: float | None = Field(
        None, gt=0.0, le=3600.0,
        description="Energy windows shorter than this are marked quality 'low'; null means 5 s "
        "when a GPU is measured, else 1 s.",
    )
    extend_to_min_window: bool = Field(
        False, description="Keep training past the planned steps until the measured window can "
        "give energy of quality 'ok': at least min_energy_window_s long and holding 60 power "
        "samples on every meter (the extra steps are reported).",
    )
    idle_s: float = Field(
        0.0, ge=0.0, le=600.0,
        description="Seconds of idle power measured before the run; 0 disables the baseline.",
    )
    powercap_root: str | None = Field(
        None, description="Where powercap sysfs is mounted; null uses $BIGBENCH_POWERCAP_ROOT, "
        "else /sys/class/powercap.",
    )
    carbon_intensity_g_per_kwh: float | None = Field(
        None, ge=0.0, le=5000.0,
        description="Grid carbon intensity (gCO2e/kWh) to convert measured energy into "
        "emissions; null reports no carbon figure.",
    )
    flops: bool = Field(True, description="Count FLOPs per sample and report FLOP/s, MFU and "
                        "FLOPs per joule.")


#: The largest world size bench --nproc-per-node (bench.nproc_per_node) measures.
SCALING_MAX_RANKS = 64


class BenchConfig(StrictModel):
    """The benchmark matrix ``bigbench bench CONFIG`` runs; command-line flags override it."""

    models: list[str] | None = Field(
        None, min_length=1, description="Registry names of the models to benchmark; null: the "
        "config's model.")
    batch_sizes: list[int] | None = Field(
        None, min_length=1, description="Batch sizes; null: the config's train.batch_size.")
    precisions: list[Literal["fp32", "bf16", "fp16"]] | None = Field(
        None, min_length=1, description="Precisions; bf16/fp16 run under autocast. Null: the "
        "config's train.precision.")
    modes: list[Literal["train", "infer"]] = Field(
        ["train", "infer"], min_length=1,
        description="'train': forward, backward, optimizer step; 'infer': forward under "
        "inference_mode (for a language model: prefill and decode, measured separately).")
    seq_lens: list[Annotated[int, Field(ge=1, le=65_536)]] | None = Field(
        None, min_length=1, description="Sequence lengths of sequence models (the training "
        "window and the prompt); null: the data's.")
    gen_tokens: list[Annotated[int, Field(ge=1, le=65_536)]] = Field(
        [32], min_length=1, description="Language models: tokens generated per sequence by "
        "decode points.")
    compile: bool = Field(False, description="torch.compile each model (compile time and "
                          "energy reported separately).")
    channels_last: bool = Field(False, description="channels_last memory format (2-D CNNs).")
    steps: int | None = Field(50, ge=1, le=10**7,
                              description="Measured steps per repeat (unless duration_s is set).")
    duration_s: float | None = Field(None, gt=0.0, le=86400.0,
                                     description="Measured seconds per repeat; wins over steps.")
    warmup: int = Field(10, ge=0, le=10**6, description="Warm-up steps before the repeats.")
    repeats: int = Field(3, ge=1, le=1000, description="Measured repeats per point (median, IQR).")
    power_limits: list[float | str] | None = Field(
        None, min_length=1, description="GPU power limits to run every point at: watts, or "
        "'min', 'default', 'max' (the GPU's range and default). Set through NVML and always "
        "restored; needs a CUDA device and root. Null: the GPU's own setting.")
    sm_clocks: list[Annotated[int, Field(ge=1, le=10_000)]] | None = Field(
        None, min_length=1, description="SM clocks (MHz) to lock the GPU at for every point "
        "(times each power limit); always unlocked at the end. Null: not locked.")
    nproc_per_node: list[Annotated[int, Field(ge=1, le=SCALING_MAX_RANKS)]] | None = Field(
        None, min_length=1, description="Scaling instead of the matrix (--nproc-per-node): "
        "one short training job of the config (train.batch_size per rank, warmup + steps "
        "steps) at each of these world sizes on this node, reporting speed-up, scaling "
        f"efficiency and J/sample per size. At most {SCALING_MAX_RANKS} ranks; on CUDA at most "
        "one rank per GPU. Null: the matrix.")

    @field_validator("power_limits")
    @classmethod
    def _power_limits(cls, limits: list[float | str] | None) -> list[float | str] | None:
        names = ("min", "default", "max")
        for limit in limits or []:
            if isinstance(limit, str) and limit not in names:
                raise ValueError(f"'{limit}' is not a power limit{did_you_mean(limit, names)}; "
                                 f"give watts or {one_of(names)}")
            if not isinstance(limit, str) and not 0 < limit < float("inf"):
                raise ValueError(f"{limit!r} is not a power limit; give a positive number of "
                                 "watts")
        return limits

    @model_validator(mode="after")
    def _known_models_and_sizes(self) -> BenchConfig:
        for name in self.models or []:
            if name not in MODELS.names():
                raise ValueError(f"models: unknown model '{name}'"
                                 f"{did_you_mean(name, MODELS.names())}; choose "
                                 f"{one_of(MODELS.names())}")
        if any(b < 1 or b > 10_000_000 for b in self.batch_sizes or []):
            raise ValueError("batch sizes must be between 1 and 10000000")
        return self


class DistributedConfig(StrictModel):
    """Scale-out across processes with torch.distributed, started by torchrun's launcher."""

    nproc_per_node: int = Field(
        1, ge=1, le=1024, description="Processes (ranks) per node; each binds its own GPU by "
        "its local rank on CUDA. Above 1, bigbench train starts the job through torchrun's "
        "launcher (--nproc-per-node).")
    nnodes: int = Field(1, ge=1, le=10_000, description="Nodes in the job (--nnodes).")
    node_rank: int = Field(0, ge=0, le=10_000, description="This node's rank, 0 … nnodes − 1 "
                           "(--node-rank).")
    rdzv_endpoint: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.:\[\]-]+:\d{1,5}$",
        description="HOST:PORT where the nodes meet (--rdzv-endpoint); null: this host on a "
        "free port (one node only).")
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="Collective backend; 'auto' is nccl on CUDA and gloo on a CPU.")
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="'ddp': DistributedDataParallel (every rank holds the whole model; "
        "gradients are averaged across ranks each step). 'fsdp': fully sharded data parallel "
        "(FSDP2 fully_shard per top-level block): each rank holds 1/N of the parameters, "
        "gradients and optimizer state, for models that do not fit one device.")
    timeout_s: float = Field(
        300.0, gt=0.0, le=86_400.0,
        description="Seconds any collective may wait: a rank that dies or hangs ends the job "
        "with an error after at most this long, never a hang.")

    @model_validator(mode="after")
    def _node_rank_in_range(self) -> DistributedConfig:
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank {self.node_rank} must be below nnodes ({self.nnodes})")
        if self.nnodes > 1 and self.rdzv_endpoint is None:
            raise ValueError("a job of several nodes needs rdzv_endpoint: HOST:PORT of the node "
                             "every node can reach")
        return self

    @property
    def world_size(self) -> int:
        """Ranks in the job."""
        return self.nproc_per_node * self.nnodes


class ExperimentConfig(StrictModel):
    """One experiment: a model trained on a dataset on a device."""

    name: str = Field(
        "experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="Experiment name, used in the run directory name (letters, digits, . _ -).",
    )
    model: ModelConfig = Field(description="Registry name of the model plus its arguments.")
    data: DataConfig = Field(description="Registry name of the dataset plus its arguments.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training loop.")
    device: str = Field(
        "auto", description="'auto' (first CUDA GPU, else CPU), 'cpu', 'cuda' or 'cuda:N'."
    )
    output: OutputConfig = Field(default_factory=OutputConfig, description="Results.")
    measure: MeasureConfig = Field(default_factory=MeasureConfig,
                                   description="Energy, power and FLOPs measurement.")
    bench: BenchConfig | None = Field(None, description="Benchmark matrix for bigbench bench.")
    distributed: DistributedConfig = Field(
        default_factory=DistributedConfig,
        description="Distributed training (ranks, nodes, backend, strategy, timeout).")
    optimize: OptimizeConfig | None = Field(
        None, description="Compressed variants for bigbench optimize (prune, quantize, distill).")
    sweep: SweepConfig | None = Field(None, description="Settings for bigbench sweep to train at.")

    @field_validator("device")
    @classmethod
    def _device_string(cls, value: str) -> str:
        return check_device_string(value)


def check_device_string(value: str) -> str:
    """Validate a device string's form (existence is checked when the run starts)."""
    if not DEVICE_PATTERN.match(value):
        hint = did_you_mean(value, ["auto", "cpu", "cuda", "cuda:0"])
        raise ValueError(f"'{value}' is not a device{hint}; use auto, cpu, cuda or cuda:N")
    return value
