"""Optimizers and schedules built from the config."""

from __future__ import annotations

import pytest
import torch

from bigbench.config.schema import OptimizerConfig, ScheduleConfig
from bigbench.optim import build_optimizer, build_schedule


def _params():
    return [torch.nn.Parameter(torch.ones(3))]


@pytest.mark.parametrize(("name", "cls"), [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                           ("adamw", torch.optim.AdamW)])
def test_optimizers(name, cls) -> None:
    optimizer = build_optimizer(OptimizerConfig(name=name, lr=0.5, weight_decay=0.1), _params())
    assert isinstance(optimizer, cls)
    assert optimizer.param_groups[0]["lr"] == 0.5
    assert optimizer.param_groups[0]["weight_decay"] == 0.1


def _lrs(schedule_cfg: ScheduleConfig, steps: int) -> list[float]:
    optimizer = build_optimizer(OptimizerConfig(lr=1.0), _params())
    schedule = build_schedule(schedule_cfg, optimizer, total_steps=steps)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_cosine_goes_from_lr_to_min_lr() -> None:
    lrs = _lrs(ScheduleConfig(name="cosine", min_lr=0.1), steps=10)
    assert lrs[0] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)
    assert lrs[5] == pytest.approx(0.55)  # halfway: the mean of lr and min_lr
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_step_schedule_decays_every_step_size() -> None:
    lrs = _lrs(ScheduleConfig(name="step", step_size=3, gamma=0.5), steps=7)
    assert lrs[:7] == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.25])


def test_constant_has_no_schedule() -> None:
    optimizer = build_optimizer(OptimizerConfig(), _params())
    assert build_schedule(ScheduleConfig(), optimizer, 10) is None
