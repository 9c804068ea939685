"""A workload: everything a step needs, built once — from a config, or from a given module.

``build_workload(config)`` does everything that can fail on user input (device, data files,
model shape, memory pre-check) before any file is written. ``workload_from_module`` wraps a
module that already exists (a benchmark point's fresh model; later a pruned, quantized or
distilled one), so every command measures through the same step builder.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from bigbench import devices
from bigbench.data import build_data
from bigbench.data.info import DataInfo
from bigbench.data.tensors import Batcher, Dataset
from bigbench.distributed.communication import GradientCommTimer, time_gradient_communication
from bigbench.distributed.strategy import wrap
from bigbench.errors import ConfigError
from bigbench.models import BuiltModel, build_model
from bigbench.models.build import check_model_fits
from bigbench.optim import build_optimizer, build_schedule
from bigbench.rank import SINGLE, Rank
from bigbench.speed import apply_runtime_settings
from bigbench.workload.precision import Precision
from bigbench.workload.task import CLASSIFICATION, Task, task_for

if TYPE_CHECKING:
    from bigbench.config.schema import ExperimentConfig, OptimizerConfig, TrainConfig


@dataclass
class Workload:
    """A model on its device with its task, precision, data and (for training) optimizer.

    Attributes:
        device: Where the steps run.
        built: The model and the facts recorded about it (name, family, parameters, args).
        runnable: What the step calls: the model, or ``torch.compile(model)``.
        info: Shape facts of the data.
        task: Loss, targets and metrics.
        precision: Autocast and loss-scaling rule.
        channels_last: Inputs and weights use the channels_last memory format.
        optimizer_config: The optimizer's config (None: inference only).
        optimizer, schedule, scaler: The training state (None where unused).
        grad_clip: Global gradient-norm clip (None: off).
        skip_non_finite: Skip updates whose loss is NaN/inf.
        data: The dataset (None when batches are synthetic).
        batcher: This rank's shard of shuffled training batches (None without data).
        total_steps: Planned optimizer steps; planned_epochs: epochs they span.
        performance: Runtime settings in force, for run.json's ``performance`` section.
        communication: Times the gradient all-reduce of each measured step (DDP with several
            ranks; None otherwise).
    """

    device: torch.device
    built: BuiltModel
    runnable: nn.Module
    info: DataInfo
    task: Task = CLASSIFICATION
    precision: Precision = field(default_factory=lambda: Precision("fp32"))
    channels_last: bool = False
    optimizer_config: OptimizerConfig | None = None
    optimizer: torch.optim.Optimizer | None = None
    schedule: Any = None
    scaler: torch.amp.GradScaler | None = None
    grad_clip: float | None = None
    skip_non_finite: bool = False
    data: Dataset | None = None
    batcher: Batcher | None = None
    total_steps: int = 0
    planned_epochs: int = 0
    performance: dict[str, Any] = field(default_factory=dict)
    communication: GradientCommTimer | None = None

    @property
    def model(self) -> nn.Module:
        """The model itself (not the compiled wrapper)."""
        return self.built.module

    def items_per_sample(self) -> tuple[int | None, str]:
        """Items (tokens) per sample and their name, or None and why (see :class:`Task`)."""
        return self.task.items_per_sample(self.info, self.built.family)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def plan_steps(train: TrainConfig, steps_per_epoch: int, train_size: int) -> tuple[int, int]:
    """Total optimizer steps and epochs to run; refuses plans that would measure nothing."""
    if steps_per_epoch == 0:
        raise ConfigError(f"train.batch_size ({train.batch_size}) is larger than the training "
                          f"set ({train_size} samples) and drop_last is on, so an epoch has no "
                          "step; lower batch_size or set train.drop_last: false")
    if train.max_steps is not None:
        return train.max_steps, -(-train.max_steps // steps_per_epoch)
    total = train.epochs * steps_per_epoch
    if train.warmup_steps >= total:
        raise ConfigError(f"train.warmup_steps ({train.warmup_steps}) must be less than the run's "
                          f"{total} steps ({train.epochs} epoch(s) × {steps_per_epoch} steps), "
                          "otherwise no step is measured")
    return total, train.epochs


def check_target(train: TrainConfig, dataset: Dataset, data_name: str) -> None:
    """Refuse a quality target the data cannot score, with every such problem at once.

    The schema cannot see these: whether there is a test split and which task the data
    defines are known only once the data is built (a file decides both).

    Raises:
        ConfigError: a target without a test split, or a perplexity target on classification.
    """
    key = train.target_key
    if key is None:
        return
    problems = []
    if dataset.test is None:
        problems.append(f"train.{key}: data '{data_name}' has no test split to evaluate the "
                        "target on; give the data a test split (e.g. data.test_size) or remove "
                        f"train.{key}")
    task = task_for(dataset.info)
    if key == "target_perplexity" and task.name != "language_modeling":
        problems.append(f"train.target_perplexity: perplexity is a language-model metric and "
                        f"data '{data_name}' is a {task.name} task; use train.target_accuracy "
                        "or train.target_loss")
    if problems:
        raise ConfigError(*problems)


def _channels_last_for(config: ExperimentConfig, built: BuiltModel, rank: Rank) -> bool:
    """channels_last, except under FSDP: it shards contiguous parameters only."""
    sharded = rank.world_size > 1 and config.distributed.strategy == "fsdp"
    if sharded and config.train.channels_last is True:
        raise ConfigError("train.channels_last: true cannot be combined with "
                          "distributed.strategy fsdp (FSDP shards contiguous parameters only); "
                          "set train.channels_last: false or use ddp")
    return False if sharded else resolve_channels_last(config.train.channels_last, built)


def resolve_channels_last(requested: bool | str, built: BuiltModel) -> bool:
    """``auto``: on where the model's family runs 2-D convolutions; else as requested."""
    if requested == "auto":
        return built.family.supports_channels_last(built.args)
    return bool(requested)


def build_workload(config: ExperimentConfig, rank: Rank = SINGLE) -> Workload:
    """The training workload of ``config``: data on the device, model, optimizer, schedule.

    Raises:
        BigbenchError: for every user mistake (device, data, model shape, memory), before
            anything is written.
    """
    train = config.train
    check_distributed(config, rank)
    device = rank_device(devices.resolve(config.device), rank)
    performance = apply_runtime_settings(train, device)
    seed_everything(train.seed)
    dataset = build_data(config.data, device)
    check_target(train, dataset, config.data.name)
    check_model_fits(config.model, dataset.info, device, batch_size=train.batch_size,
                     value_bytes=4 if train.precision == "fp32" else 2)
    built = build_model(config.model, dataset.info)
    batcher = Batcher(dataset.train, train.batch_size, train.drop_last, train.seed,
                      rank=rank.rank, world_size=rank.world_size)
    total_steps, planned_epochs = plan_steps(train, batcher.steps_per_epoch, len(dataset.train))
    channels_last = _channels_last_for(config, built, rank)
    _place(built.module, device, channels_last)
    runnable = wrap(built.module, device, rank, config.distributed.strategy)
    communication = time_gradient_communication(runnable, device) \
        if isinstance(runnable, DistributedDataParallel) else None
    precision = Precision(train.precision)
    optimizer = build_optimizer(train.optimizer, built.module.parameters())
    workload = Workload(
        device=device, built=built, runnable=runnable, info=dataset.info,
        task=task_for(dataset.info), precision=precision, channels_last=channels_last,
        optimizer_config=train.optimizer,
        optimizer=optimizer, schedule=build_schedule(train.schedule, optimizer, total_steps),
        scaler=precision.grad_scaler(device), grad_clip=train.grad_clip,
        skip_non_finite=train.on_nan == "skip_step", data=dataset, batcher=batcher,
        total_steps=total_steps, planned_epochs=planned_epochs, performance=performance,
        communication=communication)
    performance.update(channels_last=channels_last, precision=precision.name,
                       grad_scaler=workload.scaler is not None, compile=train.compile,
                       optimizer_foreach=optimizer.defaults.get("foreach"))
    return workload


def check_distributed(config: ExperimentConfig, rank: Rank) -> None:
    """Settings whose decisions each rank would take alone (so the ranks' steps and
    collectives would no longer match) are refused in a distributed job."""
    if rank.world_size == 1:
        return
    if config.train.on_nan == "skip_step":
        raise ConfigError("train.on_nan: skip_step is not supported with several ranks: a rank "
                          "skipping its update would skip the gradient all-reduce the others "
                          "wait in; use on_nan: stop")
    if config.measure.extend_to_min_window:
        raise ConfigError("measure.extend_to_min_window is not supported with several ranks: "
                          "each rank would extend by its own meters; set a longer "
                          "train.max_steps instead")


def rank_device(device: torch.device, rank: Rank) -> torch.device:
    """The device of this rank: on CUDA the GPU of its local rank (``cuda:LOCAL_RANK``); a task
    of an ``srun --gpus-per-task 1`` step takes the one GPU it sees.

    Raises:
        DeviceError: fewer GPUs on this node than ranks.
    """
    if rank.world_size == 1 or device.type != "cuda":
        return device
    from bigbench.distributed.env import rank_from_env
    from bigbench.errors import DeviceError

    count = torch.cuda.device_count()
    local = rank.local_rank
    if count == 1 and os.environ.get("SLURM_GPUS_PER_TASK") == "1" and \
            rank_from_env()[1] == "slurm":
        # srun --gpus-per-task 1 shows each task only its own GPU, as cuda:0, whatever its
        # local rank. Otherwise the visible GPUs are read as the node's, seen by every task
        # (as torchrun's workers see them): a local rank beyond them is a shortage, refused
        # below, since two ranks would share a GPU.
        local = 0
    if local >= count:
        raise DeviceError(f"rank {rank.rank} needs cuda:{rank.local_rank} but this node has "
                          f"{count} GPU(s); lower --nproc-per-node to {count} or fewer")
    return torch.device("cuda", local)


def workload_from_module(built: BuiltModel, info: DataInfo, device: torch.device, *,
                         precision: str = "fp32", channels_last: bool = False,
                         optimizer: OptimizerConfig | None = None, compile: bool = False,
                         task: Task | None = None) -> Workload:
    """A workload around an existing model (moved to ``device``); with ``optimizer`` it trains.

    The task defaults to the one ``info`` defines (see :func:`task_for`).

    Raises:
        ConfigError: when channels_last is asked of a model whose family cannot use it.
    """
    if channels_last and not built.family.supports_channels_last(built.args):
        raise ConfigError(f"channels_last applies to 2-D convolutions; model '{built.name}' "
                          "has none")
    _place(built.module, device, channels_last)
    resolved = Precision(precision)
    opt = build_optimizer(optimizer, built.module.parameters()) if optimizer else None
    return Workload(
        device=device, built=built,
        runnable=torch.compile(built.module) if compile else built.module, info=info,
        task=task or task_for(info), precision=resolved, channels_last=channels_last,
        optimizer_config=optimizer,
        optimizer=opt, scaler=resolved.grad_scaler(device) if opt else None)


def _place(module: nn.Module, device: torch.device, channels_last: bool) -> None:
    """Move ``module`` to ``device`` (in place), in channels_last layout when asked."""
    module.to(device)
    if channels_last:
        module.to(memory_format=torch.channels_last)


def synthetic_batches(workload: Workload, batch_size: int, count: int = 4
                      ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` distinct random batches on the device (cycled, so no step reuses the last).

    Inputs are floats (or tokens when the data holds tokens), targets come from the task;
    seeded, so every run of a point sees the same data.
    """
    device, info = workload.device, workload.info
    generator = torch.Generator(device=device).manual_seed(0)
    shape = (batch_size, *info.sample_shape)
    pool = []
    for _ in range(count):
        if info.is_tokens:
            x = torch.randint(0, info.vocab_size or 1, shape, generator=generator, device=device)
        else:
            x = torch.randn(shape, generator=generator, device=device)
            if workload.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        pool.append((x, workload.task.synthetic_targets(batch_size, info, generator, device)))
    return pool
