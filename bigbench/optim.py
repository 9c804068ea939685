"""Optimizers and learning-rate schedules from the config."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from bigbench.config.schema import OptimizerConfig, ScheduleConfig


def build_optimizer(config: OptimizerConfig, params: Iterable[torch.nn.Parameter]
                    ) -> torch.optim.Optimizer:
    """SGD (with optional momentum), Adam or AdamW."""
    params = list(params)
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    if config.name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def build_schedule(config: ScheduleConfig, optimizer: torch.optim.Optimizer, total_steps: int
                   ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-step schedule, or None for a constant learning rate."""
    if config.name == "constant":
        return None
    if config.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
    base = optimizer.param_groups[0]["lr"]
    floor = min(config.min_lr / base, 1.0)

    def cosine(step: int) -> float:
        progress = min(step / max(total_steps, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
