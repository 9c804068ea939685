"""The training step, the evaluation pass, and the eager step time compile is measured against."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from bigbench.data.tensors import Split, sequential_batches
from bigbench.devices import synchronize

Batch = tuple[torch.Tensor, torch.Tensor]


def make_train_step(model: nn.Module, optimizer: torch.optim.Optimizer,
                    schedule: torch.optim.lr_scheduler.LRScheduler | None,
                    grad_clip: float | None, skip_non_finite: bool = False, *,
                    channels_last: bool = False, amp_dtype: torch.dtype | None = None,
                    scaler: torch.amp.GradScaler | None = None, device_type: str = "cpu"
                    ) -> Callable[[Batch], torch.Tensor]:
    """The classic step (forward, loss, zero_grad, backward, step) plus clip and schedule.

    Args:
        skip_non_finite: A NaN/inf loss skips the update; checking it costs a host sync.
        channels_last: Feed inputs in channels_last layout (a no-op for one channel).
        amp_dtype: Autocast dtype for forward and loss (None: fp32).
        scaler: Loss scaler for fp16 on CUDA.
    """
    loss_fn = nn.CrossEntropyLoss()
    autocast = amp_dtype is not None

    def step(batch: Batch) -> torch.Tensor:
        inputs, labels = batch
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type, dtype=amp_dtype, enabled=autocast):
            loss = loss_fn(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        if skip_non_finite and not bool(torch.isfinite(loss)):
            return loss
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        if schedule is not None:
            schedule.step()
        return loss

    return step


def evaluate(model: nn.Module, split: Split, batch_size: int,
             amp_dtype: torch.dtype | None = None) -> tuple[float, float]:
    """Accuracy and mean cross-entropy on ``split``, with one host sync at the end."""
    model.eval()
    device = split.y.device
    correct = torch.zeros((), dtype=torch.long, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype,
                                                enabled=amp_dtype is not None):
        for inputs, labels in sequential_batches(split, batch_size):
            logits = model(inputs).float()
            loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum").double()
            correct += (logits.argmax(dim=1) == labels).sum()
    model.train()
    n = len(split)
    return correct.item() / n, loss_sum.item() / n


def eager_step_time(model: nn.Module, make_optimizer: Callable[[nn.Module],
                    torch.optim.Optimizer], step_factory: Callable[..., Callable[[Batch],
                    torch.Tensor]], batch: Batch, device: torch.device, steps: int = 5
                    ) -> float:
    """Median seconds of an eager training step, on a throwaway copy of the model.

    The copy has its own optimizer, so the run's weights are untouched; the caller saves and
    restores the RNG states around it.
    """
    clone = copy.deepcopy(model)
    step = step_factory(clone, make_optimizer(clone))
    for _ in range(2):  # allocator growth and first-call costs
        step(batch)
    times = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        step(batch)
        synchronize(device)
        times.append(time.perf_counter() - start)
    del clone
    return statistics.median(times)
