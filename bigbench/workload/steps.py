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
from bigbench.distributed.strategy import is_sharded

if TYPE_CHECKING:
    from bigbench.distributed.group import Collectives
    from bigbench.workload.build import Workload

Batch = tuple[torch.Tensor, torch.Tensor]
Step = Callable[[Batch], torch.Tensor]
Mode = Literal["train", "infer", "prefill", "decode"]


def build_step(workload: Workload, mode: Mode, *, batch_size: int = 1,
               gen_tokens: int = 1) -> Step:
    """The step the engine runs.

    Modes: ``train`` (forward, loss, backward, update); ``infer`` (forward under
    inference_mode); for language models with a KV cache ``prefill`` (the prompt — the batch's
    whole window — through the model into an empty cache; returns the first generated token,
    so a step's time is the time to first token) and ``decode`` (one new token per sequence
    against a cache holding a prompt of the window's length; returns its greedy choice).

    Every step returns a tensor the engine may read back at log intervals; none synchronises
    the device.

    Args:
        batch_size: ``decode``: sequences in the cache (the batches' size).
        gen_tokens: ``decode``: tokens generated per sequence before the cache is rewound to
            the prompt, so steps cycle over positions prompt … prompt + gen_tokens − 1.
    """
    if mode == "infer":
        return _infer_step(workload)
    if mode in ("prefill", "decode"):
        return _cached_step(workload, mode, batch_size, gen_tokens)
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


def _cached_step(workload: Workload, mode: Mode, batch_size: int, gen_tokens: int) -> Step:
    """Prefill or decode through the model's KV cache (see :func:`build_step`)."""
    model, device = workload.model, workload.device
    make_cache = getattr(model, "make_cache", None)
    if make_cache is None:
        raise ValueError(f"model '{workload.built.name}' has no KV cache: {mode} needs one "
                         "(use mode infer)")
    amp_dtype = workload.precision.autocast_dtype
    prompt = workload.info.sample_shape[0]
    model.eval()

    def run(tokens: torch.Tensor, cache: Any) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype,
                                                    enabled=amp_dtype is not None):
            # Only the last position's logits are needed to choose the next token. One value
            # (a view) for the engine's read-back; the whole batch's choice is made.
            logits = model(tokens, cache=cache, last_only=True)
            return logits[:, -1].argmax(dim=-1).reshape(-1)[0]

    # Under autocast the cache holds keys and values in the autocast dtype, as they are made.
    cache_dtype = amp_dtype or next(model.parameters()).dtype
    if mode == "prefill":
        prefill_cache = None

        def prefill(batch: Batch) -> torch.Tensor:
            nonlocal prefill_cache
            tokens = batch[0]
            if prefill_cache is None or prefill_cache.batch_size != tokens.shape[0]:
                prefill_cache = make_cache(tokens.shape[0], prompt, dtype=cache_dtype)
            prefill_cache.length = 0
            return run(tokens, prefill_cache)

        return prefill

    cache = make_cache(batch_size, prompt + gen_tokens, dtype=cache_dtype)
    # The prompt's tokens are made where the weights are (a meta twin counts FLOPs).
    where = next(model.parameters()).device
    generator = torch.Generator(device=where).manual_seed(0) if where.type != "meta" else None
    vocab = workload.info.vocab_size or 1
    run(torch.randint(0, vocab, (batch_size, prompt), generator=generator, device=where), cache)

    def decode(batch: Batch) -> torch.Tensor:
        if cache.length >= prompt + gen_tokens:
            cache.length = prompt  # rewind: the prompt's keys and values stay in place
        return run(batch[0][:, :1], cache)

    return decode


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
    is not rebuilt from its registry name. The optimizer's elementwise update counts 0, and
    activation checkpointing's recomputation is not counted (model FLOPs, as MFU defines them).

    Returns:
        ``train_step_per_sample``, ``forward_per_sample``, ``cudnn_share`` (the fraction of
        training-step FLOPs that run in cuDNN on CUDA: convolutions, recurrent layers) and
        ``method``.
    """
    from bigbench.measuring.flops import count_flops

    twin, batch = _meta_twin(workload, samples=2)  # 2 catches batch-dependent shapes
    train, train_conv = count_flops(lambda: build_step(twin, "train")(batch), 2)
    forward, _ = count_flops(lambda: build_step(twin, "infer")(batch), 2)
    # On CUDA, convolutions and the recurrent layers run in cuDNN, under cuDNN's TF32 switch.
    cudnn = train if workload.built.family.cudnn_layers else train_conv
    return {"train_step_per_sample": train, "forward_per_sample": forward,
            "cudnn_share": cudnn / train if train else None, "method": "flop_counter_meta"}


def cached_step_flops(workload: Workload, mode: Mode, gen_tokens: int = 1) -> int:
    """FLOPs per sample of THE prefill step (per prompt) or decode step (per generated token,
    averaged over the ``gen_tokens`` positions a decode point cycles through), on a meta twin.

    A decode step's FLOPs grow linearly with its position (attention over the cache), so the
    mean over the cycle is the mean of its first and last steps: two counted steps, not
    ``gen_tokens``.
    """
    from bigbench.measuring.flops import count_flops

    twin, batch = _meta_twin(workload, samples=1)
    if mode == "prefill":
        return count_flops(lambda: build_step(twin, "prefill")(batch), 1)[0]
    # Building a decode step prefills its cache: build outside the count, count one step.
    step = build_step(twin, "decode", gen_tokens=1)
    first = count_flops(lambda: step(batch), 1)[0]
    if gen_tokens == 1:
        return first
    # The last step of the cycle is the first step after a prompt gen_tokens − 1 longer.
    longer = dataclasses.replace(twin, info=dataclasses.replace(
        twin.info, sample_shape=(twin.info.sample_shape[0] + gen_tokens - 1,
                                 *twin.info.sample_shape[1:])))
    last_step = build_step(longer, "decode", gen_tokens=1)
    last = count_flops(lambda: last_step(batch), 1)[0]
    return (first + last) // 2


def _meta_model(workload: Workload) -> nn.Module:
    """A meta-device copy of the model; a sharded (FSDP) model cannot be copied, so its twin
    is rebuilt from the registry with its resolved arguments (the same layers)."""
    from bigbench.distributed.strategy import is_sharded
    from bigbench.measuring.flops import meta_copy

    if not is_sharded(workload.model):
        return meta_copy(workload.model)
    from bigbench.models import build_model
    from bigbench.models.build import config_from_args

    with torch.device("meta"):
        return build_model(config_from_args(workload.built.args), workload.info).module


def _meta_twin(workload: Workload, samples: int) -> tuple[Workload, Batch]:
    """The workload around a meta-device copy of its model, and a meta batch of ``samples``."""
    from bigbench.config.schema import OptimizerConfig
    from bigbench.optim import build_optimizer
    from bigbench.workload.precision import Precision

    # An inference workload's model is counted with a plain SGD update: the update is
    # elementwise and counts 0, so any optimizer gives the same training-step FLOPs.
    optimizer = workload.optimizer_config or OptimizerConfig(name="sgd")
    twin_model = _meta_model(workload)
    # Model FLOPs, the MFU convention: activation checkpointing's recomputed forward passes
    # are extra work of the method, not of the model, so the twin does not recompute.
    for module in twin_model.modules():
        if getattr(module, "checkpoint_activations", False):
            module.checkpoint_activations = False
    meta = torch.device("meta")
    # fp32 (autocast off) on the meta twin; its device only names the autocast device type.
    twin = dataclasses.replace(
        workload, device=torch.device("cpu") if workload.device.type == "meta" else
        workload.device, built=dataclasses.replace(workload.built, module=twin_model),
        runnable=twin_model, precision=Precision("fp32"), channels_last=False, schedule=None,
        scaler=None, grad_clip=None, skip_non_finite=False,  # no host reads of meta values
        optimizer=build_optimizer(optimizer, twin_model.parameters()))
    info = workload.info
    with meta:
        if info.is_tokens:
            inputs = torch.randint(0, info.vocab_size or 1, (samples, *info.sample_shape))
        else:
            inputs = torch.randn(samples, *info.sample_shape)
        targets = workload.task.synthetic_targets(samples, info, None, meta)
    return twin, (inputs, targets)


def evaluate(workload: Workload, split: Split, batch_size: int,
             collectives: Collectives | None = None) -> dict[str, float]:
    """The task's metrics on ``split`` (model in eval mode for the pass, then back to train).

    In a distributed job (``collectives``) each rank evaluates its own contiguous 1/N of the
    split and the sums are added over the ranks: every rank gets the job's metrics (so the
    ranks take a target decision together) for a 1/N share of the work.
    """
    model, task, amp = workload.model, workload.task, workload.precision.autocast_dtype
    model.eval()
    try:
        if collectives is None or collectives.rank.world_size == 1:
            return task.evaluate(model, sequential_batches(split, batch_size), amp)
        place = collectives.rank
        own = eval_shard(len(split), place.rank, place.world_size)
        shard = Split(split.x[own], split.y[own])
        sums = task.evaluation_sums(model, sequential_batches(shard, batch_size), amp)
        if is_sharded(model):
            # Each FSDP forward gathers the weights with every rank: all ranks must run as
            # many forwards, so a rank whose shard has one batch fewer runs one more and
            # discards it.
            largest = eval_shard(len(split), 0, place.world_size).stop
            for _ in range(_batches(largest, batch_size) - _batches(len(shard), batch_size)):
                task.evaluation_sums(model, [(split.x[:1], split.y[:1])], amp)
        return task.metrics_from_sums(collectives.sum(sums).tolist())
    finally:
        model.train()


def _batches(samples: int, batch_size: int) -> int:
    return -(-samples // batch_size)


def eval_shard(samples: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous share of ``samples`` evaluation samples; the shares differ
    by at most one sample, the first ones being the larger."""
    base, extra = divmod(samples, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


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
