"""Helpers shared by the benchmark scripts: the reference loops and interleaved A/B timing."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake powercap tree lives with the test fakes


def reference_model(name: str) -> nn.Module:
    """The reference CNN or RNN with its documented defaults."""
    from bigbench.models import MODELS, build_model

    spec = MODELS.get(name)
    return build_model(spec.config_class(name=name), spec.extras["reference_data"]).module


def reference_workload(name: str, optimizer=None, channels_last: bool = False):  # noqa: ANN001, ANN201
    """The reference model as a bigbench training workload on the CPU (default: SGD, lr 0.01)."""
    from bigbench.config.schema import OptimizerConfig
    from bigbench.models import MODELS, build_model
    from bigbench.workload.build import workload_from_module

    spec = MODELS.get(name)
    info = spec.extras["reference_data"]
    return workload_from_module(build_model(spec.config_class(name=name), info), info,
                                torch.device("cpu"), channels_last=channels_last,
                                optimizer=optimizer or OptimizerConfig(name="sgd", lr=0.01))


def token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The language-model loss as nanoGPT-style loops write it: every position's next token."""
    return nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def classic_criterion(language_model: bool) -> Callable[[torch.Tensor, torch.Tensor],
                                                        torch.Tensor]:
    """CrossEntropyLoss for a classifier, the flattened per-token loss for a language model."""
    return token_cross_entropy if language_model else nn.CrossEntropyLoss()


def classic_step(model: nn.Module, criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 optimizer: torch.optim.Optimizer, images: torch.Tensor,
                 labels: torch.Tensor) -> None:
    """The textbook training step, exactly as the classic examples write it."""
    outputs = model(images)
    loss = criterion(outputs, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def bare_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
              steps: int, warmup: int, lr: float = 0.01, momentum: float = 0.0,
              seed: int = 0, language_model: bool = False) -> float:
    """The plain loop — forward, loss, zero_grad, backward, step — on in-memory tensors.

    Batches are slices through a seeded permutation (no DataLoader). Returns samples/s over the
    ``steps`` after ``warmup``.
    """
    criterion = classic_criterion(language_model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    per_epoch = len(x) // batch_size
    start = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        j = i % per_epoch
        index = order[j * batch_size:(j + 1) * batch_size]
        classic_step(model, criterion, optimizer, x[index], y[index])
    return steps * batch_size / (time.perf_counter() - start)


def dataloader_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                    steps: int, warmup: int, lr: float = 0.01, momentum: float = 0.0,
                    language_model: bool = False) -> float:
    """The same loop fed by ``DataLoader(TensorDataset(x, y), shuffle=True)``."""
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                        drop_last=True)
    criterion = classic_criterion(language_model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    done, start = 0, 0.0
    while done < warmup + steps:
        for images, labels in loader:
            if done == warmup:
                start = time.perf_counter()
            classic_step(model, criterion, optimizer, images, labels)
            done += 1
            if done == warmup + steps:
                break
    return steps * batch_size / (time.perf_counter() - start)


def interleaved(arms: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run every arm once per repeat, rotating the order, and collect their results."""
    names = list(arms)
    results: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            results[name].append(arms[name]())
    return results


def summary(values: list[float]) -> str:
    """``median (IQR a–b)`` of repeated samples/s."""
    ordered = sorted(values)
    q1 = ordered[len(ordered) // 4]
    q3 = ordered[(3 * len(ordered)) // 4]
    return f"{statistics.median(values):,.1f} samples/s (IQR {q1:,.0f}–{q3:,.0f})"
