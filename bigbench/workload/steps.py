"""THE step builder: the training step and the inference step of every command.

``train``, ``bench`` and every later command get their step here, from a :class:`Workload`;
nowhere else in the package writes a forward/backward/optimizer step. The evaluation pass and
the eager step time that ``torch.compile`` is measured against live here too.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from bigbench.data.tensors import Split, sequential_batches
from bigbench.devices import synchronize

if TYPE_CHECKING:
    from bigbench.workload.build import Workload

Batch = tuple[torch.Tensor, torch.Tensor]
Step = Callable[[Batch], torch.Tensor]
Mode = Literal["train", "infer"]


def build_step(workload: Workload, mode: Mode) -> Step:
    """The step the engine runs: ``train`` (forward, loss, backward, update) or ``infer``.

    Both return a tensor the engine may read back at log intervals (the loss, or one output
    value for inference); neither synchronises the device.
    """
    if mode == "infer":
        return _infer_step(workload)
    if workload.optimizer is None:
        raise ValueError("a training step needs a workload built with an optimizer")
    return _train_step(workload)


def _infer_step(workload: Workload) -> Step:
    model, device = workload.runnable, workload.device
    amp_dtype = workload.precision.autocast_dtype
    channels_last = workload.channels_last
    workload.model.eval()

    def infer(batch: Batch) -> torch.Tensor:
        inputs = batch[0]
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype,
                                                    enabled=amp_dtype is not None):
            return model(inputs).reshape(-1)[0]  # a view: the engine's per-interval read-back

    return infer


def _train_step(workload: Workload) -> Step:
    model, optimizer, schedule = workload.runnable, workload.optimizer, workload.schedule
    scaler, grad_clip, task = workload.scaler, workload.grad_clip, workload.task
    skip_non_finite, channels_last = workload.skip_non_finite, workload.channels_last
    amp_dtype, device_type = workload.precision.autocast_dtype, workload.device.type
    parameters = [p for p in workload.model.parameters() if p.requires_grad]
    assert optimizer is not None  # checked by build_step

    def step(batch: Batch) -> torch.Tensor:
        inputs, targets = batch
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = task.loss(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        # Checking the loss costs a host sync per step: only when the user asked to skip.
        if skip_non_finite and not bool(torch.isfinite(loss)):
            return loss
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(parameters, grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(parameters, grad_clip)
            optimizer.step()
        if schedule is not None:
            schedule.step()
        return loss

    return step


def step_flops(workload: Workload) -> dict[str, Any]:
    """FLOPs per sample of THE training and inference steps of the workload's own model.

    The steps run on a twin of the workload whose parameters live on the meta device (no
    memory, no compute), so what is counted is the module as it is in memory — a modified model
    is not rebuilt from its registry name. The optimizer's elementwise update counts 0.

    Returns:
        ``train_step_per_sample``, ``forward_per_sample``, ``cudnn_share`` (the fraction of
        training-step FLOPs that run in cuDNN on CUDA: convolutions, recurrent layers) and
        ``method``.
    """
    from bigbench.config.schema import OptimizerConfig
    from bigbench.measure.flops import count_flops, meta_copy
    from bigbench.optim import build_optimizer
    from bigbench.workload.precision import Precision

    # An inference workload's model is counted with a plain SGD update: the update is
    # elementwise and counts 0, so any optimizer gives the same training-step FLOPs.
    optimizer = workload.optimizer_config or OptimizerConfig(name="sgd")
    twin_model = meta_copy(workload.model)
    twin = dataclasses.replace(
        workload, built=dataclasses.replace(workload.built, module=twin_model),
        runnable=twin_model, precision=Precision("fp32"), channels_last=False, schedule=None,
        scaler=None, grad_clip=None, skip_non_finite=False,  # no host reads of meta values
        optimizer=build_optimizer(optimizer, twin_model.parameters()))
    info, samples = workload.info, 2  # FLOPs scale with the batch; 2 catches batch-dependent shapes
    with torch.device("meta"):
        if info.is_tokens:
            inputs = torch.randint(0, info.vocab_size or 1, (samples, *info.sample_shape))
        else:
            inputs = torch.randn(samples, *info.sample_shape)
        batch = (inputs, workload.task.synthetic_targets(samples, info, None,
                                                         torch.device("meta")))
    train, train_conv = count_flops(lambda: build_step(twin, "train")(batch), samples)
    forward, _ = count_flops(lambda: build_step(twin, "infer")(batch), samples)
    # On CUDA, convolutions and the recurrent layers run in cuDNN, under cuDNN's TF32 switch.
    cudnn = train if workload.built.family.cudnn_layers else train_conv
    return {"train_step_per_sample": train, "forward_per_sample": forward,
            "cudnn_share": cudnn / train if train else None, "method": "flop_counter_meta"}


def evaluate(workload: Workload, split: Split, batch_size: int) -> dict[str, float]:
    """The task's metrics on ``split`` (model in eval mode for the pass, then back to train)."""
    workload.model.eval()
    try:
        return workload.task.evaluate(workload.model, sequential_batches(split, batch_size),
                                      len(split), workload.precision.autocast_dtype)
    finally:
        workload.model.train()


def eager_step_time(workload: Workload, batch: Batch, steps: int = 5) -> float:
    """Median seconds of an eager training step, on a throwaway copy of the model.

    The copy gets a fresh optimizer of the same kind, so the run's weights and optimizer state
    are untouched; the caller saves and restores the RNG states around it.
    """
    from bigbench.optim import build_optimizer

    clone = copy.deepcopy(workload.model)
    assert workload.optimizer_config is not None
    eager = dataclasses.replace(
        workload, built=dataclasses.replace(workload.built, module=clone), runnable=clone,
        optimizer=build_optimizer(workload.optimizer_config, clone.parameters()), schedule=None,
        scaler=workload.precision.grad_scaler(workload.device))
    step = build_step(eager, "train")
    for _ in range(2):  # allocator growth and first-call costs
        step(batch)
    times = []
    for _ in range(steps):
        synchronize(workload.device)
        start = time.perf_counter()
        step(batch)
        synchronize(workload.device)
        times.append(time.perf_counter() - start)
    del clone, eager
    return statistics.median(times)
